"""How training's steps could run, timed against each other: fp32 or bf16 autocast, the
standard or the channels-last layout, eager or torch.compile. rotinv.precision keeps the
winner; this row shows, on every run, whether it still wins here.

Each variant is the same step as training.train's (LeNet-5, batch 128, fused Adam,
cross-entropy), on the same images, from the same initial weights. The variants take
turns over a few rounds, so all of them see the same load; a variant's rate is its median
round. torch.compile's first steps (compiling) are timed separately and left out.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rotinv.bench.report import Row, fmt_rate, row
from rotinv.bench.roofline import matmul_gflops
from rotinv.bench.subject import Bench
from rotinv.data import load_mnist
from rotinv.models import LeNet5
from rotinv.precision import native_bf16
from rotinv.training import TrainConfig

BATCH = TrainConfig.batch_size
WARM_UP_STEPS = 3


@dataclass(frozen=True)
class Variant:
    name: str
    bf16: bool = False
    channels_last: bool = False
    compiled: bool = False


VARIANTS = (
    Variant("fp32"),
    Variant("fp32, channels-last", channels_last=True),
    Variant("bf16 autocast", bf16=True),
    Variant("bf16 autocast, channels-last", bf16=True, channels_last=True),  # rotinv.precision's "bf16"
    Variant("torch.compile, fp32", compiled=True),
    Variant("torch.compile, bf16 autocast, channels-last", bf16=True, channels_last=True, compiled=True),
)
KEPT = {"fp32": "fp32", "bf16 autocast, channels-last": "bf16"}  # the variants rotinv.precision offers


class Trainer:
    """One variant's model, optimiser and step, built once (compiling happens in its first steps)."""

    def __init__(self, variant: Variant, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.variant, self.images, self.labels = variant, images, labels
        torch.manual_seed(0)
        model = LeNet5()
        if variant.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
        self.forward = torch.compile(model) if variant.compiled else model
        began = time.perf_counter()
        self.steps(WARM_UP_STEPS)
        self.warm_up_seconds = time.perf_counter() - began

    def steps(self, count: int) -> float:
        """`count` steps over the images (cycling); returns their seconds."""
        began = time.perf_counter()
        for step in range(count):
            start = step * BATCH % (len(self.images) - BATCH + 1)
            batch, target = self.images[start:start + BATCH], self.labels[start:start + BATCH]
            cast = torch.autocast("cpu", dtype=torch.bfloat16) if self.variant.bf16 else contextlib.nullcontext()
            with cast:
                loss = F.cross_entropy(self.forward(batch), target)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return time.perf_counter() - began


def variant_rows(bench: Bench) -> list[Row]:
    s = bench.settings
    split = load_mnist(True, bench.data_root, download=False).subset(max(2 * BATCH, BATCH * s.variant_steps))
    variants = [v for v in VARIANTS if s.compile_variants or not v.compiled]
    bench.log(f"training variants: {len(variants)} ways, {s.variant_rounds} rounds of {s.variant_steps} steps ...")
    trainers, rates = [], {}
    for variant in variants:
        try:
            trainers.append(Trainer(variant, split.images, split.labels))
        except Exception as error:  # torch.compile needs a working C compiler: say so, measure the rest
            rates[variant.name] = f"failed ({type(error).__name__}: {str(error).splitlines()[0][:80]})"
    seconds: dict[str, list[float]] = {t.variant.name: [] for t in trainers}
    for _ in range(s.variant_rounds):
        for trainer in trainers:
            seconds[trainer.variant.name].append(trainer.steps(s.variant_steps))
        bench.roof.sample("training variants")  # the fp32 rate under this round's load
    rate = {name: BATCH * s.variant_steps / statistics.median(times) for name, times in seconds.items()}
    fp32 = rate.get("fp32")
    fp32_roof = bench.roof.of("training variants")
    bf16_roof = matmul_gflops(s.matmul_size, s.matmul_repeats, dtype=torch.bfloat16)
    parts = []
    for trainer in trainers:
        name = trainer.variant.name
        gflops = rate[name] * 3 * bench.flops / 1e9
        compile_note = f", compiling {trainer.warm_up_seconds:.0f} s" if trainer.variant.compiled else ""
        parts.append(f"{name} {fmt_rate(rate[name])} images/s ({rate[name] / fp32:.2f}x fp32, "
                     f"{100 * gflops / fp32_roof:.0f}% of the fp32 matmul rate{compile_note})")
    parts += [f"{name} {why}" for name, why in rates.items()]
    offered = max((name for name in rate if name in KEPT), key=rate.get)
    fastest = max(rate, key=rate.get)
    verdict = (f"fastest here: {fastest}" + ("" if fastest == offered else
               f" (not offered: rotinv.precision offers only {' and '.join(KEPT)}; of those, {offered})"))
    skipped = "" if s.compile_variants else "; torch.compile left out in --quick (compiling takes ~20 s)"
    return [row("training variants",
                "; ".join(parts) + f". {verdict}. Native bf16 here: {'yes' if native_bf16(torch.device('cpu')) else 'no'}; "
                f"matmul rates: fp32 {fp32_roof:.0f} GFLOP/s ({bench.roof.describe('training variants')}), "
                f"bf16 {bf16_roof:.0f} GFLOP/s (after the rounds). "
                f"Median of {s.variant_rounds} interleaved rounds of {s.variant_steps} steps of batch {BATCH}{skipped}")]
