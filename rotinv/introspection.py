"""Looking inside a network: its kernels, its feature maps, and tiled pictures of both.

Works for any model that names its convolution stages in a ``conv_layers`` attribute
(LeNet5's is ("conv1", "conv2", "conv3"); the C4-equivariant LeNet's too). Each stage
is a submodule whose output is the convolution plus bias, *before* the ReLU, which the
model's forward applies (``F.relu(self.conv1(x))``). A forward hook sees that pre-ReLU
output, so ``inspect`` applies ReLU to it: the maps returned are the ones the rest of
the network actually reads, "the feature maps after each conv's activation" as in the
report. (ReLU is recomputed on a copy; the model's own forward pass is untouched.)

Shapes for LeNet-5 (one image), as the report's layer table:

    feature maps   conv1 6 x 28 x 28     conv2 16 x 14 x 14    conv3 120 x 7 x 7
    kernels        conv1 6 x 1 x 5 x 5   conv2 16 x 6 x 5 x 5  conv3 120 x 16 x 5 x 5

The pictures: ``tile_grid`` lays a stack of 2-D arrays out in rows and columns, each
tile stretched to its own full grey range (a kernel's or a map's *pattern* is what
matters; the absolute scale differs wildly between tiles), with thin separators and
whole-pixel upscaling so a 5 x 5 kernel stays crisp instead of being blurred by the
browser. ``kernel_grid`` puts one row per output channel and one column per input
channel, so conv3's 120 x 16 kernels become a tall picture meant for a scrolling box.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from rotinv.rotation import rotate_tensor

# Hooks live on the model object, and the app shares one model object between browser
# sessions (threads). hooked_pass is the one way in this package to capture feature
# maps, and it guards against other threads twice over: hooked passes are serialised by
# this lock (one pass is about a millisecond), and each hook keeps only what its own
# thread computes, so a plain forward pass that another thread runs meanwhile (an
# evaluation, a prediction: they take no lock) cannot slip its maps into the capture.
_HOOK_LOCK = threading.Lock()

# Grey level of the lines between tiles: mid-dark, so it reads as a frame both against
# black (dead map, background) and white (strong response) tiles.
SEPARATOR = 64


@dataclass(frozen=True)
class Inspection:
    """One image through one model: the class probabilities and every conv stage's maps."""

    probabilities: torch.Tensor  # (classes,), sums to 1
    feature_maps: dict[str, torch.Tensor]  # layer name -> (channels, H, W), after ReLU

    @property
    def predicted(self) -> int:
        return int(self.probabilities.argmax())

    @property
    def confidence(self) -> float:
        return float(self.probabilities.max())


def conv_layer_names(model: nn.Module) -> tuple[str, ...]:
    """The names of the model's convolution stages, in order (its ``conv_layers``)."""
    names = getattr(model, "conv_layers", None)
    if not names:
        raise ValueError(
            f"{type(model).__name__} does not list its convolution stages: give it a "
            f"conv_layers attribute such as ('conv1', 'conv2', 'conv3')."
        )
    for name in names:
        if not isinstance(getattr(model, name, None), nn.Module):
            raise ValueError(f"{type(model).__name__} has no submodule {name!r} (listed in conv_layers).")
    return tuple(names)


def as_batch(image: torch.Tensor) -> torch.Tensor:
    """One image (28, 28), (1, 28, 28) or (1, 1, 28, 28) as a batch of one (1, 1, 28, 28)."""
    image = torch.as_tensor(image)
    if image.dim() == 2:
        image = image.unsqueeze(0)
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"Expected one image (H, W), (C, H, W) or (1, C, H, W), got shape {tuple(image.shape)}.")
    return image.float()


def hooked_pass(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One forward pass of a batch (N, C, H, W): (logits, {stage: its maps after ReLU, (N, ...)}).

    Forward hooks are put on the model's own conv modules for this pass only, and
    removed afterwards whatever happens. Each stage's output is pre-activation (the
    network goes on with its ReLU), so the ReLU is applied here, to a copy. Safe on a
    model shared between threads: see _HOOK_LOCK. The model is used as it is (its
    train/eval mode untouched: shipped models are in eval mode); no gradients are
    recorded; the images are moved to the model's device and the results stay there.
    """
    names = conv_layer_names(model)
    captured: dict[str, torch.Tensor] = {}
    thread = threading.get_ident()

    def hook_for(name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if threading.get_ident() == thread:  # not another thread's pass
                captured[name] = F.relu(output.detach())

        return hook

    parameter = next(model.parameters(), None)
    if parameter is not None:
        images = images.to(parameter.device)
    with _HOOK_LOCK:
        handles = [getattr(model, name).register_forward_hook(hook_for(name)) for name in names]
        try:
            with torch.no_grad():
                logits = model(images)
        finally:
            for handle in handles:
                handle.remove()
    missing = [name for name in names if name not in captured]
    if missing:
        raise RuntimeError(f"The forward pass did not go through {', '.join(missing)}.")
    return logits, {name: captured[name] for name in names}


def inspect(model: nn.Module, image: torch.Tensor) -> Inspection:
    """Probabilities and the post-ReLU maps of every conv stage, from one forward pass (hooked_pass)."""
    logits, maps = hooked_pass(model, as_batch(image))
    probabilities = torch.softmax(logits[0].float(), dim=0).cpu()
    return Inspection(probabilities, {name: tensor[0].cpu().clone() for name, tensor in maps.items()})


def feature_maps(model: nn.Module, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Layer name -> that conv stage's maps after ReLU, (channels, H, W), for one image."""
    return inspect(model, image).feature_maps


