"""Hostile and broken input, at the library and the command line: only clean errors come out.

A share link is public: anyone can upload anything. Every case here must end in one clear
sentence (CheckpointError / ValueError in the library, exit status 2 and that sentence on
stderr in the CLI) with nothing executed and nothing already saved lost.
"""

import io
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rotinv.checkpoints import (
    MAX_CHECKPOINT_BYTES, CheckpointError, load_checkpoint, load_checkpoint_bytes, save_checkpoint,
    state_dict_bytes, weights_fingerprint,
)
from rotinv.data import DataUnavailableError, load_mnist, mnist_available, resolve_data_root
from rotinv.evaluation import angle_range, evaluate, parse_angles
from rotinv.models import LeNet5

from realdata import ROOT, real_data_root
from test_cli import run_cli


class WritesAMarker:
    """Unpickling this would run a shell command that creates a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def lenet_state():
    torch.manual_seed(0)
    return LeNet5().state_dict()


def hostile_payloads(marker: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, a phrase the one-sentence error must contain)."""
    good = torch_bytes(lenet_state())
    return {
        "pickle that runs a command (torch.save)": (torch_bytes({"x": WritesAMarker(marker)}), "refused for safety"),
        "pickle that runs a command (raw pickle)": (pickle.dumps(WritesAMarker(marker), protocol=2), "refused for safety"),
        "state_dict with a command inside": (
            torch_bytes({**lenet_state(), "evil": WritesAMarker(marker)}), "refused for safety"),
        "truncated checkpoint": (good[: len(good) // 2], "not a readable"),
        "random bytes": (random.Random(0).randbytes(4096), "not a readable"),
        "random bytes starting like a pickle": (b"\x80\x02" + random.Random(1).randbytes(4096), "not a readable"),
        "empty file": (b"", "empty"),
        "another architecture": (torch_bytes(nn.Sequential(nn.Linear(4, 2)).state_dict()), "known architecture"),
        "wrong shapes": (torch_bytes({**lenet_state(), "fc1.weight": torch.zeros(120, 10)}), "has shape"),
        "NaN weights": (torch_bytes({**lenet_state(), "fc2.bias": torch.full((84,), float("nan"))}), "NaN or infinite"),
        "infinite weights": (torch_bytes({**lenet_state(), "conv2.weight": torch.full((16, 6, 5, 5), float("inf"))}),
                             "NaN or infinite"),
        "a list, not a state_dict": (torch_bytes([torch.zeros(3)]), "other than a state_dict"),
        "over the size limit": (b"\0" * (MAX_CHECKPOINT_BYTES + 1), "more than a checkpoint"),
    }


CASES = list(hostile_payloads(Path("/nonexistent")).keys())


@pytest.mark.parametrize("case", CASES)
def test_library_refuses_with_one_sentence_and_runs_nothing(tmp_path, case):
    marker = tmp_path / "pwned"
    payload, phrase = hostile_payloads(marker)[case]
    with pytest.raises(CheckpointError) as error:
        load_checkpoint_bytes(payload)
    message = str(error.value)
    assert phrase in message
    assert "\n" not in message and message.endswith((".", ")"))
    assert not marker.exists()


@pytest.mark.parametrize("case", ["pickle that runs a command (torch.save)", "truncated checkpoint",
                                  "wrong shapes", "NaN weights", "over the size limit"])
def test_cli_refuses_with_one_sentence_and_a_nonzero_exit(tmp_path, case):
    marker = tmp_path / "pwned"
    payload, phrase = hostile_payloads(marker)[case]
    path = tmp_path / "upload.pt"
    path.write_bytes(payload)
    result = run_cli("sweep", "--model", str(path), "--angles", "0", data_root=real_data_root())
    assert result.returncode == 2
    assert phrase in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_cli_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    notes = tmp_path / "digits.png"
    notes.write_bytes(b"\x89PNG not really")
    result = run_cli("sweep", "--model", str(notes), data_root=real_data_root())
    assert result.returncode == 2 and "not a .pt checkpoint" in result.stderr


# --- nothing saved is lost ------------------------------------------------------------------

# Runs `python -m rotinv train` with the save slowed down at one point, so the test can
# SIGKILL it right there. The library itself has no test hooks: the harness patches it.
KILL_HARNESS = textwrap.dedent("""
    import os, sys, time
    import rotinv.checkpoints as checkpoints
    stage, flag = sys.argv[1], sys.argv[2]
    real_write, real_replace = checkpoints._write_temporary, os.replace

    def slow_write(path, payload):
        if stage == "writing":
            handle = open(str(path) + ".partial.tmp", "wb")
            handle.write(payload[: len(payload) // 2]); handle.flush()
            open(flag, "w").close(); time.sleep(60)
        return real_write(path, payload)

    def slow_replace(src, dst):
        real_replace(src, dst)
        if stage == "renaming" and str(dst).endswith(".pt"):
            open(flag, "w").close(); time.sleep(60)

    checkpoints._write_temporary = slow_write
    checkpoints.os.replace = slow_replace
    from rotinv.cli import main
    sys.exit(main(sys.argv[3:]))
""")


@pytest.mark.parametrize("stage", ["writing", "renaming"])
def test_a_train_killed_during_its_save_leaves_a_loadable_checkpoint(tmp_path, stage):
    target = tmp_path / "models" / "lenet5.pt"
    torch.manual_seed(0)
    previous = LeNet5()
    save_checkpoint(previous, target, {"architecture": "lenet5", "note": "the previous model"})
    flag = tmp_path / "in-save"
    env = {**os.environ, "ROTINV_DATA_ROOT": real_data_root()}
    process = subprocess.Popen(
        [sys.executable, "-c", KILL_HARNESS, stage, str(flag), "train", "--epochs", "1", "--train-size", "200",
         "--batch-size", "100", "--out", str(target)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not flag.exists():
            assert process.poll() is None, "train ended before reaching its save"
            assert time.monotonic() < deadline, "train never reached its save"
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    model, metadata = load_checkpoint(target)  # whole, loadable
    if stage == "writing":  # nothing renamed yet: still exactly the previous pair
        assert weights_fingerprint(model) == weights_fingerprint(previous)
        assert metadata["note"] == "the previous model"
    else:  # new weights in place, old sidecar recognised as not theirs
        assert weights_fingerprint(model) != weights_fingerprint(previous)
        assert metadata == {}


# --- data roots -----------------------------------------------------------------------------


def test_a_read_only_data_root_is_only_read(tmp_path):
    source = Path(real_data_root()) / "MNIST" / "raw"
    raw = tmp_path / "ro" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte",
                 "train-labels-idx1-ubyte"):
        os.link(source / name, raw / name) if _same_device(source, raw) else (raw / name).write_bytes(
            (source / name).read_bytes())
    for directory in (raw, raw.parent, raw.parent.parent):
        os.chmod(directory, 0o555)
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "ro").rglob("*"))
    try:
        split = load_mnist(False, tmp_path / "ro")
        assert len(split) == 10_000 and split.images.max() <= 1.0
        assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "ro").rglob("*")) == before
    finally:
        for directory in (raw.parent.parent, raw.parent, raw):
            os.chmod(directory, 0o755)


