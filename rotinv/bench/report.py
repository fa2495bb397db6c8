"""The benchmark's results: rows, the printed table, and BENCHMARKS.md."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from string import Template
from typing import Sequence

from rotinv.bench.settings import ROW_LABELS, THREADING_IMAGES, Settings
from rotinv.training import TrainConfig


@dataclass
class Row:
    label: str
    value: str
    target: str = ""
    result: str = ""  # PASS, MISS, or "" for a row that is context, not a target
    limits: list[str] = field(default_factory=list)  # for a MISS: what limits it, measured in the same run

    def cells(self) -> list[str]:
        return [self.label, self.value, self.target, self.result]


def row(label: str, value: str, target: str = "", passed: bool | None = None,
        limits: Sequence[str] = ()) -> Row:
    """A row of the table; `passed` None for a row that is context, not a target."""
    assert label in ROW_LABELS, label
    return Row(label, value, target, "" if passed is None else ("PASS" if passed else "MISS"), list(limits))


@dataclass
class Report:
    settings: Settings
    rows: dict[str, Row] = field(default_factory=dict)
    conditions: list[str] = field(default_factory=list)
    profiles: dict[str, list[str]] = field(default_factory=dict)  # name -> summary lines
    threading: list[str] = field(default_factory=list)

    def add(self, *rows: Row) -> None:
        for added in rows:
            self.rows[added.label] = added

    def ordered(self) -> list[Row]:
        return [self.rows.get(label) or Row(label, "not measured (an earlier step failed)") for label in ROW_LABELS]


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def text_table(rows: list[Row]) -> str:
    headers = ["Measure", "Value", "Target", "Result"]
    width = [max(len(headers[i]), *(len(row.cells()[i]) for row in rows)) for i in (0, 2, 3)]
    lines = [f"{headers[0]:<{width[0]}}  {headers[3]:<{width[2]}}  {headers[2]:<{width[1]}}  {headers[1]}"]
    for row in rows:
        lines.append(f"{row.label:<{width[0]}}  {row.result:<{width[2]}}  {row.target:<{width[1]}}  {row.value}")
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| Measure | Result | Target | Value |", "| --- | --- | --- | --- |"]
    lines += [f"| {cell(r.label)} | {r.result} | {cell(r.target)} | {cell(r.value)} |" for r in rows]
    return "\n".join(lines)


TEMPLATE = Path(__file__).with_name("template.md")
SECTION = re.compile(r"^<!-- section: (.+) -->$", re.MULTILINE)


def template_sections(path: Path = TEMPLATE) -> dict[str, str]:
    """The template's sections by name; what comes before the first one is a comment for its readers."""
    parts = SECTION.split(path.read_text())
    return {name: body.strip("\n") for name, body in zip(parts[1::2], parts[2::2])}


def bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def markdown(report: Report, command: str) -> str:
    """BENCHMARKS.md: the template's sections, filled in with this run's figures."""
    t = template_sections()
    s = report.settings
    rows = report.ordered()
    misses = [row for row in rows if row.result == "MISS"]
    blocks = [Template(t["head"]).substitute(
        command=command, written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        conditions=bullets(report.conditions), table=markdown_table(rows),
        passed=sum(r.result == "PASS" for r in rows), missed=len(misses))]
    if report.threading:
        blocks.append(Template(t["threading"]).substitute(images=f"{THREADING_IMAGES:,}",
                                                          lines=bullets(report.threading)))
    if report.profiles:
        blocks.append(t["profiles"])
        blocks += [Template(t["profile"]).substitute(name=name, lines="\n".join(lines))
                   for name, lines in report.profiles.items()]
    if misses:
        blocks.append(t["misses"])
        for row in misses:
            blocks += [Template(t["miss"]).substitute(label=row.label), "\n".join(row.limits),
                       t.get(f"why: {row.label}", "")]
    blocks.append(t["changes"])
    blocks.append(Template(t["settings"]).substitute(
        angle_count=len(s.angles), angles=", ".join(f"{a:g}" for a in s.angles),
        test_images="the whole test set" if s.test_images is None else f"{s.test_images} test images",
        interactive_runs=s.interactive_runs,
        train_images="all 60,000" if s.train_images is None else s.train_images,
        batch_size=TrainConfig.batch_size))
    return "\n\n".join(block for block in blocks if block) + "\n"
