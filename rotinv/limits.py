"""Caps on what the app lets one person train, for shared deployments.

A lecturer's laptop can train on all 60,000 images for many epochs; a free Streamlit
Community Cloud server shared by a class cannot. The deployment sets

    ROTINV_MAX_EPOCHS                 most epochs one training run may have (default 20)
    ROTINV_MAX_TRAIN_IMAGES           most training images one run may use (default 60000)
    ROTINV_MAX_SESSION_MODELS         most models (trained or uploaded) one browser session keeps;
                                      a further one replaces that session's oldest (default 5)
    ROTINV_MAX_CONCURRENT_TRAININGS   most trainings running at once in one server process;
                                      the others wait in a first-come queue (rotinv.admission).
                                      Default: 1 on up to 2 cores, else half the cores
    ROTINV_MAX_CONCURRENT_PAGE_RUNS   most page runs (a session's answer to a click) computed at
                                      once; the others wait their turn, first come first served
                                      (rotinv.turns). Default 1: they share one interpreter

and the Train page offers nothing above them. These are policy; the hard limits that
catch typing mistakes live in rotinv.training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from rotinv.training import MAX_EPOCHS

MAX_EPOCHS_ENV = "ROTINV_MAX_EPOCHS"
MAX_TRAIN_IMAGES_ENV = "ROTINV_MAX_TRAIN_IMAGES"
MAX_SESSION_MODELS_ENV = "ROTINV_MAX_SESSION_MODELS"
DEFAULT_MAX_EPOCHS = 20
MNIST_TRAIN_IMAGES = 60_000
# A LeNet-5 is ~1 MB of weights, but each kept model also keeps its training history and
# the cached pictures and results keyed by it: five per student is plenty for a lecture.
DEFAULT_MAX_SESSION_MODELS = 5
MAX_SESSION_MODELS = 1_000  # a typing mistake's guard


@dataclass(frozen=True)
class TrainingLimits:
    max_epochs: int = DEFAULT_MAX_EPOCHS
    max_train_images: int = MNIST_TRAIN_IMAGES
    max_session_models: int = DEFAULT_MAX_SESSION_MODELS


def _read_cap(environ: Mapping[str, str], name: str, default: int, upper: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number between 1 and {upper:,}, got {text!r}.") from None
    if not 1 <= value <= upper:
        raise ValueError(f"{name} must be between 1 and {upper:,}, got {value:,}.")
    return value


def training_limits(environ: Mapping[str, str] | None = None) -> TrainingLimits:
    """The caps from the environment (os.environ unless given); ValueError for a bad value."""
    environ = os.environ if environ is None else environ
    return TrainingLimits(
        max_epochs=_read_cap(environ, MAX_EPOCHS_ENV, DEFAULT_MAX_EPOCHS, MAX_EPOCHS),
        max_train_images=_read_cap(environ, MAX_TRAIN_IMAGES_ENV, MNIST_TRAIN_IMAGES, MNIST_TRAIN_IMAGES),
        max_session_models=_read_cap(environ, MAX_SESSION_MODELS_ENV, DEFAULT_MAX_SESSION_MODELS,
                                     MAX_SESSION_MODELS),
    )


def kept_after_adding(keys: list[str], cap: int) -> tuple[list[str], list[str]]:
    """(the keys kept, the keys dropped) when a session holding `keys` (oldest first, the new
    one last) may keep `cap` models: the oldest go first, the new one always stays."""
    dropped = keys[:max(0, len(keys) - cap)]
    return keys[len(dropped):], dropped


def train_size_choices(limits: TrainingLimits, sizes: tuple[int, ...] = (2_000, 10_000, 60_000)) -> list[int]:
    """The training-set sizes to offer: the usual ones that fit under the cap, and the cap itself."""
    choices = sorted({size for size in sizes if size <= limits.max_train_images} | {limits.max_train_images})
    return choices


TORCH_THREADS_ENV = "ROTINV_TORCH_THREADS"


def torch_threads(environ: Mapping[str, str] | None = None) -> int | None:
    """$ROTINV_TORCH_THREADS as a thread count for torch, or None to keep torch's own choice.

    One thread suits a shared server: every browser session runs in its own thread, and
    torch's OpenMP threads from several sessions on two cores mostly wait for each other
    (BENCHMARKS.md measured one thread faster than two on a loaded 2-core machine).
    """
    environ = os.environ if environ is None else environ
    if not environ.get(TORCH_THREADS_ENV, "").strip():
        return None
    return _read_cap(environ, TORCH_THREADS_ENV, 1, 256)


MAX_CONCURRENT_TRAININGS_ENV = "ROTINV_MAX_CONCURRENT_TRAININGS"
MAX_CONCURRENT_TRAININGS = 64  # a typing mistake's guard, far above any machine's sensible value


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS reports it, else the CPU count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def default_concurrent_trainings(cores: int) -> int:
    """1 on up to 2 cores, else half the cores.

    A training keeps a core busy for its whole run; the rest of the cores are what every
    other student's slider and picture are computed on. Half for each is the rule: on a
    2-core class server one training at a time, so the other core stays with the class.
    """
    return 1 if cores <= 2 else cores // 2


def max_concurrent_trainings(environ: Mapping[str, str] | None = None, cores: int | None = None) -> int:
    """$ROTINV_MAX_CONCURRENT_TRAININGS, or default_concurrent_trainings for this machine's
    cores when it is unset; ValueError for a bad value."""
    environ = os.environ if environ is None else environ
    default = default_concurrent_trainings(usable_cores() if cores is None else cores)
    return _read_cap(environ, MAX_CONCURRENT_TRAININGS_ENV, default, MAX_CONCURRENT_TRAININGS)


MAX_CONCURRENT_PAGE_RUNS_ENV = "ROTINV_MAX_CONCURRENT_PAGE_RUNS"
# One: every session's script shares the process's one interpreter (the GIL), so answers
# computed side by side only stretch each other (rotinv.turns, BENCHMARKS.md).
DEFAULT_CONCURRENT_PAGE_RUNS = 1
MAX_CONCURRENT_PAGE_RUNS = 1_000  # a typing mistake's guard; so many is the same as no limit


def max_concurrent_page_runs(environ: Mapping[str, str] | None = None) -> int:
    """$ROTINV_MAX_CONCURRENT_PAGE_RUNS, or 1 when it is unset; ValueError for a bad value."""
    environ = os.environ if environ is None else environ
    return _read_cap(environ, MAX_CONCURRENT_PAGE_RUNS_ENV, DEFAULT_CONCURRENT_PAGE_RUNS, MAX_CONCURRENT_PAGE_RUNS)
