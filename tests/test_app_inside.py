"""The "Inside the network" page, run headless with Streamlit's AppTest (real MNIST, shipped LeNet-5)."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

import pytest
import torch
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from rotinv.data import DATA_ROOT_ENV, mnist_available

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "streamlit_app.py"
PAGE = "app_pages/3_inside.py"
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


def markdowns(at: AppTest) -> list[str]:
    return [markdown.value for markdown in at.markdown]


def metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def assert_caption(at: AppTest, text: str) -> None:
    assert any(text in caption for caption in captions(at)), f"no caption contains {text!r}: {captions(at)}"


def whole_page(at: AppTest) -> AppTest:
    """Run the whole page again, changing nothing.

    The slider, the quick angles and the digit picker rerun only the parts of the page that
    show the digit (named fragments); a browser keeps the rest on screen, but AppTest keeps
    only what the last run drew. A plain rerun draws it all, as a reload would.
    """
    at.run()
    assert not at.exception, at.exception
    return at


def assert_every_tab_shows(at: AppTest, *per_layer: tuple[str, ...]) -> None:
    """Open each conv stage's tab in turn (only the open one is drawn) and find its captions; then conv1 again."""
    for position, layer in enumerate(("conv1", "conv2", "conv3")):
        at.session_state["inside_layer_tab"] = layer
        whole_page(at)
        for texts in per_layer:
            assert_caption(at, texts[position])
    at.session_state["inside_layer_tab"] = "conv1"
    whole_page(at)


def test_test_image_at_an_angle_shows_every_kernel_and_map(app):
    from rotinv.checkpoints import load_checkpoint
    from rotinv.data import load_mnist
    from rotinv.rotation import rotate_tensor

    assert app.radio(key="inside_source").value == "Test image"
    app.number_input(key="inside_index").set_value(3)
    app.slider(key="inside_angle").set_value(135)
    app.run()
    assert not app.exception, app.exception
    # Only the parts that show the digit reran: the open tab's feature maps, not the kernels, nor the page's title.
    assert "**conv1 feature maps, upright**" in markdowns(app)
    assert "**conv1 feature maps, rotated 135°**" in markdowns(app)
    assert not any(text in caption for caption in captions(app) for text in KERNEL_CAPTIONS)
    assert not app.title
    whole_page(app)
    assert [title.value for title in app.title] == ["Inside the network"]
    assert [tab.label for tab in app.tabs] == ["conv1", "conv2", "conv3"]
    # One tab is drawn, the open one; opening another draws its kernels and maps, and a turn then reruns those.
    for layer, kernels, maps in zip(("conv1", "conv2", "conv3"), KERNEL_CAPTIONS, MAP_CAPTIONS):
        app.session_state["inside_layer_tab"] = layer
        whole_page(app)
        assert_caption(app, kernels)
        assert_caption(app, maps)
        shown = [text for text in markdowns(app) if "feature maps, " in text]
        assert shown == [f"**{layer} feature maps, upright**", f"**{layer} feature maps, rotated 135°**"], shown
    app.slider(key="inside_angle").set_value(150).run()
    assert [text for text in markdowns(app) if "feature maps, " in text] == ["**conv3 feature maps, rotated 150°**"]
    assert "**Up close: one output channel of conv3**" in markdowns(app)
    app.slider(key="inside_angle").set_value(135).run()
    whole_page(app)

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
    whole_page(app.button(key="inside_quick_90").click().run())
    app.checkbox(key="inside_turn_back").check().run()
    assert not app.exception, app.exception
    assert_every_tab_shows(app, MAP_CAPTIONS)