def predict(model: nn.Module, image: torch.Tensor) -> tuple[int, torch.Tensor]:
    """(predicted class, probabilities over the classes) for one image in [0, 1]."""
    with torch.no_grad():
        logits = model(as_batch(image))
    probabilities = torch.softmax(logits[0].float(), dim=0)
    return int(probabilities.argmax()), probabilities


def kernels(model: nn.Module, layer: str) -> torch.Tensor:
    """The filters a conv stage applies, (out_channels, in_channels, k, k), detached.

    For an nn.Conv2d that is its weight. A stage that builds its filters from shared
    parameters (the C4 group convolutions' ``filter_bank()``) is asked for the bank it
    actually convolves with, so every model is shown the same way.
    """
    if layer not in conv_layer_names(model):
        raise ValueError(f"{layer!r} is not one of the model's conv stages {conv_layer_names(model)}.")
    module = getattr(model, layer)
    with torch.no_grad():
        if callable(getattr(module, "filter_bank", None)):
            bank = module.filter_bank()
        else:
            bank = module.weight
    bank = bank.detach().cpu().clone()
    if bank.dim() != 4:
        raise ValueError(f"{layer}'s filters have shape {tuple(bank.shape)}; expected (out, in, k, k).")
    return bank


# --- pictures -------------------------------------------------------------------------


