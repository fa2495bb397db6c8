"""The sweep as a typical notebook does it, and how much faster the app's sweep is."""

from __future__ import annotations

import time
from typing import Callable

import torch

from rotinv.bench.report import Row, fmt_rate, row
from rotinv.bench.roofline import one_thread, short_matmul_gflops
from rotinv.bench.settings import SPEEDUP_TARGET
from rotinv.bench.subject import Bench
from rotinv.evaluation import predict_logits


def notebook(bench: Bench, images: int, angles: tuple[float, ...], between: Callable[[], object] | None = None
             ) -> dict[float, float]:
    """The sweep as a typical notebook does it: for each angle a torchvision MNIST with a PIL
    rotation per image in its transform, a DataLoader of batches of 1000, the plain model.
    Returns the accuracy at each angle."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TVF

    model = bench.model
    model.eval()
    accuracy = {}
    for angle in angles:
        transform = transforms.Compose([
            transforms.Lambda(lambda image, a=angle: TVF.rotate(image, a, interpolation=InterpolationMode.BILINEAR)),
            transforms.ToTensor(),
        ])
        dataset = datasets.MNIST(str(bench.data_root), train=False, download=False, transform=transform)
        if images < len(dataset):
            dataset = Subset(dataset, range(images))
        correct = 0
        with torch.no_grad():
            for batch, target in DataLoader(dataset, batch_size=1000, shuffle=False):
                correct += int((model(batch).argmax(1) == target).sum())
        accuracy[angle] = correct / len(dataset)
        if between is not None:
            between()
    return accuracy


def baseline_rows(bench: Bench) -> list[Row]:
    """The notebook way timed with roofline samples between its angles; the sweep's speed-up over it."""
    s = bench.settings
    bench.log(f"notebook baseline: {s.baseline_images:,} images x {len(s.baseline_angles)} angles ...")
    sampling = [bench.roof.sample("notebook")]
    started = time.perf_counter()
    accuracy = notebook(bench, s.baseline_images, s.baseline_angles,
                        lambda: sampling.append(bench.roof.sample("notebook")))
    seconds = time.perf_counter() - started - sum(sampling[1:])
    rate = s.baseline_images * len(s.baseline_angles) / seconds
    full_seconds = len(bench.test) * len(s.angles) / rate
    ours = bench.sweep_results
    compare = ""
    if s.baseline_images == len(bench.test) and all(a in ours for a in accuracy):
        gap = max(abs(accuracy[a] - ours[a].accuracy) for a in accuracy)
        compare = f"; its accuracy differs from ours by at most {100 * gap:.2f} pp (PIL's rotation of 8-bit pixels)"
    baseline = row("notebook baseline",
                   f"{fmt_rate(rate)} images/s, timed on {s.baseline_images:,} images x {len(s.baseline_angles)} "
                   f"angles ({', '.join(f'{a:g}' for a in s.baseline_angles)} deg) and scaled: the sweep would "
                   f"take {full_seconds:.0f} s{compare}")
    if bench.sweep_rate is None:
        return [baseline, row("sweep speed-up over notebook", "not measured (the sweep failed)",
                              f">= {SPEEDUP_TARGET:.0f}x", False)]
    return [baseline, speedup_row(bench, rate)]


def speedup_row(bench: Bench, notebook_rate: float) -> Row:
    speedup = bench.sweep_rate / notebook_rate
    sweep_roof, notebook_roof = bench.roof.of("sweep"), bench.roof.of("notebook")
    adjusted = speedup * notebook_roof / sweep_roof
    return row("sweep speed-up over notebook",
               f"{speedup:.1f}x; {adjusted:.1f}x with each rate divided by the matmul rate sampled during it "
               f"(sweep {sweep_roof:.1f}, notebook {notebook_roof:.1f} GFLOP/s)",
               f">= {SPEEDUP_TARGET:.0f}x", speedup >= SPEEDUP_TARGET,
               [] if speedup >= SPEEDUP_TARGET else [speedup_limits(bench, notebook_rate)])


def speedup_limits(bench: Bench, notebook_rate: float) -> str:
    """The speed-up the roofline allows at all, and the like-for-like ratio on one thread."""
    speedup = bench.sweep_rate / notebook_rate
    part = min(len(bench.test), 2000)
    with one_thread():
        roof1 = short_matmul_gflops(bench.settings)
        began = time.perf_counter()
        notebook(bench, part, (15.0,))
        notebook1 = part / (time.perf_counter() - began)
        began = time.perf_counter()
        predict_logits(bench.model, bench.test.images[:part], 15.0)
        ours1 = part / (time.perf_counter() - began)
    roof = bench.roof.of("sweep")
    ceiling, ceiling1 = roof * 1e9 / bench.flops, roof1 * 1e9 / bench.flops
    return (f"{speedup:.1f}x: the sweep is {fmt_rate(bench.sweep_rate)} images/s, the notebook way "
            f"{fmt_rate(notebook_rate)}. A sweep at 100% of the roofline ({roof:.1f} GFLOP/s / "
            f"{bench.flops / 1e6:.2f} MFLOP) would be {fmt_rate(ceiling)} images/s, {ceiling / notebook_rate:.1f}x "
            f"the notebook"
            + (": the notebook's time is mostly the same model's arithmetic, so 10x is out of reach on this "
               "CPU without changing the model. " if ceiling / notebook_rate < SPEEDUP_TARGET else ". ") +
            f"In the same run on one thread (torch.set_num_threads(1), {part:,} images at 15 degrees): "
            f"{fmt_rate(ours1)} against {fmt_rate(notebook1)} images/s, {ours1 / notebook1:.1f}x "
            f"(the one-thread roofline, {roof1:.1f} GFLOP/s, allows {ceiling1 / notebook1:.1f}x).")
