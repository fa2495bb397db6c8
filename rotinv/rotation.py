"""Rotating batches of images.

Convention: a positive angle turns the image counter-clockwise, as torchvision does.
(The report's own rotate_tensor transposed then flipped, which turns *clockwise* for its
"+90": its 90-degree column is our 270 degrees, and the other way round.)

Multiples of 90 degrees are done with torch.rot90: exact pixel permutations, no
interpolation, so rotating four times by 90 returns the input bit for bit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

INTERPOLATIONS = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
}


def _check_interpolation(interpolation: str) -> None:
    if interpolation not in INTERPOLATIONS:
        known = ", ".join(INTERPOLATIONS)
        raise ValueError(f"Unknown interpolation {interpolation!r}; choose one of: {known}.")


def quarter_turns(degrees: float) -> int | None:
    """The number of counter-clockwise quarter turns if `degrees` is a multiple of 90."""
    turns = float(degrees) / 90.0
    if turns == round(turns):
        return int(round(turns)) % 4
    return None


def rotate_tensor(
    images: torch.Tensor, degrees: float, interpolation: str = "bilinear"
) -> torch.Tensor:
    """Rotate images of shape (..., H, W) by `degrees` counter-clockwise about their centre.

    Corners uncovered by the rotation are filled with 0 (black). Multiples of 90 degrees
    are exact; 0 and 360 return the input itself.
    """
    _check_interpolation(interpolation)
    degrees = float(degrees)
    if not math.isfinite(degrees):
        raise ValueError(f"Rotation angle must be a finite number, got {degrees}.")
    turns = quarter_turns(degrees)
    if turns is not None:
        return images if turns == 0 else torch.rot90(images, turns, dims=(-2, -1))
    if images.dim() < 2:
        raise ValueError(f"Images must have at least 2 dimensions (H, W), got shape {tuple(images.shape)}.")
    # torchvision wants (..., C, H, W); one channel per image covers every leading shape.
    flat = images.reshape(-1, 1, *images.shape[-2:])
    turned = TF.rotate(flat, degrees % 360.0, interpolation=INTERPOLATIONS[interpolation])
    return turned.reshape(images.shape)


def rotate_each(
    images: torch.Tensor, degrees: torch.Tensor, interpolation: str = "bilinear"
) -> torch.Tensor:
    """Rotate each image of a batch (N, C, H, W) by its own angle (N,), in one pass.

    Used for rotation augmentation, where every training image gets a random angle.
    Same convention and centre as rotate_tensor (counter-clockwise, fill 0).
    """
    _check_interpolation(interpolation)
    if images.dim() != 4 or degrees.shape != images.shape[:1]:
        raise ValueError("rotate_each needs images (N, C, H, W) and one angle per image (N,).")
    radians = torch.deg2rad(degrees.to(images.dtype))
    cos, sin = torch.cos(radians), torch.sin(radians)
    zero = torch.zeros_like(cos)
    # affine_grid maps output coordinates to input coordinates (x right, y down), so a
    # counter-clockwise turn of the picture samples with the inverse rotation.
    theta = torch.stack(
        [torch.stack([cos, -sin, zero], dim=1), torch.stack([sin, cos, zero], dim=1)], dim=1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(
        images, grid, mode=interpolation, padding_mode="zeros", align_corners=False
    )