def _same_device(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


def test_data_roots_that_cannot_work_say_why(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(DataUnavailableError, match="is a file, not a directory"):
        resolve_data_root(a_file)
    assert not mnist_available(a_file)
    with pytest.raises(DataUnavailableError, match="ROTINV_DATA_ROOT"):
        load_mnist(False, tmp_path / "empty", download=False)


def _mnist_copy(tmp_path: Path) -> Path:
    source = Path(real_data_root()) / "MNIST" / "raw"
    raw = tmp_path / "copy" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes((source / name).read_bytes())
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"")  # present, so nothing tries to download
    return raw


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[: len(data) // 2], "header promises"),  # a download cut short
    (lambda data: b"PK\x03\x04" + data[4:], "not an IDX file"),  # something else under the name
    (lambda data: data[:4] + (5_000).to_bytes(4, "big") + data[8:], "header promises"),  # wrong count
    (lambda data: b"", "not an IDX file"),
])
def test_damaged_mnist_files_are_a_clear_message(tmp_path, damage, message):
    raw = _mnist_copy(tmp_path)
    images = raw / "t10k-images-idx3-ubyte"
    images.write_bytes(damage(images.read_bytes()))
    with pytest.raises(DataUnavailableError, match=message) as caught:
        load_mnist(False, raw.parent.parent, download=False)
    assert "t10k-images-idx3-ubyte" in str(caught.value) and "Delete them" in str(caught.value)


