"""The lens (rotinv.lens): per-layer equivariance errors of the shipped models on a real test digit."""

from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd
import pytest
import torch

from rotinv import lens
from rotinv.checkpoints import load_checkpoint
from rotinv.data import load_mnist
from rotinv.models import LeNet5
from tests.realdata import SHIPPED, real_data_root

NAMES = {"lenet5": "LeNet-5", "lenet5_rotaug": "LeNet-5 + rotation augmentation", "lenet5_c4": "C4-equivariant"}
STAGES = ["conv1", "conv2", "conv3", lens.OUTPUT]


@pytest.fixture(scope="module")
def shipped() -> list[tuple[str, torch.nn.Module]]:
    models = []
    for stem, name in NAMES.items():
        path = SHIPPED / f"{stem}.pt"
        if not path.is_file():
            pytest.fail(f"The shipped model {path} is missing.")
        models.append((name, load_checkpoint(path)[0]))
    return models


@pytest.fixture(scope="module")
def digit() -> torch.Tensor:
    return load_mnist(False, real_data_root(), download=False).images[0]  # (1, 28, 28), a 7


@pytest.fixture(scope="module")
def at_90(shipped, digit) -> pd.DataFrame:
    return lens.error_table(shipped, digit, 90)


def errors(table: pd.DataFrame, model: str) -> dict[str, float]:
    rows = table[table["model"] == model]
    return dict(zip(rows["stage"], rows["error"]))


def test_table_has_a_row_per_model_and_stage_in_order(at_90):
    assert list(at_90.columns) == ["model", "stage", "measure", "error"]
    assert list(dict.fromkeys(at_90["model"])) == list(NAMES.values())
    for name in NAMES.values():
        rows = at_90[at_90["model"] == name]
        assert list(rows["stage"]) == STAGES
        assert list(rows["measure"]) == [lens.EQUIVARIANCE] * 3 + [lens.INVARIANCE]
    assert np.isfinite(at_90["error"]).all()


def test_lenet5_is_far_from_equivariant_from_conv1_on(at_90):
    lenet = errors(at_90, "LeNet-5")
    assert lenet["conv1"] > 0.5
    assert all(lenet[stage] > 0.5 for stage in ("conv1", "conv2", "conv3"))


def test_augmentation_makes_the_output_invariant_not_the_layers(at_90):
    augmented = errors(at_90, "LeNet-5 + rotation augmentation")
    assert all(augmented[stage] > 0.5 for stage in ("conv1", "conv2", "conv3"))
    # The shipped augmented model reads this 7 turned by 90 degrees as a confident 7.
    assert augmented[lens.OUTPUT] < 0.05
    assert augmented[lens.OUTPUT] < errors(at_90, "LeNet-5")[lens.OUTPUT]


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_c4_is_equivariant_at_every_stage_for_quarter_turns(shipped, digit, degrees):
    c4 = errors(lens.error_table(shipped[2:], digit, degrees), "C4-equivariant")
    assert all(error < 1e-5 for error in c4.values()), c4  # the output is invariant too


def test_at_45_degrees_no_model_is_at_zero(shipped, digit):
    table = lens.error_table(shipped, digit, 45)
    layers = table[table["measure"] == lens.EQUIVARIANCE]
    assert (layers["error"] > 0.05).all()
    assert "not a multiple of 90°" in lens.summary(table, 45)
    assert "even one built to be equivariant" in lens.summary(table, 45)


def test_nothing_turned_nothing_measured(shipped, digit):
    table = lens.error_table(shipped, digit, 0)
    assert (table["error"] == 0).all()
    assert "nothing is turned" in lens.summary(table, 0)


def test_wide_table_and_chart(at_90):
    wide = lens.wide_table(at_90)
    assert list(wide.columns) == ["model"] + STAGES
    assert list(wide["model"]) == list(NAMES.values())
    assert wide.loc[2, "conv1"] == pytest.approx(errors(at_90, "C4-equivariant")["conv1"])

    chart = lens.error_chart(at_90)
    assert isinstance(chart, alt.LayerChart)
    bars, values = chart.to_dict()["layer"]
    assert bars["mark"]["type"] == "bar" and values["mark"]["type"] == "text"
    assert bars["encoding"]["xOffset"]["field"] == values["encoding"]["xOffset"]["field"] == "model"
    assert bars["encoding"]["color"]["field"] == "model"
    assert bars["encoding"]["color"]["scale"]["domain"] == list(NAMES.values())
    assert bars["encoding"]["x"]["sort"] == STAGES


def test_summary_quotes_the_measured_numbers(at_90):
    text = lens.summary(at_90, 90)
    lenet = errors(at_90, "LeNet-5")
    assert f"**LeNet-5**: conv1 {lenet['conv1']:.2f}" in text
    assert "**C4-equivariant**: ≈ 0 at every conv stage" in text
    assert "exact permutation of the pixels" in text


def test_names_must_be_unique(shipped, digit):
    with pytest.raises(ValueError, match="unique"):
        lens.error_table([shipped[0], shipped[0]], digit, 90)


def test_channel_names(shipped):
    lenet, c4 = shipped[0][1], shipped[2][1]
    assert lens.channel_count(lenet, "conv1") == 6 and lens.channel_count(lenet, "conv3") == 120
    assert lens.channel_count(c4, "conv1") == 16 and lens.channel_count(c4, "conv3") == 384
    assert lens.channel_name(lenet, 5) == "channel 5"
    assert [lens.channel_name(c4, n) for n in (0, 1, 6, 15)] == [
        "channel 0 at 0°", "channel 0 at 90°", "channel 1 at 180°", "channel 3 at 270°"]


def test_side_by_side_for_c4_and_lenet5(shipped, digit):
    c4 = lens.side_by_side(shipped[2][1], digit, 90, "conv2", 5, size=196)
    assert c4["shape"] == (14, 14) and c4["channel"] == "channel 1 at 90°"
    assert c4["rotate_then_convolve"].shape == (196, 196) and c4["rotate_then_convolve"].dtype == np.uint8
    assert c4["error"] < 1e-5
    assert np.abs(c4["rotate_then_convolve"].astype(int) - c4["convolve_then_rotate"].astype(int)).max() <= 1
    assert c4["difference"].max() <= 1

    lenet = lens.side_by_side(shipped[0][1], digit, 90, "conv1", 0)
    assert lenet["error"] > 0.3 and lenet["difference"].max() > 50


def test_joint_pictures_share_one_scale():
    weak, strong = np.full((2, 2), 1.0), np.full((2, 2), 4.0)
    a, b, gap = lens.joint_pictures(weak, strong, scale=3)
    assert a.shape == (6, 6) and int(a.max()) == 64 and int(b.max()) == 255 and int(gap.max()) == 191
    zero = lens.joint_pictures(np.zeros((2, 2)), np.zeros((2, 2)))
    assert all(int(p.max()) == 0 for p in zero)
    with pytest.raises(ValueError):
        lens.joint_pictures(np.zeros((2, 2)), np.zeros((3, 3)))


def test_works_for_a_fresh_model_and_leaves_no_hooks(digit):
    torch.manual_seed(0)
    model = LeNet5().eval()
    table = lens.error_table([("fresh", model)], digit, 30, output=False)
    assert list(table["stage"]) == ["conv1", "conv2", "conv3"]
    assert all(0 < error < math.inf for error in table["error"])
    assert not any(module._forward_hooks for module in model.modules())
