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


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling with stride 2, as F.max_pool2d(x, 2) computes it.

    Without gradients it is the maximum of the four strided sub-grids: the same number
    for every output pixel (max is exact, and NaN propagates as in max_pool2d), but on the
    CPU PyTorch's max_pool2d also works out argmax indices and does not vectorise over
    the 2x2 windows, so on one thread it took 8-20x as long (BENCHMARKS.md). With
    gradients it is max_pool2d itself, so training and its gradients are PyTorch's own.
    """
    if x.requires_grad:
        return F.max_pool2d(x, 2)
    x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]  # floor mode drops an odd last row or column
    top = torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2])
    bottom = torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2])
    return torch.maximum(top, bottom)


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
        x = max_pool_2x2(F.relu(self.conv1(x)))
        x = max_pool_2x2(F.relu(self.conv2(x)))
        x = F.relu(self.conv3(x))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
