"""The training loop: plain minibatch Adam, with progress reports and a way to stop early.

Deterministic on the CPU for a given seed: the seed fixes the initial weights, the
shuffling and the augmentation angles, each from its own generator.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from rotinv import precision as precisions
from rotinv.architectures import build_model
from rotinv.data import unit_range
from rotinv.rotation import rotate_each

AUGMENTATIONS = ("none", "rotation")
# "cosine" decays the learning rate from its value to 0 over the run; "onecycle" warms up
# from a 25th of it to all of it over the first quarter of the steps, then decays to
# nearly 0 (Smith's one-cycle policy, which also cycles Adam's beta1 0.95 -> 0.85 -> 0.95);
# "constant" keeps it.
SCHEDULES = ("cosine", "onecycle", "constant")
ONECYCLE_WARMUP = 0.25
# Limits that catch typing mistakes (epochs=1000, batch_size=10**6), not policy; a
# shared deployment sets its own, lower caps in the app (see rotinv.limits).
MAX_EPOCHS = 200
MAX_BATCH_SIZE = 60_000
MAX_LEARNING_RATE = 10.0


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "lenet5"
    epochs: int = 3
    learning_rate: float = 1e-3
    # 128, not the more common 64: on a 2-core CPU each step's convolutions then run at
    # about 1.3x the images/s (an epoch is half the steps; docs/DESIGN.md gives the cost).
    batch_size: int = 128
    seed: int = 0
    augment: str = "none"  # "rotation": every image turned by a uniform random angle in [0, 360)
    schedule: str = "cosine"  # one of SCHEDULES
    label_smoothing: float = 0.0  # cross-entropy's target smoothing, 0 for none
    # "fp32"; "bf16" (autocast, channels-last); "auto": bf16 where the hardware has it and
    # a few timed steps show it faster, else fp32 (see choose_precision).
    precision: str = "fp32"
    device: str = "cpu"

    def __post_init__(self) -> None:
        validate_train_config(self)

    def to_dict(self) -> dict:
        return asdict(self)


# Named recipes: the fields they set on top of TrainConfig's defaults (batch size, seed
# and data stay the caller's, and the architecture unless the recipe is for one). "lecture" is LeNet-5 to 99% upright on
# the whole training set in two epochs, live in front of a class: the one-cycle schedule
# at 3e-3 reached 99.09-99.22% for five seeds where the default recipe, cut to two epochs,
# stops near 98.7% (docs/DESIGN.md, "The lecture preset").
PRESETS: dict[str, dict[str, object]] = {
    # "auto" precision: bf16 on a CPU that has it made these steps 1.4-1.6x as fast, at the
    # same accuracy (docs/DESIGN.md, "bf16 training").
    "lecture": {"epochs": 2, "learning_rate": 3e-3, "schedule": "onecycle", "precision": "auto"},
    # The punchline: a network right at every angle (models/c4cnn.json holds its sweep).
    # It names its architecture, and needs the turned digits it is trained on.
    "invariant": {"arch": "c4cnn", "epochs": 20, "learning_rate": 3e-3, "schedule": "onecycle",
                  "augment": "rotation"},
}


def preset_config(name: str, **fields: object) -> TrainConfig:
    """TrainConfig with the preset's fields, and `fields` on top (None means: the preset's or the default)."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of: {', '.join(sorted(PRESETS))}.")
    given = {key: value for key, value in fields.items() if value is not None}
    return TrainConfig(**{**PRESETS[name], **given})


def validate_train_config(config: TrainConfig) -> None:
    def positive_int(name: str, value: object, upper: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be a whole number, got {value!r}.")
        if not 1 <= value <= upper:
            raise ValueError(f"{name} must be between 1 and {upper}, got {value}.")

    positive_int("epochs", config.epochs, MAX_EPOCHS)
    positive_int("batch size", config.batch_size, MAX_BATCH_SIZE)
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {config.seed!r}.")
    lr = config.learning_rate
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or not 0 < lr <= MAX_LEARNING_RATE:
        raise ValueError(f"learning rate must be > 0 and <= {MAX_LEARNING_RATE}, got {lr!r}.")
    if config.augment not in AUGMENTATIONS:
        raise ValueError(f"Unknown augmentation {config.augment!r}; choose one of: {', '.join(AUGMENTATIONS)}.")
    if config.precision not in precisions.PRECISIONS:
        raise ValueError(f"Unknown precision {config.precision!r}; choose one of: {', '.join(precisions.PRECISIONS)}.")
    if config.schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule {config.schedule!r}; choose one of: {', '.join(SCHEDULES)}.")
    smoothing = config.label_smoothing
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0 <= smoothing < 1:
        raise ValueError(f"label smoothing must be at least 0 and below 1, got {smoothing!r}.")
    build_model(config.arch)  # raises a clear ValueError for an unknown architecture


def learning_rate_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig,
                           total_steps: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The scheduler config.schedule names, stepped once per optimiser step (None: constant)."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if config.schedule == "onecycle":
        # OneCycleLR cannot lay out its two phases over fewer than 5 steps (it divides by
        # their lengths); a run that short simply ends during the warm-up.
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.learning_rate,
                                                   total_steps=max(total_steps, 5), pct_start=ONECYCLE_WARMUP)
    return None


