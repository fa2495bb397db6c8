"""What every measurement of a run shares: the settings, the model, the test images, the roofline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from rotinv.bench.roofline import Roofline, count_flops
from rotinv.bench.settings import REPO, Settings
from rotinv.checkpoints import CheckpointError, load_checkpoint
from rotinv.data import Split, load_mnist, resolve_data_root
from rotinv.evaluation import AngleResult
from rotinv.models import LeNet5


@dataclass
class Bench:
    settings: Settings
    log: Callable[[str], None]
    model_path: Path
    model: nn.Module
    model_name: str
    flops: int  # of one forward pass of one image
    macs_by_layer: dict[str, int]
    data_root: Path
    test: Split  # the test images the sweep measures
    roof: Roofline
    # Set by the sweep, which runs first: the notebook baseline is compared with it.
    sweep_rate: float | None = None
    sweep_results: dict[float, AngleResult] = field(default_factory=dict)


def load_model(path: Path, quick: bool) -> tuple[nn.Module, str]:
    """The checkpoint and how to name it; in --quick an untrained LeNet-5 if there is none (same speed)."""
    try:
        model, _ = load_checkpoint(path)
        return model, f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}"
    except CheckpointError:
        if not quick:
            raise
        torch.manual_seed(0)
        return LeNet5().eval(), "an untrained LeNet-5 (no shipped model yet; --quick only)"


def open_bench(settings: Settings, model_path: Path, log: Callable[[str], None]) -> Bench:
    model, name = load_model(model_path, settings.quick)
    flops, macs = count_flops(model)
    root = resolve_data_root()
    test = load_mnist(False, root, download=False).subset(settings.test_images)
    return Bench(settings, log, model_path, model, name, flops, macs, root, test, Roofline(settings.matmul_size))
