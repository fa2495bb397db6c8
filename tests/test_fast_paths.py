"""The inference fast paths (chunked forward passes, 2x2 pooling, fused conv + ReLU) change no result."""

import pytest
import torch
import torch.nn.functional as F

from rotinv.data import load_mnist
from rotinv.evaluation import RotationPooled, _FastCpuPooling, predict_logits
from rotinv.models import LeNet5, build_model
from rotinv.rotation import rotate_tensor

from realdata import real_data_root


@torch.inference_mode()
def _plain_logits(model, images, angle, batch_size=2000):
    """predict_logits as it was: the model on batch_size rotated images at a time, nothing else."""
    model.eval()
    return torch.cat([model(rotate_tensor(images[s:s + batch_size], angle)).float()
                      for s in range(0, len(images), batch_size)])


@pytest.mark.parametrize("arch", ["lenet5", "lenet5_c4", "pooled"])
def test_predict_logits_is_bit_identical_to_a_plain_forward(arch):
    torch.manual_seed(0)
    model = RotationPooled(LeNet5(), 4) if arch == "pooled" else build_model(arch)
    images = torch.rand(600, 1, 28, 28)  # more than, and not a multiple of, the chunk of 512
    for angle in (0.0, 15.0, 90.0, 137.5) if arch == "lenet5" else (15.0,):
        assert torch.equal(predict_logits(model, images, angle), _plain_logits(model, images, angle))
    if arch == "lenet5":
        assert torch.equal(predict_logits(model, images, 15.0, batch_size=250), _plain_logits(model, images, 15.0))


def test_predict_logits_on_real_digits_is_bit_identical():
    test = load_mnist(False, real_data_root(), download=False).subset(2500)
    torch.manual_seed(1)
    model = LeNet5()
    assert torch.equal(predict_logits(model, test.images, 30.0), _plain_logits(model, test.images, 30.0))


def test_fast_pooling_gives_max_pool2d_exactly_and_leaves_other_pooling_alone():
    torch.manual_seed(0)
    cases = [torch.randn(3, 6, 28, 28), torch.randn(2, 4, 7, 9), torch.randn(5, 13, 13)]
    cases[0][0, 0, 3, 3] = float("nan")
    cases[0][1, 2, 0:2, 0:2] = float("-inf")
    calls = [
        lambda x: F.max_pool2d(x, 2),
        lambda x: F.max_pool2d(x, (2, 2), stride=2),
        lambda x: F.max_pool2d(x, kernel_size=2, stride=[2, 2], padding=0),
        lambda x: torch.max_pool2d(x, [2, 2]),
        lambda x: F.max_pool2d(x, 3),  # not 2x2: PyTorch's own
        lambda x: F.max_pool2d(x, 2, stride=1),
        lambda x: F.max_pool2d(x, 2, padding=1),
        lambda x: F.max_pool2d(x, 2, ceil_mode=True),
        lambda x: F.max_pool2d(x, 2, return_indices=True)[1].float(),
    ]
    with torch.inference_mode():
        for x in cases:
            for call in calls:
                expected = call(x)
                with _FastCpuPooling():
                    got = call(x)
                assert got.shape == expected.shape
                assert torch.equal(torch.nan_to_num(got, nan=7.0), torch.nan_to_num(expected, nan=7.0))
                assert torch.equal(got.isnan(), expected.isnan())


def test_pooling_that_needs_gradients_is_left_to_pytorch():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    with _FastCpuPooling():
        y = F.max_pool2d(x, 2)
    y.sum().backward()
    assert y.grad_fn is not None and torch.equal(x.grad.sum(), torch.tensor(2 * 3 * 4 * 4.0))


def _unfused_forward(model: LeNet5, images: torch.Tensor) -> torch.Tensor:
    from rotinv.models import normalize

    x = normalize(images)
    x = F.max_pool2d(F.relu(model.conv1(x)), 2)
    x = F.max_pool2d(F.relu(model.conv2(x)), 2)
    x = torch.flatten(F.relu(model.conv3(x)), 1)
    return model.fc3(F.relu(model.fc2(F.relu(model.fc1(x)))))


@pytest.mark.parametrize("size", [1, 5, 512])
def test_fused_conv_relu_gives_the_same_logits_bit_for_bit(size):
    model = LeNet5().eval()
    images = torch.rand(size, 1, 28, 28, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        expected = _unfused_forward(model, images)
    with torch.inference_mode():
        assert torch.equal(model(images), expected)
    with torch.no_grad():
        assert torch.equal(model(images), expected)


def test_fused_conv_relu_steps_aside_for_gradients_and_hooks():
    from rotinv import models

    model = LeNet5().eval()
    images = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert models._fusable(model.conv1, images)
    assert not models._fusable(model.conv1, images)  # gradients on: autograd needs the plain ops
    seen = []
    handle = model.conv1.register_forward_hook(lambda module, inputs, output: seen.append(output))
    try:
        with torch.no_grad():
            model(images)
            assert not models._fusable(model.conv1, images)
    finally:
        handle.remove()
    assert len(seen) == 1 and seen[0].min() < 0  # the hook got conv1's pre-ReLU output, negatives included
