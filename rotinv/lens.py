"""The lens: equivariance, layer by layer, for several models at once (data, charts, words).

Pure functions for the "Why: equivariance, layer by layer" section of the Inside page.
They measure with rotinv.equivariance (which hooks the models through
rotinv.introspection.hooked_pass) and return frames, arrays, Altair charts and
sentences; nothing here knows about Streamlit.

For one image x and one angle θ, each conv stage f (the network up to that stage,
after its ReLU) gets its equivariance error

    || f(rot_θ x) - rot_θ f(x) || / || f(x) ||

(C4 models' orientation channels cycled as well), and the model's class probabilities p
their invariance error || p(rot_θ x) - p(x) || / || p(x) ||: the stage called "output".
Every number shown is computed here from the model; none is typed in.
"""

from __future__ import annotations

import math
from typing import Sequence

import altair as alt
import numpy as np
import pandas as pd
import torch
from torch import nn

from rotinv.equivariance import (
    Reading,
    channel_pair,
    feature_orientations,
    output_error,
    read,
    read_turned,
    stage_errors,
)
from rotinv.charts import TEMPLATE_DATA
from rotinv.introspection import kernels
from rotinv.rotation import quarter_turns

OUTPUT = "output"  # the stage name of the probabilities' invariance error
EQUIVARIANCE, INVARIANCE = "equivariance", "invariance"
COLUMNS = ["model", "stage", "measure", "error"]  # error_table's, one row per (model, stage)
# Below this an error is "0" up to float arithmetic: the C4 model at quarter turns gives ~1e-7.
NEAR_ZERO = 1e-4
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#9d755d", "#bab0ac")
LABEL_SIZE, TITLE_SIZE = 15, 16


def error_table(models: Sequence[tuple[str, nn.Module]], image: torch.Tensor, degrees: float,
                output: bool = True) -> pd.DataFrame:
    """One row per (model, stage): model, stage, measure, error, in the order given.

    `models` are (name, model) pairs, names unique (they label the bars). Stages are each
    model's conv_layers, then "output" (the probabilities' invariance error) if `output`.
    Two forward passes per model, of the image and of the image turned.
    """
    names = [name for name, _ in models]
    if len(set(names)) != len(names):
        raise ValueError(f"Model names must be unique, got {names}.")
    frames = [errors_of(name, read(model, image), read_turned(model, image, degrees), degrees, output)
              for name, model in models]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)


def errors_of(name: str, upright: Reading, turned: Reading, degrees: float, output: bool = True) -> pd.DataFrame:
    """error_table's rows for one model, from its readings of the image and of the image turned `degrees`."""
    return pd.DataFrame(error_rows(name, upright, turned, degrees, output), columns=COLUMNS)


def error_rows(name: str, upright: Reading, turned: Reading, degrees: float,
               output: bool = True) -> list[tuple[str, str, str, float]]:
    """errors_of as plain (model, stage, measure, error) tuples: what the app keeps, and joins into one frame."""
    rows = [(name, stage, EQUIVARIANCE, error) for stage, error in stage_errors(upright, turned, degrees).items()]
    if output:
        rows.append((name, OUTPUT, INVARIANCE, output_error(upright, turned)))
    return rows


def by_model(table: pd.DataFrame) -> dict[str, dict[str, list[tuple[str, float]]]]:
    """The error table's rows grouped by model, in order: {model: {measure: [(stage, error), ...]}}.

    Plain Python, not pandas: the app reads a few dozen rows at every turn of the slider,
    where pandas' grouping and string comparisons cost more than the measuring.
    """
    grouped: dict[str, dict[str, list[tuple[str, float]]]] = {}
    for model, stage, measure, error in zip(table["model"], table["stage"], table["measure"], table["error"]):
        measures = grouped.setdefault(model, {EQUIVARIANCE: [], INVARIANCE: []})
        measures[measure].append((stage, float(error)))
    return grouped


def wide_table(table: pd.DataFrame) -> pd.DataFrame:
    """The error table as one row per model (in order) and one column per stage (in order)."""
    stages = list(dict.fromkeys(table["stage"]))
    rows = [{"model": model, **dict(measures[EQUIVARIANCE] + measures[INVARIANCE])}
            for model, measures in by_model(table).items()]
    return pd.DataFrame(rows, columns=["model", *stages])


