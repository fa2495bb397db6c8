"""The Rotation sweep page, run headless with AppTest on the real MNIST test set.

Cheap on purpose: the sweep is set to 0°, 90° and 180° (three evaluations of the test
set), and 360° would cost nothing more (it shares 0°'s cache entry).
"""

import json

import app_shared
from rotinv.evaluation import evaluate

SWEEP = "app_pages/2_sweep.py"


def open_sweep(at, start=0, stop=180, step=90):
    # Widget values set before the page first runs, so the default 0–360 every 15° never runs.
    at.session_state["sweep_start"] = start
    at.session_state["sweep_stop"] = stop
    at.session_state["sweep_step"] = step
    return at.switch_page(SWEEP).run()


def test_sweep_page_matches_evaluate_and_repeats_from_the_cache(new_app, shipped_lenet5, mnist_test, monkeypatch):
    model, _ = shipped_lenet5
    at = open_sweep(new_app())
    assert not at.exception
    assert not at.error
    assert at.title[0].value == "Rotation sweep"

    charts = at.get("vega_lite_chart")
    assert len(charts) >= 4  # accuracy, loss, per-class heatmap, 6-and-9, confusion
    accuracy_chart = charts[0].proto.SerializeToString()  # the spec and its datasets
    assert "Test accuracy" in json.loads(charts[0].proto.spec)["layer"][1]["encoding"]["y"]["title"]
    assert b"report: 13%" in accuracy_chart  # the report's 270° (clockwise), drawn at our 90°
    assert b"report: 33%" in accuracy_chart

    table = at.dataframe[0].value
    assert list(table["Angle (°)"]) == [0.0, 90.0, 180.0]
    shown = float(table.loc[table["Angle (°)"] == 90, "Accuracy"].iloc[0])
    expected = evaluate(model, mnist_test.images, mnist_test.labels, 90).accuracy
    assert round(shown, 4) == round(expected, 4)
    assert at.caption and all(caption.value for caption in at.caption)

    # The same sweep again evaluates nothing; nor does 360°, which is 0° turned a full turn.
    calls = []
    real_evaluate = app_shared.evaluate
    monkeypatch.setattr(app_shared, "evaluate", lambda *args, **kw: calls.append(args[3]) or real_evaluate(*args, **kw))
    at.run()
    at.number_input(key="sweep_start").set_value(180)
    at.number_input(key="sweep_stop").set_value(360)
    at.number_input(key="sweep_step").set_value(180)
    at.run()
    assert not at.exception
    assert calls == []
    again = at.dataframe[0].value
    assert list(again["Angle (°)"]) == [180.0, 360.0]
    assert float(again["Accuracy"].iloc[1]) == float(table["Accuracy"].iloc[0])

def test_bad_angle_range_is_an_error_message_not_a_traceback(new_app):
    at = open_sweep(new_app(), start=180, stop=90, step=90)
    assert not at.exception
    assert any("must not be below" in error.value for error in at.error)
    assert not at.get("vega_lite_chart")


def test_without_mnist_or_models_the_page_explains(new_app, tmp_path, monkeypatch):
    not_a_folder = tmp_path / "mnist.txt"
    not_a_folder.write_text("not a data root")
    monkeypatch.setenv("ROTINV_DATA_ROOT", str(not_a_folder))
    at = new_app().switch_page(SWEEP).run()
    assert not at.exception
    assert any("needs the MNIST test set" in error.value for error in at.error)

    monkeypatch.setenv("ROTINV_MODELS_DIR", str(tmp_path))
    at = new_app().switch_page(SWEEP).run()
    assert not at.exception
    assert any("no model to sweep" in info.value for info in at.info)


