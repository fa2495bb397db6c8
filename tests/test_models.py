"""LeNet-5 must match the report's layer table, layer by layer."""

import torch
import torch.nn.functional as F

from rotinv.architectures import ARCHITECTURES, architecture_name, build_model
from rotinv.models import LeNet5, count_parameters

import pytest

# The report's Figure 3: (layer, output shape, parameters).
REPORT_LAYER_TABLE = [
    ("conv1", (6, 28, 28), 156),
    ("pool1", (6, 14, 14), 0),
    ("conv2", (16, 14, 14), 2_416),
    ("pool2", (16, 7, 7), 0),
    ("conv3", (120, 7, 7), 48_120),
    ("fc1", (120,), 705_720),
    ("fc2", (84,), 10_164),
    ("fc3", (10,), 850),
]


def layer_outputs(model: LeNet5, x: torch.Tensor) -> dict[str, torch.Tensor]:
    out = {}
    out["conv1"] = model.conv1(x)
    out["pool1"] = F.max_pool2d(F.relu(out["conv1"]), 2)
    out["conv2"] = model.conv2(out["pool1"])
    out["pool2"] = F.max_pool2d(F.relu(out["conv2"]), 2)
    out["conv3"] = model.conv3(out["pool2"])
    out["fc1"] = model.fc1(torch.flatten(F.relu(out["conv3"]), 1))
    out["fc2"] = model.fc2(F.relu(out["fc1"]))
    out["fc3"] = model.fc3(F.relu(out["fc2"]))
    return out


def test_every_layer_matches_the_report_table():
    model = LeNet5()
    outputs = layer_outputs(model, torch.rand(2, 1, 28, 28))
    for name, shape, params in REPORT_LAYER_TABLE:
        assert tuple(outputs[name].shape[1:]) == shape, name
        layer = getattr(model, name, None)
        assert (count_parameters(layer) if layer is not None else 0) == params, name


def test_total_parameters_and_forward_agree_with_the_layers():
    model = LeNet5()
    assert count_parameters(model) == 767_426
    x = torch.rand(3, 1, 28, 28)
    from rotinv.models import normalize

    assert torch.allclose(model(x), layer_outputs(model, normalize(x))["fc3"], atol=1e-6)


def test_build_model_by_name_and_unknown_name():
    assert isinstance(build_model("lenet5"), LeNet5)
    assert "lenet5" in ARCHITECTURES and architecture_name(LeNet5()) == "lenet5"
    assert architecture_name(torch.nn.Linear(2, 2)) == "Linear"
    with pytest.raises(ValueError, match="Unknown architecture 'resnet'"):
        build_model("resnet")
