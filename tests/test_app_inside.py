"""The "Inside the network" page, run headless with Streamlit's AppTest (real MNIST, shipped LeNet-5)."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from rotinv.data import DATA_ROOT_ENV, mnist_available

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "streamlit_app.py"
PAGE = "pages/3_inside.py"
SHIPPED_LENET = ROOT / "models" / "lenet5.pt"
TIMEOUT = 180  # seconds per run: the first one loads MNIST and the models on a busy machine

# What the page must say for LeNet-5: the report's layer table.
KERNEL_CAPTIONS = ("6 kernels (6×1×5×5)", "96 kernels (16×6×5×5)", "1,920 kernels (120×16×5×5)")
MAP_CAPTIONS = ("6 feature maps (6×28×28)", "16 feature maps (16×14×14)", "120 feature maps (120×7×7)")


def png_data_url(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def vertical_stroke() -> np.ndarray:
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    ImageDraw.Draw(image).line([(140, 40), (140, 240)], fill=(255, 255, 255, 255), width=20)
    return np.asarray(image)


def canvas_state(pixels: np.ndarray) -> dict:
    """What streamlit-drawable-canvas keeps under its key after a stroke."""
    return {"drawing": {"raw": {"objects": []}, "data": png_data_url(pixels)}, "backgroundFit": None}


@pytest.fixture
def app() -> AppTest:
    root = os.environ.get(DATA_ROOT_ENV)
    if not root or not mnist_available(root):
        pytest.fail(f"These tests need the real MNIST: set {DATA_ROOT_ENV} (currently {root!r}).")
    if not SHIPPED_LENET.is_file():
        pytest.fail(f"The shipped model {SHIPPED_LENET} is missing: train it with the CLI first.")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.session_state["active_model_key"] = "shipped:lenet5"
    at.run()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, at.exception
    return at


def captions(at: AppTest) -> list[str]:
    return [caption.value for caption in at.caption]


def metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def assert_caption(at: AppTest, text: str) -> None:
    assert any(text in caption for caption in captions(at)), f"no caption contains {text!r}: {captions(at)}"


def test_test_image_at_an_angle_shows_every_kernel_and_map(app):
    from rotinv.checkpoints import load_checkpoint
    from rotinv.data import load_mnist
    from rotinv.rotation import rotate_tensor

    assert app.radio(key="inside_source").value == "Test image"
    app.number_input(key="inside_index").set_value(3)
    app.slider(key="inside_angle").set_value(135)
    app.run()
    assert not app.exception, app.exception
    for text in KERNEL_CAPTIONS + MAP_CAPTIONS:
        assert_caption(app, text)
    assert [tab.label for tab in app.tabs] == ["conv1", "conv2", "conv3"]

    # The page's predictions are the shipped model's, upright and turned 135 degrees.
    model, _ = load_checkpoint(SHIPPED_LENET)
    image = load_mnist(train=False, download=False).images[3]
    with torch.no_grad():
        upright = int(model(image.unsqueeze(0)).argmax())
        rotated = int(model(rotate_tensor(image, 135).unsqueeze(0)).argmax())
    assert metrics(app) == {"Prediction (upright)": str(upright), "Prediction (rotated 135°)": str(rotated)}
    assert_caption(app, "Rotated input: the same 28×28 turned 135° counter-clockwise.")


def test_quick_buttons_set_the_angle(app):
    for quick in (90, 180, 270, 0):
        app.button(key=f"inside_quick_{quick}").click()
        app.run()
        assert not app.exception, app.exception
        assert app.slider(key="inside_angle").value == quick
        assert f"Prediction (rotated {quick}°)" in metrics(app)


def test_random_four_picks_a_four(app):
    for _ in range(3):
        app.button[[button.label for button in app.button].index("Random 4")].click()
        app.run()
        assert not app.exception, app.exception
        assert any("labelled **4**" in markdown.value for markdown in app.markdown)


def test_turning_the_maps_back_keeps_the_page_whole(app):
    app.button(key="inside_quick_90").click().run()
    app.checkbox(key="inside_turn_back").check().run()
    assert not app.exception, app.exception
    for text in MAP_CAPTIONS:
        assert_caption(app, text)


def test_a_drawn_vertical_stroke_is_a_one(app):
    app.radio(key="inside_source").set_value("Draw a digit").run()
    assert not app.exception, app.exception
    assert any("Draw a digit" in info.value for info in app.info)  # nothing drawn yet
    assert metrics(app) == {}

    app.session_state["canvas"] = canvas_state(vertical_stroke())
    app.run()
    assert not app.exception, app.exception
    assert metrics(app)["Prediction (upright)"] == "1"
    for text in KERNEL_CAPTIONS + MAP_CAPTIONS:
        assert_caption(app, text)

    # Turning the input recomputes the rotated prediction; the upright one stays.
    app.button(key="inside_quick_180").click().run()
    assert not app.exception, app.exception
    shown = metrics(app)
    assert shown["Prediction (upright)"] == "1" and "Prediction (rotated 180°)" in shown


@pytest.mark.parametrize("what", ["blank", "dot"])
def test_an_empty_drawing_asks_for_a_digit(app, what):
    pixels = np.zeros((280, 280, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    if what == "dot":
        yy, xx = np.mgrid[:280, :280]
        pixels[(yy - 100) ** 2 + (xx - 120) ** 2 <= 100, :3] = 255
    app.radio(key="inside_source").set_value("Draw a digit").run()
    app.session_state["canvas"] = canvas_state(pixels)
    app.run()
    assert not app.exception, app.exception
    assert metrics(app) == {}  # no prediction
    assert any("Draw a digit on the black canvas" in info.value for info in app.info)
    assert not app.error
    for text in KERNEL_CAPTIONS:  # the kernels do not need a digit
        assert_caption(app, text)


def test_without_mnist_the_canvas_and_kernels_still_work(app, tmp_path, monkeypatch):
    # A data root that is a file: MNIST is unavailable at once, nothing is downloaded.
    not_a_directory = tmp_path / "not-a-directory"
    not_a_directory.write_text("")
    monkeypatch.setenv(DATA_ROOT_ENV, str(not_a_directory))
    app.run()
    assert not app.exception, app.exception
    assert any("No test images to show" in warning.value for warning in app.warning)
    assert any("is a file, not a directory" in warning.value for warning in app.warning)
    assert metrics(app) == {}
    for text in KERNEL_CAPTIONS:
        assert_caption(app, text)

    app.radio(key="inside_source").set_value("Draw a digit").run()
    app.session_state["canvas"] = canvas_state(vertical_stroke())
    app.run()
    assert not app.exception, app.exception
    assert metrics(app)["Prediction (upright)"] == "1"