def error_chart(table: pd.DataFrame) -> alt.LayerChart:
    """Grouped bars: one group per stage (conv1, conv2, ..., output), one bar per model, coloured by model.

    Each bar carries its value, so a bar of height 0 (the C4 model at a quarter turn) still
    reads as a measured 0.00 rather than a missing model. The same chart as
    error_chart_template with error_chart_data filled in.
    """
    return error_chart_template(*error_chart_shape(table)).properties(data=error_chart_data(table))


def error_chart_shape(table: pd.DataFrame) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What the error chart's spec depends on besides the numbers: the models and the stages, in order."""
    return tuple(dict.fromkeys(table["model"])), tuple(dict.fromkeys(table["stage"]))


def error_chart_data(table: pd.DataFrame) -> pd.DataFrame:
    """The error table as the error chart reads it: `shown` is the error, empty where it is infinite."""
    return table.assign(shown=table["error"].where(np.isfinite(table["error"])))


def error_chart_template(models: tuple[str, ...], stages: tuple[str, ...]) -> alt.LayerChart:
    """error_chart for these models and stages, its data left out (rotinv.charts.TEMPLATE_DATA)."""
    models, stages = list(models), list(stages)
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(models))]
    base = alt.Chart().encode(
        x=alt.X("stage:N", sort=stages, title=None,
                axis=alt.Axis(labelAngle=0, labelFontSize=LABEL_SIZE, titleFontSize=TITLE_SIZE)),
        xOffset=alt.XOffset("model:N", sort=models),
        y=alt.Y("shown:Q", title="Relative error",
                axis=alt.Axis(labelFontSize=LABEL_SIZE - 2, titleFontSize=TITLE_SIZE, tickCount=5)),
        tooltip=[alt.Tooltip("model:N", title="Model"), alt.Tooltip("stage:N", title="Stage"),
                 alt.Tooltip("measure:N", title="Measures"),
                 alt.Tooltip("error:Q", title="Relative error", format=".4f")],
    )
    bars = base.mark_bar().encode(
        color=alt.Color("model:N", sort=models, title=None, scale=alt.Scale(domain=models, range=colors),
                        legend=alt.Legend(orient="top", direction="vertical", labelFontSize=LABEL_SIZE,
                                          labelLimit=420, symbolSize=160)),
    )
    values = base.mark_text(dy=-8, fontSize=11, color="#333333").encode(text=alt.Text("shown:Q", format=".2f"))
    return alt.layer(bars, values, data=alt.NamedData(TEMPLATE_DATA))


def at_two_angles(tables: dict[float, pd.DataFrame]) -> pd.DataFrame:
    """One row per model: its largest conv-stage equivariance error and its output's invariance error at each angle.

    `tables` maps an angle to its error_table (the same models in each). At 45° and 90°
    together this tells the models apart at a glance: the group-conv models are 0 at 90°,
    LeNet-5 is far off at both, and the invariant networks' outputs barely move at 45°.
    """
    columns: dict[str, dict[str, float]] = {}
    models: list[str] = []
    for degrees, table in tables.items():
        for model, measures in by_model(table).items():
            models.append(model)
            layers, output = measures[EQUIVARIANCE], measures[INVARIANCE]
            columns.setdefault(f"conv stages, largest at {degrees:g}°", {})[model] = (
                max(error for _, error in layers) if layers else math.nan)
            if output:
                columns.setdefault(f"output at {degrees:g}°", {})[model] = output[0][1]
    order = list(dict.fromkeys(models))
    frame = pd.DataFrame({name: [values.get(model, math.nan) for model in order] for name, values in columns.items()})
    return frame.assign(model=order)[["model", *columns]]


def channel_count(model: nn.Module, layer: str) -> int:
    """How many feature maps a conv stage outputs (C * n for a model with n orientations)."""
    return int(kernels(model, layer).shape[0])


def channel_name(model: nn.Module, channel: int) -> str:
    """'channel 5', or for C4 models 'channel 1 at 90°' (channel c * n + r is channel c at r · 360/n degrees)."""
    n = feature_orientations(model)
    if n > 1:
        c, r = divmod(int(channel), n)
        return f"channel {c} at {r * 360 / n:g}°"
    return f"channel {int(channel)}"