# How many progress reports a run's curves get (a run shorter than this reports every step).
REPORT_POINTS = 40


def report_interval(total_steps: int, points: int = REPORT_POINTS) -> int:
    """Steps between progress reports, so that a run of total_steps draws about `points` of them."""
    return max(1, math.ceil(total_steps / points))


@dataclass(frozen=True)
class Progress:
    """What the loop reports every few steps. Loss and accuracy are running averages over
    the current epoch so far."""

    epoch: int  # 1-based
    step: int  # optimiser steps done so far, over the whole run
    total_steps: int
    loss: float
    accuracy: float
    images_seen: int
    seconds: float = 0.0  # since the loop started, held-out evaluations left out
    held_out_accuracy: float | None = None  # upright, on the held-out images train() was given

    def images_per_second(self) -> float:
        return self.images_seen / self.seconds if self.seconds > 0 else 0.0

    def seconds_left(self) -> float:
        """What the steps still to do would take at the rate so far."""
        return self.seconds * (self.total_steps - self.step) / self.step if self.step else float("nan")


@dataclass
class TrainResult:
    model: nn.Module
    config: TrainConfig
    history: list[Progress] = field(default_factory=list)
    stopped_early: bool = False
    epochs_completed: int = 0
    steps_completed: int = 0
    train_loss: float = float("nan")  # running average over the last (possibly partial) epoch
    train_accuracy: float = float("nan")
    train_images: int = 0
    seconds: float = 0.0
    precision: str = "fp32"  # what the steps ran in (config.precision "auto" resolved)
    precision_reason: str = ""


def upright_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy on upright images, leaving the model in training mode if it was."""
    was_training = model.training
    device = next(model.parameters()).device
    with torch.inference_mode():
        model.eval()
        correct = sum(int((model(unit_range(images[s:s + 512]).to(device)).argmax(1)
                           == labels[s:s + 512].to(device)).sum())
                      for s in range(0, len(images), 512))
    model.train(was_training)
    return correct / max(1, len(images))


# Untimed steps before the timed ones: oneDNN builds its kernels for each new shape and
# number format in the first step or two (bf16's take longer to build than fp32's).
WARM_UP_STEPS = 2


def seconds_per_step(config: TrainConfig, images: torch.Tensor, labels: torch.Tensor, steps: int = 4) -> float:
    """One optimiser step of `config` here and now: a few real steps on a throwaway model, timed.

    The warm-up steps are left out, so the figure includes this machine's load at this
    moment but not the one-off start-up.
    """
    steps = max(1, steps)
    batch = min(config.batch_size, len(images))
    index = torch.arange(batch * (steps + WARM_UP_STEPS)) % len(images)
    timed: list[float] = []
    train(images[index], labels[index], replace(config, epochs=1),
          on_progress=lambda progress: timed.append(progress.seconds), report_every=1)
    return (timed[-1] - timed[WARM_UP_STEPS - 1]) / steps  # from the end of the warm-up to the end of the last


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str  # "fp32" or "bf16"
    reason: str  # one sentence for the page, the CLI and the checkpoint's metadata
    seconds_per_step: dict[str, float] = field(default_factory=dict)  # what was timed, by precision


# bf16 must beat fp32 by this much in the timed steps: a tie is not worth the rounding.
BF16_MIN_SPEEDUP = 1.05


def choose_precision(config: TrainConfig, images: torch.Tensor, labels: torch.Tensor,
                     steps: int = 6, rounds: int = 2) -> PrecisionChoice:
    """What config.precision means here: as given, or for "auto" bf16 only where the device
    has native bf16 and timed steps of both (interleaved, best of `rounds`) show it faster."""
    if config.precision != "auto":
        return PrecisionChoice(config.precision, f"{precisions.describe(config.precision)}, as asked")
    device = resolve_device(config.device)
    if not precisions.native_bf16(device):
        return PrecisionChoice("fp32", f"fp32: this {device.type.upper()} has no native bf16 "
                                       f"({' or '.join(precisions.BF16_CPU_FLAGS)})")
    timed: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(rounds):  # interleaved, so both see the same load
        for name in timed:
            timed[name].append(seconds_per_step(replace(config, precision=name), images, labels, steps))
    best = {name: min(times) for name, times in timed.items()}
    speedup = best["fp32"] / best["bf16"]
    if speedup >= BF16_MIN_SPEEDUP:
        return PrecisionChoice("bf16", f"bf16 autocast: {speedup:.2f}x the speed of fp32 in timed steps here", best)
    return PrecisionChoice("fp32", f"fp32: bf16 ran at {speedup:.2f}x its speed in timed steps here", best)


def estimate_seconds(config: TrainConfig, images: torch.Tensor, labels: torch.Tensor, train_images: int,
                     steps: int = 4, choice: PrecisionChoice | None = None) -> float:
    """How long training on `train_images` images with `config` would take here, from a few
    timed steps (in the precision `choice` settled on, if given)."""
    choice = choice or choose_precision(config, images, labels)
    per_step = choice.seconds_per_step.get(choice.precision) or seconds_per_step(
        replace(config, precision=choice.precision), images, labels, steps)
    return per_step * math.ceil(train_images / config.batch_size) * config.epochs


def resolve_device(device: str) -> torch.device:
    """'cpu', 'cuda' (fails clearly when absent) or 'auto' (CUDA if present)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("A CUDA device was asked for, but PyTorch sees none; use --device cpu.")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"Unknown device {device!r}; use cpu, cuda or auto.")
    return torch.device(device)


