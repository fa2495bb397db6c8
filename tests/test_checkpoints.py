import hashlib
import io
import json

import pytest
import torch

from rotinv.checkpoints import (
    CheckpointError, infer_architecture, load_checkpoint, load_checkpoint_bytes, metadata_path,
    save_checkpoint, state_dict_bytes, weights_fingerprint,
)
from rotinv.models import LeNet5


@pytest.fixture
def model():
    torch.manual_seed(0)
    return LeNet5().eval()


def test_save_then_load_gives_the_same_model_and_metadata(tmp_path, model):
    path = tmp_path / "nested" / "lenet.pt"
    save_checkpoint(model, path, {"architecture": "lenet5", "seed": 0})
    loaded, metadata = load_checkpoint(path)
    assert metadata["architecture"] == "lenet5" and metadata["seed"] == 0
    assert metadata["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert json.loads(metadata_path(path).read_text())["seed"] == 0
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(loaded(x), model(x))
    assert weights_fingerprint(loaded) == weights_fingerprint(model)
    assert not list(path.parent.glob("*.tmp"))  # no temporary files left behind


def test_the_file_is_a_plain_state_dict(tmp_path, model):
    path = tmp_path / "m.pt"
    save_checkpoint(model, path, {})
    state = torch.load(path, weights_only=True)
    assert set(state) == set(model.state_dict())


def test_architecture_is_inferred_without_metadata(model):
    assert infer_architecture(model.state_dict()) == "lenet5"
    assert isinstance(load_checkpoint_bytes(state_dict_bytes(model)), LeNet5)


def test_wrong_shapes_keys_and_values_are_refused_with_a_sentence(model):
    state = model.state_dict()
    bad_shape = dict(state, **{"fc1.weight": torch.zeros(120, 100)})
    with pytest.raises(CheckpointError, match="fc1.weight has shape"):
        load_checkpoint_bytes(_bytes(bad_shape), "lenet5")
    with pytest.raises(CheckpointError, match="known architecture"):
        load_checkpoint_bytes(_bytes({"layer.weight": torch.zeros(3)}))
    missing = {k: v for k, v in state.items() if k != "fc3.bias"}
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint_bytes(_bytes(missing), "lenet5")
    nan = dict(state, **{"conv1.weight": torch.full((6, 1, 5, 5), float("nan"))})
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_checkpoint_bytes(_bytes(nan))


def test_changed_weights_change_the_fingerprint(model):
    before = weights_fingerprint(model)
    with torch.no_grad():
        model.fc3.bias[0] += 1e-3
    assert weights_fingerprint(model) != before


def test_missing_file_and_wrong_suffix(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "absent.pt")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a .pt"):
        load_checkpoint(tmp_path / "notes.txt")


def _bytes(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def test_metadata_of_other_weights_is_not_trusted(tmp_path, model):
    path = tmp_path / "m.pt"
    save_checkpoint(model, path, {"architecture": "lenet5", "note": "first"})
    first_metadata = metadata_path(path).read_text()
    torch.manual_seed(1)
    save_checkpoint(LeNet5(), path, {"architecture": "lenet5", "note": "second"})
    metadata_path(path).write_text(first_metadata)  # as if a crash fell between the two renames
    loaded, metadata = load_checkpoint(path)
    assert metadata == {}
    assert isinstance(loaded, LeNet5)
