"""The yardsticks: a model's FLOPs, and this machine's fp32 matmul rate while the work runs."""

from __future__ import annotations

import math
import statistics
import time

import torch
from torch import nn

from rotinv.bench.report import Row, row
from rotinv.bench.settings import Settings


def count_flops(model: nn.Module, input_shape: tuple[int, ...] = (1, 1, 28, 28)) -> tuple[int, dict[str, int]]:
    """FLOPs of one forward pass of one image: 2 x the multiply-adds of every Conv2d and Linear.

    A convolution does (in_channels / groups) x kh x kw multiply-adds for each of its
    outputs (out_channels x H_out x W_out); a linear layer in_features for each of its
    out_features. The output sizes come from running one image through the model. Bias
    additions, activations, pooling and normalisation are not counted (a few per cent of
    the total, and not matrix work). Returns (FLOPs, multiply-adds by layer name).
    """
    macs: dict[str, int] = {}

    def counter(name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            per_output = (
                module.in_channels // module.groups * math.prod(module.kernel_size)
                if isinstance(module, nn.Conv2d)
                else module.in_features
            )
            macs[name] = macs.get(name, 0) + output[0].numel() * per_output

        return hook

    handles = [module.register_forward_hook(counter(name)) for name, module in model.named_modules()
               if isinstance(module, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for handle in handles:
            handle.remove()
    return 2 * sum(macs.values()), macs


def matmul_gflops(size: int, repeats: int, samples: int = 3, dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of torch.mm on size x size matrices of `dtype`, with all of torch's threads: best of samples."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    out = torch.empty(size, size, dtype=dtype)
    torch.mm(a, b, out=out)  # warm up: threads, caches, MKL's buffers
    best = 0.0
    for _ in range(samples):
        started = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b, out=out)
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9)
    return best


def short_matmul_gflops(settings: Settings) -> float:
    """matmul_gflops with half the repeats: the roofline of a short side measurement."""
    return matmul_gflops(settings.matmul_size, max(1, settings.matmul_repeats // 2))


class one_thread:
    """torch on one intra-op thread inside the block (the default again afterwards)."""

    def __enter__(self) -> None:
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.threads)


class Roofline:
    """Samples of the machine's fp32 rate taken *between the steps* of a workload.

    The machine is shared and its free capacity drifts by a factor of several within a
    minute, so a rate measured before or after a workload says little about the
    conditions during it. Each sample is one torch.mm of size x size with all of torch's
    threads (about 0.1-0.6 s at 2048); a workload's percentage divides by the median of
    the samples taken among its own steps, and the time spent sampling is not counted in
    the workload's time.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.a, self.b = torch.randn(size, size), torch.randn(size, size)
        self.out = torch.empty(size, size)
        for _ in range(2):  # warm up: threads, caches, MKL's buffers
            torch.mm(self.a, self.b, out=self.out)
        self.samples: list[tuple[str, float]] = []

    def sample(self, workload: str) -> float:
        """One timed multiply; returns the seconds it took (to leave out of the workload's time)."""
        started = time.perf_counter()
        torch.mm(self.a, self.b, out=self.out)
        seconds = time.perf_counter() - started
        self.samples.append((workload, 2 * self.size**3 / seconds / 1e9))
        return seconds

    def of(self, workload: str) -> float:
        return statistics.median(rate for name, rate in self.samples if name == workload)

    def describe(self, workload: str) -> str:
        rates = [rate for name, rate in self.samples if name == workload]
        return f"median of {len(rates)} samples during it, {min(rates):.0f}-{max(rates):.0f}"


def flops_row(flops: int, macs_by_layer: dict[str, int]) -> Row:
    layers = ", ".join(f"{name} {macs:,}" for name, macs in macs_by_layer.items())
    return row("LeNet-5 FLOPs per image", f"{flops:,} (2 x multiply-adds: {layers})")


def roofline_row(roof: Roofline, settings: Settings) -> Row | None:
    """Every sample the workloads took, and a best-of-3 rate at the end; None without samples."""
    rates = [rate for _, rate in roof.samples]
    if not rates:
        return None
    quietest = matmul_gflops(settings.matmul_size, settings.matmul_repeats)
    threads = torch.get_num_threads()
    return row("fp32 matmul roofline",
               f"{statistics.median(rates):.1f} GFLOP/s: median of {len(rates)} samples taken between the "
               f"steps of the sweep, the notebook baseline and the training "
               f"(range {min(rates):.0f}-{max(rates):.0f}; {quietest:.0f} "
               f"best of 3 at the end); {settings.matmul_size}x{settings.matmul_size} torch.mm, "
               f"{threads} thread{'s' if threads != 1 else ''}")
