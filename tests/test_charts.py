"""rotinv.charts as pure functions: frames in the right shape, charts that serialise."""

import altair as alt
import numpy as np
import pytest
import torch

from rotinv import charts
from rotinv.evaluation import summarise
from rotinv.report import report_accuracy_by_our_angle
from rotinv.training import Progress


def result(angle, predicted, labels):
    logits = torch.nn.functional.one_hot(torch.tensor(predicted), 10).float() * 5
    return summarise(angle, logits, torch.tensor(labels))


@pytest.fixture
def sweep():
    labels = [6, 6, 9, 9, 1]
    return {
        "Model A": [result(0, [6, 6, 9, 9, 1], labels), result(90, [0, 0, 0, 0, 1], labels),
                    result(180, [9, 6, 6, 9, 1], labels)],
        "Model B": [result(0, [6, 6, 9, 9, 1], labels), result(90, [6, 6, 9, 9, 1], labels),
                    result(180, [6, 6, 9, 9, 1], labels)],
    }


def test_history_and_training_curves():
    history = [Progress(1, 20, 40, 1.5, 0.4, 1280), Progress(1, 40, 40, 0.7, 0.8, 2560)]
    frame = charts.history_frame(history)
    assert frame["Step"].tolist() == [20, 40] and frame["Loss"].tolist() == [1.5, 0.7]
    for metric in ("Loss", "Accuracy"):
        spec = charts.training_curve(history, metric, total_steps=100).to_dict()
        assert spec["layer"][0]["encoding"]["x"]["scale"]["domain"] == [0, 100]  # the frame the line grows into
        assert spec["config"]["axis"]["labelFontSize"] >= 14
        [rows] = spec["datasets"].values()
        assert [row["Step"] for row in rows] == [20, 40]
        # The template the Train page redraws during a run: the same chart, its data named, not included.
        template = charts.vega_lite_spec(charts.training_curve_template(metric, 100))
        assert template["data"] == {"name": charts.TEMPLATE_DATA} and "datasets" not in template
        assert template["layer"] == spec["layer"]
    assert charts.history_frame([]).empty
    charts.training_curve([], "Loss").to_dict()  # an empty history still draws
    with pytest.raises(ValueError):
        charts.training_curve(history, "Speed")


def test_sweep_frame_and_accuracy_chart_with_the_reports_points(sweep):
    frame = charts.sweep_frame(sweep)
    assert list(frame.columns) == ["Model", "Angle (°)", "Accuracy", "Loss"]
    assert len(frame) == 6
    assert frame.query("Model == 'Model A' and `Angle (°)` == 90")["Accuracy"].item() == pytest.approx(0.2)

    points = charts.report_points(report_accuracy_by_our_angle(), frame["Angle (°)"].tolist())
    # 270 is outside a 0–180 sweep; 360, the upright number, is drawn at 0°, the same turn
    assert points["Angle (°)"].tolist() == [0.0, 90.0, 180.0]
    assert points["Label"].tolist() == ["report: 97%", "report: 13%", "report: 33%"]

    chart = charts.accuracy_chart(frame, report_accuracy_by_our_angle())
    assert isinstance(chart, alt.LayerChart)
    spec = chart.to_dict()
    # chance line, models, report points, then their labels: above the high one at the left end
    # (leaning right), below the low ones in the middle and at the right end (leaning left)
    assert len(spec["layer"]) == 6
    assert spec["layer"][1]["encoding"]["color"]["field"] == "Model"
    assert spec["layer"][2]["mark"]["filled"] is False  # hollow: the model's own point shows through
    assert [(layer["mark"]["align"], layer["mark"]["dy"] < 0) for layer in spec["layer"][3:]] == [
        ("left", True), ("center", False), ("right", False)]
    assert spec["config"]["axis"]["titleFontSize"] >= 16
    assert spec["layer"][1]["encoding"]["color"]["legend"]["columns"] == 1  # a narrow chart cuts no model off
    assert len(charts.accuracy_chart(frame).to_dict()["layer"]) == 2  # without the report
    assert charts.loss_chart(frame).to_dict()["encoding"]["y"]["field"] == "Loss"


def test_report_points_repeat_a_full_turn_apart():
    report = report_accuracy_by_our_angle()
    points = charts.report_points(report, [-90.0, 0.0, 450.0])
    assert points["Angle (°)"].tolist() == [-90.0, 0.0, 90.0, 180.0, 270.0, 360.0, 450.0]
    assert points.set_index("Angle (°)")["Accuracy"].to_dict() == {
        -90.0: report[270], 0.0: report[360], 90.0: report[90], 180.0: report[180], 270.0: report[270],
        360.0: report[360], 450.0: report[90]}
    assert charts.report_points(report, [45.0, 60.0]).empty
    one = charts.accuracy_chart(charts.sweep_frame({"A": [result(90, [0], [0])]}), report).to_dict()
    assert [layer["mark"]["align"] for layer in one["layer"][3:]] == ["center"]  # one angle: no end to lean from


