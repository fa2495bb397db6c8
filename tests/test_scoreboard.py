"""The scoreboard's arithmetic, on sweeps made up so that every number is known."""

import pytest

from rotinv import scoreboard
from rotinv.evaluation import AngleResult


def result(angle: float, accuracy: float, six: float = 0.9, nine: float = 0.8) -> AngleResult:
    per_class = tuple(six if c == 6 else nine if c == 9 else accuracy for c in range(10))
    return AngleResult(angle, 0.1, accuracy, per_class, tuple((0,) * 10 for _ in range(10)), 10_000)


UPRIGHT_ONLY = [result(0, 0.99, 0.99, 0.99), result(90, 0.15, 0.1, 0.1), result(180, 0.35, 0.0, 0.0),
                result(270, 0.15, 0.1, 0.1)]
INVARIANT = [result(0, 0.993, 0.99, 0.98), result(90, 0.993, 0.99, 0.98), result(180, 0.991, 0.99, 0.96),
             result(270, 0.992, 0.99, 0.98)]
METADATA = {"parameters": 71_794, "training": {"seconds": 2621.7, "torch_threads": 1}}


def test_a_score_reads_upright_worst_mean_and_the_6s_and_9s():
    s = scoreboard.score("invariant", INVARIANT, METADATA)
    assert (s.upright, s.worst_angle, s.worst) == (0.993, 180, 0.991)
    assert s.mean == pytest.approx((0.993 * 2 + 0.991 + 0.992) / 4)
    assert s.sixes == pytest.approx(0.99) and s.nines == pytest.approx(0.975)
    assert (s.parameters, s.training_seconds, s.training_threads) == (71_794, 2621.7, 1)
    assert s.right_at_every_angle() and not scoreboard.score("upright", UPRIGHT_ONLY).right_at_every_angle()


def test_a_sweep_without_0_degrees_cannot_be_scored():
    with pytest.raises(ValueError, match="0°"):
        scoreboard.score("m", [result(90, 0.5)])
    with pytest.raises(ValueError, match="at least one angle"):
        scoreboard.score("m", [])


def test_the_table_puts_the_best_worst_angle_first_and_says_the_training_time():
    table = scoreboard.table([scoreboard.score("upright", UPRIGHT_ONLY, {"training": {"seconds": 45.2}}),
                              scoreboard.score("invariant", INVARIANT, METADATA)])
    assert list(table["Model"]) == ["invariant", "upright"]
    assert list(table["Worst angle"]) == ["180°", "90°"]
    assert list(table["Training"]) == ["44 min on 1 thread", "45 s"]
    assert table["Parameters"].iloc[1] is None or table["Parameters"].isna().iloc[1]


def test_the_sentences_carry_the_measured_numbers():
    scores = [scoreboard.score("upright", UPRIGHT_ONLY), scoreboard.score("invariant", INVARIANT)]
    verdict = scoreboard.verdict(scores)
    assert "**invariant** (99.10% at its worst, 180°)" in verdict and "upright" not in verdict
    assert "No model reaches 99%" in scoreboard.verdict(scores[:1])
    said = scoreboard.six_nine_sentence(scores)
    assert "**invariant** reads 99.0% of the 6s and 97.5% of the 9s" in said
    assert "**upright**" in said and "29.8% and 29.8%" in said


def test_the_literature_is_named_as_another_benchmark():
    table = scoreboard.literature_table(0.97)
    assert table["Test accuracy"].iloc[0] == 0.97 and "report" in table["Result"].iloc[0]
    assert all("MNIST-rot" in name for name in table["Result"].iloc[1:])
    assert table["Test accuracy"].iloc[-1] == pytest.approx(0.9932)
