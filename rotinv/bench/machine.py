"""The conditions of a run: which CPU, which of its instructions torch can use, how busy it was."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from rotinv.precision import cpu_flags
from rotinv.records import cpu_model

# The instructions that decide how fast fp32 and bf16 can be here, as /proc/cpuinfo names them.
ISA_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_conditions() -> list[str]:
    """The CPU's model name, cores and torch's kernels, then the vector and bf16 instructions it reports."""
    cpu = cpu_model()
    lines = [f"CPU: {cpu}, {os.cpu_count()} logical cores; torch {torch.__version__} with "
             f"{torch.get_num_threads()} intra-op threads, CPU kernels built for "
             f"{torch.backends.cpu.get_cpu_capability()}."]
    flags = cpu_flags()
    if flags:
        has = ", ".join(feature for feature in ISA_FEATURES if feature in flags)
        lines.append(f"Vector and bf16 instructions the CPU reports: {has or 'none of ' + '/'.join(ISA_FEATURES)}.")
    return lines


def load_now() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1 / 5 / 15 min) on {os.cpu_count()} cores"


def other_processes() -> str:
    """What else was using the CPU (one-second sample), to judge how noisy the numbers are."""
    try:
        import psutil
    except ImportError:
        return "other processes: psutil not installed"
    me = os.getpid()
    procs = [p for p in psutil.process_iter(["pid", "cmdline", "name"]) if p.info["pid"] != me]
    for proc in procs:
        try:
            proc.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(1.0)
    busy = []
    for proc in procs:
        try:
            share = proc.cpu_percent(None)
        except psutil.Error:
            continue
        if share >= 10:
            words = [w for w in (proc.info["cmdline"] or [proc.info["name"] or "?"]) if not w.startswith("--")]
            busy.append((share, " ".join(Path(words[0]).name.split()[:1] + words[1:4])[:60]))
    busy.sort(reverse=True)
    total = sum(share for share, _ in busy)
    listed = "; ".join(f"{name} {share:.0f}%" for share, name in busy[:6]) or "none"
    return f"other processes busy at that moment: {total:.0f}% of one core in all ({listed})"
