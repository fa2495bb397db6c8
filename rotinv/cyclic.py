"""Networks that read digits at any angle: cyclic group convolutions and an invariant head.

The C4 LeNet (rotinv.equivariant) is exact at quarter turns, knows nothing of the angles
in between, and is LeNet-shaped: three convolutions and a large classifier. The networks
here keep its idea, every feature map in n orientations whose filters are one learned
filter turned, and change what limited it:

- the filters of orientation r are the learned ones turned by r * 360/n degrees, the way
  the app turns images (rotinv.rotation.rotate_tensor: an exact pixel permutation at
  quarter turns, bilinear in between), and kept on the disk inside their square, so a
  turn never cuts off a corner. n = 4 is exact; n = 8 is exact at quarter turns and
  close at eighth turns;
- six conv stages with batch normalisation instead of three, most of them 3 x 3 at the
  coarse 14 x 14 and 7 x 7 resolutions where they are cheap;
- an invariant head: the maximum over a channel's n orientations, then the mean over
  the 7 x 7 positions. A turned input only moves terms around inside that max and mean
  (exactly for quarter turns), so the 10 logits can come out the same at every angle
  from a classifier of a few thousand weights. Training on digits turned by random
  angles teaches the rest: the angles between the n, and what interpolation blurs.

Nothing of the digit's absolute direction survives the head, which is the point and
the price: to these models a 6 turned by 180 degrees IS that 6, so they tell a 6 from a
9 only by handwriting (a 9's straighter stem, a 6's rounder loop), never by which way up
it is.

Layout of every conv stage's output, as in rotinv.equivariant: (N, C * n, H, W) with
channel ``c * n + r`` = channel c at orientation r * 360/n degrees, orientation-minor;
the attribute ``feature_orientations = n`` says so to the feature-map code. Each stage
outputs its batch-normalised convolution, before the ReLU (what a forward hook on
conv1 ... conv6 sees, like LeNet5's conv modules).

C4CNN, stages as (channels per orientation, kernel, 2x2 max pool after):

    conv1 (8, 5, pool)  28 -> 14     conv4 (24, 3)   7 x 7
    conv2 (16, 3)       14 x 14      conv5 (24, 3)   7 x 7
    conv3 (16, 3, pool) 14 -> 7      conv6 (24, 3)   7 x 7

Parameters: 71,794 (LeNet-5: 767,426): conv1 216, conv2 4,640, conv3 9,248, conv4 13,872,
conv5 and conv6 20,784 each (filters, plus a batch norm's scale and shift per channel;
the 5 x 5 filters' four corner weights lie outside the disk and stay unused), fc1 1,600,
fc2 650. About 22 million multiply-adds an image, every filter applied in four turns.

C8CNN has the same six stages with eight orientations and half the channels per
orientation (4, 8, 8, 12, 12, 12), so the same number of feature maps and the same
arithmetic: 36,254 parameters (conv1 108, conv2 2,320, conv3 4,624, conv4 6,936, conv5
and conv6 10,392 each, fc1 832, fc2 650). tests/test_cyclic.py checks both counts.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rotinv.models import max_pool_2x2, normalize
from rotinv.rotation import rotate_tensor


def disk_mask(kernel_size: int) -> torch.Tensor:
    """1 on the pixels whose centre lies within the square's inscribed circle, else 0."""
    offsets = torch.arange(kernel_size, dtype=torch.float32) - (kernel_size - 1) / 2
    distance = torch.sqrt(offsets[:, None] ** 2 + offsets[None, :] ** 2)
    return (distance <= kernel_size / 2).float()


