"""The benchmark runs end to end in --quick mode, and the speed-ups it reports change no result.

No timing is asserted anywhere: the machine is shared and the numbers are the benchmark's
business. What is checked is that every row is printed, that --quick leaves
BENCHMARKS.md alone, and that the faster code paths give the same numbers bit for bit.
"""

import hashlib
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from rotinv import bench
from rotinv.data import DATA_ROOT_ENV, load_mnist
from rotinv.evaluation import RotationPooled, _FastCpuPooling, predict_logits
from rotinv.models import LeNet5, build_model
from rotinv.rotation import rotate_tensor

from realdata import ROOT, real_data_root


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_quick_bench_prints_every_row_and_leaves_benchmarks_md_alone(tmp_path):
    benchmarks = ROOT / "BENCHMARKS.md"
    before = _digest(benchmarks)
    out = tmp_path / "bench.md"
    env = dict(os.environ, **{DATA_ROOT_ENV: real_data_root()})
    completed = subprocess.run([sys.executable, "-m", "rotinv.bench", "--quick", "--out", str(out)],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = completed.stdout.splitlines()
    for label in bench.ROW_LABELS:
        row = next((line for line in lines if line.startswith(label)), None)
        assert row is not None, f"no row {label!r} in:\n{completed.stdout}"
        assert "not measured" not in row and "failed" not in row, row
    assert any(" PASS, " in line and " MISS " in line for line in lines)
    markdown = out.read_text()
    assert all(f"| {label} |" in markdown for label in bench.ROW_LABELS)
    assert _digest(benchmarks) == before


def test_quick_mode_writes_no_file_unless_asked():
    assert bench.output_path(bench.parse_args(["--quick"])) is None
    assert bench.output_path(bench.parse_args([])) == bench.DEFAULT_OUT
    assert str(bench.output_path(bench.parse_args(["--quick", "--out", "x.md"]))) == "x.md"


def test_flops_are_counted_from_the_layer_shapes():
    flops, macs = bench.count_flops(LeNet5())
    assert macs == {"conv1": 6 * 25 * 28 * 28, "conv2": 16 * 6 * 25 * 14 * 14, "conv3": 120 * 16 * 25 * 7 * 7,
                    "fc1": 5880 * 120, "fc2": 120 * 84, "fc3": 84 * 10}
    assert flops == 2 * 3_656_520


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


def test_the_app_never_imports_torchvision():
    # torchvision costs the app's start seconds and ~170 MB; rotinv reads MNIST and rotates without it.
    script = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        "at = AppTest.from_file('streamlit_app.py', default_timeout=300)\n"
        "at.run()\n"
        "for page in ('app_pages/2_sweep.py', 'app_pages/3_inside.py'):\n"
        "    at.switch_page(page).run()\n"
        "    assert not at.exception, at.exception\n"
        "print('TORCHVISION', 'torchvision' in sys.modules)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                               timeout=600, env=dict(os.environ, **{DATA_ROOT_ENV: real_data_root()}))
    assert "TORCHVISION False" in completed.stdout, completed.stderr[-2000:]
