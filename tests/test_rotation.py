import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from rotinv.rotation import quarter_turns, rotate_each, rotate_tensor


@pytest.fixture
def images():
    return torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_four_quarter_turns_return_the_input_exactly(images):
    turned = images
    for _ in range(4):
        turned = rotate_tensor(turned, 90)
    assert torch.equal(turned, images)


@pytest.mark.parametrize("degrees, k", [(90, 1), (180, 2), (270, 3), (-90, 3), (450, 1), (-270, 1)])
def test_multiples_of_90_are_exact_rot90(images, degrees, k):
    for interpolation in ("nearest", "bilinear"):
        assert torch.equal(rotate_tensor(images, degrees, interpolation), torch.rot90(images, k, dims=(-2, -1)))


@pytest.mark.parametrize("degrees", [0, 360, -360, 720])
def test_full_turns_return_the_input_unchanged(images, degrees):
    assert torch.equal(rotate_tensor(images, degrees), images)


def test_positive_is_counter_clockwise():
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 2, 25] = 1.0  # near the top-right corner
    turned = rotate_tensor(image, 90)
    row, col = (turned[0, 0] == 1).nonzero()[0].tolist()
    assert row < 14 and col < 14  # counter-clockwise takes top-right to top-left
    # and torchvision agrees on the direction for a non-exact angle too
    assert torch.equal(rotate_tensor(image, 90.0), TF.rotate(image, 90.0, interpolation=InterpolationMode.NEAREST))


def test_any_angle_matches_torchvision_and_fills_black(images):
    turned = rotate_tensor(images, 45, "bilinear")
    assert turned.shape == images.shape
    expected = TF.rotate(images, 45.0, interpolation=InterpolationMode.BILINEAR)
    assert torch.equal(turned, expected)
    assert turned[..., 0, 0].abs().max() == 0  # the uncovered corner is black


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("degrees", [15.0, 33.3, 100.0, 195.0, 345.0, -30.0, -715.5, 0.5, 359.9])
def test_same_pixels_as_torchvision_bit_for_bit(images, degrees, interpolation):
    # rotinv computes the sampling grid itself (no torchvision import in the app), the
    # same way torchvision does, so the shipped checkpoints' recorded accuracies stand.
    expected = TF.rotate(images, degrees % 360, interpolation=InterpolationMode(interpolation))
    assert torch.equal(rotate_tensor(images, degrees, interpolation), expected)


def test_non_square_and_integer_images_match_torchvision():
    wide = torch.rand(3, 1, 20, 28, generator=torch.Generator().manual_seed(1))
    assert torch.equal(rotate_tensor(wide, 30), TF.rotate(wide, 30.0, interpolation=InterpolationMode.BILINEAR))
    pixels = (torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 255).to(torch.uint8)
    assert torch.equal(rotate_tensor(pixels, 30), TF.rotate(pixels, 30.0, interpolation=InterpolationMode.BILINEAR))
    assert rotate_tensor(torch.empty(0, 1, 28, 28), 30).shape == (0, 1, 28, 28)


def test_batches_of_any_shape():
    assert rotate_tensor(torch.rand(28, 28), 30).shape == (28, 28)
    assert rotate_tensor(torch.rand(2, 3, 1, 28, 28), 30).shape == (2, 3, 1, 28, 28)


def test_rotate_each_turns_every_image_by_its_own_angle(images):
    angles = torch.tensor([0.0, 30.0, 90.0, 200.0])
    turned = rotate_each(images, angles)
    for image, angle, result in zip(images, angles, turned):
        expected = TF.rotate(image, float(angle), interpolation=InterpolationMode.BILINEAR)
        assert torch.allclose(result, expected, atol=1e-4)


def test_bad_angles_and_interpolations_are_clear_errors(images):
    with pytest.raises(ValueError, match="finite"):
        rotate_tensor(images, float("nan"))
    with pytest.raises(ValueError, match="interpolation"):
        rotate_tensor(images, 10, "cubic-ish")
    assert quarter_turns(90.5) is None and quarter_turns(-90) == 3