def test_a_drawn_vertical_stroke_is_a_one(app):
    app.radio(key="inside_source").set_value("Draw a digit").run()
    assert not app.exception, app.exception
    assert any("Draw a digit" in info.value for info in app.info)  # nothing drawn yet
    assert metrics(app) == {}

    app.session_state["canvas"] = canvas_state(vertical_stroke())
    app.run()
    assert not app.exception, app.exception
    assert metrics(app)["Prediction (upright)"] == "1"
    assert_every_tab_shows(app, KERNEL_CAPTIONS, MAP_CAPTIONS)

    # Turning the input recomputes the rotated prediction; the upright one stays on screen as it
    # was, not even redrawn (AppTest keeps only what the last run drew), and a whole run shows it.
    app.button(key="inside_quick_180").click().run()
    assert not app.exception, app.exception
    assert list(metrics(app)) == ["Prediction (rotated 180°)"]
    assert "**conv1 feature maps, rotated 180°**" in markdowns(app)
    assert "**conv1 feature maps, upright**" not in markdowns(app)
    assert not [table for table in app.dataframe if "output at 45°" in table.value.columns]  # nor the 45°/90° table
    shown = metrics(whole_page(app))
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
    assert_every_tab_shows(app, KERNEL_CAPTIONS)  # the kernels do not need a digit


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
    assert_every_tab_shows(app, KERNEL_CAPTIONS)

    app.radio(key="inside_source").set_value("Draw a digit").run()
    app.session_state["canvas"] = canvas_state(vertical_stroke())
    app.run()
    assert not app.exception, app.exception
    assert metrics(app)["Prediction (upright)"] == "1"


# --- 6 · Why: equivariance, layer by layer (the lens) ----------------------------------------------------

LENS_HEADER = "6 · Why: equivariance, layer by layer"
SHIPPED_LABELS = {"shipped:lenet5": "LeNet-5 (upright training)",
                  "shipped:lenet5_rotaug": "LeNet-5 + rotation augmentation",
                  "shipped:lenet5_c4": "C4-equivariant LeNet",
                  "shipped:c4cnn": "C4 CNN + rotation augmentation",
                  "shipped:c8cnn": "C8 CNN + rotation augmentation"}


def lens_numbers(at: AppTest) -> dict[str, dict[str, float]]:
    """The lens's table of errors as shown: {model: {stage: error}}."""
    [frame] = [table.value for table in at.dataframe if "conv1" in table.value.columns]
    # a stage a model does not have (LeNet-5's conv4) is an empty cell, left out here
    return {row["model"]: {stage: float(row[stage]) for stage in frame.columns
                           if stage != "model" and not pd.isna(row[stage])}
            for _, row in frame.iterrows()}


def lens_chart_specs(at: AppTest) -> list[dict]:
    import json

    specs = [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]
    return [spec for spec in specs if "xOffset" in json.dumps(spec) and "stage" in json.dumps(spec)]


def image_captions(at: AppTest) -> list[str]:
    return [picture.caption for image in at.get("image") for picture in image.proto.imgs]


def channel_error(at: AppTest) -> float:
    """The relative error of the one channel shown side by side, as the caption gives it."""
    import re

    [text] = [text for text in captions(at) if "This channel's relative error" in text]
    return float(re.search(r"relative error at \d+°: ([0-9]+\.[0-9]+)", text).group(1))


def test_the_lens_compares_every_shipped_model_at_a_quarter_turn(app):
    from rotinv import lens
    from rotinv.checkpoints import load_checkpoint
    from rotinv.data import load_mnist

    app.button(key="inside_quick_90").click().run()
    assert not app.exception, app.exception
    lens_after_the_turn = lens_numbers(app)  # the lens is one of the parts the quick angle reran
    whole_page(app)
    assert lens_numbers(app) == lens_after_the_turn
    assert LENS_HEADER in [header.value for header in app.header]
    assert sorted(app.multiselect(key="lens_models").value) == sorted(SHIPPED_LABELS)

    # One grouped bar chart, coloured by model with the plain names.
    [spec] = lens_chart_specs(app)
    bars = spec["layer"][0]
    assert bars["mark"]["type"] == "bar"
    assert sorted(bars["encoding"]["color"]["scale"]["domain"]) == sorted(SHIPPED_LABELS.values())

    # The numbers shown are the ones rotinv.lens computes for test image 0 at 90 degrees.
    shown = lens_numbers(app)
    assert sorted(shown) == sorted(SHIPPED_LABELS.values())
    image = load_mnist(train=False, download=False).images[0]
    for key, label in SHIPPED_LABELS.items():
        model, _ = load_checkpoint(ROOT / "models" / f"{key.split(':')[1]}.pt")
        expected = lens.error_table([(label, model)], image, 90)
        # Up to rounding: the page reads a new digit at its angles in one batched pass per model
        # (rotinv.equivariance.read_turned_each), the library's table in single passes.
        for stage, error in zip(expected["stage"], expected["error"]):
            assert shown[label][stage] == pytest.approx(error, rel=1e-5, abs=1e-5)
    assert shown["LeNet-5 (upright training)"]["conv1"] > 0.5
    assert all(shown["LeNet-5 + rotation augmentation"][stage] > 0.5 for stage in ("conv1", "conv2", "conv3"))
    for built_for_it in ("C4-equivariant LeNet", "C4 CNN + rotation augmentation", "C8 CNN + rotation augmentation"):
        errors = list(shown[built_for_it].values())
        assert len(errors) >= 4 and all(error < 1e-5 for error in errors), (built_for_it, errors)
    # 45° beside 90°, whatever the chosen angle: C8's stages follow an eighth turn closer than C4's
    [both] = [table.value for table in app.dataframe if "output at 45°" in table.value.columns]
    by_model = both.set_index("model")
    assert (by_model["conv stages, largest at 90°"]["C4 CNN + rotation augmentation"] < 1e-5)
    assert by_model["output at 45°"]["C8 CNN + rotation augmentation"] < 0.01
    assert by_model["output at 45°"]["C4-equivariant LeNet"] > 0.1
    assert_caption(app, "**LeNet-5 (upright training)**: conv1")
    assert_caption(app, "exact permutation of the pixels")

    # The side-by-side maps of the active model (LeNet-5), one channel of conv1: not the same picture.
    assert {"Rotate then convolve: f(rot 90° x)", "Convolve then rotate: rot 90° f(x)",
            "Difference |first − second|"} <= set(image_captions(app))
    assert_caption(app, "conv1, channel 0 (28×28)")
    assert channel_error(app) > 0.3


