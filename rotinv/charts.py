"""Tables and Altair charts for the app: pure functions from results to frames to charts,
and the few counts the pages put into words.

Nothing here trains or evaluates; the functions only reshape what rotinv.training and
rotinv.evaluation produced (or read a model's layer sizes), so they are cheap and easy
to test. Every chart is set up
to be read from the back of a lecture hall: axis labels 15 px, titles 16 px and up.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd
import torch

from rotinv.evaluation import NUM_CLASSES, AngleResult
from rotinv.training import Progress

LABEL_SIZE = 15
TITLE_SIZE = 16
TEXT_SIZE = 15
REPORT_COLOR = "#222222"
HIGHLIGHT_COLORS = ("#d62728", "#1f77b4")  # the two highlighted digits (6 and 9)
CHANCE = 1 / NUM_CLASSES
# Tableau 10, which stays apart for colour-blind readers and on a washed-out projector.
MODEL_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
                "#9c755f", "#bab0ac")


# --- chart templates: a chart's shape without its data -----------------------------------
# Turning Altair objects into Vega-Lite (validating them against the schema) costs several
# milliseconds per chart, more than the arithmetic behind the charts a slider redraws. A
# template is such a chart with its data left out, as the named data source TEMPLATE_DATA:
# converted once per shape (vega_lite_spec), it is drawn with new data at every turn.
TEMPLATE_DATA = "values"


def vega_lite_spec(chart: alt.TopLevelMixin) -> dict:
    """An Altair chart (or template) as the Vega-Lite spec Streamlit draws.

    Altair's default theme, the only configuration a chart here does not set itself,
    fixes a 300×300 view; Streamlit's own conversion turns that theme off, and so does this.
    """
    spec = chart.to_dict()
    config = spec.get("config", {})
    view = config.get("view", {})
    for size in ("continuousWidth", "continuousHeight"):
        view.pop(size, None)
    if "view" in config and not view:
        del config["view"]
    if "config" in spec and not config:
        del spec["config"]
    return spec


def probability_data(upright: np.ndarray, rotated: np.ndarray, inputs: Sequence[str]) -> pd.DataFrame:
    """Both inputs' class probabilities in one long frame: digit, probability, input (named by `inputs`), order."""
    classes = len(upright)
    return pd.DataFrame({
        "digit": np.tile(np.arange(classes), 2),
        "probability": np.concatenate([upright, rotated]),
        "input": np.repeat(list(inputs), classes),
        "order": np.repeat([0, 1], classes),  # upright first, whatever the names say (the angle)
    })


