"""The app's pages: cold starts in fresh processes, a new visitor's first run, peak memory."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache

from rotinv.bench.probe import ProbeFailed, run_probe
from rotinv.bench.report import Row, row
from rotinv.bench.settings import APP, COLD_START_TARGET_S, PAGES, RSS_TARGET_BYTES, SWEEP_PAGE
from rotinv.bench.subject import Bench

COLD_TARGET = f"< {COLD_START_TARGET_S:.0f} s"


def run_app(pages: list[str], timeout: float = 3600) -> dict:
    """The app's first run of each page in `pages`, in a fresh process; its timings and peak RSS."""
    try:
        return run_probe("rotinv.bench.probe_app", [str(APP), json.dumps(pages), PAGES[0][1]], timeout)
    except ProbeFailed as error:
        raise RuntimeError(f"the app subprocess failed ({error})") from None


@cache  # measured once a run, and only when a target is missed
def fresh_process_costs() -> tuple[str, str]:
    """(memory, time) of a fresh Python loading what the app loads, one step after another."""
    try:
        got = run_probe("rotinv.bench.probe_imports", [], timeout=600)
    except ProbeFailed as error:
        failed = f"(the fresh-process breakdown failed: {error})"
        return failed, failed
    memory, times, rss_before, seconds_before = [], [], 0, 0.0
    for name, rss, seconds in got["steps"]:
        memory.append(f"{name} +{(rss - rss_before) / 1e6:,.0f} MB")
        if name != "Python":
            times.append(f"{name} {seconds - seconds_before:.1f} s")
        rss_before, seconds_before = rss, seconds
    build = f"the CUDA {got['cuda_build']} build of torch" if got["cuda_build"] else "a CPU-only torch"
    return (f"Resident memory of a fresh Python, step by step, in this run ({build}): "
            f"{', '.join(memory)}; {rss_before / 1e6:,.0f} MB in all.",
            f"A fresh Python in this run takes {seconds_before:.1f} s just to import and load what the app needs: "
            f"{', '.join(times)}" + ("; torchvision was imported too." if got["torchvision"]
                                     else "; torchvision is not imported."))


@dataclass
class Visits:
    cold: dict[str, dict] = field(default_factory=dict)  # page file -> its first run in a fresh process
    visitor: dict[str, dict] = field(default_factory=dict)  # page file -> a new session's first run
    peak: int | None = None  # bytes, of the process that visited the most pages
    peak_pages: list[str] = field(default_factory=list)


def visit(bench: Bench) -> Visits:
    """A fresh process for each page that gets a cold start; the sweep page's process then
    visits the other pages too and gives the peak memory after every page."""
    by_title = dict(PAGES)
    plan = [[by_title[title]] + ([p for t, p in PAGES if t != title] if title == SWEEP_PAGE else [])
            for title in bench.settings.cold_pages]
    visits = Visits()
    for pages in plan:
        bench.log(f"app: first run of {pages[0]} in a fresh process" +
                  (f", then {', '.join(pages[1:])}" if len(pages) > 1 else "") + " ...")
        try:
            result = run_app(pages)
        except Exception as error:
            visits.cold[pages[0]] = {"error": str(error)}
            continue
        first = result["runs"][0]
        first["process_seconds"] = first["since_start"]
        visits.cold[pages[0]] = first
        for run in result["visitors"]:
            visits.visitor.setdefault(run["page"], run)
        if visits.peak is None or len(pages) > len(visits.peak_pages) or (
                len(pages) == len(visits.peak_pages) and result["peak_rss"] > visits.peak):
            visits.peak, visits.peak_pages = result["peak_rss"], pages
    return visits


def app_rows(bench: Bench) -> list[Row]:
    visits = visit(bench)
    return [*cold_start_rows(bench, visits), *visitor_rows(bench, visits), peak_rss_row(visits)]


def cold_start_rows(bench: Bench, visits: Visits) -> list[Row]:
    rows = []
    for title, path in PAGES:
        label = f"cold start: {title}"
        if title not in bench.settings.cold_pages:
            rows.append(row(label, "skipped in --quick (the sweep page's first run is a whole sweep)"
                            if title == SWEEP_PAGE else "skipped in --quick", COLD_TARGET))
            continue
        run = visits.cold.get(path, {"error": "not run"})
        if "error" in run:
            rows.append(row(label, f"failed: {run['error']}", COLD_TARGET, False))
            continue
        problems = f"; the page raised: {run['errors']}" if run["errors"] else ""
        slow = run["seconds"] >= COLD_START_TARGET_S
        rows.append(row(label, f"{run['seconds']:.2f} s first run of the page in a fresh process "
                               f"({run['process_seconds']:.1f} s from the process's start, importing Streamlit "
                               f"included){problems}",
                        COLD_TARGET, not slow and not run["errors"],
                        [f"{run['seconds']:.1f} s. " + fresh_process_costs()[1]] if slow else []))
    return rows


def visitor_rows(bench: Bench, visits: Visits) -> list[Row]:
    rows = []
    quick = bench.settings.quick
    for title, path in PAGES:
        label = f"new visitor: {title}"
        run = visits.visitor.get(path)
        if run is None:
            rows.append(row(label, "skipped in --quick" if quick else "not measured (its app subprocess failed)",
                            COLD_TARGET, None if quick else False))
            continue
        problems = f"; the page raised: {run['errors']}" if run["errors"] else ""
        rows.append(row(label, f"{run['seconds']:.2f} s first run of the page in a new session, on a server that "
                               f"has already served another session (imports and shared caches warm){problems}",
                        COLD_TARGET, run["seconds"] < COLD_START_TARGET_S and not run["errors"]))
    return rows


def peak_rss_row(visits: Visits) -> Row:
    label = "peak RSS, all pages"
    if visits.peak is None:
        return row(label, "not measured (the app subprocesses failed)", "< 1 GB", False)
    every = len(visits.peak_pages) == len(PAGES)
    visited = "after visiting every page" if every else f"after {', '.join(visits.peak_pages)} only (--quick)"
    high = visits.peak >= RSS_TARGET_BYTES
    return row(label, f"{visits.peak / 1e6:,.0f} MB {visited} (VmHWM of the AppTest process)", "< 1 GB", not high,
               [f"{visits.peak / 1e6:,.0f} MB. " + fresh_process_costs()[0]] if high else [])
