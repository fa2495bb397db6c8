"""Accuracy and loss of a model on rotated test images.

One pass at an angle gives everything the app and the CLI show about it: loss,
accuracy, per-class accuracy and the confusion matrix, so a sweep never runs the model
twice for the same angle.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rotinv.rotation import rotate_tensor

NUM_CLASSES = 10
EVAL_BATCH = 2000


@dataclass(frozen=True)
class AngleResult:
    angle: float
    loss: float  # mean cross-entropy
    accuracy: float  # 0..1
    per_class_accuracy: tuple[float, ...]  # accuracy on the images of each true class
    confusion: tuple[tuple[int, ...], ...]  # confusion[true][predicted], counts
    count: int

    def summary(self) -> dict:
        """The CLI's JSON row: angle, loss and accuracy."""
        return {"angle": self.angle, "loss": self.loss, "accuracy": self.accuracy}

    def to_dict(self) -> dict:
        return asdict(self)

    def at(self, angle: float) -> "AngleResult":
        """The same result, named by `angle` (360° is answered by 0°'s result, say)."""
        return self if self.angle == float(angle) else replace(self, angle=float(angle))

    @classmethod
    def from_dict(cls, data: dict) -> "AngleResult":
        """The inverse of to_dict (for results read back from JSON)."""
        return cls(
            angle=float(data["angle"]), loss=float(data["loss"]), accuracy=float(data["accuracy"]),
            per_class_accuracy=tuple(float(a) for a in data["per_class_accuracy"]),
            confusion=tuple(tuple(int(c) for c in row) for row in data["confusion"]),
            count=int(data["count"]),
        )


# predict_logits feeds the model at most this many images per forward pass on the CPU,
# whatever batch_size it is given: LeNet-5's activations for 512 images (conv1's output
# is 18.8 KB an image, 9.6 MB here) stay small enough for the allocator to reuse its
# buffers and for the caches to hold them, while the convolutions are still big matrix
# products. 2000 at a time spent a quarter of the time in page faults and cache misses.
# The logits depend on it only through rounding: each image is computed on its own, but
# oneDNN may choose another kernel for another batch size (checked against 2000 at a
# time by tests/test_fast_paths.py).
CPU_FORWARD_CHUNK = 512


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    angle: float = 0.0,
    interpolation: str = "bilinear",
    batch_size: int = EVAL_BATCH,
) -> torch.Tensor:
    """Logits (N, 10) for images in [0, 1], each rotated by `angle` degrees first."""
    model.eval()
    device = next(model.parameters()).device
    on_cpu = device.type == "cpu"
    chunk = max(1, min(batch_size, CPU_FORWARD_CHUNK)) if on_cpu else batch_size
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = rotate_tensor(images[start : start + batch_size], angle, interpolation)
        for offset in range(0, len(batch), chunk):
            outputs.append(model(batch[offset : offset + chunk].to(device)).float().cpu())
    return torch.cat(outputs) if outputs else torch.empty(0, NUM_CLASSES)


def seconds_per_image(model: nn.Module, images: torch.Tensor) -> float:
    """How long one image takes through predict_logits here, timed on `images` after one warm-up pass."""
    predict_logits(model, images)  # the first pass also sets up the kernels
    started = time.perf_counter()
    predict_logits(model, images)
    return (time.perf_counter() - started) / max(1, len(images))


def summarise(angle: float, logits: torch.Tensor, labels: torch.Tensor) -> AngleResult:
    """Loss, accuracy, per-class accuracy and confusion matrix from logits and labels."""
    loss = F.cross_entropy(logits, labels).item()
    predicted = logits.argmax(1)
    confusion = torch.bincount(labels * NUM_CLASSES + predicted, minlength=NUM_CLASSES**2)
    confusion = confusion.reshape(NUM_CLASSES, NUM_CLASSES)
    per_class_total = confusion.sum(1).clamp(min=1)
    per_class = (confusion.diagonal() / per_class_total).tolist()
    return AngleResult(
        angle=float(angle),
        loss=float(loss),
        accuracy=float((predicted == labels).float().mean()),
        per_class_accuracy=tuple(per_class),
        confusion=tuple(tuple(row) for row in confusion.tolist()),
        count=len(labels),
    )


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    angle: float = 0.0,
    interpolation: str = "bilinear",
) -> AngleResult:
    """The model's loss and accuracy on `images` rotated by `angle` degrees."""
    if len(images) == 0:
        raise ValueError("There are no images to evaluate on.")
    return summarise(angle, predict_logits(model, images, angle, interpolation), labels)


