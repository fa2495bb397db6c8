"""MNIST as in-memory tensors, where it is looked for, and turning a drawing into MNIST.

The data root is, in order: an explicit argument (the CLI's --data-root), the
environment variable ROTINV_DATA_ROOT, or a per-user cache directory. MNIST lives under
ROOT/MNIST/raw/ as torchvision's download leaves it; the files are read here directly
(torchvision is imported only to download them). A root that already holds the files is
only read, so a read-only root works.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from PIL import Image

DATA_ROOT_ENV = "ROTINV_DATA_ROOT"
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class DataUnavailableError(RuntimeError):
    """MNIST is not where we looked and could not be downloaded. The message says how to fix it."""


@dataclass(frozen=True)
class Split:
    """One MNIST split held in memory: images (N, 1, 28, 28) float in [0, 1], labels (N,).

    Loaded with as_bytes=True the images are the files' uint8 pixels (0-255) instead: a
    quarter of the memory (47 MB for the training set, not 188 MB), for a server that
    keeps the split for every training; unit_range() turns a batch of them into floats.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    @cached_property
    def sha256(self) -> str:
        """A content hash of the images and labels, for results that are only valid for this data."""
        digest = hashlib.sha256()
        for tensor in (self.images, self.labels):
            digest.update(str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def subset(self, size: int | None) -> "Split":
        """The first `size` examples (all of them for None)."""
        if size is None or size >= len(self):
            return self
        if size <= 0:
            raise ValueError(f"Subset size must be positive, got {size}.")
        return Split(f"{self.name}[:{size}]", self.images[:size], self.labels[:size])


def default_data_root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "rotinv" / "data"


def resolve_data_root(root: str | os.PathLike | None = None) -> Path:
    """Where MNIST is looked for: `root`, else $ROTINV_DATA_ROOT, else the user cache."""
    if root is None or str(root) == "":
        root = os.environ.get(DATA_ROOT_ENV) or default_data_root()
    path = Path(root).expanduser()
    if path.exists() and not path.is_dir():
        raise DataUnavailableError(
            f"The data root {path} is a file, not a directory. Point --data-root or "
            f"{DATA_ROOT_ENV} at the directory that contains MNIST/raw/."
        )
    return path


def mnist_available(root: str | os.PathLike | None = None) -> bool:
    """True when all four MNIST files are present under the data root (nothing is downloaded)."""
    try:
        raw = resolve_data_root(root) / "MNIST" / "raw"
    except DataUnavailableError:
        return False
    return all((raw / name).is_file() for name in MNIST_FILES)


def _how_to_fix(root: Path) -> str:
    return (
        f"MNIST was not found in {root / 'MNIST' / 'raw'} and could not be downloaded. "
        f"Either connect to the internet once (it is downloaded there automatically), or "
        f"point {DATA_ROOT_ENV} (or --data-root) at a directory that holds "
        f"MNIST/raw/{{{','.join(MNIST_FILES)}}}."
    )


def _reason(error: Exception) -> str:
    """The useful part of a download error: 'Name or service not known', not a URL list."""
    text = str(error)
    found = re.search(r"urlopen error (?:\[[^\]]*\] )?([^>]*)>", text)
    if found:
        return found.group(1).strip()
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return first[:200]


def load_mnist(
    train: bool, root: str | os.PathLike | None = None, download: bool = True, as_bytes: bool = False
) -> Split:
    """Load one MNIST split as tensors, downloading it into the root when missing and allowed.

    The images are floats in [0, 1], or with `as_bytes` the files' uint8 pixels (see Split).
    """
    path = resolve_data_root(root)
    name = "train" if train else "test"
    if not mnist_available(path):
        if not download:
            raise DataUnavailableError(_how_to_fix(path))
        try:
            from torchvision.datasets import MNIST  # only to download; slow to import

            path.mkdir(parents=True, exist_ok=True)
            MNIST(str(path), train=train, download=True)
        except Exception as error:  # offline, read-only, proxy...: all mean the same to the user
            raise DataUnavailableError(f"{_how_to_fix(path)} (download failed: {_reason(error)})") from None
    raw = path / "MNIST" / "raw"
    prefix = "train" if train else "t10k"
    try:
        pixels = read_idx(raw / f"{prefix}-images-idx3-ubyte", dimensions=3)
        labels = read_idx(raw / f"{prefix}-labels-idx1-ubyte", dimensions=1)
        if pixels.shape[1:] != (MNIST_SIZE, MNIST_SIZE) or len(pixels) != len(labels):
            raise ValueError(f"{len(pixels)} images of {pixels.shape[1:]} pixels but {len(labels)} labels; "
                             f"MNIST has one label per {MNIST_SIZE} x {MNIST_SIZE} image")
        if labels.size and labels.max() > 9:
            raise ValueError(f"a label is {int(labels.max())}; MNIST's are the digits 0-9")
    except (OSError, ValueError) as error:
        raise DataUnavailableError(
            f"The MNIST files in {raw} could not be read ({error}). Delete them to download again, "
            f"or point {DATA_ROOT_ENV} at a good copy."
        ) from None
    images = torch.from_numpy(pixels).unsqueeze(1)
    return Split(name, images if as_bytes else unit_range(images), torch.from_numpy(labels.astype(np.int64)))


def unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (0-255) as floats in [0, 1], exactly as load_mnist makes them; float images as they are."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images


IDX_UNSIGNED_BYTE = 0x08


def read_idx(path: Path, dimensions: int) -> np.ndarray:
    """An IDX file of unsigned bytes (MNIST's format) as a uint8 array, its header checked.

    The header is two zero bytes, the element type (0x08 for unsigned bytes), the number
    of dimensions, then each size as a big-endian 32-bit integer; the bytes follow.
    """
    data = np.fromfile(path, dtype=np.uint8)  # writable, so torch can share it without a copy
    header = 4 + 4 * dimensions
    head = data[:header].tobytes()
    if len(data) < header or head[:4] != bytes([0, 0, IDX_UNSIGNED_BYTE, dimensions]):
        raise ValueError(f"{path.name} is not an IDX file of {dimensions}-dimensional unsigned bytes")
    shape = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(dimensions))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        raise ValueError(f"{path.name} has {len(data):,} bytes, but its header promises {expected:,}")
    return data[header:].reshape(shape)