def test_labels_that_do_not_fit_the_images_are_a_clear_message(tmp_path):
    raw = _mnist_copy(tmp_path)
    labels = raw / "t10k-labels-idx1-ubyte"
    data = labels.read_bytes()
    labels.write_bytes(data[:4] + (9_999).to_bytes(4, "big") + data[8:-1])  # one label short
    with pytest.raises(DataUnavailableError, match="10000 images .* but 9999 labels"):
        load_mnist(False, raw.parent.parent, download=False)
    labels.write_bytes(data[:-1] + bytes([42]))  # a label that is no digit
    with pytest.raises(DataUnavailableError, match="a label is 42"):
        load_mnist(False, raw.parent.parent, download=False)


# --- fuzzing the parsers ----------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_angle_text_parses_or_says_why(text):
    try:
        angles = parse_angles(text)
    except ValueError as error:
        assert str(error) and "\n" not in str(error)
    else:
        assert angles and all(isinstance(a, float) and abs(a) < float("inf") for a in angles)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.floats(allow_nan=True), st.integers(-10**6, 10**6), st.booleans(), st.none(), st.text(max_size=3)),
       st.one_of(st.floats(allow_nan=True), st.integers(-10**6, 10**6)),
       st.one_of(st.floats(allow_nan=True), st.integers(-10**3, 10**3)))
def test_any_angle_range_is_a_list_or_a_clear_value_error(start, stop, step):
    try:
        angles = angle_range(start, stop, step)
    except ValueError as error:
        assert str(error)
    else:
        assert 1 <= len(angles) <= 721 and angles[0] == pytest.approx(start)


# --- the same, through the app --------------------------------------------------------------

TRAIN = "app_pages/1_train.py"
SWEEP = "app_pages/2_sweep.py"
UPLOADER = "upload_checkpoint"


@pytest.mark.parametrize("case", CASES)
def test_an_upload_of_any_hostile_file_is_one_sentence_in_the_page(new_app, tmp_path, case):
    marker = tmp_path / "pwned"
    payload, phrase = hostile_payloads(marker)[case]
    at = new_app().run()
    models_before = list(at.sidebar.radio[0].options)
    at.file_uploader(key=UPLOADER).set_value(("upload.pt", payload, "application/octet-stream"))
    at.run()
    assert not at.exception
    errors = [error.value for error in at.error]
    assert len(errors) == 1 and phrase in errors[0] and "\n" not in errors[0]
    assert list(at.sidebar.radio[0].options) == models_before  # nothing was added
    assert not marker.exists()


def test_two_sessions_with_the_same_file_name_never_share_results(new_app, mnist_test):
    """Sweep results are cached by the weights' content hash, not by a name people choose."""
    accuracies = {}
    for shipped in ("lenet5", "lenet5_rotaug"):
        model, _ = load_checkpoint(ROOT / "models" / f"{shipped}.pt")
        at = new_app().run()
        at.file_uploader(key=UPLOADER).set_value(("my model.pt", state_dict_bytes(model), "application/octet-stream"))
        at.run()
        assert not at.exception and not at.error
        # the other session's upload is not in this session's sidebar
        assert sum("my model.pt" in option for option in at.sidebar.radio[0].options) == 1
        at.session_state["sweep_start"], at.session_state["sweep_stop"], at.session_state["sweep_step"] = 90, 90, 90
        at.switch_page(SWEEP).run()
        assert not at.exception
        table = at.dataframe[0].value
        accuracies[shipped] = float(table["Accuracy"].iloc[0])
        expected = evaluate(model, mnist_test.images, mnist_test.labels, 90).accuracy
        assert round(accuracies[shipped], 4) == round(expected, 4)
    assert accuracies["lenet5"] < 0.3 < 0.9 < accuracies["lenet5_rotaug"]