def test_with_the_c4_model_active_its_errors_are_zero_at_quarter_turns_only(app):
    app.session_state["active_model_key"] = "shipped:lenet5_c4"
    for quick in (90, 180, 270):
        app.button(key=f"inside_quick_{quick}").click().run()
        assert not app.exception, app.exception
        c4 = lens_numbers(app)["C4-equivariant LeNet"]
        assert all(error < 1e-5 for error in c4.values()), (quick, c4)
        assert_caption(app, "**C4-equivariant LeNet**: ≈ 0 at every conv stage")

    # The maps of channel 1 of conv3 at orientation 270°: the same picture both ways.
    app.button(key="inside_quick_90").click().run()
    app.selectbox(key="lens_layer").set_value("conv3").run()
    [channel] = [box for box in app.selectbox if box.key.startswith("lens_channel_conv3")]
    channel.set_value(7).run()
    assert not app.exception, app.exception
    assert_caption(app, "conv3, channel 1 at 270° (7×7)")
    assert channel_error(app) < 1e-4
    assert "Convolve then rotate: rot 90° f(x), orientations cycled" in image_captions(app)

    # At 45 degrees interpolation and the coarse orientation grid make every error non-zero, and the page says so.
    app.slider(key="inside_angle").set_value(45).run()
    assert not app.exception, app.exception
    shown = lens_numbers(app)
    assert all(error > 0.05 for model in shown.values() for stage, error in model.items() if stage != "output")
    assert_caption(app, "not a multiple of 90°")


def test_the_lens_with_only_the_active_model_and_with_a_drawing(app):
    app.multiselect(key="lens_models").set_value([]).run()
    assert not app.exception, app.exception
    assert list(lens_numbers(app)) == ["LeNet-5 (upright training)"]  # the active model is always measured
    assert len(lens_chart_specs(app)) == 1
    # The choice reran the 45°/90° table too (its own part, which a turn of the slider leaves alone).
    [both] = [table.value for table in app.dataframe if "output at 45°" in table.value.columns]
    assert list(both["model"]) == ["LeNet-5 (upright training)"]
    whole_page(app)

    app.radio(key="inside_source").set_value("Draw a digit").run()
    assert not app.exception, app.exception
    assert any("measure the layers" in info.value for info in app.info)  # nothing drawn yet
    app.session_state["canvas"] = canvas_state(vertical_stroke())
    app.run()  # a stroke on the canvas is its own change in a browser: the whole page reruns
    assert "LeNet-5 (upright training)" in lens_numbers(app)
    app.button(key="inside_quick_180").click().run()  # then the quick angle reruns the parts, lens included
    assert not app.exception, app.exception
    assert lens_numbers(app)["LeNet-5 (upright training)"]["conv1"] > 0.1
