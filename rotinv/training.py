"""The training loop: plain minibatch Adam, with progress reports and a way to stop early.

Deterministic on the CPU for a given seed: the seed fixes the initial weights, the
shuffling and the augmentation angles, each from its own generator.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from rotinv.models import build_model
from rotinv.rotation import rotate_each

AUGMENTATIONS = ("none", "rotation")
# Limits that catch typing mistakes (epochs=1000, batch_size=10**6), not policy; a
# shared deployment sets its own, lower caps in the app (see rotinv.limits).
MAX_EPOCHS = 200
MAX_BATCH_SIZE = 60_000
MAX_LEARNING_RATE = 10.0


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "lenet5"
    epochs: int = 3
    learning_rate: float = 1e-3
    # 128, not the more common 64: on a 2-core CPU each step's convolutions then run at
    # about 1.3x the images/s (an epoch is half the steps; docs/DESIGN.md gives the cost).
    batch_size: int = 128
    seed: int = 0
    augment: str = "none"  # "rotation": every image turned by a uniform random angle in [0, 360)
    schedule: str = "cosine"  # "cosine" decays the learning rate to 0 over the run; "constant"
    device: str = "cpu"

    def __post_init__(self) -> None:
        validate_train_config(self)

    def to_dict(self) -> dict:
        return asdict(self)


def validate_train_config(config: TrainConfig) -> None:
    def positive_int(name: str, value: object, upper: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be a whole number, got {value!r}.")
        if not 1 <= value <= upper:
            raise ValueError(f"{name} must be between 1 and {upper}, got {value}.")

    positive_int("epochs", config.epochs, MAX_EPOCHS)
    positive_int("batch size", config.batch_size, MAX_BATCH_SIZE)
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {config.seed!r}.")
    lr = config.learning_rate
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or not 0 < lr <= MAX_LEARNING_RATE:
        raise ValueError(f"learning rate must be > 0 and <= {MAX_LEARNING_RATE}, got {lr!r}.")
    if config.augment not in AUGMENTATIONS:
        raise ValueError(f"Unknown augmentation {config.augment!r}; choose one of: {', '.join(AUGMENTATIONS)}.")
    if config.schedule not in ("cosine", "constant"):
        raise ValueError(f"Unknown schedule {config.schedule!r}; choose cosine or constant.")
    build_model(config.arch)  # raises a clear ValueError for an unknown architecture


# How many progress reports a run's curves get (a run shorter than this reports every step).
REPORT_POINTS = 40


def report_interval(total_steps: int, points: int = REPORT_POINTS) -> int:
    """Steps between progress reports, so that a run of total_steps draws about `points` of them."""
    return max(1, math.ceil(total_steps / points))


@dataclass(frozen=True)
class Progress:
    """What the loop reports every few steps. Loss and accuracy are running averages over
    the current epoch so far."""

    epoch: int  # 1-based
    step: int  # optimiser steps done so far, over the whole run
    total_steps: int
    loss: float
    accuracy: float
    images_seen: int


@dataclass
class TrainResult:
    model: nn.Module
    config: TrainConfig
    history: list[Progress] = field(default_factory=list)
    stopped_early: bool = False
    epochs_completed: int = 0
    steps_completed: int = 0
    train_loss: float = float("nan")  # running average over the last (possibly partial) epoch
    train_accuracy: float = float("nan")
    train_images: int = 0
    seconds: float = 0.0


def resolve_device(device: str) -> torch.device:
    """'cpu', 'cuda' (fails clearly when absent) or 'auto' (CUDA if present)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("A CUDA device was asked for, but PyTorch sees none; use --device cpu.")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"Unknown device {device!r}; use cpu, cuda or auto.")
    return torch.device(device)


def train(
    images: torch.Tensor,
    labels: torch.Tensor,
    config: TrainConfig,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    report_every: int = 20,
    model: nn.Module | None = None,
) -> TrainResult:
    """Train a model (a new one of config.arch, unless given) on images in [0, 1].

    `on_progress` is called every `report_every` steps and at the end of each epoch;
    `should_stop` is polled before each step, and when it answers True the loop ends
    there and returns the model as trained so far (stopped_early=True).
    """
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError("Training needs as many labels as images, and at least one image.")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)  # initial weights
    if model is None:
        model = build_model(config.arch)
    model = model.to(device)
    shuffle_gen = torch.Generator().manual_seed(config.seed + 1)
    angle_gen = torch.Generator().manual_seed(config.seed + 2)

    steps_per_epoch = math.ceil(len(images) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    # fused: Adam's whole update as one vectorised kernel over each parameter, instead of
    # several passes over the 767k weights per step (foreach) or ~8 Python-issued ops per
    # tensor (plain). It rounds a little differently from those two, so the shipped
    # checkpoints were trained with it (see docs/DESIGN.md, "Training recipe").
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, fused=True)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        if config.schedule == "cosine"
        else None
    )
    result = TrainResult(model=model, config=config, train_images=len(images))
    started = time.perf_counter()
    step, images_seen = 0, 0

    def report() -> None:  # the epoch so far, as the loop's variables stand now
        progress = Progress(epoch, step, total_steps, loss_sum / seen, correct / seen, images_seen)
        result.history.append(progress)
        if on_progress is not None:
            on_progress(progress)

    model.train()
    for epoch in range(1, config.epochs + 1):
        order = torch.randperm(len(images), generator=shuffle_gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for start in range(0, len(images), config.batch_size):
            if should_stop is not None and should_stop():
                result.stopped_early = True
                if seen and (not result.history or result.history[-1].step != step):
                    report()  # one last report, so the caller knows exactly how far the model got
                break
            index = order[start : start + config.batch_size]
            batch, target = images[index], labels[index]
            if config.augment == "rotation":
                angles = torch.rand(len(index), generator=angle_gen) * 360.0
                batch = rotate_each(batch, angles)
            batch, target = batch.to(device), target.to(device)
            logits = model(batch)
            loss = F.cross_entropy(logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step += 1
            loss_sum += loss.item() * len(index)
            correct += int((logits.argmax(1) == target).sum())
            seen += len(index)
            images_seen += len(index)
            if step % report_every == 0 or start + len(index) >= len(images):
                report()
        if seen:
            result.train_loss, result.train_accuracy = loss_sum / seen, correct / seen
        result.steps_completed = step
        if result.stopped_early:
            break
        result.epochs_completed = epoch
    result.seconds = time.perf_counter() - started
    model.eval()
    return result
