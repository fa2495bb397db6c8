"""Every architecture by name: the names the command line, checkpoint metadata and the app use.

A new architecture is one import and one line here.
"""

from __future__ import annotations

from torch import nn

from rotinv.cyclic import C4CNN, C8CNN
from rotinv.equivariant import C4LeNet
from rotinv.models import LeNet5

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "lenet5": LeNet5,
    "lenet5_c4": C4LeNet,
    "c4cnn": C4CNN,
    "c8cnn": C8CNN,
}

# What people read: a short name for labels and legends, and a line for choosing one.
SHORT_NAMES: dict[str, str] = {"lenet5": "LeNet-5", "lenet5_c4": "C4 LeNet", "c4cnn": "C4 CNN", "c8cnn": "C8 CNN"}
DESCRIPTIONS: dict[str, str] = {
    "lenet5": "LeNet-5 (the report's network)",
    "lenet5_c4": "C4-equivariant LeNet (invariant to quarter turns only)",
    "c4cnn": "C4 CNN: six C4 group-conv stages, invariant head",
    "c8cnn": "C8 CNN: six C8 group-conv stages, invariant head",
}


def build_model(arch: str) -> nn.Module:
    """A freshly initialised model of the named architecture."""
    if arch not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"Unknown architecture {arch!r}; choose one of: {known}.")
    return ARCHITECTURES[arch]()


def architecture_name(model: nn.Module) -> str:
    """The registered name of a model's architecture, or its class name if it has none."""
    return next((name for name, cls in ARCHITECTURES.items() if type(model) is cls), type(model).__name__)
