"""The equivariance error: zero where the construction promises it, large where it does not."""

import math

import pytest
import torch
import torch.nn.functional as F

from rotinv.data import load_mnist
from rotinv.equivariance import (
    conv_features,
    equivariance_error,
    feature_orientations,
    layer_equivariance_errors,
    nearest_turns,
    rotate_then_convolve_vs_convolve_then_rotate,
)
from rotinv.equivariant import C4LeNet
from rotinv.models import LeNet5
from tests.realdata import real_data_root

QUARTER_TURNS = (90.0, 180.0, 270.0)


def conv_with(kernel: torch.Tensor):
    return lambda images: F.conv2d(images, kernel, padding=kernel.shape[-1] // 2)


def symmetric_kernel(seed: int) -> torch.Tensor:
    # The average of a random kernel's four turns is its own rot90 (whole numbers, so the
    # float sums are exact whatever their order).
    torch.manual_seed(seed)
    kernel = torch.randint(-8, 9, (3, 1, 5, 5)).float()
    return sum(torch.rot90(kernel, k, dims=(-2, -1)) for k in range(4)) / 4


@pytest.fixture(scope="module")
def digit() -> torch.Tensor:
    return load_mnist(False, real_data_root()).images[0]  # (1, 28, 28), a 7


@pytest.fixture(scope="module")
def c4() -> C4LeNet:
    torch.manual_seed(0)
    return C4LeNet().eval()


@pytest.fixture(scope="module")
def lenet() -> LeNet5:
    torch.manual_seed(0)
    return LeNet5().eval()


@pytest.mark.parametrize("degrees", QUARTER_TURNS)
def test_a_kernel_equal_to_its_own_turn_is_equivariant(degrees):
    kernel = symmetric_kernel(0)
    assert torch.equal(torch.rot90(kernel, 1, dims=(-2, -1)), kernel)
    torch.manual_seed(1)
    image = torch.rand(1, 28, 28)
    assert equivariance_error(conv_with(kernel), image, degrees) < 1e-6


@pytest.mark.parametrize("degrees", QUARTER_TURNS)
def test_a_random_kernel_is_not(degrees):
    torch.manual_seed(2)
    kernel, image = torch.randn(3, 1, 5, 5), torch.rand(1, 28, 28)
    assert equivariance_error(conv_with(kernel), image, degrees) > 0.2


def test_nothing_turned_means_no_error():
    torch.manual_seed(3)
    kernel, image = torch.randn(3, 1, 5, 5), torch.rand(1, 28, 28)
    for degrees in (0.0, 360.0, -360.0):
        assert equivariance_error(conv_with(kernel), image, degrees) == 0.0


def test_other_angles_include_interpolation_but_still_separate_the_kernels(digit):
    torch.manual_seed(4)
    random_error = equivariance_error(conv_with(torch.randn(3, 1, 5, 5)), digit, 45.0)
    symmetric_error = equivariance_error(conv_with(symmetric_kernel(4)), digit, 45.0)
    assert 0 < symmetric_error < random_error
    assert math.isfinite(random_error)


def test_images_may_come_alone_or_in_batches():
    torch.manual_seed(5)
    kernel, image = torch.randn(2, 1, 5, 5), torch.rand(28, 28)
    errors = {
        equivariance_error(conv_with(kernel), image, 90.0),
        equivariance_error(conv_with(kernel), image[None], 90.0),
        equivariance_error(conv_with(kernel), image[None, None], 90.0),
    }
    assert len(errors) == 1
    with pytest.raises(ValueError, match="image must be"):
        equivariance_error(conv_with(kernel), torch.rand(1, 1, 1, 28, 28), 90.0)


def test_all_zero_features_have_no_error():
    image = torch.rand(1, 28, 28)
    assert equivariance_error(lambda x: torch.zeros_like(x), image, 90.0) == 0.0
    # Nothing upright but something turned: infinitely far from equivariant.
    assert equivariance_error(lambda x: x * (x[..., 0, 0] > 5).float(), torch.ones(1, 28, 28), 90.0) == 0.0


def test_nearest_turns():
    cases = {0: 0, 44: 0, 45: 1, 90: 1, 134: 1, 135: 2, 270: 3, 315: 0, 360: 0, -45: 0, -46: 3, -90: 3}
    assert {d: nearest_turns(d, 4) for d in cases} == cases
    eighths = {0: 0, 22: 0, 23: 1, 45: 1, 90: 2, 315: 7, 338: 0, -22.5: 0, -23: 7}
    assert {d: nearest_turns(d, 8) for d in eighths} == eighths


def test_lenet5_is_far_from_equivariant_at_conv1(lenet, digit):
    errors = layer_equivariance_errors(lenet, digit, 90.0)
    assert list(errors) == ["conv1", "conv2", "conv3"]
    assert errors["conv1"] > 0.3
    assert all(error > 0.1 for error in errors.values())


@pytest.mark.parametrize("degrees", QUARTER_TURNS)
def test_c4_lenet_is_equivariant_at_every_conv_stage(c4, digit, degrees):
    torch.manual_seed(6)
    for image in (digit, torch.rand(3, 1, 28, 28)):
        errors = layer_equivariance_errors(c4, image, degrees)
        assert list(errors) == list(c4.conv_layers)
        assert all(error < 1e-5 for error in errors.values()), errors


def test_c4_needs_its_orientations_cycled(c4, digit):
    assert feature_orientations(c4) == 4
    assert feature_orientations(LeNet5()) == 1
    conv1 = lambda images: conv_features(c4, images)["conv1"]  # noqa: E731
    assert equivariance_error(conv1, digit, 90.0, orientations=4) < 1e-5
    assert equivariance_error(conv1, digit, 90.0) > 0.1


def test_c4_errors_at_other_angles_are_finite_and_below_lenet5s(c4, lenet, digit):
    c4_errors = layer_equivariance_errors(c4, digit, 45.0)
    lenet_errors = layer_equivariance_errors(lenet, digit, 45.0)
    assert all(0 < error < math.inf for error in c4_errors.values())
    assert c4_errors["conv1"] < lenet_errors["conv1"]


def test_measuring_leaves_the_model_as_it_was(lenet, digit):
    lenet.train()
    try:
        layer_equivariance_errors(lenet, digit, 90.0)
        assert lenet.training
    finally:
        lenet.eval()
    for name in lenet.conv_layers:
        assert not getattr(lenet, name)._forward_hooks


def test_hooked_maps_are_the_stages_after_relu(lenet, digit):
    maps = conv_features(lenet, digit[None])
    with torch.no_grad():
        expected = F.relu(lenet.conv1((digit[None] - 0.1307) / 0.3081))
    assert torch.allclose(maps["conv1"], expected)
    assert (maps["conv3"] >= 0).all()


@pytest.mark.parametrize("layer, shape", [("conv1", (28, 28)), ("conv2", (14, 14)), ("conv3", (7, 7))])
def test_side_by_side_maps_agree_for_c4_and_not_for_lenet5(c4, lenet, digit, layer, shape):
    for channel in (0, 5):
        map_a, map_b = rotate_then_convolve_vs_convolve_then_rotate(c4, digit, 90.0, layer, channel)
        assert map_a.shape == map_b.shape == shape
        assert torch.allclose(map_a, map_b, atol=1e-5)
    map_a, map_b = rotate_then_convolve_vs_convolve_then_rotate(lenet, digit, 90.0, layer, 0)
    assert map_a.shape == map_b.shape == shape
    if layer == "conv1":
        assert not torch.allclose(map_a, map_b, atol=1e-3)


def test_side_by_side_refuses_what_it_cannot_show(lenet, digit):
    with pytest.raises(ValueError, match="Unknown layer"):
        rotate_then_convolve_vs_convolve_then_rotate(lenet, digit, 90.0, "fc1", 0)
    with pytest.raises(ValueError, match="channels 0 to 5"):
        rotate_then_convolve_vs_convolve_then_rotate(lenet, digit, 90.0, "conv1", 6)
    with pytest.raises(ValueError, match="channels"):
        rotate_then_convolve_vs_convolve_then_rotate(lenet, digit, 90.0, "conv1", True)
    with pytest.raises(ValueError, match="one image"):
        rotate_then_convolve_vs_convolve_then_rotate(lenet, torch.rand(2, 1, 28, 28), 90.0, "conv1", 0)


def test_one_capture_mechanism_for_the_whole_package(lenet, digit):
    # equivariance and introspection hook models the same way: the same maps, one pass each.
    from rotinv import introspection

    logits, maps = introspection.hooked_pass(lenet, digit[None])
    assert torch.equal(conv_features(lenet, digit[None])["conv2"], maps["conv2"])
    assert torch.equal(introspection.feature_maps(lenet, digit)["conv2"], maps["conv2"][0])
    with torch.no_grad():
        assert torch.equal(logits, lenet(digit[None]))


def test_a_shared_model_hooked_by_several_threads_captures_each_threads_own_pass(lenet):
    # Two browser sessions share one model object: each hooked pass must capture its own
    # images, whatever passes (hooked or plain) other threads run at the same moment.
    import threading

    from rotinv import introspection

    torch.manual_seed(7)
    images = [torch.rand(1, 1, 28, 28) for _ in range(3)]
    with torch.no_grad():
        expected = [conv_features(lenet, image)["conv3"] for image in images[:2]]
    failures: list[str] = []
    start = threading.Barrier(3)

    def measure(which: int, rounds: int = 150) -> None:
        start.wait()
        try:
            for _ in range(rounds):
                if which == 0:
                    got = conv_features(lenet, images[0])["conv3"]
                else:
                    got = introspection.inspect(lenet, images[1]).feature_maps["conv3"][None]
                if not torch.equal(got, expected[which]):
                    failures.append(f"thread {which} captured another pass")
                    return
        except Exception as error:  # noqa: BLE001  (a thread's exception would otherwise vanish)
            failures.append(f"thread {which}: {error!r}")

    def plain_passes(rounds: int = 600) -> None:
        start.wait()
        try:
            with torch.no_grad():
                for _ in range(rounds):
                    lenet(images[2])  # an evaluation elsewhere in the app: no hooks, no lock
        except Exception as error:  # noqa: BLE001
            failures.append(f"plain passes: {error!r}")

    threads = [threading.Thread(target=measure, args=(0,)), threading.Thread(target=measure, args=(1,)),
               threading.Thread(target=plain_passes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert not any(module._forward_hooks for module in lenet.modules())


def test_a_digit_read_at_several_angles_at_once_matches_one_pass_per_angle(digit, c4, lenet):
    from rotinv.equivariance import read_turned, read_turned_each

    angles = [0, 37, 45, 90]
    for model in (lenet, c4):
        together = read_turned_each(model, digit, angles)
        assert len(together) == len(angles)
        for degrees, batched in zip(angles, together):
            alone = read_turned(model, digit, degrees)
            assert batched.orientations == alone.orientations
            assert batched.probabilities.shape == alone.probabilities.shape == (1, 10)
            assert torch.allclose(batched.probabilities, alone.probabilities, atol=1e-5)
            for name, maps in alone.maps.items():
                assert batched.maps[name].shape == maps.shape
                assert torch.allclose(batched.maps[name], maps, atol=1e-4, rtol=1e-5)
    with pytest.raises(ValueError, match="one image"):
        read_turned_each(lenet, digit.repeat(2, 1, 1, 1), angles)
