"""Recorded sweeps: a checkpoint's measured results kept in its metadata.

A whole sweep of the test set takes tens of seconds on a small CPU, and for a shipped
checkpoint the answer never changes. `python -m rotinv record CHECKPOINT` measures the
sweep once and writes every result (loss, accuracy, per-class accuracy, confusion matrix)
into the checkpoint's JSON sidecar, with what makes it valid: the weights' content hash
and the test set's. The app then shows those results the moment a page opens, for exactly
those weights and that data, and measures anything else live. The test suite measures
them again and compares.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch

from rotinv.checkpoints import CheckpointError, load_checkpoint, metadata_path, update_metadata, weights_fingerprint
from rotinv.data import Split
from rotinv.evaluation import AngleResult, RotationPooled, evaluate
from rotinv.rotation import quarter_turns

RECORDS_KEY = "recorded_sweeps"
# The sweep page's default view (every 15°), and both of its interpolations.
DEFAULT_ANGLES: tuple[float, ...] = tuple(float(a) for a in range(0, 360, 15))
DEFAULT_SETTINGS: tuple[tuple[str, int], ...] = (("bilinear", 1), ("nearest", 1))

# (weights fingerprint, test-set sha256, angle in [0, 360), interpolation, test-time copies)
RecordKey = tuple[str, str, float, str, int]

# How far a measurement may stand from a record of the same weights on the same data and
# still be the same result. Between AVX2 and AVX-512 kernels the mean loss of a shipped
# model moved by at most 2.2e-7 of itself and no prediction changed (every recorded setting
# of all three models, docs/DESIGN.md); the bounds leave room for other CPUs and GPUs.
LOSS_RELATIVE_TOLERANCE = 1e-5
MOVED_PREDICTIONS_TOLERANCE = 3  # images of the test set whose predicted class may differ


@dataclass(frozen=True)
class Discrepancy:
    """How a measured result differs from a recorded one."""

    loss_relative: float  # |loss - recorded loss| / |recorded loss|
    moved_predictions: int  # the fewest changed predictions that explain the counts' difference

    def within_tolerance(self) -> bool:
        return (self.loss_relative <= LOSS_RELATIVE_TOLERANCE
                and self.moved_predictions <= MOVED_PREDICTIONS_TOLERANCE)


def discrepancy(recorded: AngleResult, measured: AngleResult) -> Discrepancy:
    """How far `measured` is from `recorded`; a ValueError if they are not of the same test."""
    if (recorded.count, float(recorded.angle) % 360) != (measured.count, float(measured.angle) % 360):
        raise ValueError(f"A result on {measured.count} images at {measured.angle:g}° cannot be compared with "
                         f"one on {recorded.count} images at {recorded.angle:g}°.")
    # An image whose prediction changes leaves one cell of its row and enters another.
    cells = sum(abs(a - b) for old, new in zip(recorded.confusion, measured.confusion) for a, b in zip(old, new))
    correct = round(abs(recorded.accuracy - measured.accuracy) * recorded.count)
    scale = abs(recorded.loss) or 1.0
    loss_relative = abs(measured.loss - recorded.loss) / scale
    if loss_relative != loss_relative:  # NaN on either side never matches
        loss_relative = float("inf")
    return Discrepancy(loss_relative, max(-(-cells // 2), correct))


def matches(recorded: AngleResult, measured: AngleResult) -> bool:
    """Whether `measured` is the recorded result, up to rounding (see LOSS_RELATIVE_TOLERANCE)."""
    return discrepancy(recorded, measured).within_tolerance()


def canonical_key(fingerprint: str, data_sha256: str, angle: float, interpolation: str,
                  tta_copies: int) -> RecordKey:
    """The key a result is filed under: angles a full turn apart share it, and at quarter
    turns (exact pixel permutations) so do the two interpolations."""
    angle = float(angle) % 360.0
    tta_copies = int(tta_copies)
    exact = quarter_turns(angle) is not None and (tta_copies <= 1 or quarter_turns(360.0 / tta_copies) is not None)
    return (fingerprint, data_sha256, angle, "bilinear" if exact else interpolation, tta_copies)


def recorded_at(records: Mapping[RecordKey, AngleResult], fingerprint: str, data_sha256: str, angle: float,
                interpolation: str, tta_copies: int) -> AngleResult | None:
    """The recorded result for these weights, data and setting at `angle`, named by that angle; or None."""
    found = records.get(canonical_key(fingerprint, data_sha256, angle, interpolation, tta_copies))
    return None if found is None else found.at(angle)


def unrecorded_angles(records: Mapping[RecordKey, AngleResult], fingerprint: str, data_sha256: str,
                      angles: Sequence[float], interpolation: str, tta_copies: int) -> list[float]:
    """The angles among `angles` that no record answers, one per distinct result (360° shares 0°'s):
    what a sweep over them has to measure."""
    one_per_result: dict[RecordKey, float] = {}
    for angle in angles:
        one_per_result.setdefault(canonical_key(fingerprint, data_sha256, angle, interpolation, tta_copies),
                                  float(angle))
    return [angle for key, angle in one_per_result.items() if key not in records]


def measure_sweeps(model: torch.nn.Module, split: Split, angles: Sequence[float] = DEFAULT_ANGLES,
                   settings: Iterable[tuple[str, int]] = DEFAULT_SETTINGS) -> list[dict]:
    """The sweeps to record: each (interpolation, copies) setting at every angle, as JSON-ready dicts."""
    fingerprint = weights_fingerprint(model)
    sweeps = []
    for interpolation, copies in settings:
        scored = model if copies <= 1 else RotationPooled(model, copies, interpolation)
        results = [evaluate(scored, split.images, split.labels, angle, interpolation).to_dict() for angle in angles]
        sweeps.append({"interpolation": interpolation, "tta_copies": int(copies), "test_set": split.name,
                       "test_set_sha256": split.sha256, "weights_fingerprint": fingerprint,
                       "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                       "cpu_kernels": cpu_kernels(),
                       "recorded": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                       "results": results})
    return sweeps


def recorded_results(metadata: Mapping) -> dict[RecordKey, AngleResult]:
    """Every recorded result in a checkpoint's metadata, by canonical key. Malformed entries are ignored."""
    found: dict[RecordKey, AngleResult] = {}
    sweeps = metadata.get(RECORDS_KEY)
    if not isinstance(sweeps, list):
        return found
    for sweep in sweeps:
        try:
            for row in sweep["results"]:
                result = AngleResult.from_dict(row)
                key = canonical_key(str(sweep["weights_fingerprint"]), str(sweep["test_set_sha256"]),
                                    result.angle, str(sweep["interpolation"]), int(sweep["tta_copies"]))
                found[key] = result
        except (KeyError, TypeError, ValueError):
            continue  # a hand-edited or older sidecar: those results are measured live instead
    return found


def record(checkpoint: str | os.PathLike, split: Split, angles: Sequence[float] = DEFAULT_ANGLES,
           settings: Iterable[tuple[str, int]] = DEFAULT_SETTINGS, command: str = "") -> list[dict]:
    """Measure the sweeps of a checkpoint and store them in its sidecar (the weights are not touched).

    Sweeps already recorded for other settings or data are kept; the ones measured now
    replace any for the same setting and data.
    """
    path = Path(checkpoint)
    model, metadata = load_checkpoint(path)
    if not metadata and metadata_path(path).exists():
        raise CheckpointError(f"{metadata_path(path).name} does not describe the weights in {path.name} "
                              "(or is not readable JSON); it is left as it is. Save the checkpoint again first.")
    sweeps = measure_sweeps(model, split, angles, settings)
    for sweep in sweeps:
        sweep["command"] = command
    fresh = {(s["interpolation"], s["tta_copies"], s["test_set_sha256"]) for s in sweeps}
    kept = [s for s in metadata.get(RECORDS_KEY, []) if isinstance(s, dict)
            and (s.get("interpolation"), s.get("tta_copies"), s.get("test_set_sha256")) not in fresh]
    update_metadata(path, {**metadata, RECORDS_KEY: kept + sweeps})
    return sweeps


def cpu_model() -> str:
    """The CPU's model name as the operating system reports it (what a training time was measured on)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine()


def cpu_kernels() -> str:
    """The CPU kernel family torch runs here ('AVX512', 'AVX2', ...), and oneDNN's cap if one is set."""
    family = torch.backends.cpu.get_cpu_capability()
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip()
    return f"{family} (oneDNN capped at {cap})" if cap else family


@dataclass(frozen=True)
class CheckedSweep:
    """One recorded sweep measured again: its setting and each angle's discrepancy."""

    interpolation: str
    tta_copies: int
    recorded_on: str  # the CPU kernels the record names ("" for records older than that field)
    by_angle: tuple[tuple[float, Discrepancy], ...]

    def worst(self) -> Discrepancy:
        return Discrepancy(max(d.loss_relative for _, d in self.by_angle),
                           max(d.moved_predictions for _, d in self.by_angle))


def check(checkpoint: str | os.PathLike, split: Split, angles: Sequence[float] | None = None,
          settings: Iterable[tuple[str, int]] | None = None) -> list[CheckedSweep]:
    """Measure a checkpoint's recorded sweeps again here and say how far each result is from its record.

    Only records of these weights on this test set are checked; `angles` and `settings`
    narrow them (None: all of them). A CheckpointError when nothing recorded is left to check.
    """
    model, metadata = load_checkpoint(checkpoint)
    fingerprint = weights_fingerprint(model)
    wanted_settings = None if settings is None else {(i, int(c)) for i, c in settings}
    wanted_angles = None if angles is None else {float(a) % 360 for a in angles}
    checked = []
    for sweep in metadata.get(RECORDS_KEY, []):
        if not isinstance(sweep, dict) or sweep.get("weights_fingerprint") != fingerprint \
                or sweep.get("test_set_sha256") != split.sha256:
            continue
        interpolation, copies = str(sweep.get("interpolation")), int(sweep.get("tta_copies", 1))
        if wanted_settings is not None and (interpolation, copies) not in wanted_settings:
            continue
        scored = model if copies <= 1 else RotationPooled(model, copies, interpolation)
        by_angle = []
        for row in sweep.get("results", []):
            stored = AngleResult.from_dict(row)
            if wanted_angles is None or stored.angle % 360 in wanted_angles:
                measured = evaluate(scored, split.images, split.labels, stored.angle, interpolation)
                by_angle.append((stored.angle, discrepancy(stored, measured)))
        if by_angle:
            checked.append(CheckedSweep(interpolation, copies, str(sweep.get("cpu_kernels", "")), tuple(by_angle)))
    if not checked:
        raise CheckpointError(f"{Path(checkpoint).name} has no recorded sweep of these weights on this test set "
                              "at those settings and angles to check; `python -m rotinv record` makes one.")
    return checked