def sweep(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    angles: Sequence[float],
    interpolation: str = "bilinear",
    on_progress: Callable[[int, int], None] | None = None,
) -> list[AngleResult]:
    """evaluate() at each angle in turn; on_progress(done, total) after each one."""
    angles = validate_angles(angles)
    results = []
    for done, angle in enumerate(angles, start=1):
        results.append(evaluate(model, images, labels, angle, interpolation))
        if on_progress is not None:
            on_progress(done, len(angles))
    return results


# --- angles from people ----------------------------------------------------------------

MAX_ANGLES = 721  # every half degree of a full turn; more is a typing mistake


def validate_angles(angles: Iterable[float]) -> list[float]:
    """A non-empty list of finite angles in degrees, or a ValueError saying what is wrong."""
    checked = []
    for angle in angles:
        if isinstance(angle, bool) or not isinstance(angle, (int, float)):
            raise ValueError(f"An angle must be a number of degrees, got {angle!r}.")
        if not math.isfinite(angle):
            raise ValueError(f"An angle must be a finite number of degrees, got {angle}.")
        checked.append(float(angle))
    if not checked:
        raise ValueError("Give at least one angle.")
    if len(checked) > MAX_ANGLES:
        raise ValueError(f"At most {MAX_ANGLES} angles at a time, got {len(checked)}.")
    return checked


def parse_angles(text: str) -> list[float]:
    """'0,90,180' -> [0.0, 90.0, 180.0]; a clear ValueError for anything else."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("Give at least one angle, e.g. 0,90,180,270.")
    angles = []
    for part in text.split(","):
        part = part.strip()
        try:
            angles.append(float(part))
        except ValueError:
            raise ValueError(f"{part!r} is not a number of degrees; write angles like 0,90,180,270.") from None
    return validate_angles(angles)


def angle_range(start: float, stop: float, step: float) -> list[float]:
    """Angles from start to stop inclusive, every step degrees (step > 0)."""
    for name, value in (("start", start), ("stop", stop), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"The {name} angle must be a finite number, got {value!r}.")
    if step <= 0:
        raise ValueError(f"The angle step must be greater than 0, got {step}.")
    if stop < start:
        raise ValueError(f"The last angle ({stop}) must not be below the first ({start}).")
    span = (stop - start) / step
    if not math.isfinite(span) or span + 1 > MAX_ANGLES:  # count before building the list
        raise ValueError(f"At most {MAX_ANGLES} angles at a time; {start:g} to {stop:g} every {step:g}° is too many.")
    count = int(math.floor(span + 1e-9)) + 1
    # Ten significant digits: 0.1 * 3 shows as 0.3, and no angle a person types loses anything.
    return validate_angles([float(f"{start + i * step:.10g}") for i in range(count)])


class RotationPooled(nn.Module):
    """Test-time rotation pooling: average the softmax over `copies` rotated copies.

    The copies are turned by 360/copies degrees apart; the output is the log of the
    mean probability, so it can stand in for logits (argmax, cross-entropy).
    """

    def __init__(self, model: nn.Module, copies: int, interpolation: str = "bilinear") -> None:
        super().__init__()
        if isinstance(copies, bool) or not isinstance(copies, int) or not 1 <= copies <= 36:
            raise ValueError(f"The number of rotated copies must be between 1 and 36, got {copies!r}.")
        self.model, self.copies, self.interpolation = model, copies, interpolation

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        probabilities = sum(
            F.softmax(self.model(rotate_tensor(images, k * 360.0 / self.copies, self.interpolation)), dim=1)
            for k in range(self.copies)
        )
        return torch.log(probabilities / self.copies)