def train(
    images: torch.Tensor,
    labels: torch.Tensor,
    config: TrainConfig,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    report_every: int = 20,
    model: nn.Module | None = None,
    held_out: tuple[torch.Tensor, torch.Tensor] | None = None,
    precision: PrecisionChoice | None = None,
) -> TrainResult:
    """Train a model (a new one of config.arch, unless given) on images in [0, 1].

    `on_progress` is called every `report_every` steps and at the end of each epoch;
    `should_stop` is polled before each step, and when it answers True the loop ends
    there and returns the model as trained so far (stopped_early=True). With `held_out`
    (images, labels the model does not train on) every report also carries the model's
    upright accuracy on them; that time is not counted in the reports' seconds.
    `precision` is config.precision already settled (choose_precision); for "auto" without
    it, train() times a few steps of each first.
    """
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError("Training needs as many labels as images, and at least one image.")
    device = resolve_device(config.device)
    precision = precision or choose_precision(config, images, labels)
    torch.manual_seed(config.seed)  # initial weights
    if model is None:
        model = build_model(config.arch)
    model = model.to(device)
    shuffle_gen = torch.Generator().manual_seed(config.seed + 1)
    angle_gen = torch.Generator().manual_seed(config.seed + 2)

    steps_per_epoch = math.ceil(len(images) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    # fused: Adam's whole update as one vectorised kernel over each parameter, instead of
    # several passes over the 767k weights per step (foreach) or ~8 Python-issued ops per
    # tensor (plain). It rounds a little differently from those two, so the shipped
    # checkpoints were trained with it (see docs/DESIGN.md, "Training recipe").
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, fused=True)
    scheduler = learning_rate_schedule(optimizer, config, total_steps)
    result = TrainResult(model=model, config=config, train_images=len(images),
                         precision=precision.precision, precision_reason=precision.reason)
    started = time.perf_counter()
    step, images_seen = 0, 0

    evaluating = 0.0  # seconds spent on the held-out images, left out of the training time

    def report() -> None:  # the epoch so far, as the loop's variables stand now
        nonlocal evaluating
        seconds = time.perf_counter() - started - evaluating
        held_out_accuracy = None
        if held_out is not None:
            began = time.perf_counter()
            held_out_accuracy = upright_accuracy(model, *held_out)
            evaluating += time.perf_counter() - began
        progress = Progress(epoch, step, total_steps, loss_sum / seen, correct / seen, images_seen, seconds,
                            held_out_accuracy)
        result.history.append(progress)
        if on_progress is not None:
            on_progress(progress)

    model.train()
    # Channels-last weights for bf16 only while training, however the loop ends (a Stop
    # interrupts it from on_progress), so the model is handed back laid out as usual.
    with precisions.laid_out_for(model, precision.precision):
        for epoch in range(1, config.epochs + 1):
            order = torch.randperm(len(images), generator=shuffle_gen)
            loss_sum, correct, seen = 0.0, 0, 0
            for start in range(0, len(images), config.batch_size):
                if should_stop is not None and should_stop():
                    result.stopped_early = True
                    if seen and (not result.history or result.history[-1].step != step):
                        report()  # one last report, so the caller knows exactly how far the model got
                    break
                index = order[start : start + config.batch_size]
                batch, target = unit_range(images[index]), labels[index]  # uint8 pixels too
                if config.augment == "rotation":
                    angles = torch.rand(len(index), generator=angle_gen) * 360.0
                    batch = rotate_each(batch, angles)
                batch, target = batch.to(device), target.to(device)
                with precisions.autocast(precision.precision, device):
                    logits = model(batch)
                    loss = F.cross_entropy(logits, target, label_smoothing=config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                step += 1
                loss_sum += loss.item() * len(index)
                correct += int((logits.argmax(1) == target).sum())
                seen += len(index)
                images_seen += len(index)
                if step % report_every == 0 or start + len(index) >= len(images):
                    report()
            if seen:
                result.train_loss, result.train_accuracy = loss_sum / seen, correct / seen
            result.steps_completed = step
            if result.stopped_early:
                break
            result.epochs_completed = epoch
    result.seconds = time.perf_counter() - started
    model.eval()
    return result
