import pytest
import torch
from torch import nn

from rotinv.evaluation import RotationPooled, angle_range, evaluate, parse_angles, summarise, sweep
from rotinv.models import LeNet5
from rotinv.rotation import rotate_tensor


class CountsBrightTopRows(nn.Module):
    """A toy 'model' whose answer depends on orientation: class 1 if the top half is brighter."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        top, bottom = x[..., :14, :].sum((1, 2, 3)), x[..., 14:, :].sum((1, 2, 3))
        logits = torch.zeros(len(x), 10)
        logits[:, 1] = (top > bottom).float() * 10
        logits[:, 0] = (top <= bottom).float() * 10
        return logits + self.dummy


def test_summary_counts_losses_per_class_and_confusion():
    logits = torch.tensor([[5.0, 0] + [0] * 8, [0, 5.0] + [0] * 8, [5.0, 0] + [0] * 8])
    labels = torch.tensor([0, 1, 1])
    result = summarise(0, logits, labels)
    assert result.accuracy == pytest.approx(2 / 3)
    assert result.per_class_accuracy[0] == 1.0 and result.per_class_accuracy[1] == 0.5
    assert result.confusion[1][0] == 1 and result.confusion[1][1] == 1 and result.confusion[0][0] == 1
    assert sum(map(sum, result.confusion)) == 3
    assert result.loss == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item())


def test_evaluate_rotates_before_predicting():
    images = torch.zeros(4, 1, 28, 28)
    images[..., :5, :] = 1.0  # bright at the top
    labels = torch.ones(4, dtype=torch.long)
    model = CountsBrightTopRows()
    assert evaluate(model, images, labels, 0).accuracy == 1.0
    assert evaluate(model, images, labels, 180).accuracy == 0.0
    results = sweep(model, images, labels, [0, 180, 360])
    assert [r.accuracy for r in results] == [1.0, 0.0, 1.0]


def test_rotation_pooling_averages_probabilities_over_rotated_copies():
    torch.manual_seed(0)
    model = LeNet5().eval()
    x = torch.rand(3, 1, 28, 28)
    pooled = RotationPooled(model, copies=4)(x)
    expected = sum(torch.softmax(model(torch.rot90(x, k, (-2, -1))), 1) for k in range(4)) / 4
    assert torch.allclose(pooled.exp(), expected, atol=1e-6)
    # four right-angle copies make the prediction invariant to a quarter turn
    assert torch.allclose(RotationPooled(model, 4)(rotate_tensor(x, 90)), pooled, atol=1e-5)
    with pytest.raises(ValueError, match="copies"):
        RotationPooled(model, 0)


def test_angles_from_people():
    assert parse_angles("0, 90,180 ,270") == [0.0, 90.0, 180.0, 270.0]
    assert parse_angles("-45.5") == [-45.5]
    for bad, message in [("", "at least one"), ("0,ninety", "not a number"), ("0,,90", "not a number"),
                         ("nan", "finite"), ("inf", "finite")]:
        with pytest.raises(ValueError, match=message):
            parse_angles(bad)
    assert angle_range(0, 360, 15)[:3] == [0.0, 15.0, 30.0] and len(angle_range(0, 360, 15)) == 25
    assert angle_range(0, 350, 100) == [0.0, 100.0, 200.0, 300.0]
    for args, message in [((0, 360, 0), "greater than 0"), ((0, 360, -5), "greater than 0"),
                          ((90, 0, 15), "must not be below"), ((0, 360, 0.001), "At most")]:
        with pytest.raises(ValueError, match=message):
            angle_range(*args)
