"""The command: which measurements run, in which order, and where the results go."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable, TypeVar

import torch

import rotinv.bench
from rotinv.bench.app import app_rows
from rotinv.bench.interactive import interactive_rows
from rotinv.bench.loadreport import kept_section
from rotinv.bench.machine import cpu_conditions, load_now, other_processes
from rotinv.bench.notebook import baseline_rows
from rotinv.bench.report import Report, markdown, text_table
from rotinv.bench.roofline import flops_row, roofline_row
from rotinv.bench.settings import DEFAULT_MODEL, DEFAULT_OUT, FULL, QUICK
from rotinv.bench.subject import Bench, open_bench
from rotinv.bench.sweep import sweep_profile, sweep_rows
from rotinv.bench.threads import threading_notes
from rotinv.bench.fastpaths import fast_path_rows
from rotinv.bench.recipes import recipe_rows
from rotinv.bench.training import training_profile, training_rows
from rotinv.bench.variants import variant_rows

T = TypeVar("T")


def attempt(step: Callable[[Bench], T], bench: Bench, report: Report, default: T) -> T:
    """step(bench), or `default` with the failure noted in the conditions: one broken step
    must not hide the others' numbers."""
    try:
        return step(bench)
    except Exception as error:
        note = f"{step.__name__} failed: {type(error).__name__}: {error}"
        bench.log(note)
        report.conditions.append(note)
        return default


def run(bench: Bench) -> Report:
    report = Report(bench.settings)
    report.conditions += cpu_conditions()
    report.conditions.append(f"At the start: {load_now()}; {other_processes()}.")
    bench.log(f"model: {bench.model_name}; {len(bench.test):,} test images; settings: "
              f"{'quick' if bench.settings.quick else 'full'}")
    report.add(flops_row(bench.flops, bench.macs_by_layer))
    # The sweep first: the notebook baseline is compared with it.
    for rows in (sweep_rows, fast_path_rows, baseline_rows, interactive_rows, training_rows, variant_rows, recipe_rows,
                 app_rows):
        report.add(*attempt(rows, bench, report, []))
    if bench.settings.profile:
        for profile in (sweep_profile, training_profile):
            report.profiles.update(attempt(profile, bench, report, {}))
        report.threading = attempt(threading_notes, bench, report, [])
    roofline = roofline_row(bench.roof, bench.settings)
    if roofline is not None:
        report.add(roofline)
    report.conditions.append(f"At the end: {load_now()}; {other_processes()}.")
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m rotinv.bench",
                                     description=rotinv.bench.__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (the test suite's); writes no file")
    parser.add_argument("--out", default=None, help="where to write the Markdown (default: BENCHMARKS.md, "
                                                    "or nothing with --quick)")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="the checkpoint to measure")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads for everything measured, the app's processes included "
                             "(default: torch's own choice)")
    return parser.parse_args(argv)


def output_path(args: argparse.Namespace) -> Path | None:
    """Where the Markdown goes: --out, else BENCHMARKS.md for a full run, else nowhere (--quick)."""
    if args.out:
        return Path(args.out)
    return None if args.quick else DEFAULT_OUT


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    out = output_path(args)
    if args.threads is not None:
        if args.threads < 1:
            print("--threads must be at least 1.", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # for the app's subprocesses
            os.environ[name] = str(args.threads)

    def log(message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    try:
        bench = open_bench(settings, Path(args.model), log)
    except Exception as error:
        print(f"The benchmark cannot start: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    report = run(bench)
    rows = report.ordered()
    print(text_table(rows))
    print(f"\n{sum(r.result == 'PASS' for r in rows)} PASS, {sum(r.result == 'MISS' for r in rows)} MISS "
          f"({time.perf_counter() - started:.0f} s)")
    if out is not None:
        command = "python -m rotinv.bench" + (" --quick" if args.quick else "") + (
            f" --threads {args.threads}" if args.threads is not None else "")
        # The load test's section is another command's (rotinv.bench.loadtest): keep it.
        kept = kept_section(out)
        out.write_text(markdown(report, command) + (f"\n{kept}" if kept else ""))
        print(f"Wrote {out}", file=sys.stderr)
    return 0
