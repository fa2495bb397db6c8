"""A LeNet built to be rotation invariant by construction: C4 group convolutions.

After Cohen & Welling (2016), "Group Equivariant Convolutional Networks" (P4CNN). The
group C4 holds the four quarter turns. Every feature map comes in four copies, one per
orientation r = 0..3, and the layers are built so that turning the input by k quarter
turns (counter-clockwise, torch.rot90) turns every feature map by k quarter turns AND
moves orientation r to orientation r + k (mod 4). Nothing has to be learned for that:
the filters for the four orientations are one filter, rotated.

Layout of every conv stage's output (what a forward hook on conv1/conv2/conv3 sees):
(N, C * 4, H, W) with channel index ``c * 4 + r``: C feature channels, each followed by
its four orientations (orientation-minor). ``.view(N, C, 4, H, W)`` separates them, and
``cycle_orientations`` says how rotating the input moves them; the model's attribute
``feature_orientations = 4`` tells feature-map code about this layout. The stages
output the convolution plus bias, before the ReLU, exactly like LeNet5's conv modules:

    conv1  lifting conv,   1 ->  4 x 4 channels, 28 x 28
    conv2  group conv,   4x4 ->  8 x 4 channels, 14 x 14 (input: conv1, ReLU, 2x2 max pool)
    conv3  group conv,   8x4 -> 96 x 4 channels,  7 x  7 (input: conv2, ReLU, 2x2 max pool)

Max pooling 2 x 2 commutes exactly with rot90 because 28 and 14 are even (the pooling
windows tile the image the same way after a quarter turn), so equivariance survives it.

The head makes the features invariant without throwing away where things are: each
orientation's 7 x 7 map is turned back by its own orientation (orientation r by -r
quarter turns) and then the four are max-pooled. A turned input only permutes those
four terms, so the pooled 96 x 7 x 7 maps are identical for all four turns of the input,
yet a stroke at the top is still told apart from one at the side *relative to its own
direction*. A global pool over space would be invariant too, but would reduce each
channel to one number; keeping the 7 x 7 layout lets the classifier be LeNet-5's
(flatten -> 120 -> 84 -> 10).

Parameters: 655,822 (LeNet-5: 767,426) -- conv1 104, conv2 3,208, conv3 76,896,
fc1 564,600, fc2 10,164, fc3 850. The conv stages have a similar number of weights
to LeNet-5's (80,208 against 50,692) but do about six times the arithmetic (every filter
is applied in four turns): 4/8/96 channels per orientation is what keeps an epoch of
60,000 images within a few minutes on a 2-core CPU.

What it cannot do: the logits are the same for all four quarter turns of an image, so
a 6 turned by 180 degrees is, to this model, exactly that 6. As a 9 is much like a 6
turned over, it tells them apart only by handwriting details (a 9's straighter stem).
Other angles (say 45 degrees) are not covered by the construction at all.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rotinv.models import max_pool_2x2, normalize

ORIENTATIONS = 4  # the quarter turns of C4


def cycle_orientations(feature_map: torch.Tensor, k: int, orientations: int = ORIENTATIONS) -> torch.Tensor:
    """Move each orientation r of a (N, C * n, H, W) map to orientation r + k (mod n), n = `orientations`.

    With f a C4 conv stage and rot the counter-clockwise quarter turn,
    ``f(rot^k x) == rot^k(cycle_orientations(f(x), k))``: this is the channel half of
    what rotating the input by k quarter turns does (the spatial half is rot90). The C8
    network (rotinv.cyclic) has n = 8 orientations, k counting eighth turns.
    Works on (C * n, H, W) too; only the channel axis (-3) is touched.
    """
    channels = feature_map.shape[-3]
    if channels % orientations:
        raise ValueError(f"A C{orientations} feature map has a multiple of {orientations} channels, got {channels}.")
    split = feature_map.unflatten(-3, (channels // orientations, orientations))
    return torch.roll(split, shifts=int(k) % orientations, dims=-3).flatten(-4, -3)


def _init_like_conv(filters: torch.Tensor, bias: torch.Tensor, fan_in: int) -> None:
    # nn.Conv2d's default initialisation (uniform within 1/sqrt(fan_in)), with the fan-in
    # of the filter bank actually applied: every orientation of every input channel.
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(filters, -bound, bound)
    nn.init.uniform_(bias, -bound, bound)


class LiftingConv(nn.Module):
    """Image (N, in, H, W) -> C4 feature maps (N, out * 4, H, W): each filter in four turns.

    The learned filters are called `filters`, not `weight` as in nn.Conv2d: they are
    not what is convolved with (filter_bank() is), and the different name is how a
    checkpoint's keys tell this model from LeNet5 (rotinv.checkpoints.infer_architecture).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, padding: int = 2) -> None:
        super().__init__()
        self.padding = padding
        self.filters = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels))
        _init_like_conv(self.filters, self.bias, in_channels * kernel_size**2)

    def filter_bank(self) -> torch.Tensor:
        """The (out * 4, in, k, k) filters actually applied: filter c turned r times at c * 4 + r."""
        turned = [torch.rot90(self.filters, r, dims=(-2, -1)) for r in range(ORIENTATIONS)]
        return torch.stack(turned, dim=1).flatten(0, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # One bias per channel, shared by its orientations: a bias per orientation
        # would make one orientation special and break equivariance.
        bias = self.bias.repeat_interleave(ORIENTATIONS)
        return F.conv2d(images, self.filter_bank(), bias, padding=self.padding)


class GroupConv(nn.Module):
    """C4 maps (N, in * 4, H, W) -> C4 maps (N, out * 4, H, W).

    One learned filter per (out, in) pair covers all four input orientations:
    filters[o, i, s] is what orientation s of input channel i contributes to output
    orientation 0. Output orientation r uses the same filter turned r times, reading
    input orientation s through filters[o, i, s - r]: turning the whole picture turns
    the filter and relabels the orientations together, which is what makes the layer
    equivariant.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, padding: int = 2) -> None:
        super().__init__()
        self.padding = padding
        self.filters = nn.Parameter(
            torch.empty(out_channels, in_channels, ORIENTATIONS, kernel_size, kernel_size)
        )
        self.bias = nn.Parameter(torch.empty(out_channels))
        _init_like_conv(self.filters, self.bias, in_channels * ORIENTATIONS * kernel_size**2)

    def filter_bank(self) -> torch.Tensor:
        """The (out * 4, in * 4, k, k) filters actually applied, orientation-minor on both axes."""
        # torch.roll(w, r, dims=2)[:, :, s] == w[:, :, s - r]
        turned = [
            torch.rot90(torch.roll(self.filters, r, dims=2), r, dims=(-2, -1))
            for r in range(ORIENTATIONS)
        ]
        return torch.stack(turned, dim=1).flatten(2, 3).flatten(0, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # Rebuilding the bank each call costs one small copy of the weights, against a
        # convolution over every image: negligible, and it keeps a single source of truth
        # that the optimiser updates.
        bias = self.bias.repeat_interleave(ORIENTATIONS)
        return F.conv2d(features, self.filter_bank(), bias, padding=self.padding)


def invariant_pool(features: torch.Tensor) -> torch.Tensor:
    """C4 maps (N, C * 4, H, W) -> (N, C, H, W), the same for every quarter turn of the input.

    Orientation r is turned back by r quarter turns, then the four are max-pooled.
    Turning the input by k sends orientation r to r + k, turned k further, so after
    turning back it lands where orientation r was: the four terms are only reordered.
    """
    n, channels, height, width = features.shape
    # Turning back done as one gather over a precomputed pixel order: about two thirds
    # of the time of four rot90 copies, forward and backward (it runs on every batch).
    pixels = torch.arange(height * width, device=features.device).view(height, width)
    order = torch.cat(
        [r * height * width + torch.rot90(pixels, -r).flatten() for r in range(ORIENTATIONS)]
    )
    split = features.reshape(n, channels // ORIENTATIONS, ORIENTATIONS * height * width)
    turned_back = split.index_select(-1, order).view(n, -1, ORIENTATIONS, height, width)
    return turned_back.max(dim=2).values


class C4LeNet(nn.Module):
    """LeNet-5 with C4 group convolutions: logits are identical for all four quarter turns.

    Same skeleton as LeNet5 (three 5x5 convs, padding 2, 2x2 max pool after the first
    two, then 120 -> 84 -> 10). See the module docstring for the feature-map layout.
    """

    conv_layers = ("conv1", "conv2", "conv3")
    # Tells feature-map code (rotinv.equivariance, the app) that each conv stage's
    # channels come in 4 orientations, orientation-minor: channel c * 4 + r.
    feature_orientations = ORIENTATIONS
    channels = (4, 8, 96)  # per orientation; each stage has 4x as many feature maps

    def __init__(self) -> None:
        super().__init__()
        c1, c2, c3 = self.channels
        self.conv1 = LiftingConv(1, c1)
        self.conv2 = GroupConv(c1, c2)
        self.conv3 = GroupConv(c2, c3)
        self.fc1 = nn.Linear(c3 * 7 * 7, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = normalize(images)
        x = max_pool_2x2(F.relu(self.conv1(x)))
        x = max_pool_2x2(F.relu(self.conv2(x)))
        x = F.relu(self.conv3(x))
        x = torch.flatten(invariant_pool(x), 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)
