"""A drawing from the canvas to an MNIST-like 28 x 28 digit (rotinv.data.preprocess_drawing).

The canvas delivers (280, 280, 4) uint8 RGBA, white ink on a black background that is
painted in (alpha 255 everywhere). MNIST's recipe: crop to the ink, scale the longer
side to 20 px, put the centre of mass at (14, 14).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageDraw

from rotinv.data import (
    DATA_ROOT_ENV,
    EmptyDrawingError,
    centre_of_mass,
    load_mnist,
    mnist_available,
    preprocess_drawing,
)

SHIPPED_LENET = Path(__file__).resolve().parent.parent / "models" / "lenet5.pt"
CANVAS = 280
BRUSH = 20


def canvas(draw_on, size: tuple[int, int] = (CANVAS, CANVAS)) -> np.ndarray:
    """What the canvas returns: RGBA uint8, black painted in, alpha 255 everywhere."""
    image = Image.new("RGBA", size, (0, 0, 0, 255))
    draw_on(ImageDraw.Draw(image))
    return np.asarray(image)


def stroke(points, width: int = BRUSH):
    def draw_on(draw: ImageDraw.ImageDraw) -> None:
        draw.line(points, fill=(255, 255, 255, 255), width=width, joint="curve")
        for x, y in points:  # round caps, like the canvas's brush
            r = width / 2
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255, 255))

    return draw_on


def ring(box, width: int = BRUSH):
    def draw_on(draw: ImageDraw.ImageDraw) -> None:
        draw.ellipse(box, outline=(255, 255, 255, 255), width=width)

    return draw_on


DRAWINGS = {
    "vertical stroke, centred": canvas(stroke([(140, 40), (140, 240)])),
    "vertical stroke, off-centre": canvas(stroke([(40, 20), (45, 120)])),
    "horizontal stroke, bottom right": canvas(stroke([(150, 250), (265, 250)])),
    "a seven, small, top left": canvas(stroke([(20, 20), (80, 20), (40, 100)], width=12)),
    "a zero, large": canvas(ring((20, 10, 260, 270))),
    "an L in a corner": canvas(stroke([(200, 150), (200, 265), (265, 265)])),
    "a heavy blob and a thin tail": canvas(
        lambda d: (d.ellipse((100, 40, 180, 120), fill="white"), d.line([(140, 120), (140, 260)], fill="white", width=4))
    ),
    "a four on a tall RGBA canvas": canvas(stroke([(60, 40), (40, 200), (160, 200)]), size=(200, 400)),
}


def ink_box(digit: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(digit > 0)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


@pytest.mark.parametrize("name", list(DRAWINGS))
def test_mnist_recipe(name):
    digit = preprocess_drawing(DRAWINGS[name])
    assert digit.shape == (1, 28, 28) and digit.dtype == torch.float32
    array = digit[0].numpy()
    assert array.min() >= 0.0 and array.max() <= 1.0 and array.max() > 0.5
    row, col = centre_of_mass(array)
    assert abs(row - 14) <= 1.0 and abs(col - 14) <= 1.0, (name, row, col)
    height, width = ink_box(array)
    assert height <= 20 and width <= 20, (name, height, width)
    assert max(height, width) >= 18, (name, height, width)  # the longer side is scaled to 20


def test_gray_rgb_and_rgba_give_the_same_digit():
    rgba = DRAWINGS["a seven, small, top left"]
    expected = preprocess_drawing(rgba)
    torch.testing.assert_close(preprocess_drawing(rgba[..., :3]), expected)
    torch.testing.assert_close(preprocess_drawing(rgba[..., 0]), expected)
    torch.testing.assert_close(preprocess_drawing(rgba[..., :1]), expected)


def test_the_position_on_the_canvas_does_not_matter():
    left = preprocess_drawing(canvas(stroke([(40, 40), (40, 200)])))
    right = preprocess_drawing(canvas(stroke([(230, 60), (230, 220)])))
    torch.testing.assert_close(left, right)


def test_a_blank_canvas_is_empty():
    with pytest.raises(EmptyDrawingError):
        preprocess_drawing(canvas(lambda draw: None))
    with pytest.raises(EmptyDrawingError):
        preprocess_drawing(np.zeros((280, 280), dtype=np.uint8))


@pytest.mark.parametrize("where", [(140, 140), (15, 15), (265, 30)])
def test_a_single_dot_is_empty(where):
    # One click with the app's brush leaves a disc the brush's width across.
    x, y = where
    with pytest.raises(EmptyDrawingError):
        preprocess_drawing(canvas(lambda d: d.ellipse((x - 10, y - 10, x + 10, y + 10), fill="white")))
    with pytest.raises(EmptyDrawingError):
        preprocess_drawing(canvas(lambda d: d.ellipse((x - 2, y - 2, x + 2, y + 2), fill="white")))


def test_empty_is_a_value_error():
    assert issubclass(EmptyDrawingError, ValueError)


def test_shipped_lenet_reads_mnist_digits_drawn_on_the_canvas():
    """1,000 test digits, delivered as the canvas would deliver them, still read >= 97%."""
    from rotinv.checkpoints import load_checkpoint

    root = os.environ.get(DATA_ROOT_ENV)
    if not root or not mnist_available(root):
        pytest.fail(f"This test needs the real MNIST: set {DATA_ROOT_ENV} to a directory with MNIST/raw "
                    f"(currently {root!r}).")
    if not SHIPPED_LENET.is_file():
        pytest.fail(f"The shipped model {SHIPPED_LENET} is missing: train it with the CLI first.")
    model, _ = load_checkpoint(SHIPPED_LENET)
    test = load_mnist(train=False, root=root, download=False)
    count = 1000
    digits = []
    for image in test.images[:count]:
        pixels = Image.fromarray(np.rint(image[0].numpy() * 255).astype(np.uint8))
        big = pixels.resize((CANVAS, CANVAS), Image.BILINEAR).convert("RGBA")  # white on black, alpha 255
        rgba = np.asarray(big)
        assert rgba.shape == (CANVAS, CANVAS, 4) and rgba.dtype == np.uint8 and (rgba[..., 3] == 255).all()
        digits.append(preprocess_drawing(rgba))
    with torch.no_grad():
        predicted = model(torch.stack(digits)).argmax(dim=1)
    accuracy = (predicted == test.labels[:count]).float().mean().item()
    assert accuracy >= 0.97, f"only {accuracy:.1%} of canvas-rendered MNIST digits read correctly"


# --- fuzz: anything in, a digit or a ValueError out ---------------------------------------------

SHAPES = st.one_of(
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=64),
    st.tuples(st.integers(0, 48), st.integers(0, 48), st.sampled_from([1, 2, 3, 4, 5])),
    hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=8),
)
DTYPES = st.sampled_from([np.uint8, np.uint16, np.int8, np.int32, np.int64, np.float16, np.float32,
                          np.float64, np.bool_])


@st.composite
def drawings(draw) -> np.ndarray:
    dtype = np.dtype(draw(DTYPES))
    shape = draw(SHAPES)
    if draw(st.booleans()):  # sparse ink on black, the interesting case
        array = np.zeros(shape, dtype=dtype)
        if array.size:
            flat = array.reshape(-1)
            picks = draw(st.lists(st.integers(0, array.size - 1), max_size=200))
            value = draw(hnp.from_dtype(dtype))
            flat[picks] = value
        return array
    return draw(hnp.arrays(dtype, shape, elements=hnp.from_dtype(dtype)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawings())
def test_fuzz_a_digit_or_a_value_error(array):
    try:
        digit = preprocess_drawing(array)
    except ValueError:
        return  # EmptyDrawingError included: it is a ValueError
    assert isinstance(digit, torch.Tensor)
    assert digit.shape == (1, 28, 28) and digit.dtype == torch.float32
    assert torch.isfinite(digit).all()
    assert digit.min() >= 0.0 and digit.max() <= 1.0
