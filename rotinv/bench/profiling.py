"""Where the time goes inside one call, by operator (torch.profiler)."""

from __future__ import annotations

from typing import Callable


def op_profile(fn: Callable[[], object], top: int = 8) -> list[str]:
    """The ops that took the most time in one call of fn, as 'share  op (input shape)' lines."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    # Operators of every library (aten::, and mkldnn:: for the fused conv + ReLU), not the
    # Python-level wrappers and autograd nodes around them.
    events = [e for e in prof.key_averages(group_by_input_shape=True)
              if e.key.startswith(("aten::", "mkldnn::", "prim::"))]
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    lines = []
    for event in events[:top]:
        shapes = [list(s) for s in (event.input_shapes or []) if s][:2]
        lines.append(f"{100 * event.self_cpu_time_total / total:5.1f}%  {event.key}  {shapes}")
    return lines