# --- a drawing to an MNIST-like digit ------------------------------------------------

# MNIST's own recipe: the digit's bounding box scaled so its longer side is 20 pixels,
# then placed in a 28 x 28 field so that its centre of mass is at the centre.
MNIST_BOX = 20
MNIST_SIZE = 28
# Ink lighter than this (out of 255) is treated as background when finding the digit.
INK_THRESHOLD = 32
# A drawing with fewer ink pixels than this (on the canvas, before scaling) is a dot or
# a stray click, not a digit.
MIN_INK_PIXELS = 30
# Ink whose bounding box is shorter than this fraction of the canvas's longer side is a
# dot too: one click with the app's 20-px brush leaves a 20-px disc (over 300 pixels,
# so the pixel count alone lets it through) on a 280-px canvas. No hand-drawn digit is
# that small, and an MNIST digit spans 20 of 28 pixels.
MIN_EXTENT_FRACTION = 0.1


class EmptyDrawingError(ValueError):
    """The drawing has no digit in it (blank, or only a dot)."""


def drawing_to_grayscale(drawing: np.ndarray) -> np.ndarray:
    """An RGBA/RGB/gray uint8 canvas image to a float gray image (0 = black, 255 = white).

    The canvas paints its black background into the pixels (alpha is 255 everywhere), so
    the colour channels carry the drawing and alpha is ignored. Computed in float64, so
    no input value overflows on the way (values are not clipped here).
    """
    array = np.asarray(drawing)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return array[..., :3].astype(np.float64).mean(axis=2)
    if array.ndim == 3 and array.shape[2] == 1:
        return array[..., 0].astype(np.float64)
    if array.ndim == 2:
        return array.astype(np.float64)
    raise ValueError(
        f"A drawing must be a gray (H, W) or (H, W, 1), or RGB/RGBA (H, W, 3|4) image, got shape {array.shape}."
    )


def preprocess_drawing(drawing: np.ndarray) -> torch.Tensor:
    """Turn a white-on-black drawing into a (1, 28, 28) MNIST-like digit in [0, 1].

    Crops to the ink, scales the longer side to 20 px keeping the aspect ratio, and
    centres the result by its centre of mass in 28 x 28. The training normalisation is
    the model's own first step (rotinv.models.normalize), exactly as during training.
    Raises EmptyDrawingError when there is nothing that looks like a digit.
    """
    gray = drawing_to_grayscale(drawing)
    if gray.size == 0:
        raise EmptyDrawingError("The drawing is empty.")
    if not np.isfinite(gray).all():
        raise ValueError("The drawing holds values that are not finite numbers (NaN or infinity).")
    gray = np.clip(gray, 0, 255)
    ink = gray > INK_THRESHOLD
    if ink.sum() < MIN_INK_PIXELS * (gray.size / (280 * 280)) or ink.sum() < 2:
        raise EmptyDrawingError("Nothing is drawn yet (or only a dot): draw a digit.")
    rows, cols = np.nonzero(ink)
    crop = gray[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = crop.shape
    if max(height, width) < MIN_EXTENT_FRACTION * max(gray.shape):
        raise EmptyDrawingError("That is only a dot: draw a whole digit.")
    scale = MNIST_BOX / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    # Antialiased downscaling gives the grey edges MNIST digits have.
    small = Image.fromarray(crop.astype(np.uint8)).resize((new_w, new_h), Image.LANCZOS)
    digit = np.clip(np.asarray(small, dtype=np.float32), 0, 255) / 255.0
    if digit.sum() <= 0:
        raise EmptyDrawingError("The drawing is too faint to read: draw with a thicker stroke.")

    field = np.zeros((MNIST_SIZE, MNIST_SIZE), dtype=np.float32)
    top, left = (MNIST_SIZE - new_h) // 2, (MNIST_SIZE - new_w) // 2
    field[top : top + new_h, left : left + new_w] = digit
    field = _shift_centre_of_mass(field)
    return torch.from_numpy(field).unsqueeze(0)


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(row, column) of the intensity-weighted centre, in pixel-centre coordinates."""
    total = image.sum()
    rows, cols = np.indices(image.shape)
    return float((rows * image).sum() / total), float((cols * image).sum() / total)


def _shift_centre_of_mass(field: np.ndarray) -> np.ndarray:
    # MNIST's digits have their centre of mass at pixel (14, 14) (measured on the test
    # set: 13.99, 14.00); shifts are whole pixels, which keeps the strokes sharp.
    row, col = centre_of_mass(field)
    centre = MNIST_SIZE / 2
    shift_r, shift_c = int(round(centre - row)), int(round(centre - col))
    shifted = np.zeros_like(field)
    size = MNIST_SIZE
    src_r = slice(max(0, -shift_r), min(size, size - shift_r))
    dst_r = slice(max(0, shift_r), min(size, size + shift_r))
    src_c = slice(max(0, -shift_c), min(size, size - shift_c))
    dst_c = slice(max(0, shift_c), min(size, size + shift_c))
    shifted[dst_r, dst_c] = field[src_r, src_c]
    return shifted
