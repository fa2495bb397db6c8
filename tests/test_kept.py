"""app_shared.kept: the small shared store the Inside page's hot calls use instead of st.cache_*."""

from __future__ import annotations

import pytest

import app_shared


@pytest.fixture(autouse=True)
def empty_stores():
    app_shared._KEPT.clear()  # each test starts as a fresh server does
    yield
    app_shared._KEPT.clear()


def make_counted(calls: list, max_entries: int = 2):
    """The same function as a page would define it again at every run."""
    @app_shared.kept(max_entries=max_entries)
    def square(number: int, label: str, _model: object) -> dict:
        calls.append((number, label))
        return {"square": number * number}

    return square


def test_the_plain_arguments_are_the_key_and_the_result_is_shared():
    calls: list = []
    square = make_counted(calls)
    first = square(3, "a", object())
    again = square(3, "a", object())  # another model object under an "_" name: still the same key
    assert first is again and first == {"square": 9} and calls == [(3, "a")]
    square(3, "b", None)
    assert calls == [(3, "a"), (3, "b")]


def test_the_least_recently_used_goes_first():
    calls: list = []
    square = make_counted(calls, max_entries=2)
    square(1, "x", None)
    square(2, "x", None)
    square(1, "x", None)  # 1 is now the most recent
    square(3, "x", None)  # evicts 2
    square(1, "x", None)
    assert calls == [(1, "x"), (2, "x"), (3, "x")]
    square(2, "x", None)
    assert calls[-1] == (2, "x")


def test_a_function_defined_again_keeps_its_store_and_an_error_is_not_kept():
    calls: list = []
    make_counted(calls)(5, "run 1", None)
    make_counted(calls)(5, "run 1", None)  # the next script run's definition
    assert calls == [(5, "run 1")]

    attempts = []

    @app_shared.kept(max_entries=4)
    def fails_once(number: int) -> int:
        attempts.append(number)
        if len(attempts) == 1:
            raise RuntimeError("first try")
        return number

    try:
        fails_once(1)
    except RuntimeError:
        pass
    assert fails_once(1) == 1 and attempts == [1, 1]


def test_a_result_made_another_way_can_be_kept_and_is_then_found():
    calls: list = []
    square = make_counted(calls, max_entries=2)
    assert not square.holds(4, "a", None)
    square.keep({"square": 16, "batched": True}, 4, "a", object())  # the "_" argument is not part of the key
    assert square.holds(4, "a", None)
    assert square(4, "a", None) == {"square": 16, "batched": True} and calls == []
    square.keep({"square": 25}, 5, "a", None)
    square.keep({"square": 36}, 6, "a", None)  # the third: the oldest goes
    assert not square.holds(4, "a", None) and square.holds(6, "a", None)
