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
