"""predict_logits under three threading set-ups, each in a fresh Python (OpenMP reads its
environment only when torch is imported)."""

from __future__ import annotations

from rotinv.bench.probe import run_probe
from rotinv.bench.report import fmt_rate
from rotinv.bench.settings import THREADING_IMAGES
from rotinv.bench.subject import Bench

VARIANTS = (("torch's default", {}), ("OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"}),
            ("one thread (OMP_NUM_THREADS=1)", {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}))


def threading_notes(bench: Bench) -> list[str]:
    """predict_logits against the roofline, one variant after another."""
    bench.log("threading: three fresh processes ...")
    s = bench.settings
    lines = []
    for name, env in VARIANTS:
        try:
            got = run_probe("rotinv.bench.probe_threads",
                            [str(bench.model_path), str(THREADING_IMAGES), str(s.matmul_size), str(s.matmul_repeats)],
                            timeout=900, env=env)
        except Exception as error:
            lines.append(f"{name}: failed ({error})")
            continue
        share = got["rate"] * bench.flops / 1e9 / got["roofline"]
        lines.append(f"{name}, {got['threads']} thread(s): roofline {got['roofline']:.1f} GFLOP/s, "
                     f"predict_logits {fmt_rate(got['rate'])} images/s = {100 * share:.0f}% of it")
    return lines
