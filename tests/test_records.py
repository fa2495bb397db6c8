"""Recorded sweeps: stored in a checkpoint's sidecar, valid only for its weights and data."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from rotinv.checkpoints import CheckpointError, load_checkpoint, metadata_path, weights_fingerprint
from rotinv.cli import main
from rotinv.evaluation import evaluate
from rotinv.records import RECORDS_KEY, canonical_key, record, recorded_results

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "lenet5.pt"


@pytest.fixture
def checkpoint(tmp_path):
    copy = tmp_path / "lenet5.pt"
    shutil.copyfile(SHIPPED, copy)
    shutil.copyfile(metadata_path(SHIPPED), metadata_path(copy))
    return copy


def test_keys_share_a_full_turn_and_exact_quarter_turns():
    assert canonical_key("w", "d", 360.0, "nearest", 1) == canonical_key("w", "d", 0.0, "bilinear", 1)
    assert canonical_key("w", "d", -90.0, "nearest", 1) == ("w", "d", 270.0, "bilinear", 1)
    assert canonical_key("w", "d", 45.0, "nearest", 1)[3] == "nearest"  # interpolation matters here
    assert canonical_key("w", "d", 90.0, "nearest", 8)[3] == "nearest"  # 45° copies are interpolated
    assert canonical_key("w", "d", 90.0, "nearest", 4)[3] == "bilinear"


def test_record_stores_what_evaluate_measures_and_touches_nothing_else(checkpoint, mnist_test):
    small = mnist_test.subset(600)
    weights_before = checkpoint.read_bytes()
    metadata_before = json.loads(metadata_path(checkpoint).read_text())
    record(checkpoint, small, angles=[0.0, 15.0, 90.0], settings=[("bilinear", 1), ("nearest", 1)], command="test")

    assert checkpoint.read_bytes() == weights_before
    model, metadata = load_checkpoint(checkpoint)  # the sidecar still belongs to these weights
    assert metadata["weights_sha256"] == hashlib.sha256(weights_before).hexdigest()
    assert {k: v for k, v in metadata.items() if k not in (RECORDS_KEY, "weights_sha256")} == \
        {k: v for k, v in metadata_before.items() if k not in (RECORDS_KEY, "weights_sha256")}

    results = recorded_results(metadata)
    fingerprint = weights_fingerprint(model)
    for angle, interpolation in [(15.0, "bilinear"), (15.0, "nearest"), (90.0, "nearest"), (360.0, "bilinear")]:
        stored = results[canonical_key(fingerprint, small.sha256, angle, interpolation, 1)]
        live = evaluate(model, small.images, small.labels, angle, interpolation)
        assert stored.to_dict() | {"angle": angle} == live.to_dict()
    # Other data or other weights find nothing.
    assert canonical_key(fingerprint, mnist_test.subset(599).sha256, 15.0, "bilinear", 1) not in results
    assert canonical_key("0" * 16, small.sha256, 15.0, "bilinear", 1) not in results


def test_recording_again_replaces_the_same_setting_and_keeps_the_others(checkpoint, mnist_test):
    small = mnist_test.subset(300)
    record(checkpoint, small, angles=[0.0, 30.0], settings=[("bilinear", 1), ("nearest", 1)])
    record(checkpoint, small, angles=[45.0], settings=[("nearest", 1)])
    sweeps = json.loads(metadata_path(checkpoint).read_text())[RECORDS_KEY]
    kept = [(s["interpolation"], [r["angle"] for r in s["results"]]) for s in sweeps
            if s["test_set_sha256"] == small.sha256]
    assert sorted(kept) == [("bilinear", [0.0, 30.0]), ("nearest", [45.0])]


def test_a_sidecar_for_other_weights_is_refused_and_left_alone(checkpoint, mnist_test):
    sidecar = metadata_path(checkpoint)
    foreign = json.loads(sidecar.read_text()) | {"weights_sha256": "0" * 64}
    sidecar.write_text(json.dumps(foreign))
    before = sidecar.read_bytes()
    with pytest.raises(CheckpointError, match="does not describe the weights"):
        record(checkpoint, mnist_test.subset(100), angles=[0.0])
    assert sidecar.read_bytes() == before


def test_malformed_records_are_ignored_not_trusted():
    assert recorded_results({RECORDS_KEY: "nonsense"}) == {}
    assert recorded_results({RECORDS_KEY: [{"results": [{"angle": 0}]}, 7]}) == {}


def test_the_cli_records_and_reports(checkpoint, data_root, capsys):
    assert main(["record", str(checkpoint), "--angles", "0,90", "--interpolation", "bilinear",
                 "--data-root", data_root]) == 0
    out = capsys.readouterr()
    measured = json.loads(metadata_path(SHIPPED).read_text())["test"]["by_angle"]  # written by `train`
    upright, turned = 100 * measured["0"]["accuracy"], 100 * measured["90"]["accuracy"]
    assert f"bilinear, 1 copy: {upright:.2f}% at 0°, worst {turned:.2f}% at 90°" in out.out
    sweeps = json.loads(metadata_path(checkpoint).read_text())[RECORDS_KEY]
    assert any(s["command"].startswith("python -m rotinv record") and len(s["results"]) == 2 for s in sweeps)
    assert main(["record", str(checkpoint.with_name("missing.pt"))]) == 2
    assert "There is no checkpoint file" in capsys.readouterr().err


def test_sidecar_text_keeps_every_value_and_puts_number_lists_on_one_line():
    from rotinv.checkpoints import metadata_text

    metadata = {"confusion": [[1, 0], [2, 30]], "per_class": [0.5, 1e-07, -2.0], "names": ["a", "b"],
                "nested": {"empty": [], "mixed": [1, "x"]}}
    text = metadata_text(metadata)
    assert json.loads(text) == metadata
    assert "[1, 0]" in text and "[0.5, 1e-07, -2.0]" in text


def test_train_with_record_leaves_a_checkpoint_the_app_can_show_at_once(tmp_path, data_root, monkeypatch, capsys):
    import rotinv.cli

    monkeypatch.setattr(rotinv.cli, "DEFAULT_ANGLES", (0.0, 45.0))  # the real default is 24 angles
    out = tmp_path / "tiny.pt"
    assert main(["train", "--epochs", "1", "--train-size", "256", "--seed", "1", "--record",
                 "--out", str(out), "--data-root", data_root]) == 0
    model, metadata = load_checkpoint(out)
    sweeps = metadata[RECORDS_KEY]
    assert sorted(s["interpolation"] for s in sweeps) == ["bilinear", "nearest"]
    assert all([r["angle"] for r in s["results"]] == [0.0, 45.0] for s in sweeps)
    assert all(s["weights_fingerprint"] == weights_fingerprint(model) for s in sweeps)
    assert all(s["command"].startswith("python -m rotinv train") for s in sweeps)
    assert "Stored in" in capsys.readouterr().err


def _result(confusion, loss=0.5, angle=15.0):
    from rotinv.evaluation import AngleResult

    total = sum(map(sum, confusion))
    return AngleResult(angle, loss, sum(confusion[i][i] for i in range(len(confusion))) / total,
                       tuple(row[i] / sum(row) for i, row in enumerate(confusion)),
                       tuple(tuple(row) for row in confusion), total)


def test_discrepancy_counts_the_predictions_that_moved_and_the_loss_rounding():
    from rotinv.records import LOSS_RELATIVE_TOLERANCE, MOVED_PREDICTIONS_TOLERANCE, discrepancy, matches

    recorded = _result([[50, 0, 0], [0, 40, 0], [0, 0, 10]])
    assert discrepancy(recorded, recorded) == discrepancy(recorded, _result([[50, 0, 0], [0, 40, 0], [0, 0, 10]]))
    assert discrepancy(recorded, recorded).moved_predictions == 0
    # one image of class 0 now read as a 1, one of class 2 as a 0: two moved
    moved_two = _result([[49, 1, 0], [0, 40, 0], [1, 0, 9]])
    assert discrepancy(recorded, moved_two).moved_predictions == 2
    # a wrong answer that changes to another wrong answer moves a prediction, accuracy unchanged
    assert discrepancy(_result([[49, 1, 0], [0, 40, 0], [0, 0, 10]]),
                       _result([[49, 0, 1], [0, 40, 0], [0, 0, 10]])).moved_predictions == 1
    too_many = _result([[50 - MOVED_PREDICTIONS_TOLERANCE - 1, MOVED_PREDICTIONS_TOLERANCE + 1, 0],
                        [0, 40, 0], [0, 0, 10]])
    assert matches(recorded, moved_two) and not matches(recorded, too_many)
    # the loss: rounding passes, a real change does not, NaN never matches
    assert matches(recorded, _result(recorded.confusion, loss=0.5 * (1 + LOSS_RELATIVE_TOLERANCE / 2)))
    assert not matches(recorded, _result(recorded.confusion, loss=0.5 * (1 + 3 * LOSS_RELATIVE_TOLERANCE)))
    assert not matches(recorded, _result(recorded.confusion, loss=float("nan")))
    # a full turn is the same angle; another angle or test set cannot be compared
    assert matches(recorded, _result(recorded.confusion, angle=375.0))
    with pytest.raises(ValueError, match="cannot be compared"):
        discrepancy(recorded, _result(recorded.confusion, angle=30.0))
    with pytest.raises(ValueError, match="cannot be compared"):
        discrepancy(recorded, _result([[51, 0, 0], [0, 40, 0], [0, 0, 10]]))


def test_record_check_reports_a_record_that_is_off_and_writes_nothing(checkpoint, data_root, capsys):
    sidecar = metadata_path(checkpoint)
    metadata = json.loads(sidecar.read_text())
    sweep = next(s for s in metadata[RECORDS_KEY] if s["interpolation"] == "bilinear" and s["tta_copies"] == 1)
    row = next(r for r in sweep["results"] if r["angle"] == 30.0)
    row["confusion"][7][7] -= 5  # five sevens recorded as ones: no other CPU rounds like that
    row["confusion"][7][1] += 5
    sidecar.write_text(json.dumps(metadata))
    before = (checkpoint.read_bytes(), sidecar.read_bytes())

    assert main(["record", "--check", str(checkpoint), "--angles", "15,30", "--interpolation", "bilinear",
                 "--tta-copies", "1", "--data-root", data_root]) == 1
    out = capsys.readouterr().out
    assert "1 result(s) differ from the record by more than rounding" in out and "30° (bilinear, 1)" in out
    assert (checkpoint.read_bytes(), sidecar.read_bytes()) == before
    assert main(["record", "--check", str(checkpoint), "--angles", "15", "--interpolation", "bilinear",
                 "--data-root", data_root]) == 0
    assert "Every result matches its record up to rounding" in capsys.readouterr().out
    # nothing recorded at that angle: said so, not an empty table
    assert main(["record", "--check", str(checkpoint), "--angles", "7.5", "--data-root", data_root]) == 2
    assert "no recorded sweep" in capsys.readouterr().err


def test_lookups_name_the_angle_asked_for_and_count_only_what_no_record_answers(checkpoint, mnist_test):
    from rotinv.records import recorded_at, unrecorded_angles

    small = mnist_test.subset(200)
    record(checkpoint, small, angles=[0.0, 45.0], settings=[("bilinear", 1)])
    model, metadata = load_checkpoint(checkpoint)
    records, fingerprint = recorded_results(metadata), weights_fingerprint(model)
    full_turn = recorded_at(records, fingerprint, small.sha256, 360.0, "nearest", 1)  # exact: 0°'s record
    assert full_turn is not None and full_turn.angle == 360.0
    assert full_turn.to_dict() | {"angle": 0.0} == recorded_at(records, fingerprint, small.sha256, 0, "bilinear", 1).to_dict()
    assert recorded_at(records, fingerprint, small.sha256, 45.0, "nearest", 1) is None  # other interpolation
    # 360° and 720° share 0°'s result; 45° is recorded; 30° twice is one measurement
    assert unrecorded_angles(records, fingerprint, small.sha256, [0, 30, 45, 360, 30.0, 720], "bilinear", 1) == [30.0]
    assert unrecorded_angles({}, fingerprint, small.sha256, [0, 360, 90], "bilinear", 1) == [0.0, 90.0]