class _CyclicConv(nn.Module):
    """What the lifting and the group conv share: disk-masked filters, then batch norm.

    Batch norm keeps one mean, variance, scale and shift per channel for all its
    orientations: a statistic per orientation would single one out and break the
    symmetry. It also takes the place of a bias (a bias before it would cancel out).
    """

    def __init__(self, filter_shape: tuple[int, ...], kernel_size: int, orientations: int) -> None:
        super().__init__()
        self.orientations = orientations
        self.padding = kernel_size // 2
        self.filters = nn.Parameter(torch.empty(*filter_shape, kernel_size, kernel_size))
        self.register_buffer("mask", disk_mask(kernel_size), persistent=False)
        self.norm = nn.BatchNorm3d(filter_shape[0])
        # nn.Conv2d's default bound, with the fan-in the bank actually applies
        fan_in = math.prod(filter_shape[1:]) * float(self.mask.sum())
        nn.init.uniform_(self.filters, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def turned(self, filters: torch.Tensor, r: int) -> torch.Tensor:
        return rotate_tensor(filters, r * 360.0 / self.orientations)

    def applied_bank(self) -> torch.Tensor:
        """filter_bank(), kept between forward passes that cannot change it.

        Turning every filter (by interpolation for C8) is most of a small batch's cost: the
        app's lens measures the shipped C4 and C8 CNNs at each new angle. Only an eval-mode
        pass without gradients reuses it, and only while the filters are the same tensor,
        unchanged in place (an optimiser step or load_state_dict bumps its version).
        """
        if self.training or torch.is_grad_enabled():
            return self.filter_bank()
        key = (self.filters.data_ptr(), self.filters._version, self.filters.dtype, self.filters.device)
        cached = getattr(self, "_bank_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, self.filter_bank())
            self._bank_cache = cached  # one assignment: another thread sees the old pair or the new one
        return cached[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.applied_bank(), padding=self.padding)
        n, channels, height, width = x.shape
        grouped = x.view(n, channels // self.orientations, self.orientations, height, width)
        return self.norm(grouped).view(n, channels, height, width)


class LiftingConv(_CyclicConv):
    """Image (N, in, H, W) -> maps (N, out * n, H, W): each filter in n turns."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, orientations: int) -> None:
        super().__init__((out_channels, in_channels), kernel_size, orientations)

    def filter_bank(self) -> torch.Tensor:
        """The (out * n, in, k, k) filters applied: filter c turned r steps at c * n + r."""
        masked = self.filters * self.mask
        return torch.stack([self.turned(masked, r) for r in range(self.orientations)], dim=1).flatten(0, 1)


class GroupConv(_CyclicConv):
    """Maps (N, in * n, H, W) -> maps (N, out * n, H, W).

    filters[o, i, s] is what orientation s of input channel i adds to output orientation
    0. Output orientation r applies the same filters turned r steps, reading input
    orientation s through filters[o, i, s - r]: turning the picture turns the filters and
    relabels the orientations together, which is what makes the layer equivariant.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, orientations: int) -> None:
        super().__init__((out_channels, in_channels, orientations), kernel_size, orientations)

    def filter_bank(self) -> torch.Tensor:
        """The (out * n, in * n, k, k) filters applied, orientation-minor on both axes."""
        masked = self.filters * self.mask
        # torch.roll(w, r, dims=2)[:, :, s] == w[:, :, s - r]
        turned = [self.turned(torch.roll(masked, r, dims=2), r) for r in range(self.orientations)]
        return torch.stack(turned, dim=1).flatten(2, 3).flatten(0, 1)


class CyclicCNN(nn.Module):
    """Group conv stages with n orientations, then the invariant head (see the module docstring)."""

    # (channels per orientation, kernel size, 2x2 max pool after the stage)
    stages: Sequence[tuple[int, int, bool]] = ()
    feature_orientations = 1

    def __init__(self) -> None:
        super().__init__()
        n = self.feature_orientations
        self.conv_layers = tuple(f"conv{i + 1}" for i in range(len(self.stages)))
        previous = None
        for name, (channels, kernel_size, _) in zip(self.conv_layers, self.stages):
            stage = (LiftingConv(1, channels, kernel_size, n) if previous is None
                     else GroupConv(previous, channels, kernel_size, n))
            setattr(self, name, stage)
            previous = channels
        self.fc1 = nn.Linear(previous, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = normalize(images)
        for name, (_, _, pool) in zip(self.conv_layers, self.stages):
            x = F.relu(getattr(self, name)(x))
            if pool:
                x = max_pool_2x2(x)
        n, channels, height, width = x.shape
        # the invariant: each channel's strongest orientation, averaged over the picture
        x = x.view(n, channels // self.feature_orientations, self.feature_orientations, height, width)
        x = x.amax(dim=2).mean(dim=(-2, -1))
        return self.fc2(F.relu(self.fc1(x)))


class C4CNN(CyclicCNN):
    """Six C4 group conv stages and an invariant head: exact at quarter turns, taught the rest."""

    feature_orientations = 4
    stages = ((8, 5, True), (16, 3, False), (16, 3, True), (24, 3, False), (24, 3, False), (24, 3, False))


class C8CNN(CyclicCNN):
    """Six C8 group conv stages and an invariant head: exact at quarter turns, close at eighth turns."""

    feature_orientations = 8
    stages = ((4, 5, True), (8, 3, False), (8, 3, True), (12, 3, False), (12, 3, False), (12, 3, False))
