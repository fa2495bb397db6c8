"""The Inside page's one-digit path: a drawing in, probabilities and feature maps out."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from rotinv.bench.report import Row, row
from rotinv.bench.roofline import one_thread
from rotinv.bench.settings import INTERACTIVE_P95_TARGET_MS
from rotinv.bench.subject import Bench
from rotinv.data import preprocess_drawing
from rotinv.rotation import rotate_tensor


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def synthetic_drawing() -> np.ndarray:
    """A 280 x 280 RGBA canvas as the drawing widget returns it: a white '4' on black."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    pen = ImageDraw.Draw(canvas)
    white = (255, 255, 255, 255)
    pen.line([(165, 45), (85, 165), (205, 165)], fill=white, width=18, joint="curve")
    pen.line([(165, 45), (165, 240)], fill=white, width=18)
    return np.asarray(canvas)


def inspect_one(model: nn.Module, image: torch.Tensor):
    """Probabilities and every conv stage's feature maps, as the Inside page gets them."""
    try:
        from rotinv.introspection import inspect
    except ImportError:  # not there yet: the same thing with forward hooks directly
        inspect = None
    if inspect is not None:
        seen = inspect(model, image)
        return seen.probabilities, seen.feature_maps
    maps: dict[str, torch.Tensor] = {}
    handles = [getattr(model, name).register_forward_hook(
        lambda module, inputs, output, name=name: maps.__setitem__(name, torch.relu(output[0]).clone()))
        for name in model.conv_layers]
    try:
        with torch.no_grad():
            logits = model(image.unsqueeze(0))
    finally:
        for handle in handles:
            handle.remove()
    return torch.softmax(logits[0], 0), maps


def interactive_rows(bench: Bench) -> list[Row]:
    """Milliseconds per drawing, turned to each of 24 angles in turn; on a miss, on one thread too."""
    runs = bench.settings.interactive_runs
    drawing = synthetic_drawing()
    angles = [float(a) for a in range(0, 360, 15)]

    def once(index: int) -> None:
        image = preprocess_drawing(drawing)
        turned = rotate_tensor(image, angles[index % len(angles)])
        probabilities, maps = inspect_one(bench.model, turned)
        assert len(maps) == 3 and abs(float(probabilities.sum()) - 1) < 1e-4

    def timed() -> list[float]:
        for index in range(5):  # warm up
            once(index)
        times = []
        for index in range(runs):
            started = time.perf_counter()
            once(index)
            times.append(1000 * (time.perf_counter() - started))
        return times

    times = timed()
    p50, p95 = percentile(times, 50), percentile(times, 95)
    limits = []
    if p95 >= INTERACTIVE_P95_TARGET_MS:
        with one_thread():
            single = timed()
        parts = interactive_parts(bench)
        with one_thread():
            parts1 = interactive_parts(bench)
        limits.append(
            f"p95 {p95:.1f} ms (max {max(times):.1f} ms). In the same run on one thread "
            f"(torch.set_num_threads(1)): p50 {percentile(single, 50):.1f} ms, p95 {percentile(single, 95):.1f} ms. "
            f"Medians of the steps on {torch.get_num_threads()} threads: {parts}; on one thread: {parts1}.")
    return [row("interactive",
                f"p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(times)} runs (280x280 RGBA drawing -> "
                f"preprocess_drawing -> rotate -> forward with hooks on every conv stage -> probabilities)",
                f"p95 < {INTERACTIVE_P95_TARGET_MS:.0f} ms", p95 < INTERACTIVE_P95_TARGET_MS, limits)]


def interactive_parts(bench: Bench) -> str:
    """The median of each step of the path: preprocess, rotate, forward with hooks."""
    drawing = synthetic_drawing()
    steps: dict[str, list[float]] = {"preprocess_drawing": [], "rotate": [], "forward with hooks": []}
    for index in range(max(10, bench.settings.interactive_runs // 4)):
        began = time.perf_counter()
        image = preprocess_drawing(drawing)
        rotated = time.perf_counter()
        turned = rotate_tensor(image, 15.0 * (index + 1))
        forward = time.perf_counter()
        inspect_one(bench.model, turned)
        ended = time.perf_counter()
        for name, seconds in zip(steps, (rotated - began, forward - rotated, ended - forward)):
            steps[name].append(1000 * seconds)
    return ", ".join(f"{name} {percentile(values, 50):.1f} ms" for name, values in steps.items())
