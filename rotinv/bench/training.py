"""Training's speed: train() in the precision it settles on here, against the roofline; the
variants it was chosen from (fp32 or bf16 autocast, channels-last, torch.compile), timed
interleaved in the same run; and the default recipe at the old batch size."""

from __future__ import annotations

import math
from dataclasses import replace

from rotinv.bench.profiling import op_profile
from rotinv.bench.report import Row, fmt_rate, row
from rotinv.bench.roofline import one_thread, short_matmul_gflops
from rotinv.bench.settings import TRAINING_ROOFLINE_TARGET, TRAINING_ROOFLINE_TARGET_AVX512
from rotinv.bench.subject import Bench
from rotinv.data import Split, load_mnist
from rotinv.precision import cpu_flags
from rotinv.training import TrainConfig, choose_precision, train

# The defaults otherwise (batch 128, fused Adam, cosine, seed 0), in the precision
# choose_precision settles on here: what the lecture preset trains with.
CONFIG = TrainConfig(epochs=1, precision="auto")
SHORT_RUN_STEPS = 15  # the one-thread comparison and the profile


def roofline_target() -> float:
    """80% of the fp32 matmul rate where the CPU has AVX-512 (issue #14), else 50% (issue #6)."""
    return TRAINING_ROOFLINE_TARGET_AVX512 if "avx512f" in cpu_flags() else TRAINING_ROOFLINE_TARGET


def training_split(bench: Bench) -> Split:
    return load_mnist(True, bench.data_root, download=False).subset(bench.settings.train_images)


def training_rows(bench: Bench) -> list[Row]:
    split = training_split(bench)
    choice = choose_precision(CONFIG, split.images, split.labels)
    config = replace(CONFIG, precision=choice.precision)
    bench.log(f"training: one epoch of {len(split):,} images, batch {CONFIG.batch_size}, {choice.reason} ...")
    rate, seconds, share, accuracy = train_epoch(bench, split, config, "training")
    target = roofline_target()
    # The same loop at the old default batch, on part of an epoch: how much of the rate
    # above is the batch size (context, not a target).
    small = replace(CONFIG, batch_size=64, precision="fp32")
    part64 = split.subset(min(len(split), 64 * 200))
    bench.log(f"training: {len(part64):,} images at batch {small.batch_size} ...")
    rate64, _, share64, _ = train_epoch(bench, part64, small, "training at batch 64")
    limits = []
    if share < target:
        part = split.subset(CONFIG.batch_size * SHORT_RUN_STEPS)
        with one_thread():
            roof1 = short_matmul_gflops(bench.settings)
            rate1 = len(part) / train(part.images, part.labels, config).seconds
        limits.append(
            f"{100 * share:.0f}% of the fp32 matmul rate measured during it (target {100 * target:.0f}%). In the same run "
            f"on one thread (torch.set_num_threads(1), {len(part):,} images): {fmt_rate(rate1)} images/s = "
            f"{100 * rate1 * 3 * bench.flops / 1e9 / roof1:.0f}% of the one-thread roofline ({roof1:.1f} GFLOP/s).")
    roof = bench.roof.of("training")
    return [
        row("training",
            f"{fmt_rate(rate)} images/s = {rate * 3 * bench.flops / 1e9:.1f} GFLOP/s (3 x forward) = "
            f"{100 * share:.0f}% of the roofline ({roof:.1f} GFLOP/s, {bench.roof.describe('training')}); "
            f"one epoch of {len(split):,} images, batch {CONFIG.batch_size}, in {seconds:.1f} s; "
            f"train accuracy {100 * accuracy:.2f}%; precision \"auto\" chose {choice.reason}",
            f">= {100 * target:.0f}% of roofline{' (AVX-512 here)' if target == TRAINING_ROOFLINE_TARGET_AVX512 else ''}",
            share >= target, limits),
        row("training at batch 64",
            f"{fmt_rate(rate64)} images/s = {100 * share64:.0f}% of the roofline "
            f"({bench.roof.of('training at batch 64'):.1f} GFLOP/s during it), {len(part64):,} images, fp32; "
            f"batch {CONFIG.batch_size} above is {rate / rate64:.2f}x its images/s"),
    ]


def train_epoch(bench: Bench, split: Split, config: TrainConfig, workload: str) -> tuple[float, float, float, float]:
    """One epoch through training.train with roofline samples between its steps:
    (images/s, seconds, share of the roofline, train accuracy)."""
    steps = math.ceil(len(split) / config.batch_size)
    every = max(1, steps // 20 // 12)  # about a dozen roofline samples over the epoch
    reports, sampling = [0], [0.0]

    def between_steps(progress) -> None:  # train's on_progress, every 20 steps
        reports[0] += 1
        if reports[0] % every == 0:
            sampling[0] += bench.roof.sample(workload)

    bench.roof.sample(workload)
    result = train(split.images, split.labels, config, on_progress=between_steps)
    seconds = result.seconds - sampling[0]  # train's clock ran on through the samples
    rate = len(split) / seconds
    share = rate * 3 * bench.flops / 1e9 / bench.roof.of(workload)
    return rate, seconds, share, result.train_accuracy


def training_profile(bench: Bench) -> dict[str, list[str]]:
    part = training_split(bench).subset(CONFIG.batch_size * SHORT_RUN_STEPS)
    choice = choose_precision(CONFIG, part.images, part.labels)
    config = replace(CONFIG, precision=choice.precision)
    return {f"training ({SHORT_RUN_STEPS} steps of batch {CONFIG.batch_size} through training.train, "
            f"{choice.precision})": op_profile(lambda: train(part.images, part.labels, config), top=10)}