def _as_numpy(stack: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(stack, torch.Tensor):
        stack = stack.detach().cpu().numpy()
    return np.asarray(stack, dtype=np.float32)


def normalise_tiles(stack: torch.Tensor | np.ndarray) -> np.ndarray:
    """Stretch every tile of (..., H, W) to [0, 1] on its own (min -> 0, max -> 1).

    A constant tile (a dead ReLU map, an all-zero kernel) becomes 0, black: it shows no
    pattern and is not made to look like one. Non-finite values count as 0.
    """
    array = np.nan_to_num(_as_numpy(stack), nan=0.0, posinf=0.0, neginf=0.0)
    if array.ndim < 2:
        raise ValueError(f"Tiles need at least two dimensions (H, W), got shape {array.shape}.")
    low = array.min(axis=(-2, -1), keepdims=True)
    span = array.max(axis=(-2, -1), keepdims=True) - low
    safe = np.where(span > 0, span, 1.0)
    return np.where(span > 0, (array - low) / safe, 0.0).astype(np.float32)


def suggested_columns(count: int) -> int:
    """A pleasant width for `count` tiles: a divisor a little over the square root, so the
    grid is full and slightly wider than tall (6 -> 3, 16 -> 4, 120 -> 12, 384 -> 24)."""
    if count <= 0:
        raise ValueError("A grid needs at least one tile.")
    root = math.sqrt(count)
    for columns in range(math.ceil(root), math.floor(2 * root) + 1):
        if count % columns == 0:
            return columns
    return math.ceil(root)


def grid_shape(count: int, columns: int | None = None) -> tuple[int, int]:
    """(rows, columns) for `count` tiles: `columns` wide, or suggested_columns when None."""
    if count <= 0:
        raise ValueError("A grid needs at least one tile.")
    if columns is None:
        columns = suggested_columns(count)
    columns = max(1, min(int(columns), count))
    return math.ceil(count / columns), columns


def tile_grid(
    stack: torch.Tensor | np.ndarray,
    columns: int | None = None,
    scale: int = 1,
    pad: int = 1,
    normalise: bool = True,
) -> np.ndarray:
    """A stack of tiles (N, H, W) laid out in a grid, as a uint8 grey image.

    Each tile is normalised on its own (see normalise_tiles; with normalise=False the
    values must already be in [0, 1]), upscaled by `scale` whole pixels, and framed by
    `pad` separator pixels. Tiles fill row by row; a last row's empty cells are
    separator-grey. Shape: rows * (H * scale + pad) + pad by columns * (W * scale + pad) + pad.
    """
    tiles = normalise_tiles(stack) if normalise else np.clip(_as_numpy(stack), 0.0, 1.0)
    if tiles.ndim != 3:
        raise ValueError(f"tile_grid takes a stack (N, H, W), got shape {tiles.shape}.")
    if scale < 1 or pad < 0:
        raise ValueError("scale must be at least 1 and pad at least 0.")
    count, height, width = tiles.shape
    rows, columns = grid_shape(count, columns)
    tile_h, tile_w = height * scale, width * scale
    grid = np.full(
        (rows * (tile_h + pad) + pad, columns * (tile_w + pad) + pad), SEPARATOR, dtype=np.uint8
    )
    pixels = np.rint(tiles * 255.0).astype(np.uint8)
    if scale > 1:
        pixels = pixels.repeat(scale, axis=1).repeat(scale, axis=2)
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = pad + row * (tile_h + pad), pad + column * (tile_w + pad)
        grid[top : top + tile_h, left : left + tile_w] = pixels[index]
    return grid


def kernel_grid(bank: torch.Tensor | np.ndarray, scale: int = 6, pad: int = 2) -> np.ndarray:
    """Kernels (out, in, k, k) as a grid: one row per output channel, one column per input.

    Row o, column i is the filter output channel o applies to input channel i, so a row
    is everything one feature map of the next layer is made from.
    """
    array = _as_numpy(bank)
    if array.ndim != 4:
        raise ValueError(f"kernel_grid takes kernels (out, in, k, k), got shape {array.shape}.")
    out_channels, in_channels = array.shape[:2]
    flat = array.reshape(out_channels * in_channels, *array.shape[2:])
    return tile_grid(flat, columns=in_channels, scale=scale, pad=pad)


def feature_map_grid(
    maps: torch.Tensor | np.ndarray, columns: int | None = None, width: int = 420, pad: int = 2
) -> np.ndarray:
    """Feature maps (C, H, W) as a grid about `width` pixels wide, upscaled in whole pixels."""
    array = _as_numpy(maps)
    if array.ndim != 3:
        raise ValueError(f"feature_map_grid takes maps (C, H, W), got shape {array.shape}.")
    _, columns = grid_shape(array.shape[0], columns)
    scale = max(1, (width - pad) // columns - pad) // max(array.shape[1:])
    return tile_grid(array, columns=columns, scale=max(1, scale), pad=pad)


def turn_back(maps: torch.Tensor, degrees: float) -> torch.Tensor:
    """Maps (C, H, W) of a rotated input, turned back by -degrees to line up with the upright ones.

    Exact for multiples of 90 degrees; interpolated (bilinear) otherwise.
    """
    return rotate_tensor(maps, -float(degrees))


def image_digest(image: torch.Tensor | np.ndarray) -> str:
    """A short content hash of an image, to key caches by what the image is."""
    array = np.ascontiguousarray(_as_numpy(image))
    digest = hashlib.sha256(str(array.shape).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def pick_index(labels: torch.Tensor, label: int | None = None, rng: np.random.Generator | None = None) -> int:
    """A random index into `labels`, among those equal to `label` when given."""
    rng = rng if rng is not None else np.random.default_rng()
    labels = torch.as_tensor(labels)
    candidates = torch.arange(len(labels)) if label is None else torch.nonzero(labels == int(label)).flatten()
    if len(candidates) == 0:
        raise ValueError(f"No example has label {label}.")
    return int(candidates[int(rng.integers(len(candidates)))])


def upscale_image(image: torch.Tensor | np.ndarray, scale: int = 8) -> np.ndarray:
    """One image in [0, 1] (H, W) or (1, H, W) as uint8, upscaled in whole pixels (not normalised)."""
    array = np.clip(np.nan_to_num(_as_numpy(image)), 0.0, 1.0)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"Expected one grey image (H, W), got shape {array.shape}.")
    pixels = np.rint(array * 255.0).astype(np.uint8)
    return pixels.repeat(scale, axis=0).repeat(scale, axis=1)


def to_png(pixels: np.ndarray) -> bytes:
    """A uint8 grey (H, W) or RGB (H, W, 3) array as PNG bytes (lossless, unlike JPEG).

    zlib's fastest level: a third of the default's time for about a fifth more bytes, on
    pictures that a shared server encodes at every turn of a slider.
    """
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def describe_shape(tensor: torch.Tensor | np.ndarray) -> str:
    """A shape for people: (120, 16, 5, 5) -> '120×16×5×5'."""
    return "×".join(str(size) for size in tuple(tensor.shape))


@dataclass(frozen=True)
class ClassifierInput:
    """What a LeNet's last convolution hands its classifier: `channels` maps of side × side."""

    channels: int
    side: int
    inputs: int  # channels * side * side: fc1's in_features
    fc1_parameters: int


def classifier_input(model: nn.Module) -> ClassifierInput | None:
    """conv3's maps as fc1 takes them, for a model built as conv3 -> flatten -> fc1; else None."""
    conv3, fc1 = getattr(model, "conv3", None), getattr(model, "fc1", None)
    if not isinstance(conv3, nn.Conv2d) or not isinstance(fc1, nn.Linear):
        return None
    side = math.isqrt(fc1.in_features // conv3.out_channels)
    if conv3.out_channels * side * side != fc1.in_features:
        return None
    return ClassifierInput(conv3.out_channels, side, fc1.in_features, sum(p.numel() for p in fc1.parameters()))
