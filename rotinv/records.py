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


def canonical_key(fingerprint: str, data_sha256: str, angle: float, interpolation: str,
                  tta_copies: int) -> RecordKey:
    """The key a result is filed under: angles a full turn apart share it, and at quarter
    turns (exact pixel permutations) so do the two interpolations."""
    angle = float(angle) % 360.0
    tta_copies = int(tta_copies)
    exact = quarter_turns(angle) is not None and (tta_copies <= 1 or quarter_turns(360.0 / tta_copies) is not None)
    return (fingerprint, data_sha256, angle, "bilinear" if exact else interpolation, tta_copies)


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
