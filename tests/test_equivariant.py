"""The C4-equivariant LeNet: invariant logits, equivariant conv stages, registered by name."""

import pytest
import torch

from rotinv.checkpoints import (
    infer_architecture,
    load_checkpoint,
    load_checkpoint_bytes,
    model_from_state_dict,
    state_dict_bytes,
)
from rotinv.data import load_mnist
from rotinv.equivariant import C4LeNet, GroupConv, LiftingConv, cycle_orientations, invariant_pool
from rotinv.architectures import ARCHITECTURES, build_model
from rotinv.models import LeNet5, count_parameters
from tests.realdata import SHIPPED, real_data_root

TURNS = (1, 2, 3)


def rot(x: torch.Tensor, k: int) -> torch.Tensor:
    return torch.rot90(x, k, dims=(-2, -1))


@pytest.fixture(scope="module")
def model() -> C4LeNet:
    torch.manual_seed(0)
    return C4LeNet().eval()


def hooked_stages(model: torch.nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    outputs = {}
    handles = [
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: outputs.__setitem__(name, o))
        for name in model.conv_layers
    ]
    try:
        with torch.no_grad():
            model(images)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


@pytest.mark.parametrize("k", TURNS)
def test_logits_are_invariant_to_quarter_turns_on_random_images(model, k):
    torch.manual_seed(k)
    images = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(rot(images, k)), model(images), atol=1e-4, rtol=0)


def test_logits_are_invariant_on_real_mnist_digits(model):
    digits = load_mnist(False, real_data_root()).images[:200]
    with torch.no_grad():
        upright = model(digits)
        for k in TURNS:
            assert torch.allclose(model(rot(digits, k)), upright, atol=1e-4, rtol=0), k


def test_parameter_count_is_the_documented_one():
    model = C4LeNet()
    assert count_parameters(model) == 655_822
    per_layer = {name: count_parameters(m) for name, m in model.named_children()}
    assert per_layer == {"conv1": 104, "conv2": 3_208, "conv3": 76_896,
                         "fc1": 564_600, "fc2": 10_164, "fc3": 850}
    # "in the same range" as LeNet-5's 767,426
    assert 0.5 < count_parameters(model) / count_parameters(LeNet5()) < 1.5


def test_conv_stages_have_the_documented_shapes(model):
    stages = hooked_stages(model, torch.rand(2, 1, 28, 28))
    assert model.conv_layers == ("conv1", "conv2", "conv3")
    assert {name: tuple(out.shape) for name, out in stages.items()} == {
        "conv1": (2, 4 * 4, 28, 28),
        "conv2": (2, 8 * 4, 14, 14),
        "conv3": (2, 96 * 4, 7, 7),
    }


@pytest.mark.parametrize("k", TURNS)
def test_every_conv_stage_is_equivariant(model, k):
    # Turning the input turns each stage's maps and moves orientation r to r + k.
    torch.manual_seed(10 + k)
    images = torch.rand(4, 1, 28, 28)
    upright = hooked_stages(model, images)
    turned = hooked_stages(model, rot(images, k))
    for name in model.conv_layers:
        expected = rot(cycle_orientations(upright[name], k), k)
        assert torch.allclose(turned[name], expected, atol=1e-4, rtol=0), name
        # ... and it is not trivially so: without the cycling the maps do not match.
        assert not torch.allclose(turned[name], rot(upright[name], k), atol=1e-2), name


def test_cycle_orientations_moves_orientation_r_to_r_plus_k():
    # Channel c * 4 + r holds the value 10 * c + r.
    channels = torch.tensor([10 * c + r for c in range(3) for r in range(4)], dtype=torch.float32)
    maps = channels.view(1, 12, 1, 1).expand(2, 12, 5, 5)
    moved = cycle_orientations(maps, 1)[0, :, 0, 0].view(3, 4)
    assert moved.tolist() == [[10 * c + (r - 1) % 4 for r in range(4)] for c in range(3)]
    assert torch.equal(cycle_orientations(maps, 4), maps)
    assert torch.equal(cycle_orientations(cycle_orientations(maps, 3), 1), maps)
    assert torch.equal(cycle_orientations(maps, -1), cycle_orientations(maps, 3))
    assert torch.equal(cycle_orientations(maps[0], 2), cycle_orientations(maps, 2)[0])  # (C, H, W)
    with pytest.raises(ValueError, match="multiple of 4"):
        cycle_orientations(torch.zeros(1, 6, 3, 3), 1)


def test_filters_are_one_filter_turned_four_times():
    torch.manual_seed(0)
    lifting, group = LiftingConv(1, 3), GroupConv(2, 3)
    bank = lifting.filter_bank()
    assert bank.shape == (12, 1, 5, 5)
    for r in range(4):
        assert torch.equal(bank[r::4], rot(lifting.filters, r))
    bank = group.filter_bank().view(3, 4, 2, 4, 5, 5)  # (out, r, in, s, k, k)
    for r in range(4):
        for s in range(4):
            assert torch.equal(bank[:, r, :, s], rot(group.filters[:, :, (s - r) % 4], r))


@pytest.mark.parametrize("k", TURNS)
def test_invariant_pool_is_invariant_to_turned_and_cycled_maps(k):
    torch.manual_seed(k)
    maps = torch.randn(2, 5 * 4, 7, 7)
    pooled = invariant_pool(maps)
    assert pooled.shape == (2, 5, 7, 7)
    assert torch.equal(invariant_pool(rot(cycle_orientations(maps, k), k)), pooled)


def test_gradients_reach_every_parameter():
    model = C4LeNet()
    torch.nn.functional.cross_entropy(model(torch.rand(3, 1, 28, 28)), torch.tensor([1, 2, 3])).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_it_is_registered_and_built_by_name():
    assert isinstance(build_model("lenet5_c4"), C4LeNet)
    assert ARCHITECTURES["lenet5_c4"] is C4LeNet


def test_checkpoints_tell_it_from_lenet5():
    assert "conv1.filters" in C4LeNet().state_dict()  # not conv1.weight, as in LeNet5
    assert infer_architecture(C4LeNet().state_dict()) == "lenet5_c4"
    assert infer_architecture(LeNet5().state_dict()) == "lenet5"
    original = C4LeNet()
    restored = load_checkpoint_bytes(state_dict_bytes(original))
    assert isinstance(restored, C4LeNet)
    images = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(restored(images), original.eval()(images))
    restored = model_from_state_dict(original.state_dict(), arch=None)
    assert isinstance(restored, C4LeNet)


def test_the_shipped_checkpoint_is_invariant_and_accurate():
    path = SHIPPED / "lenet5_c4.pt"
    assert path.exists(), "models/lenet5_c4.pt is shipped; regenerate it with the command in its JSON"
    model, metadata = load_checkpoint(path)
    assert isinstance(model, C4LeNet)
    assert metadata["architecture"] == "lenet5_c4"
    by_angle = metadata["test"]["by_angle"]
    accuracies = {by_angle[a]["accuracy"] for a in ("0", "90", "180", "270", "360")}
    assert len(accuracies) == 1 and accuracies.pop() >= 0.98
    test = load_mnist(False, real_data_root())
    digits, labels = test.images[:500], test.labels[:500]
    with torch.no_grad():
        upright = model(digits)
        assert (upright.argmax(1) == labels).float().mean() >= 0.97
        for k in TURNS:
            assert torch.allclose(model(rot(digits, k)), upright, atol=1e-4, rtol=0), k