def probability_chart() -> alt.Chart:
    """Template: each digit's probability, a bar per input side by side (blue upright, orange rotated)."""
    upright_first = alt.EncodingSortField("order", op="min")
    return alt.Chart(alt.NamedData(TEMPLATE_DATA)).mark_bar().encode(
        x=alt.X("digit:O", title="Digit", axis=alt.Axis(labelAngle=0, labelFontSize=16, titleFontSize=15)),
        xOffset=alt.XOffset("input:N", sort=upright_first),
        y=alt.Y("probability:Q", title="Probability", scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%", labelFontSize=13, titleFontSize=15, tickCount=5)),
        color=alt.Color("input:N", title=None, sort=upright_first, scale=alt.Scale(range=["#4c78a8", "#f58518"]),
                        legend=alt.Legend(orient="top", labelFontSize=15)),
        tooltip=["input:N", "digit:O", alt.Tooltip("probability:Q", format=".1%")],
    )


def _readable(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """Large fonts everywhere, for a projector."""
    return (
        chart.configure_axis(labelFontSize=LABEL_SIZE, titleFontSize=TITLE_SIZE, titlePadding=8)
        .configure_legend(labelFontSize=LABEL_SIZE, titleFontSize=TITLE_SIZE, labelLimit=420,
                          symbolSize=160, orient="top", direction="horizontal", columns=2)
        .configure_title(fontSize=TITLE_SIZE + 2, anchor="start")
        .configure_header(labelFontSize=LABEL_SIZE, titleFontSize=TITLE_SIZE)
        .configure_view(strokeWidth=0)
    )


def _angle_axis(angles: Iterable[float]) -> alt.Axis:
    """Ticks every 45° (or 90°) on a wide range, the default on a narrow one."""
    angles = list(angles)
    if not angles:
        return alt.Axis(title="Rotation (degrees, counter-clockwise)")
    low, high = min(angles), max(angles)
    step = 90 if high - low > 360 else 45
    if high - low >= 2 * step:
        values = [a for a in range(int(math.ceil(low / step) * step), int(high) + 1, step)]
        return alt.Axis(title="Rotation (degrees, counter-clockwise)", values=values)
    return alt.Axis(title="Rotation (degrees, counter-clockwise)")


def _angle_scale(angles: Iterable[float]) -> alt.Scale:
    """Exactly the swept range, not rounded out to a 'nice' number."""
    angles = list(angles)
    if not angles or min(angles) == max(angles):
        return alt.Scale()
    return alt.Scale(domain=[min(angles), max(angles)], nice=False)


# --- training ------------------------------------------------------------------------------


def history_frame(history: Sequence[Progress]) -> pd.DataFrame:
    """One row per progress report: step, epoch, loss, accuracy, images seen, held-out accuracy (or NaN)."""
    return pd.DataFrame(
        [{"Step": p.step, "Epoch": p.epoch, "Loss": p.loss, "Accuracy": p.accuracy,
          "Images seen": p.images_seen,
          HELD_OUT: float("nan") if p.held_out_accuracy is None else p.held_out_accuracy} for p in history],
        columns=["Step", "Epoch", "Loss", "Accuracy", "Images seen", HELD_OUT],
    )


HELD_OUT = "Held-out accuracy"


def training_curve(history: Sequence[Progress], metric: str, total_steps: int | None = None) -> alt.LayerChart:
    """Training loss or accuracy (running mean over the epoch) against the optimiser step.

    With total_steps, the x axis spans the whole run from the start, so the line grows
    into a fixed frame instead of the axis rescaling on every update. The accuracy chart
    also draws the upright accuracy on held-out test images where the run measured it:
    the number the lecture is waiting for, free of the running mean's lag. The same chart
    as training_curve_template with history_frame(history) filled in.
    """
    return training_curve_template(metric, total_steps).properties(data=history_frame(history))


def training_curve_template(metric: str, total_steps: int | None = None) -> alt.LayerChart:
    """training_curve with its data (a history_frame) left out: what the Train page redraws during a run.

    Converting the whole chart at every redraw held the interpreter for a tenth of a
    second, several times a second, while the other students' pages waited.
    """
    if metric not in ("Loss", "Accuracy"):
        raise ValueError(f"metric must be 'Loss' or 'Accuracy', got {metric!r}.")
    x = alt.X("Step:Q", title="Optimiser step", scale=alt.Scale(domain=[0, total_steps]) if total_steps else alt.Scale())
    if metric == "Accuracy":
        y = alt.Y("Accuracy:Q", title="Training accuracy", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"))
        color = "#2ca02c"
    else:
        y = alt.Y("Loss:Q", title="Training loss (cross-entropy)", scale=alt.Scale(zero=True))
        color = "#d62728"
    line = alt.Chart().mark_line(point=alt.OverlayMarkDef(size=40, color=color), strokeWidth=3, color=color).encode(
        x=x, y=y,
        tooltip=["Step:Q", "Epoch:Q", alt.Tooltip("Loss:Q", format=".4f"), alt.Tooltip("Accuracy:Q", format=".2%"),
                 alt.Tooltip("Images seen:Q", format=",")],
    )
    layers = [line]
    if metric == "Accuracy":  # the held-out points, where the run measured them (NaN elsewhere)
        measured = alt.Chart().transform_filter(f"isValid(datum['{HELD_OUT}']) && isFinite(datum['{HELD_OUT}'])")
        layers.append(measured.mark_line(point=alt.OverlayMarkDef(size=40, color=HELD_OUT_COLOR), strokeWidth=3,
                                         strokeDash=[6, 3], color=HELD_OUT_COLOR).encode(
            x="Step:Q", y=alt.Y(f"{HELD_OUT}:Q"), tooltip=["Step:Q", alt.Tooltip(f"{HELD_OUT}:Q", format=".2%")]))
        last = measured.transform_window(window=[alt.WindowFieldDef(op="row_number", **{"as": "latest"})],
                                         sort=[alt.SortField("Step", order="descending")]
                                         ).transform_filter("datum.latest == 1")
        layers.append(last.mark_text(align="right", dx=-8, dy=-14, fontSize=LABEL_SIZE, color=HELD_OUT_COLOR).encode(
            x="Step:Q", y=f"{HELD_OUT}:Q", text=alt.Text(f"{HELD_OUT}:Q", format=".1%")))  # where the eye ends up
    return _readable(alt.layer(*layers, data=alt.NamedData(TEMPLATE_DATA)).properties(height=300))


HELD_OUT_COLOR = "#1f77b4"


# --- sweeps --------------------------------------------------------------------------------


def _model_color(frame: pd.DataFrame, legend: bool = True) -> alt.Color:
    """One clearly different colour per model, in the order they were chosen."""
    models = list(dict.fromkeys(frame["Model"]))
    return alt.Color("Model:N", title="Model", sort=models, scale=alt.Scale(domain=models, range=MODEL_COLORS),
                     legend=alt.Legend(columns=1) if legend else None)  # one per line: none cut off when narrow


def sweep_frame(results: Mapping[str, Sequence[AngleResult]]) -> pd.DataFrame:
    """{model label: results by angle} -> one row per model and angle."""
    rows = [
        {"Model": label, "Angle (°)": r.angle, "Accuracy": r.accuracy, "Loss": r.loss}
        for label, by_angle in results.items() for r in by_angle
    ]
    return pd.DataFrame(rows, columns=["Model", "Angle (°)", "Accuracy", "Loss"])


def sweep_table(frame: pd.DataFrame, metric: str = "Accuracy") -> pd.DataFrame:
    """One of sweep_frame's metrics ("Accuracy" or "Loss") as one row per angle and a
    column per model, named by the model (by the metric when there is only one model)."""
    if metric not in ("Accuracy", "Loss"):
        raise ValueError(f"metric must be 'Accuracy' or 'Loss', got {metric!r}.")
    models = list(dict.fromkeys(frame["Model"]))
    table = pd.DataFrame({"Angle (°)": list(dict.fromkeys(frame["Angle (°)"]))})
    for model in models:
        by_angle = frame[frame["Model"] == model].set_index("Angle (°)")[metric]
        table[model if len(models) > 1 else metric] = [by_angle.get(angle) for angle in table["Angle (°)"]]
    return table


def report_points(report: Mapping[float, float], angles: Sequence[float]) -> pd.DataFrame:
    """The report's accuracies at every angle of the swept range where they apply, with their labels.

    A rotation a full turn away is the same rotation, so the report's 360° (upright) is
    drawn at 0° too, its 90° at 450°, and so on.
    """
    if not angles:
        return pd.DataFrame(columns=["Angle (°)", "Accuracy", "Label"])
    low, high = min(angles), max(angles)
    at = {}
    for angle, accuracy in report.items():
        for turn in range(math.floor((low - angle) / 360), math.ceil((high - angle) / 360) + 1):
            if low <= angle + 360 * turn <= high:
                at[float(angle + 360 * turn)] = accuracy
    rows = [{"Angle (°)": angle, "Accuracy": accuracy, "Label": f"report: {100 * accuracy:.0f}%"}
            for angle, accuracy in sorted(at.items())]
    return pd.DataFrame(rows, columns=["Angle (°)", "Accuracy", "Label"])


def accuracy_chart(frame: pd.DataFrame, report: Mapping[float, float] | None = None) -> alt.LayerChart:
    """Test accuracy against angle, one line per model, the report's points overlaid.

    `frame` is sweep_frame's; `report` maps our (counter-clockwise) angle to the
    report's accuracy, e.g. rotinv.report.report_accuracy_by_our_angle().
    """
    angles = frame["Angle (°)"].tolist()
    x = alt.X("Angle (°):Q", axis=_angle_axis(angles), scale=_angle_scale(angles))
    lines = (
        alt.Chart(frame)
        .mark_line(point=alt.OverlayMarkDef(size=70, filled=True), strokeWidth=3)
        .encode(
            x=x,
            y=alt.Y("Accuracy:Q", title="Test accuracy", scale=alt.Scale(domain=[0, 1]),
                    axis=alt.Axis(format="%")),
            color=_model_color(frame),
            tooltip=["Model:N", alt.Tooltip("Angle (°):Q", format="g"), alt.Tooltip("Accuracy:Q", format=".2%"),
                     alt.Tooltip("Loss:Q", format=".4f")],
        )
    )
    chance = (
        alt.Chart(pd.DataFrame({"Accuracy": [CHANCE], "Label": ["chance: 10%"]}))
        .mark_rule(strokeDash=[6, 4], color="#888888", strokeWidth=2)
        .encode(y="Accuracy:Q")
    )
    layers = [chance, lines]
    points = report_points(report or {}, angles)
    if len(points):
        marks = alt.Chart(points).encode(x="Angle (°):Q", y="Accuracy:Q",
                                        tooltip=["Label:N", alt.Tooltip("Angle (°):Q", format="g")])
        # Hollow, so the model's own point under a diamond stays visible.
        layers.append(marks.mark_point(shape="diamond", size=300, filled=False, strokeWidth=3, opacity=1,
                                       color=REPORT_COLOR))
        # Labels above high points and below low ones, clear of a collapsing curve; at
        # the ends of the range they lean inwards, so they stay inside the chart.
        low, high = min(angles), max(angles)
        align = points["Angle (°)"].map(lambda a: "left" if a == low < high else "right" if a == high > low
                                        else "center")
        for above, dy in ((True, -22), (False, 26)):
            for side, dx in (("left", -8), ("center", 0), ("right", 8)):
                part = points[(align == side) & ((points["Accuracy"] >= 0.5) == above)]
                if len(part):
                    layers.append(
                        alt.Chart(part)
                        .mark_text(dy=dy, dx=dx, align=side, fontSize=TEXT_SIZE, fontWeight="bold",
                                   color=REPORT_COLOR)
                        .encode(x="Angle (°):Q", y="Accuracy:Q", text="Label:N")
                    )
    return _readable(alt.layer(*layers).properties(height=420))


def loss_chart(frame: pd.DataFrame) -> alt.Chart:
    """Test loss (mean cross-entropy) against angle, one line per model (colours as accuracy_chart's)."""
    chart = (
        alt.Chart(frame)
        .mark_line(point=alt.OverlayMarkDef(size=50, filled=True), strokeWidth=3)
        .encode(
            x=alt.X("Angle (°):Q", axis=_angle_axis(frame["Angle (°)"].tolist()),
                    scale=_angle_scale(frame["Angle (°)"].tolist())),
            y=alt.Y("Loss:Q", title="Test loss (cross-entropy)", scale=alt.Scale(zero=True)),
            color=_model_color(frame, legend=False),
            tooltip=["Model:N", alt.Tooltip("Angle (°):Q", format="g"), alt.Tooltip("Loss:Q", format=".4f")],
        )
        .properties(height=300)
    )
    return _readable(chart)


# --- per class -----------------------------------------------------------------------------


def per_class_frame(results: Sequence[AngleResult]) -> pd.DataFrame:
    """One row per angle and true digit: the accuracy on that digit's test images."""
    rows = [
        {"Angle (°)": r.angle, "Digit": digit, "Accuracy": accuracy}
        for r in results for digit, accuracy in enumerate(r.per_class_accuracy)
    ]
    return pd.DataFrame(rows, columns=["Angle (°)", "Digit", "Accuracy"])


def per_class_heatmap(frame: pd.DataFrame) -> alt.Chart:
    """Accuracy per true digit (rows) and angle (columns), dark = wrong."""
    angles = sorted(frame["Angle (°)"].unique().tolist())
    chart = (
        alt.Chart(frame)
        .mark_rect(stroke="white", strokeWidth=1)
        .encode(
            x=alt.X("Angle (°):O", title="Rotation (degrees, counter-clockwise)", sort=angles,
                    axis=alt.Axis(labelAngle=0, labelOverlap="greedy", labelExpr="datum.value + '°'")),
            y=alt.Y("Digit:O", title="True digit"),
            color=alt.Color("Accuracy:Q", title="Accuracy", scale=alt.Scale(domain=[0, 1], scheme="viridis"),
                            legend=alt.Legend(format="%", orient="right", direction="vertical", gradientLength=260)),
            tooltip=["Digit:O", alt.Tooltip("Angle (°):O"), alt.Tooltip("Accuracy:Q", format=".1%")],
        )
        .properties(height=380)
    )
    return _readable(chart)


def highlight_digits_chart(frame: pd.DataFrame, highlight: Sequence[int] = (6, 9)) -> alt.LayerChart:
    """Per-digit accuracy against angle: the highlighted digits in colour, the rest grey."""
    frame = frame.copy()
    frame["Digit label"] = frame["Digit"].map(lambda d: f"digit {d}")
    angles = frame["Angle (°)"].tolist()
    x = alt.X("Angle (°):Q", axis=_angle_axis(angles), scale=_angle_scale(angles))
    y = alt.Y("Accuracy:Q", title="Accuracy on this digit", scale=alt.Scale(domain=[0, 1]),
              axis=alt.Axis(format="%"))
    others = (
        alt.Chart(frame[~frame["Digit"].isin(highlight)])
        .mark_line(color="#c7c7c7", strokeWidth=1.5)
        .encode(x=x, y=y, detail="Digit:N",
                tooltip=["Digit:O", alt.Tooltip("Angle (°):Q", format="g"), alt.Tooltip("Accuracy:Q", format=".1%")])
    )
    names = [f"digit {d}" for d in highlight]
    colors = list(HIGHLIGHT_COLORS) + ["#ff7f0e", "#9467bd", "#8c564b"]
    chosen = (
        alt.Chart(frame[frame["Digit"].isin(highlight)])
        .mark_line(strokeWidth=4, point=alt.OverlayMarkDef(size=60, filled=True))
        .encode(x=x, y=y,
                color=alt.Color("Digit label:N", title="Highlighted",
                                scale=alt.Scale(domain=names, range=colors[: len(names)])),
                tooltip=["Digit:O", alt.Tooltip("Angle (°):Q", format="g"), alt.Tooltip("Accuracy:Q", format=".1%")])
    )
    return _readable(alt.layer(others, chosen).properties(height=340))


# --- confusion -----------------------------------------------------------------------------


def confusion_frame(result: AngleResult) -> pd.DataFrame:
    """One row per (true, predicted) pair: the count and its share of that true digit."""
    rows = []
    for true, row in enumerate(result.confusion):
        total = max(sum(row), 1)
        for predicted, count in enumerate(row):
            rows.append({"True": true, "Predicted": predicted, "Count": count, "Share": count / total})
    return pd.DataFrame(rows, columns=["True", "Predicted", "Count", "Share"])


def confusion_chart(frame: pd.DataFrame) -> alt.LayerChart:
    """The confusion matrix as a heatmap: rows are true digits, columns what the model said."""
    base = alt.Chart(frame).encode(
        x=alt.X("Predicted:O", title="Predicted digit", axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("True:O", title="True digit"),
    )
    cells = base.mark_rect(stroke="white", strokeWidth=1).encode(
        color=alt.Color("Share:Q", title="Share of the row", scale=alt.Scale(domain=[0, 1], scheme="blues"),
                        legend=alt.Legend(format="%", orient="right", direction="vertical", gradientLength=260)),
        tooltip=["True:O", "Predicted:O", alt.Tooltip("Count:Q", format=","), alt.Tooltip("Share:Q", format=".1%")],
    )
    text = base.mark_text(fontSize=13).encode(
        text=alt.Text("Count:Q", format="d"),
        color=alt.condition(alt.datum.Share > 0.5, alt.value("white"), alt.value("#333333")),
    )
    return _readable(alt.layer(cells, text).properties(height=440))


# --- tables and pictures ----------------------------------------------------------------------


def recorded_by_angle(metadata: Mapping, angles: Sequence[int]) -> dict[int, AngleResult] | None:
    """The loss and accuracy a checkpoint's JSON recorded at each angle, when it has them all.

    The CLI measures every checkpoint it saves at 0, 90, 180, 270 and 360 degrees; this
    turns those numbers back into AngleResults (without per-class details) so the report's
    tables can be shown without evaluating again. None when any angle is missing.
    """
    test = metadata.get("test") if isinstance(metadata, Mapping) else None
    by_angle = test.get("by_angle") if isinstance(test, Mapping) else None
    if not isinstance(by_angle, Mapping):
        return None
    count = metadata.get("data", {}).get("test_images", 0) if isinstance(metadata.get("data"), Mapping) else 0
    results = {}
    for angle in angles:
        row = by_angle.get(str(angle))
        if not isinstance(row, Mapping):
            return None
        try:
            loss, accuracy = float(row["loss"]), float(row["accuracy"])
        except (KeyError, TypeError, ValueError):
            return None
        results[angle] = AngleResult(float(angle), loss, accuracy, (), (), int(count or 0))
    return results


def first_of_each_class(labels: torch.Tensor, classes: Sequence[int] = tuple(range(NUM_CLASSES))) -> list[int]:
    """The index of the first example of each class (in the order given), skipping absent ones."""
    indices = []
    for digit in classes:
        found = (labels == digit).nonzero()
        if len(found):
            indices.append(int(found[0]))
    return indices


def digit_pictures(images: torch.Tensor, scale: int = 4) -> list[np.ndarray]:
    """Images (N, 1, H, W) in [0, 1] to uint8 pictures scaled up `scale` times (no blur)."""
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"Expected images of shape (N, 1, H, W), got {tuple(images.shape)}.")
    if scale < 1:
        raise ValueError(f"scale must be at least 1, got {scale}.")
    pixels = (images[:, 0].clamp(0, 1) * 255).round().to(torch.uint8)
    pixels = pixels.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    return [picture.numpy() for picture in pixels]
