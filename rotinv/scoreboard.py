"""The scoreboard: every model on one line, from its sweep over the whole turn.

Pure functions: the Sweep page passes each shipped model's recorded results (one per
15° from 0° to 345°, bilinear, no test-time pooling) and its checkpoint metadata, and
gets rows, a table and sentences back. Nothing here is typed in except the published
figures kept for context, each with its source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import pandas as pd

from rotinv.evaluation import AngleResult

# Published test accuracies on MNIST-rot (Larochelle et al., 2007): 12,000 training and
# 50,000 test digits, each turned by a random angle -- a different benchmark from ours
# (all 60,000 training digits upright, augmented or not; the 10,000 test digits turned
# by every 15°), shown as context, not as a like-for-like comparison.
MNIST_ROT_LITERATURE: tuple[tuple[str, float], ...] = (
    ("P4CNN (Cohen & Welling, 2016)", 1 - 0.0228),
    ("Harmonic Networks (Worrall et al., 2017)", 1 - 0.0169),
    ("E(2)-steerable CNN (Weiler & Cesa, 2019)", 1 - 0.0068),
)
SIX, NINE = 6, 9


@dataclass(frozen=True)
class Score:
    model: str
    upright: float  # accuracy at 0°
    worst_angle: float
    worst: float
    mean: float  # over the angles swept
    sixes: float  # the 6s read as 6, averaged over the angles
    nines: float  # the 9s read as 9, averaged over the angles
    parameters: int | None
    training_seconds: float | None
    training_threads: int | None

    def right_at_every_angle(self, bar: float = 0.99) -> bool:
        return self.worst >= bar


def score(model: str, results: Sequence[AngleResult], metadata: Mapping | None = None) -> Score:
    """One model's line: `results` is its sweep (any angles, 0° among them)."""
    if not results:
        raise ValueError(f"{model}: a score needs a sweep with at least one angle.")
    upright = next((r for r in results if r.angle % 360 == 0), None)
    if upright is None:
        raise ValueError(f"{model}: the sweep has no upright (0°) result.")
    worst = min(results, key=lambda r: r.accuracy)
    training = dict((metadata or {}).get("training") or {})
    seconds, threads = training.get("seconds"), training.get("torch_threads")
    parameters = (metadata or {}).get("parameters")
    return Score(
        model=model,
        upright=upright.accuracy,
        worst_angle=worst.angle,
        worst=worst.accuracy,
        mean=sum(r.accuracy for r in results) / len(results),
        sixes=sum(r.per_class_accuracy[SIX] for r in results) / len(results),
        nines=sum(r.per_class_accuracy[NINE] for r in results) / len(results),
        parameters=int(parameters) if parameters is not None else None,
        training_seconds=float(seconds) if seconds is not None else None,
        training_threads=int(threads) if threads is not None else None,
    )


def training_time(seconds: float | None, threads: int | None) -> str:
    """'41 min on 1 thread', '8 min', or '—' when the metadata does not say."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    amount = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
    return amount + (f" on {threads} thread" + ("s" if threads != 1 else "") if threads else "")


def table(scores: Sequence[Score]) -> pd.DataFrame:
    """The scoreboard as the page shows it, best worst angle first; accuracies as fractions."""
    rows = [{
        "Model": s.model,
        "Upright": s.upright,
        "Worst angle": f"{s.worst_angle:g}°",
        "At its worst": s.worst,
        "Mean over angles": s.mean,
        "6s read as 6": s.sixes,
        "9s read as 9": s.nines,
        "Parameters": s.parameters,
        "Training": training_time(s.training_seconds, s.training_threads),
    } for s in sorted(scores, key=lambda s: -s.worst)]
    return pd.DataFrame(rows)


def literature_table(report_upright: float) -> pd.DataFrame:
    """The published figures beside ours: the report's upright LeNet-5, then MNIST-rot results."""
    rows = [{"Result": "The report's LeNet-5, upright test digits (MNIST)", "Test accuracy": report_upright}]
    rows += [{"Result": f"{name}, MNIST-rot", "Test accuracy": accuracy} for name, accuracy in MNIST_ROT_LITERATURE]
    return pd.DataFrame(rows)


def verdict(scores: Sequence[Score], bar: float = 0.99) -> str:
    """Which models are right at every angle, in a sentence, every number from `scores`."""
    if not scores:
        return "No model to score."
    good = [s for s in scores if s.right_at_every_angle(bar)]
    best = max(scores, key=lambda s: s.worst)
    if not good:
        return (f"No model reaches {100 * bar:.0f}% at every angle yet; the best at its worst angle is "
                f"{best.model}, {100 * best.worst:.1f}% at {best.worst_angle:g}°.")
    names = ", ".join(f"**{s.model}** ({100 * s.worst:.2f}% at its worst, {s.worst_angle:g}°)" for s in good)
    return f"Right at every angle (at least {100 * bar:.0f}% of the test digits at each): {names}."


def six_nine_sentence(scores: Sequence[Score]) -> str:
    """What invariance costs on 6 and 9, measured: the model best at its worst angle beside the upright one."""
    if not scores:
        return ""
    invariant = max(scores, key=lambda s: s.worst)
    upright = max(scores, key=lambda s: s.upright - s.worst)  # the one that cares most which way up
    said = (f"An invariant model gives a 6 turned by 180° the same answer as the upright 6, so nothing in the "
            f"data lets it learn which way up a digit is: it must tell 6 from 9 by handwriting alone (a 9's "
            f"straighter stem, a 6's rounder loop). Averaged over the angles, **{invariant.model}** reads "
            f"{100 * invariant.sixes:.1f}% of the 6s and {100 * invariant.nines:.1f}% of the 9s correctly")
    if upright is not invariant:
        said += (f"; **{upright.model}**, which knows which way up but only upright, {100 * upright.sixes:.1f}% "
                 f"and {100 * upright.nines:.1f}%")
    return said + "."
