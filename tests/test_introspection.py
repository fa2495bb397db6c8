"""Kernels, feature maps and the tiled pictures of them (rotinv.introspection)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from rotinv import introspection as insp
from rotinv.architectures import build_model
from rotinv.models import LeNet5

# The report's layer table, for one 28 x 28 image.
MAP_SHAPES = {"conv1": (6, 28, 28), "conv2": (16, 14, 14), "conv3": (120, 7, 7)}
KERNEL_SHAPES = {"conv1": (6, 1, 5, 5), "conv2": (16, 6, 5, 5), "conv3": (120, 16, 5, 5)}


@pytest.fixture
def lenet() -> LeNet5:
    torch.manual_seed(0)
    return LeNet5().eval()


@pytest.fixture
def digit() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(1, 28, 28, generator=generator)


def hook_count(model: torch.nn.Module) -> int:
    return sum(len(module._forward_hooks) for module in model.modules())


def test_feature_map_shapes_match_the_report(lenet, digit):
    maps = insp.feature_maps(lenet, digit)
    assert list(maps) == ["conv1", "conv2", "conv3"]
    assert {layer: tuple(tensor.shape) for layer, tensor in maps.items()} == MAP_SHAPES


def test_kernel_shapes_match_the_report(lenet):
    for layer, shape in KERNEL_SHAPES.items():
        bank = insp.kernels(lenet, layer)
        assert tuple(bank.shape) == shape
        assert torch.equal(bank, getattr(lenet, layer).weight.detach())
        assert not bank.requires_grad


def test_kernels_are_a_copy(lenet):
    bank = insp.kernels(lenet, "conv1")
    bank.zero_()
    assert getattr(lenet, "conv1").weight.abs().sum() > 0


def test_maps_are_after_relu_and_equal_the_real_activations(lenet, digit):
    maps = insp.feature_maps(lenet, digit)
    for tensor in maps.values():
        assert (tensor >= 0).all()
    # Recompute the stages by hand, as LeNet5.forward does.
    from rotinv.models import normalize

    x = normalize(digit.unsqueeze(0))
    conv1 = F.relu(lenet.conv1(x))
    conv2 = F.relu(lenet.conv2(F.max_pool2d(conv1, 2)))
    conv3 = F.relu(lenet.conv3(F.max_pool2d(conv2, 2)))
    with torch.no_grad():
        for name, expected in (("conv1", conv1), ("conv2", conv2), ("conv3", conv3)):
            torch.testing.assert_close(maps[name], expected[0])


def test_one_pass_gives_probabilities_that_match_predict(lenet, digit):
    seen = insp.inspect(lenet, digit)
    assert seen.probabilities.shape == (10,)
    assert seen.probabilities.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert (seen.probabilities >= 0).all()
    predicted, probabilities = insp.predict(lenet, digit)
    assert predicted == seen.predicted == int(probabilities.argmax())
    torch.testing.assert_close(probabilities, seen.probabilities)
    assert probabilities.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert 0.1 <= seen.confidence <= 1.0


def test_hooks_are_removed_after_use(lenet, digit):
    assert hook_count(lenet) == 0
    insp.inspect(lenet, digit)
    assert hook_count(lenet) == 0


def test_hooks_are_removed_when_the_forward_pass_fails(lenet):
    with pytest.raises(RuntimeError):
        insp.inspect(lenet, torch.rand(1, 1, 27, 3))  # wrong size: the classifier cannot take it
    assert hook_count(lenet) == 0


def test_accepts_every_single_image_layout(lenet, digit):
    reference = insp.inspect(lenet, digit).probabilities
    for image in (digit[0], digit, digit.unsqueeze(0)):
        torch.testing.assert_close(insp.inspect(lenet, image).probabilities, reference)
    with pytest.raises(ValueError):
        insp.inspect(lenet, torch.rand(2, 1, 28, 28))


def test_a_model_without_conv_layers_is_refused():
    with pytest.raises(ValueError, match="conv_layers"):
        insp.feature_maps(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)), torch.rand(28, 28))
    with pytest.raises(ValueError):
        insp.kernels(LeNet5(), "fc1")


def test_generic_over_every_registered_architecture(digit):
    # Whatever conv stages a model names, one map stack and one 4-D kernel bank per stage.
    from rotinv.architectures import ARCHITECTURES

    for arch in sorted(ARCHITECTURES):
        model = build_model(arch).eval()
        seen = insp.inspect(model, digit)
        assert list(seen.feature_maps) == list(model.conv_layers)
        for layer in model.conv_layers:
            bank = insp.kernels(model, layer)
            maps = seen.feature_maps[layer]
            assert bank.dim() == 4 and maps.dim() == 3
            assert maps.shape[0] == bank.shape[0]  # one map per output channel
        assert hook_count(model) == 0


def test_quarter_turn_of_conv1_maps_for_a_rotation_symmetric_kernel():
    # A kernel equal to its own quarter turns responds to a turned image with turned maps.
    model = LeNet5().eval()
    with torch.no_grad():
        symmetric = torch.zeros(5, 5)
        symmetric[2, :] = 1
        symmetric[:, 2] = 1
        model.conv1.weight.copy_(symmetric.expand(6, 1, 5, 5))
        model.conv1.bias.zero_()
    image = torch.zeros(1, 28, 28)
    image[0, 5:20, 12:15] = 1
    upright = insp.feature_maps(model, image)["conv1"]
    turned = insp.feature_maps(model, torch.rot90(image, 1, dims=(-2, -1)))["conv1"]
    torch.testing.assert_close(insp.turn_back(turned, 90), upright)


# --- pictures --------------------------------------------------------------------------------


def test_normalise_tiles_stretches_each_tile_on_its_own():
    stack = np.stack([np.arange(9.0).reshape(3, 3), 100 + 5 * np.arange(9.0).reshape(3, 3), np.full((3, 3), 7.0)])
    tiles = insp.normalise_tiles(stack)
    assert tiles.shape == (3, 3, 3)
    for tile in tiles[:2]:
        assert tile.min() == 0.0 and tile.max() == 1.0
    np.testing.assert_allclose(tiles[0], tiles[1])  # same pattern, different scale: same picture
    assert (tiles[2] == 0).all()  # a constant tile shows no pattern
    assert np.isfinite(insp.normalise_tiles(np.array([[np.nan, np.inf], [1.0, 2.0]]))).all()


def test_tile_grid_layout_and_values():
    stack = torch.stack([torch.full((4, 5), float(i)) + torch.arange(5.0) for i in range(7)])
    grid = insp.tile_grid(stack, columns=3, scale=2, pad=1)
    rows, columns = 3, 3
    assert grid.shape == (rows * (4 * 2 + 1) + 1, columns * (5 * 2 + 1) + 1)
    assert grid.dtype == np.uint8
    # First tile: left edge black (its minimum), right edge white (its maximum), crisp 2x pixels.
    tile = grid[1 : 1 + 8, 1 : 1 + 10]
    assert (tile[:, :2] == 0).all() and (tile[:, -2:] == 255).all()
    # Separators and the two empty cells of the last row are separator grey.
    assert (grid[0] == insp.SEPARATOR).all()
    assert (grid[-9:-1, -11:-1] == insp.SEPARATOR).all()


def test_grid_shape_and_suggested_columns():
    assert insp.grid_shape(6) == (2, 3)
    assert insp.grid_shape(16) == (4, 4)
    assert insp.grid_shape(120) == (10, 12)
    assert insp.grid_shape(7, columns=3) == (3, 3)
    assert insp.grid_shape(5, columns=50) == (1, 5)
    with pytest.raises(ValueError):
        insp.grid_shape(0)


def test_kernel_grid_has_a_row_per_output_and_a_column_per_input(lenet):
    bank = insp.kernels(lenet, "conv3")
    scale, pad = 4, 2
    grid = insp.kernel_grid(bank, scale=scale, pad=pad)
    tile = 5 * scale + pad
    assert grid.shape == (120 * tile + pad, 16 * tile + pad)  # tall: meant for a scrolling box
    # Row o, column i shows kernel [o, i].
    o, i = 37, 11
    shown = grid[pad + o * tile : pad + o * tile + 5 * scale : scale, pad + i * tile : pad + i * tile + 5 * scale : scale]
    expected = np.rint(insp.normalise_tiles(bank[o, i]) * 255).astype(np.uint8)
    np.testing.assert_array_equal(shown, expected)


def test_feature_map_grid_fits_the_width_and_png_round_trips(lenet, digit):
    for layer, maps in insp.feature_maps(lenet, digit).items():
        grid = insp.feature_map_grid(maps, width=420)
        assert grid.shape[1] <= 420
        assert grid.shape[1] >= 420 * 0.6
        decoded = np.asarray(Image.open(io.BytesIO(insp.to_png(grid))))
        np.testing.assert_array_equal(decoded, grid)


def test_upscale_image_keeps_values_and_crisp_pixels(digit):
    big = insp.upscale_image(digit, scale=8)
    assert big.shape == (224, 224)
    np.testing.assert_array_equal(big[::8, ::8], np.rint(digit[0].numpy() * 255).astype(np.uint8))
    assert (big[:8, :8] == big[0, 0]).all()


def test_helpers():
    assert insp.describe_shape(torch.empty(120, 16, 5, 5)) == "120×16×5×5"
    a = torch.rand(1, 28, 28)
    assert insp.image_digest(a) == insp.image_digest(a.clone())
    assert insp.image_digest(a) != insp.image_digest(torch.rot90(a, 1, dims=(-2, -1)))
    labels = torch.tensor([1, 4, 2, 4, 4, 0])
    rng = np.random.default_rng(0)
    picks = {insp.pick_index(labels, 4, rng) for _ in range(50)}
    assert picks == {1, 3, 4}
    assert 0 <= insp.pick_index(labels, None, rng) < 6
    with pytest.raises(ValueError):
        insp.pick_index(labels, 9)
