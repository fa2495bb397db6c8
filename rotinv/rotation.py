"""Rotating batches of images.

Convention: a positive angle turns the image counter-clockwise, as torchvision does.
(The report's own rotate_tensor transposed then flipped, which turns *clockwise* for its
"+90": its 90-degree column is our 270 degrees, and the other way round.)

Multiples of 90 degrees are done with torch.rot90: exact pixel permutations, no
interpolation, so rotating four times by 90 returns the input bit for bit. Other angles
sample the input on a turned grid of pixel centres with torch's grid_sample, computed
the way torchvision's rotate computes it, so the two agree bit for bit (tested) without
importing torchvision, which would add seconds and ~170 MB to the app's start.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
# The interpolations grid_sample offers that make sense for pixels, by their names there.
INTERPOLATIONS = ("nearest", "bilinear")


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
    if images.numel() == 0:
        return images.clone()
    height, width = images.shape[-2:]
    dtype = images.dtype if images.is_floating_point() else torch.float32
    flat = images.reshape(-1, 1, height, width).to(dtype)
    grid = _turned_grid(degrees, height, width, dtype, images.device).expand(len(flat), -1, -1, -1)
    turned = F.grid_sample(flat, grid, mode=interpolation, padding_mode="zeros", align_corners=False)
    if not images.is_floating_point():
        turned = turned.round_()  # back to whole pixel values, as torchvision does
    return turned.reshape(images.shape).to(images.dtype)


# Kept per (angle, size, dtype, device): the app turns one digit and its small feature maps
# at a few hundred angles, and building a grid costs more than sampling a 28×28 picture
# on it. A few KB each; callers only read them.
@functools.lru_cache(maxsize=2048)
def _turned_grid(degrees: float, height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """grid_sample's sampling positions (1, H, W, 2) for a counter-clockwise turn about the centre.

    Each output pixel centre, in pixels from the image centre, is turned back to where it
    comes from in the input, then scaled to grid_sample's [-1, 1]. The arithmetic (and
    its order, which decides the last bit) follows torchvision's rotate.
    """
    radians = math.radians(-(degrees % 360.0))  # sampling turns the other way
    cos, sin = math.cos(radians), math.sin(radians)
    inverse = torch.tensor([[[cos, sin, 0.0], [-sin, cos, 0.0]]], dtype=dtype, device=device)
    centres = torch.empty(1, height, width, 3, dtype=dtype, device=device)
    centres[..., 0].copy_(torch.linspace((1.0 - width) * 0.5, (width - 1.0) * 0.5, steps=width, device=device))
    centres[..., 1].copy_(
        torch.linspace((1.0 - height) * 0.5, (height - 1.0) * 0.5, steps=height, device=device).unsqueeze_(-1)
    )
    centres[..., 2].fill_(1)
    scaled = inverse.transpose(1, 2).div_(torch.tensor([0.5 * width, 0.5 * height], dtype=dtype, device=device))
    return centres.view(1, height * width, 3).bmm(scaled).view(1, height, width, 2)


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
