"""Which number format a training step runs in: fp32, or bf16 where the hardware has it.

bf16 autocast runs the convolutions and matrix products in bfloat16 (weights, optimiser
and loss stay float32). It only pays where the CPU multiplies bf16 natively
(AVX-512 BF16 or AMX); elsewhere oneDNN emulates it and it runs at about half fp32's
speed. With bf16 the 4-D weights are also kept channels-last, the layout oneDNN's bf16
kernels work in (in fp32 the same layout was slower here: BENCHMARKS.md, "training
variants"). torch.compile was measured too, and lost on this model (same section).

"auto" is decided in `rotinv.training.choose_precision`, by timing a few steps of each.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16", "auto")
# The /proc/cpuinfo flags of native bf16 arithmetic.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> frozenset[str]:
    """The instruction-set flags the CPU reports (empty where /proc/cpuinfo is not there)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:  # not Linux
        pass
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    """Whether `device` multiplies bf16 in hardware (checked at run time, never assumed)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a training step's forward pass runs in."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_layout(model: nn.Module, precision: str) -> None:
    """Channels-last 4-D weights for bf16, the standard layout otherwise (in place, values unchanged).

    Only 4-D parameters are touched: the group convolutions keep 5-D filter banks, which
    have no channels-last form. The parameters stay the same objects (only their storage
    changes), so an optimiser built before still holds them.
    """
    layout = torch.channels_last if precision == "bf16" else torch.contiguous_format
    for parameter in model.parameters():
        if parameter.dim() == 4:
            # .to, not .contiguous: a one-channel filter bank (conv1's) is "contiguous" in
            # both layouts, and only .to gives it channels-last strides, which is what makes
            # oneDNN run the first convolution, and so all that follow, channels-last.
            parameter.data = parameter.data.to(memory_format=layout)


@contextlib.contextmanager
def laid_out_for(model: nn.Module, precision: str) -> Iterator[None]:
    """The model in `precision`'s layout inside the block, in the standard one after it (even on an exception)."""
    set_layout(model, precision)
    try:
        yield
    finally:
        set_layout(model, "fp32")


def describe(precision: str) -> str:
    return "bf16 autocast, channels-last" if precision == "bf16" else "fp32"