def joint_pictures(map_a: torch.Tensor | np.ndarray, map_b: torch.Tensor | np.ndarray,
                   scale: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two maps and |a - b| as uint8 pictures on ONE common grey scale (0 -> black, the larger max -> white).

    A shared scale is what makes "equal" look equal: stretched each on its own, two maps of
    different strength would look alike. Upscaled by `scale` whole pixels.
    """
    a = np.nan_to_num(np.asarray(map_a, dtype=np.float64))
    b = np.nan_to_num(np.asarray(map_b, dtype=np.float64))
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"Expected two maps (H, W) of one shape, got {a.shape} and {b.shape}.")
    top = max(float(np.abs(a).max()), float(np.abs(b).max()))
    top = top if top > 0 else 1.0

    def picture(values: np.ndarray) -> np.ndarray:
        pixels = np.rint(np.clip(values / top, 0.0, 1.0) * 255.0).astype(np.uint8)
        return pixels.repeat(scale, axis=0).repeat(scale, axis=1)

    return picture(a), picture(b), picture(np.abs(a - b))


def side_by_side(model: nn.Module, image: torch.Tensor, degrees: float, layer: str, channel: int,
                 size: int = 196, readings: tuple[Reading, Reading] | None = None) -> dict:
    """One channel of one stage, "rotate then convolve" beside "convolve then rotate".

    Returns the three pictures of joint_pictures (about `size` pixels wide), the channel's
    own relative error ||a - b|| / ||b|| and its name. `readings`, the model's readings of
    the image upright and turned `degrees`, saves the two forward passes where they are
    already made.
    """
    if layer not in model.conv_layers:
        raise ValueError(f"Unknown layer {layer!r}; choose one of: {', '.join(model.conv_layers)}.")
    upright, turned = readings or (read(model, image), read_turned(model, image, degrees))
    map_a, map_b = channel_pair(upright, turned, degrees, layer, channel)
    scale = max(1, size // max(map_a.shape))
    rotate_first, rotate_after, difference = joint_pictures(map_a.numpy(), map_b.numpy(), scale)
    reference = float(torch.linalg.vector_norm(map_b.double()))
    gap = float(torch.linalg.vector_norm((map_a - map_b).double()))
    error = (0.0 if gap == 0 else math.inf) if reference == 0 else gap / reference
    return {"rotate_then_convolve": rotate_first, "convolve_then_rotate": rotate_after, "difference": difference,
            "error": error, "channel": channel_name(model, channel), "shape": tuple(map_a.shape)}


def _number(error: float) -> str:
    if not math.isfinite(error):
        return "∞"
    return f"{error:.2g}" if 0 < error < 0.01 else f"{error:.2f}"


def summary(table: pd.DataFrame, degrees: float) -> str:
    """What the measured errors say at this angle, in a few sentences, every number from `table`."""
    degrees = float(degrees)
    turns = quarter_turns(degrees)
    if table.empty:
        return "No model to measure."
    if turns == 0:
        return (f"At {degrees:g}° nothing is turned, so every error is 0 by definition. Turn the digit "
                "(section 2) to compare the models.")
    parts = []
    for model, measures in by_model(table).items():
        layers, output = measures[EQUIVARIANCE], measures[INVARIANCE]
        said = f"**{model}**: "
        if layers:
            worst_stage, worst = max(layers, key=lambda row: row[1])  # the first of equal largest, as idxmax
            first_stage, first = layers[0]
            if turns is not None and worst < NEAR_ZERO:
                said += f"≈ 0 at every conv stage (largest {worst:.1e})"
            else:
                said += f"{first_stage} {_number(first)}, largest {_number(worst)} ({worst_stage})"
        if output:
            said += f"; output {_number(output[0][1])}"
        parts.append(said)
    measured = "; ".join(parts) + "."
    if turns is not None:
        note = (f"A turn of {degrees:g}° is an exact permutation of the pixels (no interpolation), so a "
                "layer that commutes with it scores 0 up to float rounding.")
    else:
        note = (f"{degrees:g}° is not a multiple of 90°: turning a 28×28 grid by it resamples every pixel "
                "(bilinear interpolation, done twice here) and cuts off corners, and a group-convolution "
                "model's orientations can only follow turns of their own step (90° for C4, 45° for C8; they "
                "are cycled by the nearest one). So at this angle every model's error is above 0, even one "
                "built to be equivariant: compare the models with each other, not with zero.")
    return f"At {degrees:g}°: {measured} {note}"

