"""Measurements that need a fresh Python: each is a module run with `python -m` that prints
its answer as one line, MARKER and then JSON, on its stdout.

The app probes (probe_app, probe_imports) import nothing of rotinv.bench beyond its empty
package __init__, not even this module, so what they measure is what the app loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from rotinv.bench.settings import REPO

MARKER = "BENCH_JSON "


class ProbeFailed(RuntimeError):
    pass


def run_probe(module: str, args: list[str], timeout: float, env: dict[str, str] | None = None) -> dict:
    """Run `python -m module args` in the repository root, as the app runs; the JSON it emitted."""
    completed = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                               timeout=timeout, env=dict(os.environ, **(env or {})))
    for line in completed.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
    raise ProbeFailed(f"exit {completed.returncode}: {' | '.join(tail)}")
