"""Inside the network: kernels and feature maps of one digit, upright and rotated, and layer by layer
how far each model is from rotation equivariant (section 6, the lens)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st
import torch

import app_layout
import app_shared
from rotinv import introspection as insp
from rotinv import charts, equivariance, lens
from rotinv.data import EmptyDrawingError, preprocess_drawing
from rotinv.equivariance import feature_orientations
from rotinv.rotation import rotate_tensor

SOURCE, ANGLE, INDEX, TURN_BACK = "inside_source", "inside_angle", "inside_index", "inside_turn_back"
TEST_IMAGE, DRAWING = "Test image", "Draw a digit"
QUICK_ANGLES = (0, 90, 180, 270)
CANVAS_SIZE = 280  # pixels, square
INPUT_SCALE = 6  # the 28×28 input shown 168 px wide, whole pixels
SCROLL_HEIGHT = 560  # pixels; taller pictures scroll inside a box of this height

LENS_MODELS, LENS_LAYER = "lens_models", "lens_layer"
LENS_ANGLES = (45, 90)  # the lens's table at two angles, whatever the slider says
LAYER_TAB = "inside_layer_tab"  # which conv stage's tab is open (section 5)

st.session_state.setdefault(ANGLE, 0)
st.session_state.setdefault(INDEX, 0)


# --- cached work (everything it computes comes from rotinv) ---------------------------------------


@st.cache_data(show_spinner=False, max_entries=32)
def kernel_pictures(fingerprint: str, _model: torch.nn.Module) -> dict[str, dict]:
    """Per conv stage: the kernels' shape and their grid as PNG (one row per output channel)."""
    pictures = {}
    for layer in insp.conv_layer_names(_model):
        bank = insp.kernels(_model, layer)
        out_channels, in_channels = bank.shape[:2]
        if in_channels == 1:  # first layer: one small picture per filter, side by side
            columns = insp.suggested_columns(out_channels)
            scale = max(4, min(16, 300 // (columns * (bank.shape[-1] + 1))))
            grid = insp.tile_grid(bank[:, 0], columns=columns, scale=scale, pad=2)
        else:
            scale = max(3, min(8, 430 // (in_channels * (bank.shape[-1] + 1))))
            grid = insp.kernel_grid(bank, scale=scale, pad=2)
        pictures[layer] = {"shape": tuple(bank.shape), "png": insp.to_png(grid), "height": grid.shape[0],
                           "width": grid.shape[1]}
    return pictures


# One forward pass per (model, digit, angle), kept for every part and every session: the
# digit's pictures, the lens and the rotate-then-convolve maps all read it, and the
# upright reading serves every angle. Shared objects: read, never changed.
@app_shared.kept(max_entries=256)
def reading(fingerprint: str, digest: str, degrees: int, _model: torch.nn.Module,
            _image: torch.Tensor) -> equivariance.Reading:
    """The model's reading of the digit turned `degrees` counter-clockwise (0: upright)."""
    return equivariance.read_turned(_model, _image, degrees)


@app_shared.kept(max_entries=256)
def view(fingerprint: str, digest: str, degrees: int, turned_back: bool,
         _model: torch.nn.Module, _image: torch.Tensor) -> dict:
    """The digit turned `degrees` through the model, as the page shows it: pictures and probabilities."""
    seen = reading(fingerprint, digest, degrees, _model, _image)
    maps = {layer: tensor[0] for layer, tensor in seen.maps.items()}
    if turned_back:
        maps = {layer: insp.turn_back(tensor, degrees) for layer, tensor in maps.items()}
    probabilities = seen.probabilities[0].cpu().numpy()
    return {
        "input_png": insp.to_png(insp.upscale_image(rotate_tensor(_image, degrees), scale=INPUT_SCALE)),
        "predicted": int(probabilities.argmax()),
        "probabilities": probabilities,
        "maps": {layer: {"shape": tuple(tensor.shape), "tensor": tensor, "raw": tensor.cpu().numpy()}
                 for layer, tensor in maps.items()},
    }


@app_shared.kept(max_entries=256)
def maps_png(fingerprint: str, digest: str, degrees: int, turned_back: bool, layer: str,
             _maps: torch.Tensor) -> bytes:
    """One stage's feature maps of view(...) as a grid, in PNG: made for the open tab only."""
    return insp.to_png(insp.feature_map_grid(_maps, width=460))


@app_shared.kept(max_entries=256)
def channel_kernels_png(fingerprint: str, layer: str, channel: int, _model: torch.nn.Module) -> bytes:
    """The kernels that make one output channel of a stage, side by side (one per input map)."""
    bank = insp.kernels(_model, layer)[channel]
    columns = min(bank.shape[0], 8)
    scale = max(3, min(12, 400 // (columns * (bank.shape[-1] + 1))))
    return insp.to_png(insp.tile_grid(bank, columns=columns, scale=scale, pad=2))


@app_shared.kept(max_entries=1024)
def lens_errors(fingerprint: str, digest: str, degrees: int, name: str,
                _model: torch.nn.Module, _image: torch.Tensor) -> list[tuple]:
    """One model's equivariance error per conv stage, and its output's invariance error (lens.error_rows)."""
    return lens.error_rows(name, reading(fingerprint, digest, 0, _model, _image),
                           reading(fingerprint, digest, degrees, _model, _image), degrees)


@app_shared.kept(max_entries=256)
def lens_maps(fingerprint: str, digest: str, degrees: int, layer: str, channel: int,
              _model: torch.nn.Module, _image: torch.Tensor) -> dict:
    """One channel, rotate-then-convolve beside convolve-then-rotate, as PNGs on one grey scale."""
    readings = (reading(fingerprint, digest, 0, _model, _image), reading(fingerprint, digest, degrees, _model, _image))
    shown = lens.side_by_side(_model, _image, degrees, layer, channel, readings=readings)
    for picture in ("rotate_then_convolve", "convolve_then_rotate", "difference"):
        shown[picture] = insp.to_png(shown[picture])
    return shown


# --- the lecture ----------------------------------------------------------------------------------------

st.title("Inside the network")
st.markdown(
    "A convolutional network reads a digit through **kernels**, small 5×5 patterns slid over the image; "
    "where the image looks like a kernel, that kernel's **feature map** lights up. Here are all of them, "
    "for one digit **upright and rotated, side by side**. A rotation-invariant network would light up "
    "the same features, only turned, and keep its prediction."
)

entry = app_shared.active_model()
if entry is None:
    st.warning("There is no model to look inside yet: train one on the Train page, or upload a .pt there.")
    st.stop()
model = entry.model


def cache_key(candidate: app_shared.ModelEntry) -> str:
    """What the caches know a model by: its weights' fingerprint (the object's id without one)."""
    return candidate.fingerprint or f"id{id(candidate.model)}"


fingerprint = cache_key(entry)
layers = insp.conv_layer_names(model)


DRAWN = "inside_drawn_image"  # the canvas's digit, as the model gets it (None: nothing drawn yet)
KEPT_DIGIT = "_inside_digit"  # (what chose it, the Digit): see current_digit()
kernel_pics = kernel_pictures(fingerprint, model)


# --- what a change reruns ---------------------------------------------------------------------------------
# Turning the digit or picking another reruns only the parts that show it (named fragments,
# app_shared.page_part, rerun from the widgets' callbacks); the title, the kernels, the
# explanations and the sidebar stay on screen as they are. The parts read the digit and
# the angle from session state (current_digit, current_view), never from this full
# run's variables: a part-only rerun does not run the code around it.


def open_layer() -> str:
    """The conv stage whose tab is open: only its tab is drawn (section 5), and only its parts rerun."""
    chosen = st.session_state.get(LAYER_TAB)
    return chosen if chosen in layers else layers[0]


def angle_parts() -> list[str]:
    """The parts that show the digit at its angle: what a turn reruns (the upright pictures stay)."""
    layer = open_layer()
    close_up = [f"inside_close_{layer}"] if kernel_pics[layer]["shape"][1] > 1 else []
    return ["inside_seen_rotated", "inside_odds", f"inside_maps_rotated_{layer}", *close_up, "inside_lens",
            "inside_lens_maps"]


def digit_parts() -> list[str]:
    """The parts that show the digit: what picking another reruns (the upright ones and the 45°/90° table too)."""
    return [*angle_parts(), "inside_digit_name", "inside_seen_upright", f"inside_maps_upright_{open_layer()}",
            "inside_lens_angles"]


def lens_default() -> list[str]:
    """The models the lens compares until someone chooses: the shipped ones and the active one."""
    return [candidate.key for candidate in app_shared.all_models()
            if candidate.source == "shipped" or candidate.key == entry.key]


def compared_models() -> list[app_shared.ModelEntry]:
    """The models the lens measures: those chosen (lens_default() until then), and always the active one."""
    chosen = st.session_state.get(LENS_MODELS, lens_default())
    return [candidate for candidate in app_shared.all_models() if candidate.key in chosen or candidate.key == entry.key]


@dataclass(frozen=True)
class Digit:
    image: torch.Tensor  # as the model gets it, 28×28
    caption: str  # how the page names it
    digest: str  # a hash of its pixels: the caches' key for it


def current_digit() -> Digit | None:
    """The digit chosen (or drawn) now; None when there is none.

    Kept in session state with what it was chosen by: each part asks for it, a dozen
    times per change, and hashing its pixels each time costs more than the asking.
    """
    drawn = st.session_state.get(SOURCE, TEST_IMAGE) != TEST_IMAGE
    split = None if drawn else app_shared.mnist_split(train=False)
    if not drawn and split is None:
        return None
    # The kept digit holds the drawing or the split, so their ids stay unique while it is kept.
    chosen = ("drawn", id(st.session_state.get(DRAWN))) if drawn else ("test", id(split), int(st.session_state[INDEX]))
    kept = st.session_state.get(KEPT_DIGIT)
    if kept is not None and kept[0] == chosen:
        return kept[1]
    if drawn:
        image, caption = st.session_state.get(DRAWN), "Your drawing, as the model gets it."
    else:
        index = min(chosen[2], len(split) - 1)
        image, caption = split.images[index], f"Test image {index}, labelled **{int(split.labels[index])}**."
    if image is None:
        return None
    digit = Digit(image, caption, insp.image_digest(image))
    st.session_state[KEPT_DIGIT] = (chosen, digit, split)
    read_ahead(digit, (0, int(st.session_state[ANGLE]), *LENS_ANGLES))
    return digit


def read_ahead(digit: Digit, angles: tuple[int, ...]) -> None:
    """A new digit: every compared model's readings at `angles`, in one forward pass per model.

    The parts that show a new digit need each model's reading of it upright, at the angle
    chosen, and at 45° and 90° (the lens): twenty single passes, a third of the change.
    """
    for candidate in compared_models():
        key = cache_key(candidate)
        missing = [degrees for degrees in dict.fromkeys(angles)
                   if not reading.holds(key, digit.digest, degrees, candidate.model, digit.image)]
        if len(missing) > 1:
            for degrees, seen in zip(missing, equivariance.read_turned_each(candidate.model, digit.image, missing)):
                reading.keep(seen, key, digit.digest, degrees, candidate.model, digit.image)


def view_angle(name: str) -> tuple[int, bool]:
    """(degrees, turned back) of the view named "upright" or "rotated" (by the current angle)."""
    if name == "upright":
        return 0, False
    return int(st.session_state[ANGLE]), bool(st.session_state.get(TURN_BACK, False))


def current_view(name: str) -> dict | None:
    """view() of the current digit, "upright" or "rotated" by the current angle (cached: the parts share them)."""
    digit = current_digit()
    if digit is None:
        return None
    return view(fingerprint, digit.digest, *view_angle(name), model, digit.image)


# The four numbered sections in one row that wraps: side by side on a wide screen (the
# prediction next to the canvas), one under the other on a narrow one, in their order.
# Section 1 is never narrower than the 280 px canvas.
choose, turn, seen, odds = app_layout.row("inside_sections", [CANVAS_SIZE + 10, 200, 360, 300], [1, 0.7, 1.3, 1.2])


# 1. The digit ---------------------------------------------------------------------------------------------------
@app_shared.page_part("inside_choose")
def test_image_picker() -> None:
    split = app_shared.mnist_split(train=False)
    parts = ["inside_choose", *digit_parts()]

    def random_test_digit(label: int | None) -> None:
        app_shared.set_widget_later(INDEX, insp.pick_index(split.labels, label))
        app_shared.rerun_parts(parts)

    app_shared.take_widget_value(INDEX)
    st.number_input(f"Test image (0–{len(split) - 1})", min_value=0, max_value=len(split) - 1, step=1,
                    key=INDEX, on_change=app_shared.rerun_parts, args=(parts,))
    with st.container(horizontal=True, gap="small"):
        st.button("Random 4", on_click=random_test_digit, args=(4,), width="stretch",
                  help="A random test digit labelled 4, as in the report.")
        st.button("Random digit", on_click=random_test_digit, args=(None,), width="stretch")


with choose:
    st.subheader("1 · Choose a digit")
    source = st.radio("Input", [TEST_IMAGE, DRAWING], horizontal=True, key=SOURCE, label_visibility="collapsed")
    if source == TEST_IMAGE:
        if app_shared.mnist_split(train=False) is None:
            st.warning(f"No test images to show. {app_shared.data_problem()}", icon=":material/database:")
            st.info("Choose **Draw a digit** instead: the canvas and the kernels work without MNIST.")
        else:
            test_image_picker()
    else:
        from streamlit_drawable_canvas import st_canvas  # only importable inside a running app

        # The canvas's toolbar (undo, reset, ...) appears on hover in the 2.65rem (42 px) above the
        # canvas: keep that free, so it never covers the radio buttons.
        st.space(30)  # + the 1rem gap between elements: 46 px
        result = st_canvas(stroke_width=20, stroke_color="#FFFFFF", background_color="#000000",
                           width=CANVAS_SIZE, height=CANVAS_SIZE, drawing_mode="freedraw", return_image_data=True,
                           key="canvas")
        st.caption("Draw one digit, large, white on black. To start over, click the trash-can (reset) button "
                   "of the canvas toolbar. The drawing is cropped, scaled to 20 px and centred by its centre "
                   "of mass in 28×28, as MNIST was made.")
        drawing = result.image_data
        st.session_state[DRAWN] = None
        if drawing is None:
            st.info("Draw a digit on the black canvas to see what the network makes of it.")
        else:
            try:
                st.session_state[DRAWN] = preprocess_drawing(drawing)
            except EmptyDrawingError as error:
                st.info(f"{error} Draw a digit on the black canvas to see what the network makes of it.")
# 2. The rotation ------------------------------------------------------------------------------------------------
@app_shared.page_part("inside_turn")
def turn_controls() -> None:
    parts = ["inside_turn", *angle_parts()]

    def set_angle(degrees: int) -> None:
        app_shared.set_widget_later(ANGLE, degrees)
        app_shared.rerun_parts(parts)

    app_shared.take_widget_value(ANGLE)
    st.slider("Rotation (degrees, counter-clockwise)", min_value=0, max_value=360, step=1, key=ANGLE,
              on_change=app_shared.rerun_parts, args=(parts,))
    with st.container(horizontal=True, gap="small"):
        for quick in QUICK_ANGLES:
            st.button(f"{quick}°", key=f"inside_quick_{quick}", on_click=set_angle, args=(quick,))


with turn:
    st.subheader("2 · Turn it")
    turn_controls()
    st.caption("Only the 28×28 input is turned (quarter turns exactly, other angles with bilinear "
               "interpolation); a drawing on the canvas stays as you drew it.")


# 3. What the model sees, and what it says ----------------------------------------------------------------------
@app_shared.page_part("inside_digit_name")
def digit_name() -> None:
    digit = current_digit()
    if digit is None:
        st.info("Choose a test image or draw a digit to see predictions and feature maps; the kernels "
                "below do not depend on the input.")
        return
    st.markdown(f"{digit.caption} Model: **{entry.label}**.")


def model_sees(name: str) -> None:
    """The input the model gets, upright or rotated, and its prediction."""
    shown = current_view(name)
    if shown is None:
        return
    degrees = int(st.session_state[ANGLE])
    if name == "upright":
        title, alt_text, caption = ("Prediction (upright)", "Model input, upright",
                                    "What the model sees: the 28×28 input, upright.")
    else:
        title, alt_text, caption = (f"Prediction (rotated {degrees}°)", f"Rotated input, {degrees} degrees",
                                    f"Rotated input: the same 28×28 turned {degrees}° counter-clockwise.")
    # The confidence as the metric's delta, not a tooltip: readable on a projector, and the
    # label keeps its width for the words.
    st.metric(title, str(shown["predicted"]), delta=f"{shown['probabilities'].max():.1%} sure", delta_color="off",
              delta_arrow="off")
    st.image(shown["input_png"], width=INPUT_SCALE * 28, alt=alt_text, output_format="PNG")
    st.caption(caption)


@app_shared.page_part("inside_odds")
def model_says() -> None:
    upright, rotated = current_view("upright"), current_view("rotated")
    if upright is None:
        st.info("The probabilities of each digit appear here once there is a digit.")
        return
    which = ("upright", f"rotated {int(st.session_state[ANGLE])}°")
    table = charts.probability_data(upright["probabilities"], rotated["probabilities"], which)
    app_shared.draw_template(st, charts.probability_chart, (), table, width="stretch", height=340)
    st.caption("Probability of each digit, upright (blue) and rotated (orange); the tallest bar is the "
               "prediction. Turn the input and watch whether the orange bars stay on the same digit.")


with seen:
    st.subheader("3 · What the model sees")
    digit_name()
    upright_col, rotated_col = app_layout.row("inside_inputs", [150, 150])
    with upright_col:
        app_shared.page_part("inside_seen_upright")(model_sees)("upright")
    with rotated_col:
        app_shared.page_part("inside_seen_rotated")(model_sees)("rotated")
with odds:
    st.subheader("4 · What it says")
    model_says()

# 5. Layer by layer -----------------------------------------------------------------------------------------------
st.header("5 · Layer by layer: kernels and feature maps")
st.markdown(
    "Each tab is one convolution stage: its **feature maps after the ReLU**, for the upright and the "
    "rotated input, then its **kernels**, each stretched to its own grey range (light = positive weights, "
    "dark = negative). A translation moves a feature map along with the digit; a "
    "rotation does not simply turn it, because the kernels themselves are not turned."
)
if current_digit() is not None:
    st.checkbox("Turn the rotated input's feature maps back by −θ, to line them up with the upright ones",
                key=TURN_BACK)

LESSONS = {
    0: "Look for oriented strokes and edges: one kernel likes vertical strokes, another diagonal ones. "
       "Nothing made the network learn each pattern in several turns, so a turned stroke wakes other kernels.",
    1: "Each row builds one feature map of this layer from all the maps of the layer before (one column "
       "per input map): coarser combinations of the first layer's strokes.",
}
DEEP_LESSON = ("Each row makes one feature map from all the maps of the layer before. Deep kernels are hard "
               "to read one by one: look at one row up close on the right.")



def feature_maps(layer: str, name: str) -> None:
    """The layer's feature maps for the digit upright or rotated: what changes when it turns."""
    shown = current_view(name)
    if shown is None:
        if name == "upright":
            st.info("Feature maps appear here once there is a digit.")
        return
    if name == "upright":
        st.markdown(f"**{layer} feature maps, upright**")
    else:
        turned = ", turned back" if st.session_state.get(TURN_BACK) else ""
        st.markdown(f"**{layer} feature maps, rotated {int(st.session_state[ANGLE])}°{turned}**")
    picture = maps_png(fingerprint, current_digit().digest, *view_angle(name), layer, shown["maps"][layer]["tensor"])
    st.image(picture, alt=f"{layer} feature maps, {name}", output_format="PNG")


def close_up(layer: str) -> None:
    """One output channel's kernels, and its map for the digit upright and rotated."""
    out_channels, in_channels = kernel_pics[layer]["shape"][:2]
    st.markdown(f"**Up close: one output channel of {layer}**")
    channel = int(st.number_input(f"{layer} output channel (0–{out_channels - 1})", min_value=0,
                                  max_value=out_channels - 1, step=1, key=f"inside_channel_{layer}"))
    st.image(channel_kernels_png(fingerprint, layer, channel, model), alt=f"{layer} kernels of channel {channel}",
             output_format="PNG")
    st.caption(f"The {in_channels} kernels that make {layer}'s feature map {channel}, one for each "
               "input map from the layer before; their responses are summed, then the ReLU is applied.")
    if current_digit() is not None:
        close_up_col, close_rotated = app_layout.row(f"inside_close_{layer}", [120, 120])
        for column, name in ((close_up_col, "upright"), (close_rotated, "rotated")):
            one_map = current_view(name)["maps"][layer]["raw"][channel]
            size = one_map.shape[-1]
            column.image(insp.to_png(insp.upscale_image(insp.normalise_tiles(one_map), scale=max(1, 168 // size))),
                         alt=f"{layer} map {channel}, {name}", output_format="PNG")
        st.caption(f"Feature map {channel}: upright (left) and rotated (right), each stretched to its own range.")


# One tab drawn, the open one: a closed tab's pictures and close-up would be redrawn at every
# turn of the slider for nobody. Choosing another tab reruns the page (the tab state's "rerun").
for position, (layer, tab) in enumerate(zip(layers, st.tabs(list(layers), key=LAYER_TAB, on_change="rerun"))):
    if not tab.open:
        continue
    with tab:
        pic = kernel_pics[layer]
        out_channels, in_channels = pic["shape"][:2]
        # First, as it is what changes: each side a part of its own, as a turn redraws only one.
        upright_col, rotated_col = app_layout.row(f"inside_maps_{layer}", [300, 300], gap="medium")
        with upright_col:
            app_shared.page_part(f"inside_maps_upright_{layer}")(feature_maps)(layer, "upright")
        with rotated_col:
            app_shared.page_part(f"inside_maps_rotated_{layer}")(feature_maps)(layer, "rotated")
        if (upright := current_view("upright")) is not None:
            shape = upright["maps"][layer]["shape"]
            st.caption(f"{shape[0]} feature maps ({insp.describe_shape(torch.empty(shape))}) for each input, "
                       "after the ReLU, each stretched to its own range (black = no response). Compare the same "
                       "tile in the two: in a rotation-invariant network the rotated maps would be the "
                       "upright ones, turned (tick the box above to turn them back and compare directly).")

        kernels_col, close_col = app_layout.row(f"inside_kernels_{layer}", [300, 300], gap="medium")
        with kernels_col:
            st.markdown(f"**{layer} kernels**")
            if pic["height"] > SCROLL_HEIGHT:
                with st.container(height=SCROLL_HEIGHT):
                    st.image(pic["png"], alt=f"{layer} kernels", output_format="PNG")
            else:
                st.image(pic["png"], alt=f"{layer} kernels", output_format="PNG")
            if in_channels > 1:
                count = f"{out_channels * in_channels:,} kernels"
                layout = f"{out_channels} rows (output channels) × {in_channels} columns (input channels)"
            else:
                count = f"{out_channels} kernels"
                layout = "one per output channel, in the same places as their feature maps above"
            scroll = " Scroll the box to see them all." if pic["height"] > SCROLL_HEIGHT else ""
            st.caption(f"{count} ({insp.describe_shape(torch.empty(pic['shape']))}), {layout}.{scroll} "
                       + LESSONS.get(position, DEEP_LESSON))
        if in_channels > 1:
            with close_col:
                app_shared.page_part(f"inside_close_{layer}")(close_up)(layer)

# 6. Why: equivariance, layer by layer ------------------------------------------------------------------------------
st.header("6 · Why: equivariance, layer by layer")
st.markdown(
    "The report's section 2 tells two properties apart, for shifts. **Invariance**: the system gives exactly the "
    "same response however its input is shifted. **Equivariance**: it works equally well at every position, but "
    "its response shifts with the target, and an equivariant response is easily made invariant (pool over the "
    "positions). A convolution is equivariant to **shifts**: move the digit and every feature map moves with it. "
    "It is not equivariant to **rotations**: LeNet-5's learned kernels are not rotation-symmetric (a kernel for "
    "vertical strokes is no kernel for horizontal ones), so turning the digit does not simply turn the maps, "
    "from conv1 on.\n\n"
    "The bars measure that per conv stage, for the network up to the stage (after its ReLU): "
    r"$\lVert f(\mathrm{rot}_\theta\,x) - \mathrm{rot}_\theta\,f(x)\rVert \,/\, \lVert f(x)\rVert$, "
    "0 when turning the input only turns the maps, about 1 when they come out different. For the C4 models "
    "each channel comes in four orientations, and a quarter turn of the input also moves orientation r to "
    "r + 1: its maps are turned *and* cycled (for the C8 CNN: eight orientations, one step per 45°). The last group, **output**, measures invariance instead: "
    r"$\lVert p(\mathrm{rot}_\theta\,x) - p(x)\rVert \,/\, \lVert p(x)\rVert$ "
    "on the class probabilities, nothing turned back.\n\n"
    "- **Rotation augmentation** makes the classifier's output more invariant by showing it turned digits, "
    "but nothing makes its layers equivariant: watch its conv bars against its output bar.\n"
    "- The **C4-equivariant** model is equivariant by construction at every layer for quarter turns (each "
    "filter is applied in four turns), then pools the four orientations and undoes the spatial turn: the "
    "equivariant response made invariant, as section 2 says.\n"
    "- The **C4 CNN** and **C8 CNN** go further: six group-conv stages (filters in four or eight turns; for "
    "eight, turned by interpolation), then a head that keeps each channel's strongest orientation and averages "
    "it over the picture, which no turn can change. Trained on turned digits, they are right at every angle."
)


def lens_table(digit: Digit, degrees: int) -> pd.DataFrame:
    """Every compared model's lens errors at `degrees`, one cached table per model."""
    rows = [row for candidate in compared_models()
            for row in lens_errors(cache_key(candidate), digit.digest, degrees,
                                   app_shared.display_label(candidate), candidate.model, digit.image)]
    return pd.DataFrame(rows, columns=lens.COLUMNS)


@app_shared.page_part("inside_lens")
def equivariance_lens() -> None:
    digit = current_digit()
    if digit is None:
        st.info("Choose a test image or draw a digit to measure the layers.")
        return
    degrees = int(st.session_state[ANGLE])
    everyone = app_shared.all_models()
    labels = {candidate.key: app_shared.display_label(candidate) for candidate in everyone}
    # Choosing models also changes the 45°/90° table, a part of its own (a turn of the slider leaves it).
    st.multiselect("Models to compare (the active model is always measured)", list(labels),
                   default=lens_default(), format_func=labels.get,
                   key=LENS_MODELS, on_change=app_shared.rerun_parts, args=(["inside_lens", "inside_lens_angles"],))
    table = lens_table(digit, degrees)
    chart_col, numbers_col = app_layout.row("inside_lens", [360, 380], [1, 1.1], gap="medium")
    with chart_col:
        app_shared.draw_template(st, lens.error_chart_template, lens.error_chart_shape(table),
                                 lens.error_chart_data(table), width="stretch", height=380)
    with numbers_col:
        st.markdown(f"**Errors at {degrees}°** (conv stages: 0 = equivariant; output: 0 = invariant)")
        wide = lens.wide_table(table)
        st.dataframe(wide, hide_index=True, width="stretch",
                     column_config={"model": st.column_config.TextColumn("model", width=200),
                                    **{stage: st.column_config.NumberColumn(stage, format="%.3f", width=64)
                                       for stage in wide.columns if stage != "model"}})
        st.caption(lens.summary(table, degrees))


@app_shared.page_part("inside_lens_angles")
def lens_at_two_angles() -> None:
    digit = current_digit()
    if digit is None:
        return
    st.markdown("**At 45° and at 90°**, whatever angle is chosen above: the largest error over the conv stages, "
                "and the output's.")
    both = lens.at_two_angles({angle: lens_table(digit, angle) for angle in LENS_ANGLES})
    st.dataframe(both, hide_index=True, width="stretch", key="inside_lens_two_angles",
                 column_config={"model": st.column_config.TextColumn("model", width=200),
                                **{name: st.column_config.NumberColumn(name, format="%.3f")
                                   for name in both.columns if name != "model"}})
    st.caption("A quarter turn only moves pixels, so a model built for it scores 0 there at every stage; at 45° "
               "the grid is resampled and every design shows some error. Eight orientations (C8) follow 45° more "
               "closely at the stages than four (C4); the C4 CNN's output is invariant there by what training taught.")


@app_shared.page_part("inside_lens_maps")
def rotate_or_convolve_first() -> None:
    digit = current_digit()
    if digit is None:
        return
    degrees = int(st.session_state[ANGLE])
    st.subheader("Rotate then convolve, or convolve then rotate?")
    st.markdown(f"One channel of the active model, **{entry.label}**: first, the digit turned and then "
                "passed through the network up to the stage; second, the upright digit's map turned afterwards; "
                "third, how far apart they are.")
    picker_layer, picker_channel = app_layout.row("inside_lens_pickers", [220, 260])
    layer = picker_layer.selectbox("Conv stage", list(layers), key=LENS_LAYER)
    channels = lens.channel_count(model, layer)
    orientations = feature_orientations(model)
    channel = picker_channel.selectbox(
        f"Channel (0–{channels - 1})", list(range(channels)), key=f"lens_channel_{layer}_{channels}_{orientations}",
        format_func=lambda number: f"{number}: {lens.channel_name(model, number)}",
        help=(f"For this model channel c·{orientations} + r is channel c at orientation r·{360 // orientations}°."
              if orientations > 1 else None))
    shown = lens_maps(fingerprint, digit.digest, degrees, layer, int(channel), model, digit.image)
    first_col, after_col, gap_col = app_layout.row("inside_lens_maps", [180, 180, 180])
    first_col.image(shown["rotate_then_convolve"], caption=f"Rotate then convolve: f(rot {degrees}° x)",
                    output_format="PNG")
    cycled = ", orientations cycled" if orientations > 1 else ""
    after_col.image(shown["convolve_then_rotate"], caption=f"Convolve then rotate: rot {degrees}° f(x){cycled}",
                    output_format="PNG")
    gap_col.image(shown["difference"], caption="Difference |first − second|", output_format="PNG")
    height, width = shown["shape"]
    st.caption(f"{layer}, {shown['channel']} ({height}×{width}), after the ReLU, all three on one grey scale "
               f"(black = 0). This channel's relative error at {degrees}°: {shown['error']:.4f}. Where the stage is "
               "equivariant the first two maps are the same picture and the difference is black.")


equivariance_lens()
lens_at_two_angles()
rotate_or_convolve_first()
