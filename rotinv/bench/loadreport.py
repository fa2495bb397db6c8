"""The load test's figures: one Result per lesson, the printed table, and its BENCHMARKS.md section.

The section sits between two marker lines, so `python -m rotinv.bench.loadtest --out`
replaces only it and `python -m rotinv.bench`, which writes the rest of the file, keeps it.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from string import Template
from typing import Mapping, Sequence

import numpy as np

from rotinv.bench.report import bullets, template_sections
from rotinv.limits import MAX_CONCURRENT_TRAININGS_ENV, TORCH_THREADS_ENV, usable_cores

INTERACTION_P95_TARGET_S = 1.0  # the capacity's bar: a widget change answered within a second
WIDGET_CHANGES = ("turn", "pick")  # what counts as an interaction; page switches are shown apart
TEMPLATE = Path(__file__).with_name("loadtest.md")
BEGIN = "<!-- loadtest: begin (python -m rotinv.bench.loadtest --out writes this section) -->"
END = "<!-- loadtest: end -->"
SECTION = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.DOTALL)
EXAMPLES_PER_KIND = 3  # error details shown per kind in the text; --json keeps them all


@dataclass
class Result:
    sessions: int
    trainings: int
    interactions: list[float]  # seconds from a widget change to its answer
    page_switches: list[float]
    first_renders: list[float]  # each student's first full page, on a running server
    cold_start_s: float | None  # the warm-up visitor's: the server's very first run
    training_outcomes: dict[str, int]
    training_seconds: list[float]
    trainings_queued: int
    errors: dict[str, int]  # by kind
    error_list: list[tuple[str, str]]
    checked_answers: int
    peak_rss_bytes: int
    wall_s: float
    harness_cores: float  # CPU the harness itself used, in cores (it shares the machine)
    server_cores: float = 0.0  # CPU the server used during the lesson, in cores (all its processes)
    load: str = ""
    server_log_tail: list[str] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def p95(self) -> float | None:
        return percentile(self.interactions, 95)

    def one_line(self) -> str:
        return (f"{self.sessions} sessions, {self.trainings} trainings: widget p95 {seconds(self.p95())}, "
                f"{len(self.interactions)} changes, {self.error_count} errors, peak RSS {mb(self.peak_rss_bytes)}")


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def mb(value: int) -> str:
    return f"{value / 1e6:,.0f} MB"


def summarise(sessions: int, trainings: int, outcomes: Sequence, cold: float | None, peak_rss: int,
              wall: float, harness_cores: float, server_cores: float = 0.0) -> Result:
    """One lesson's Result from every student's Outcome (rotinv.bench.students)."""
    errors = [error for outcome in outcomes for error in outcome.errors]
    done = [training for outcome in outcomes for training in outcome.trainings]
    asked = min(trainings, sessions)
    outcome_counts = Counter(training.outcome for training in done)
    if asked > len(done):  # a session that dropped before its Train press was answered
        outcome_counts["never answered"] += asked - len(done)
    return Result(
        sessions=sessions, trainings=trainings,
        interactions=[s for outcome in outcomes for what, s in outcome.interactions if what in WIDGET_CHANGES],
        page_switches=[s for outcome in outcomes for what, s in outcome.interactions if what == "page switch"],
        first_renders=[outcome.first_render_s for outcome in outcomes if outcome.first_render_s is not None],
        cold_start_s=cold, training_outcomes=dict(outcome_counts),
        training_seconds=[training.seconds for training in done],
        trainings_queued=sum(training.queued for training in done),
        errors=dict(Counter(kind for kind, _ in errors)), error_list=errors,
        checked_answers=sum(outcome.checked for outcome in outcomes),
        peak_rss_bytes=peak_rss, wall_s=wall, harness_cores=harness_cores, server_cores=server_cores)


def capacity(results: Sequence[Result], trainings: int) -> str:
    """The largest class whose widget p95 stayed under the bar, every smaller one measured too."""
    measured = sorted((r for r in results if r.trainings == trainings), key=lambda r: r.sessions)
    passed = None
    for result in measured:
        p95 = result.p95()
        if p95 is None or p95 >= INTERACTION_P95_TARGET_S:
            break
        passed = result.sessions
    if not measured:
        return "not measured"
    if passed is None:
        return f"none measured: {measured[0].sessions} session(s) already missed it"
    missed = next((r.sessions for r in measured if r.sessions > passed), None)
    return f"{passed} session(s)" + (f"; {missed} missed it" if missed is not None else ", the largest measured")


def conditions(env: Mapping[str, str]) -> list[str]:
    threads = env.get(TORCH_THREADS_ENV, "").strip()
    trainings = env.get(MAX_CONCURRENT_TRAININGS_ENV, "").strip()
    return [f"{usable_cores()} usable cores ({os.cpu_count()} logical); the server's torch threads: "
            + (f"{TORCH_THREADS_ENV}={threads}" if threads else f"{TORCH_THREADS_ENV} unset (torch's default)"),
            f"{MAX_CONCURRENT_TRAININGS_ENV}=" + (trainings or "unset (the app's default)")]


def _cells(result: Result) -> list[str]:
    finished = result.training_outcomes.get("finished", 0)
    asked = min(result.trainings, result.sessions)
    trained = (f"{finished}/{asked}" + (f" ({result.trainings_queued} queued)" if result.trainings_queued
                                                   else "")) if result.trainings else "—"
    switches = percentile(result.page_switches, 95)
    return [str(result.sessions), str(result.trainings), str(len(result.interactions)),
            seconds(percentile(result.interactions, 50)), seconds(result.p95()),
            seconds(max(result.interactions, default=None)), seconds(switches),
            " / ".join(seconds(percentile(result.first_renders, q)) for q in (50, 95, 100)),
            trained, str(result.error_count), str(result.checked_answers), mb(result.peak_rss_bytes)]


HEADERS = ["Sessions", "Trainings", "Changes", "p50", "p95", "max", "Page switch p95",
           "New visitor p50 / p95 / max", "Trained", "Errors", "Answers checked", "Peak RSS"]


def error_lines(results: Sequence[Result], examples: int | None = EXAMPLES_PER_KIND) -> list[str]:
    lines = []
    for result in results:
        for kind, count in sorted(result.errors.items()):
            details = [detail for k, detail in result.error_list if k == kind]
            shown = details if examples is None else details[:examples]
            more = f" (and {count - len(shown)} more)" if len(shown) < count else ""
            lines.append(f"{result.sessions} sessions, {result.trainings} trainings: {count} × {kind}: "
                         + "; ".join(shown) + more)
    return lines


def other_lines(results: Sequence[Result]) -> list[str]:
    lines = []
    for result in results:
        outcomes = ", ".join(f"{n} {name}" for name, n in sorted(result.training_outcomes.items()))
        if outcomes:
            lines.append(f"{result.sessions} sessions, {result.trainings} trainings: trainings {outcomes}; "
                         f"took {' / '.join(seconds(percentile(result.training_seconds, q)) for q in (50, 100))} "
                         "(p50 / max, from pressing Train)")
    for result in results:
        lines.append(f"{result.sessions} sessions, {result.trainings} trainings: lesson {result.wall_s:.0f} s; "
                     f"cold start {seconds(result.cold_start_s)}; the server used {result.server_cores:.2f} "
                     f"cores, the harness itself {result.harness_cores:.2f}; {result.load}")
    return lines


def text_table(results: Sequence[Result], env: Mapping[str, str]) -> str:
    rows = [HEADERS] + [_cells(result) for result in results]
    width = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, width)) for row in rows]
    lines += [""] + conditions(env)
    for trainings in sorted({r.trainings for r in results}):
        lines.append(f"Capacity with {trainings} trainings (widget p95 < {INTERACTION_P95_TARGET_S:g} s): "
                     f"{capacity(results, trainings)}")
    lines += error_lines(results) or ["No errors."]
    lines += other_lines(results)
    return "\n".join(lines)


def markdown_section(results: Sequence[Result], env: Mapping[str, str], command: str, timeout_s: float,
                     train_timeout_s: float) -> str:
    """The section for BENCHMARKS.md, markers included: loadtest.md filled in with this run."""
    table = ["| " + " | ".join(HEADERS) + " |", "|" + " --- |" * len(HEADERS)]
    table += ["| " + " | ".join(_cells(result)) + " |" for result in results]
    capacities = [f"with {trainings} trainings: {capacity(results, trainings)}"
                  for trainings in sorted({r.trainings for r in results})]
    body = Template(template_sections(TEMPLATE)["loadtest"]).substitute(
        command=command, written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        conditions=bullets(conditions(env)), table="\n".join(table), target=f"{INTERACTION_P95_TARGET_S:g}",
        timeout=f"{timeout_s:g}", train_timeout=f"{train_timeout_s:g}",
        capacity="; ".join(capacities), errors=bullets(error_lines(results, None)) or "None.",
        other=bullets(other_lines(results)))
    return f"{BEGIN}\n{body}\n{END}\n"


def write_section(path: Path, section: str) -> None:
    """Put the section into the file: in place of the old one, else at its end."""
    text = path.read_text() if path.exists() else ""
    if SECTION.search(text):
        text = SECTION.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    path.write_text(text)


def kept_section(path: Path) -> str:
    """The file's load-test section (markers included), or "": what a rewrite of the file keeps."""
    match = SECTION.search(path.read_text()) if path.exists() else None
    return match.group(0) if match else ""
