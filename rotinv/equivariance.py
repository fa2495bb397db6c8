"""How far a layer is from commuting with rotation: the equivariance error.

A layer f is rotation equivariant when rotating its input rotates its output:
f(rot x) == rot f(x). The error measured here is the relative difference

    || f(rot x) - rot f(x) || / || f(x) ||     (Frobenius norms over the whole batch)

0 for an equivariant layer; for an ordinary conv with learned, unsymmetric filters it is
of the order of 1, since a turned filter finds different things than the filter.

Feature maps are turned with rotinv.rotation.rotate_tensor, like images: exact rot90 at
multiples of 90 degrees, bilinear interpolation otherwise. At other angles even a
perfectly equivariant layer shows an error, from resampling twice and from the corners
a turn cuts off (and, for a stride or pooling, from the grid not turning with the
picture); compare such numbers across layers and models, not against zero.

Group-convolution feature maps carry n orientations per channel (n = 4 for the C4
network of rotinv.equivariant, 8 for the C8 network of rotinv.cyclic), and a turn of the
input by k · 360/n degrees also moves orientation r to r + k. So for them "rot f(x)"
turns the maps *and* cycles the orientations. For an angle between the orientations'
steps they are cycled by the nearest step (for C4, 45 rounds up to 90, 135 up to 180):
the best the n orientations can do to follow the turn, so the error then measures how
far the model is from equivariant to that angle given its orientation grid, rather than
mixing in an arbitrary mislabelling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from rotinv.equivariant import cycle_orientations
from rotinv.introspection import hooked_pass
from rotinv.rotation import rotate_tensor


def nearest_turns(degrees: float, orientations: int = 4) -> int:
    """The number of counter-clockwise 360/orientations-degree steps (0..n-1) nearest to `degrees`; ties round up."""
    return math.floor(float(degrees) * orientations / 360.0 + 0.5) % orientations


def _as_batch(image: torch.Tensor) -> torch.Tensor:
    # (H, W), (1, H, W) and (N, 1, H, W) are all accepted: the app holds single digits.
    if image.dim() == 2:
        return image[None, None]
    if image.dim() == 3:
        return image[None]
    if image.dim() == 4:
        return image
    raise ValueError(f"An image must be (H, W), (1, H, W) or (N, 1, H, W), got shape {tuple(image.shape)}.")


def _rotate_features(features: torch.Tensor, degrees: float, orientations: int = 1) -> torch.Tensor:
    """rot f(x): the feature maps turned by `degrees`, their orientations (if more than 1) cycled to follow."""
    if orientations > 1:
        features = cycle_orientations(features, nearest_turns(degrees, orientations), orientations)
    return rotate_tensor(features, degrees)


def _relative_error(rotated_first: torch.Tensor, rotated_after: torch.Tensor, reference: torch.Tensor) -> float:
    difference = torch.linalg.vector_norm((rotated_first - rotated_after).double())
    scale = torch.linalg.vector_norm(reference.double())
    if scale == 0:
        # All-zero features (e.g. every ReLU off): nothing to compare against.
        return 0.0 if difference == 0 else math.inf
    return float(difference / scale)


def equivariance_error(
    layer_fn: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    degrees: float,
    orientations: int = 1,
) -> float:
    """||f(rot x) - rot f(x)|| / ||f(x)|| for f = layer_fn and images in [0, 1].

    `layer_fn` maps a batch (N, 1, H, W) to feature maps (N, C, H', W'); `image` is one
    image ((H, W) or (1, H, W)) or a batch. `orientations` is how many orientations each
    channel of f's output comes in (4 for C4 maps, 8 for C8, 1 for ordinary maps): a turn
    moves them besides turning the maps.
    Returns 0.0 when f(x) and the difference are both all zero, inf when only f(x) is.
    """
    images = _as_batch(image)
    with torch.no_grad():
        features = layer_fn(images)
        rotated_first = layer_fn(rotate_tensor(images, degrees))
    return _relative_error(rotated_first, _rotate_features(features, degrees, orientations), features)


def feature_orientations(model: nn.Module) -> int:
    """How many orientations each channel of `model`'s conv stages comes in: 1 for ordinary models.

    Group-convolution models say so with a class attribute `feature_orientations`
    (4 for rotinv.equivariant.C4LeNet and rotinv.cyclic.C4CNN, 8 for rotinv.cyclic.C8CNN).
    """
    return int(getattr(model, "feature_orientations", 1))


def conv_features(model: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """{name: ReLU(output)} of each of `model.conv_layers`, for one forward pass on images in [0, 1].

    The maps are what the next layer sees (before any pooling), captured by
    rotinv.introspection.hooked_pass: the package's one way to hook a model, safe when
    the app's sessions (threads) share it. The model is used as it is (its train/eval
    mode untouched); no gradients are recorded.
    """
    return hooked_pass(model, images)[1]


@dataclass(frozen=True)
class Reading:
    """What one forward pass of a batch shows: the class probabilities and every conv stage's maps.

    Every measure here compares two readings, of the images and of the images turned; a
    reading of the upright digit serves every angle, so the app keeps it and makes one new
    pass per angle. Treat it as read-only: the app shares readings between sessions.
    """

    probabilities: torch.Tensor  # (N, classes), float32
    maps: dict[str, torch.Tensor]  # stage -> (N, C, H, W), after the ReLU
    orientations: int = 1  # how many orientations each channel comes in (feature_orientations)


def read(model: nn.Module, images: torch.Tensor) -> Reading:
    """One hooked forward pass (rotinv.introspection.hooked_pass) of images in [0, 1], as a Reading."""
    logits, maps = hooked_pass(model, _as_batch(images))
    return Reading(torch.softmax(logits.float(), dim=-1), maps, feature_orientations(model))


def read_turned(model: nn.Module, images: torch.Tensor, degrees: float) -> Reading:
    """The Reading of the images turned `degrees` counter-clockwise (rotinv.rotation.rotate_tensor)."""
    return read(model, rotate_tensor(_as_batch(images), degrees))


def read_turned_each(model: nn.Module, image: torch.Tensor, angles: Sequence[float]) -> list[Reading]:
    """One Reading per angle of one image, from a single forward pass of its turned copies.

    A small network's pass costs about the same for four images as for one (the cost is
    in the calls, not the arithmetic): the app reads a new digit at several angles at once.
    Batched, the maps round differently from single passes, at the 1e-6 level.
    """
    images = _as_batch(image)
    if images.shape[0] != 1:
        raise ValueError(f"Give one image, not a batch of {images.shape[0]}.")
    together = read(model, torch.cat([rotate_tensor(images, degrees) for degrees in angles]))
    return [Reading(together.probabilities[i : i + 1], {name: maps[i : i + 1] for name, maps in together.maps.items()},
                    together.orientations) for i in range(len(angles))]


def stage_errors(upright: Reading, turned: Reading, degrees: float) -> dict[str, float]:
    """||f(rot x) - rot f(x)|| / ||f(x)|| for each conv stage, in order, from the readings of x and rot x."""
    return {
        name: _relative_error(turned.maps[name], _rotate_features(maps, degrees, upright.orientations), maps)
        for name, maps in upright.maps.items()
    }


def output_error(upright: Reading, turned: Reading) -> float:
    """||p(rot x) - p(x)|| / ||p(x)|| on the class probabilities, from the readings of x and rot x."""
    return _relative_error(turned.probabilities, upright.probabilities, upright.probabilities)


def layer_equivariance_errors(model: nn.Module, image: torch.Tensor, degrees: float) -> dict[str, float]:
    """The equivariance error of each conv stage (after its ReLU), by name, in order.

    Each stage is measured as the whole network up to it: its error includes what the
    earlier stages (and pooling) let through. Group-convolution models get their
    orientations cycled (see feature_orientations). Two forward passes in all.
    """
    return stage_errors(read(model, image), read_turned(model, image, degrees), degrees)


def output_invariance_error(model: nn.Module, image: torch.Tensor, degrees: float) -> float:
    """||p(rot x) - p(x)|| / ||p(x)||, p the model's softmax probabilities: how far its OUTPUT is from invariant.

    Invariance, not equivariance: nothing is turned back, the class probabilities should
    simply stay put. About 0 when the turned digit gets the same probabilities; about
    1.4 when a confident prediction moves to another confident one. Setting this beside
    layer_equivariance_errors tells a model that is invariant because its layers are
    equivariant (C4 at quarter turns) from one that has learned an invariant output
    while its layers are not (rotation augmentation).
    """
    return output_error(read(model, image), read_turned(model, image, degrees))


def channel_pair(upright: Reading, turned: Reading, degrees: float, layer: str,
                 channel: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One channel's (H, W) map of the first image: f(rot x) beside rot f(x), from the readings of x and rot x."""
    if layer not in upright.maps:
        raise ValueError(f"Unknown layer {layer!r}; choose one of: {', '.join(upright.maps)}.")
    if upright.maps[layer].shape[0] != 1:
        raise ValueError(f"Give one image, not a batch of {upright.maps[layer].shape[0]}.")
    channels = upright.maps[layer].shape[1]
    if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < channels:
        raise ValueError(f"{layer} has channels 0 to {channels - 1}, got {channel!r}.")
    map_a = turned.maps[layer][0, channel]
    map_b = _rotate_features(upright.maps[layer], degrees, upright.orientations)[0, channel]
    return map_a.cpu(), map_b.cpu()


def rotate_then_convolve_vs_convolve_then_rotate(
    model: nn.Module, image: torch.Tensor, degrees: float, layer: str, channel: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (H, W) maps of one channel of one conv stage, to show side by side.

    map_a: the image turned first, then the network up to `layer` (after its ReLU).
    map_b: the network on the upright image, its output turned afterwards (for group-conv
    models with the orientations cycled too, so that channel c * n + r of map_b is the one
    that should land in that slot). They are equal wherever the stage is equivariant.
    """
    if layer not in model.conv_layers:
        raise ValueError(f"Unknown layer {layer!r}; choose one of: {', '.join(model.conv_layers)}.")
    images = _as_batch(image)
    if images.shape[0] != 1:
        raise ValueError(f"Give one image, not a batch of {images.shape[0]}.")
    return channel_pair(read(model, images), read_turned(model, images, degrees), degrees, layer, channel)
