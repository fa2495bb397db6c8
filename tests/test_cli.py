"""The command line: errors are one sentence and a non-zero exit; train writes a usable checkpoint."""

import json
import os
import subprocess
import sys

import pytest

from rotinv.checkpoints import load_checkpoint

from realdata import ROOT, real_data_root


def run_cli(*args, data_root=None, check=False, env=None):
    env = dict(os.environ if env is None else env)
    if data_root is not None:
        env["ROTINV_DATA_ROOT"] = data_root
    result = subprocess.run([sys.executable, "-m", "rotinv", *args], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=900)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_train_writes_checkpoint_and_metadata_that_sweep_reads(tmp_path):
    out = tmp_path / "tiny.pt"
    run_cli("train", "--epochs", "1", "--train-size", "1000", "--seed", "3", "--out", str(out),
            data_root=real_data_root(), check=True)
    metadata = json.loads(out.with_suffix(".json").read_text())
    assert metadata["architecture"] == "lenet5" and metadata["training"]["seed"] == 3
    assert metadata["data"]["train_images"] == 1000
    assert set(metadata["test"]["by_angle"]) == {"0", "90", "180", "270", "360"}
    upright, full_turn = metadata["test"]["by_angle"]["0"], metadata["test"]["by_angle"]["360"]
    assert (upright["loss"], upright["accuracy"]) == (full_turn["loss"], full_turn["accuracy"])
    assert metadata["training"]["torch_threads"] >= 1
    model, _ = load_checkpoint(out)
    result = run_cli("sweep", "--model", str(out), "--angles", "0,90", "--format", "json",
                     data_root=real_data_root(), check=True)
    rows = json.loads(result.stdout)
    assert [row["angle"] for row in rows] == [0, 90]
    assert rows[0]["accuracy"] == pytest.approx(metadata["test"]["by_angle"]["0"]["accuracy"], abs=1e-9)


@pytest.mark.parametrize("args, message", [
    (["sweep", "--angles", "0,ninety"], "not a number"),
    (["sweep", "--angles", ""], "at least one angle"),
    (["sweep", "--model", "models/absent.pt"], "no checkpoint file"),
    (["train", "--epochs", "0", "--out", "x.pt"], "between 1 and 200"),
    (["train", "--lr", "-1", "--out", "x.pt"], "greater than 0"),
    (["train", "--batch-size", "0", "--out", "x.pt"], "between 1 and 60000"),
    (["train", "--arch", "resnet", "--out", "x.pt"], "invalid choice"),
    (["train", "--out", "model.txt"], ".pt"),
])
def test_bad_input_is_one_clear_sentence_and_a_nonzero_exit(args, message):
    result = run_cli(*args, data_root=real_data_root())
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_data_names_the_directory_and_the_fix(tmp_path):
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    os.chmod(empty, 0o555)  # read-only and empty: no download can land here either
    result = run_cli("sweep", "--data-root", str(empty))
    assert result.returncode == 2
    assert str(empty) in result.stderr and "ROTINV_DATA_ROOT" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_root_that_is_a_file(tmp_path):
    file = tmp_path / "mnist.zip"
    file.write_bytes(b"not a directory")
    result = run_cli("sweep", "--data-root", str(file))
    assert result.returncode == 2 and "is a file, not a directory" in result.stderr


def test_train_with_the_lecture_preset_records_its_recipe(tmp_path):
    from rotinv.training import PRESETS

    out = tmp_path / "lecture.pt"
    run_cli("train", "--preset", "lecture", "--epochs", "1", "--train-size", "256", "--seed", "2",
            "--out", str(out), data_root=real_data_root(), check=True)
    training = json.loads(out.with_suffix(".json").read_text())["training"]
    lecture = PRESETS["lecture"]
    assert training["preset"] == "lecture" and training["epochs"] == 1 and training["seed"] == 2  # given: kept
    assert (training["learning_rate"], training["schedule"]) == (lecture["learning_rate"], lecture["schedule"])
    assert training["lr_schedule"].startswith("one-cycle")
    assert training["precision"] == "auto" and training["precision_used"] in ("fp32", "bf16")
    assert training["precision_reason"].startswith(training["precision_used"])
    bad = run_cli("train", "--preset", "exam", "--out", str(out))
    assert bad.returncode == 2 and "invalid choice: 'exam'" in bad.stderr
