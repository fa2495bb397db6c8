"""The networks, each readable top to bottom.

Every model takes images in [0, 1] (black background, white ink) and applies the MNIST
training normalisation as its first step. Keeping the normalisation inside the model
means a rotation is always applied to the raw image, so the corners it uncovers are
black, exactly like MNIST's background, and no caller can forget to normalise.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

# Mean and standard deviation of the MNIST training pixels, after scaling to [0, 1].
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


def normalize(images: torch.Tensor) -> torch.Tensor:
    """The training normalisation: [0, 1] pixels to zero mean, unit variance."""
    return (images - MNIST_MEAN) / MNIST_STD


def conv_relu(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """relu(conv(x)): in inference on the CPU, one oneDNN call with the ReLU fused in.

    The fused call runs the same oneDNN convolution F.conv2d runs on the CPU and applies
    the ReLU to its output before storing it: the same numbers bit for bit (tested), and
    one pass less over the biggest activations, a third of a sweep's time. It is used
    only where nothing can tell the difference: no gradients, no hooks on the layer (the
    feature-map views hook the pre-ReLU output), a plain zero-padded float32 convolution.
    """
    if _fusable(conv, x):
        return torch.ops.mkldnn._convolution_pointwise(
            x, conv.weight, conv.bias, conv.padding, conv.stride, conv.dilation, conv.groups, "relu", [], None
        )
    return F.relu(conv(x))


def _fusable(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    return (
        not torch.is_grad_enabled()
        and _HAS_FUSED_CONV
        and torch.backends.mkldnn.enabled
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.dim() == 4
        and x.layout == torch.strided
        and conv.weight.dtype == torch.float32
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and not (conv._forward_hooks or conv._forward_pre_hooks or nn.modules.module._global_forward_hooks
                 or nn.modules.module._global_forward_pre_hooks)
    )


_HAS_FUSED_CONV = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


class LeNet5(nn.Module):
    """LeNet-5 exactly as the report's layer table (767,426 parameters).

    Three 5x5 convolutions with padding 2 keep the spatial size; max pooling after the
    first two halves it: 28 -> 14 -> 7. The 120 x 7 x 7 maps are flattened for the
    classifier (5880 -> 120 -> 84 -> 10).
    """

    conv_layers = ("conv1", "conv2", "conv3")

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5, padding=2)
        self.conv3 = nn.Conv2d(16, 120, kernel_size=5, padding=2)
        self.fc1 = nn.Linear(120 * 7 * 7, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = normalize(images)
        x = F.max_pool2d(conv_relu(self.conv1, x), 2)
        x = F.max_pool2d(conv_relu(self.conv2, x), 2)
        x = conv_relu(self.conv3, x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# Architectures by name, as used on the command line, in checkpoint metadata and in the
# app. Other modules add theirs here (see rotinv.equivariant).
ARCHITECTURES: dict[str, type[nn.Module]] = {"lenet5": LeNet5}


def build_model(arch: str) -> nn.Module:
    """A freshly initialised model of the named architecture."""
    _register_extra_architectures()
    if arch not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"Unknown architecture {arch!r}; choose one of: {known}.")
    return ARCHITECTURES[arch]()


def _register_extra_architectures() -> None:
    # Imported lazily so that models.py stays the one place to read LeNet-5 from.
    try:
        from rotinv import equivariant  # noqa: F401  (registers itself)
    except ImportError:
        pass