def test_first_visit_shows_the_recorded_sweep_at_once_and_live_measures_the_same(new_app, monkeypatch):
    calls = []
    real_evaluate = app_shared.evaluate
    monkeypatch.setattr(app_shared, "evaluate", lambda *args, **kw: calls.append(args[3]) or real_evaluate(*args, **kw))
    at = new_app().switch_page(SWEEP).run()  # the default view: 0–360° every 15°
    assert not at.exception and not at.error
    assert calls == []  # every point came from models/lenet5.json's recorded sweep
    table = at.dataframe[0].value
    assert list(table["Angle (°)"]) == [float(a) for a in range(0, 361, 15)]
    assert any("25 of the 25 points were measured earlier" in caption.value for caption in at.caption)

    at.number_input(key="sweep_start").set_value(30)
    at.number_input(key="sweep_stop").set_value(60)
    at.number_input(key="sweep_step").set_value(30)
    at.toggle(key="sweep_live").set_value(True)
    at.run()
    assert not at.exception
    assert not any("measured earlier" in caption.value for caption in at.caption)
    live = at.dataframe[0].value
    recorded = table.set_index("Angle (°)")["Accuracy"]
    assert [float(a) for a in live["Accuracy"]] == [float(recorded[30.0]), float(recorded[60.0])]


def test_a_long_live_measurement_asks_first_and_then_measures(new_app, monkeypatch):
    monkeypatch.setattr(app_shared, "ASK_BEFORE_LIVE_S", 0.0)  # so that two angles count as long
    at = open_sweep(new_app(), start=5, stop=10, step=5)  # angles no shipped record holds
    assert not at.exception
    assert any("2 of these points would be measured now" in warning.value for warning in at.warning)
    assert not at.dataframe and not at.get("vega_lite_chart")  # nothing measured yet

    at.button(key="sweep_measure_now").click()
    at.run()
    assert not at.exception and not at.warning
    assert list(at.dataframe[0].value["Angle (°)"]) == [5.0, 10.0]
    at.run()  # settings this session has agreed to are not asked about again
    assert not at.warning and list(at.dataframe[0].value["Angle (°)"]) == [5.0, 10.0]

    at.toggle(key="sweep_live").set_value(True)  # new settings: measured live, asked again
    at.number_input(key="sweep_stop").set_value(5)
    at.run()
    assert any("1 of these points would be measured now" in warning.value for warning in at.warning)


def test_the_scoreboard_ranks_every_shipped_model_from_its_recorded_sweep(new_app, mnist_test):
    from rotinv.records import canonical_key

    at = open_sweep(new_app())
    assert not at.exception
    [board] = [frame.value for frame in at.dataframe if "At its worst" in frame.value.columns]
    shipped = {entry.label: entry for entry in app_shared.shipped_models()}
    assert sorted(board["Model"]) == sorted(shipped)
    for _, row in board.iterrows():
        entry = shipped[row["Model"]]
        sweep = [entry.records[canonical_key(entry.fingerprint, mnist_test.sha256, float(a), "bilinear", 1)].at(a)
                 for a in range(0, 360, 15)]
        worst = min(sweep, key=lambda r: r.accuracy)
        assert row["At its worst"] == worst.accuracy and row["Worst angle"] == f"{worst.angle:g}°"
        assert row["6s read as 6"] == sum(r.per_class_accuracy[6] for r in sweep) / len(sweep)
        assert row["Parameters"] == entry.metadata["parameters"]
    # best first: the invariant networks lead, each at least 99% at its worst angle
    assert set(board["Model"][:2]) == {"C4 CNN + rotation augmentation", "C8 CNN + rotation augmentation"}
    assert (board["At its worst"][:2] >= 0.99).all() and (board["At its worst"][2:] < 0.99).all()
    verdict = next(m.value for m in at.markdown if m.value.startswith("Right at every angle"))
    assert "**C4 CNN + rotation augmentation**" in verdict and "LeNet-5 (upright" not in verdict
    assert any("tell 6 from 9 by handwriting alone" in m.value for m in at.markdown)
    [literature] = [frame.value for frame in at.dataframe if "Result" in frame.value.columns]
    assert literature["Test accuracy"].iloc[0] == 0.97 and literature["Result"].str.contains("MNIST-rot").sum() == 3
    assert any("different benchmark" in caption.value for caption in at.caption)