def test_sweep_table_has_a_row_per_angle_and_a_column_per_model(sweep):
    frame = charts.sweep_frame(sweep)
    table = charts.sweep_table(frame, "Accuracy")
    assert list(table.columns) == ["Angle (°)", "Model A", "Model B"]
    assert table["Angle (°)"].tolist() == [0.0, 90.0, 180.0]
    assert table["Model A"].tolist() == pytest.approx([1.0, 0.2, 0.6]) and table["Model B"].tolist() == [1.0] * 3
    losses = charts.sweep_table(frame, "Loss")
    assert losses["Model A"].tolist() == frame[frame["Model"] == "Model A"]["Loss"].tolist()
    single = charts.sweep_table(charts.sweep_frame({"Model A": sweep["Model A"]}), "Accuracy")
    assert list(single.columns) == ["Angle (°)", "Accuracy"]  # one model: the column is the metric
    with pytest.raises(ValueError):
        charts.sweep_table(frame, "Speed")


def test_words_and_the_classifier_input():
    from rotinv.architectures import build_model
    from rotinv.introspection import classifier_input
    from rotinv.report import counted

    assert [counted(n, "epoch") for n in (0, 1, 6, 2000)] == ["0 epochs", "1 epoch", "6 epochs",
                                                                     "2,000 epochs"]
    shape = classifier_input(build_model("lenet5"))
    assert (shape.channels, shape.side, shape.inputs, shape.fc1_parameters) == (120, 7, 5_880, 5_880 * 120 + 120)
    assert classifier_input(torch.nn.Linear(2, 2)) is None


def test_per_class_heatmap_and_the_six_and_nine_highlight(sweep):
    frame = charts.per_class_frame(sweep["Model A"])
    assert len(frame) == 3 * 10
    at_180 = frame[frame["Angle (°)"] == 180].set_index("Digit")["Accuracy"]
    assert at_180[6] == 0.5 and at_180[9] == 0.5 and at_180[1] == 1.0
    assert charts.per_class_heatmap(frame).to_dict()["encoding"]["color"]["scale"]["domain"] == [0, 1]
    spec = charts.highlight_digits_chart(frame, (6, 9)).to_dict()
    assert spec["layer"][1]["encoding"]["color"]["scale"]["domain"] == ["digit 6", "digit 9"]


def test_confusion_frame_and_chart(sweep):
    half_turn = sweep["Model A"][2]
    frame = charts.confusion_frame(half_turn)
    assert len(frame) == 100
    six_as_nine = frame[(frame["True"] == 6) & (frame["Predicted"] == 9)].iloc[0]
    assert six_as_nine["Count"] == 1 and six_as_nine["Share"] == 0.5
    assert frame[frame["True"] == 3]["Share"].sum() == 0  # a digit with no images: no division by zero
    assert isinstance(charts.confusion_chart(frame), alt.LayerChart)
    charts.confusion_chart(frame).to_dict()


def test_recorded_results_from_checkpoint_metadata():
    metadata = {"data": {"test_images": 10_000},
                "test": {"by_angle": {str(a): {"angle": a, "loss": 0.1 * a, "accuracy": 0.5} for a in (0, 90)}}}
    recorded = charts.recorded_by_angle(metadata, (0, 90))
    assert recorded[90].loss == pytest.approx(9.0) and recorded[90].accuracy == 0.5 and recorded[0].count == 10_000
    assert charts.recorded_by_angle(metadata, (0, 90, 180)) is None  # one missing angle: measure instead
    assert charts.recorded_by_angle({}, (0,)) is None
    assert charts.recorded_by_angle({"test": {"by_angle": {"0": {"loss": "x"}}}}, (0,)) is None


def test_gallery_helpers():
    labels = torch.tensor([3, 1, 3, 0, 1])
    assert charts.first_of_each_class(labels) == [3, 1, 0]
    assert charts.first_of_each_class(labels, (1, 3)) == [1, 0]
    images = torch.zeros(2, 1, 28, 28)
    images[0, 0, 0, 0] = 1.0
    pictures = charts.digit_pictures(images, scale=3)
    assert len(pictures) == 2 and pictures[0].shape == (84, 84) and pictures[0].dtype == np.uint8
    assert pictures[0][:3, :3].min() == 255 and pictures[0][3:, 3:].max() == 0
    with pytest.raises(ValueError):
        charts.digit_pictures(torch.zeros(28, 28))
