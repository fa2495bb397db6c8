"""The inference fast paths change no result: forward passes in chunks, and 2x2 pooling as strided maxima.

Where a path computes the same operations on the same shapes, its numbers are compared
exactly: that holds on every CPU and GPU. Where it hands the convolutions other batch
sizes, oneDNN (or cuDNN) may choose another kernel and add in another order, so those
logits are compared up to float32 rounding.
"""

import re

import pytest
import torch
import torch.nn.functional as F

from rotinv.architectures import build_model
from rotinv.data import load_mnist
from rotinv.evaluation import RotationPooled, predict_logits
from rotinv.models import LeNet5, max_pool_2x2, normalize
from rotinv.rotation import rotate_tensor

from realdata import ROOT, real_data_root

# float32 sums of up to 5,880 terms, added in another order by another kernel
ROUNDING = dict(rtol=1e-5, atol=1e-5)


@torch.inference_mode()
def _plain_logits(model, images, angle, batch_size=2000):
    """predict_logits without its chunks: the model on batch_size rotated images at a time."""
    model.eval()
    return torch.cat([model(rotate_tensor(images[s:s + batch_size], angle)).float()
                      for s in range(0, len(images), batch_size)])


@pytest.mark.parametrize("arch", ["lenet5", "lenet5_c4", "pooled"])
def test_predict_logits_in_chunks_gives_the_plain_forward_pass(arch):
    torch.manual_seed(0)
    model = RotationPooled(LeNet5(), 4) if arch == "pooled" else build_model(arch)
    images = torch.rand(600, 1, 28, 28)  # more than, and not a multiple of, the chunk of 512
    for angle in (0.0, 15.0, 90.0, 137.5) if arch == "lenet5" else (15.0,):
        torch.testing.assert_close(predict_logits(model, images, angle), _plain_logits(model, images, angle),
                                   **ROUNDING)
    if arch == "lenet5":
        torch.testing.assert_close(predict_logits(model, images, 15.0, batch_size=250),
                                   _plain_logits(model, images, 15.0), **ROUNDING)


def test_predict_logits_on_real_digits_gives_the_plain_forward_pass():
    test = load_mnist(False, real_data_root(), download=False).subset(2500)
    torch.manual_seed(1)
    model = LeNet5()
    chunked, plain = predict_logits(model, test.images, 30.0), _plain_logits(model, test.images, 30.0)
    torch.testing.assert_close(chunked, plain, **ROUNDING)
    assert torch.equal(chunked.argmax(1), plain.argmax(1))


def test_max_pool_2x2_is_max_pool2d_exactly():
    torch.manual_seed(0)
    cases = [torch.randn(3, 6, 28, 28), torch.randn(2, 4, 7, 9), torch.randn(5, 13, 13), torch.randn(1, 1, 3, 2)]
    cases[0][0, 0, 3, 3] = float("nan")
    cases[0][1, 2, 0:2, 0:2] = float("-inf")
    with torch.inference_mode():
        for x in cases:
            expected, got = F.max_pool2d(x, 2), max_pool_2x2(x)
            assert got.shape == expected.shape
            assert torch.equal(torch.nan_to_num(got, nan=7.0), torch.nan_to_num(expected, nan=7.0))
            assert torch.equal(got.isnan(), expected.isnan())


def test_max_pool_2x2_with_gradients_is_pytorchs_own():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    y = max_pool_2x2(x)
    assert "MaxPool2D" in type(y.grad_fn).__name__  # training backpropagates through max_pool2d itself
    y.sum().backward()
    assert torch.equal(x.grad.sum(), torch.tensor(2 * 3 * 4 * 4.0))


def _forward_with_max_pool2d(model: LeNet5, images: torch.Tensor) -> torch.Tensor:
    x = normalize(images)
    x = F.max_pool2d(F.relu(model.conv1(x)), 2)
    x = F.max_pool2d(F.relu(model.conv2(x)), 2)
    x = torch.flatten(F.relu(model.conv3(x)), 1)
    return model.fc3(F.relu(model.fc2(F.relu(model.fc1(x)))))


@pytest.mark.parametrize("size", [1, 5, 512])
def test_lenet5_in_inference_gives_the_max_pool2d_logits_exactly(size):
    # the same convolutions on the same shapes, and pooling that is exact: equal on every CPU
    model = LeNet5().eval()
    images = torch.rand(size, 1, 28, 28, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        expected = _forward_with_max_pool2d(model, images)
    with torch.inference_mode():
        assert torch.equal(model(images), expected)


def test_rotinv_runs_what_its_code_says():
    """No private operator, no TorchFunctionMode swapping functions: reading forward() tells what runs."""
    hidden = re.compile(r"torch\.ops\.|TorchFunctionMode|TorchDispatchMode|__torch_function__|__torch_dispatch__")
    offenders = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                 for path in sorted((ROOT / "rotinv").rglob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), start=1) if hidden.search(line)]
    assert not offenders, "\n".join(offenders)
