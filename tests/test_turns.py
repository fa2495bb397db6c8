"""rotinv.turns: page runs let in a few at a time, first come first served."""

import os
import sys
import threading
import time

import pytest

from rotinv.limits import max_concurrent_page_runs
from rotinv.turns import BACKGROUND_NICENESS, Turns, in_background


def wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.005)


def test_threads_are_let_in_in_the_order_they_came():
    turns = Turns(1)
    order: list[int] = []
    release_first = threading.Event()

    def first() -> None:
        with turns.turn():
            release_first.wait(10)
            order.append(0)

    def later(number: int) -> None:
        with turns.turn():
            order.append(number)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    wait_until(lambda: turns.inside == 1)
    for number in range(1, 6):  # queue up one by one, so their arrival order is known
        thread = threading.Thread(target=later, args=(number,))
        thread.start()
        threads.append(thread)
        wait_until(lambda: turns.waiting == number)
    release_first.set()
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2, 3, 4, 5]


def test_a_thread_that_just_left_cannot_step_in_front_of_those_waiting():
    turns = Turns(1)
    order: list[str] = []
    holder_may_leave = threading.Event()

    def holder() -> None:
        with turns.turn():
            holder_may_leave.wait(10)
        with turns.turn():  # straight back in line: behind the waiter
            order.append("holder again")

    def waiter() -> None:
        with turns.turn():
            order.append("waiter")

    first = threading.Thread(target=holder)
    first.start()
    wait_until(lambda: turns.inside == 1)
    second = threading.Thread(target=waiter)
    second.start()
    wait_until(lambda: turns.waiting == 1)
    holder_may_leave.set()
    first.join(10)
    second.join(10)
    assert order == ["waiter", "holder again"]


def test_no_more_than_the_slots_are_inside_at_once():
    turns = Turns(2)
    inside, most = [0], [0]
    lock = threading.Lock()

    def work() -> None:
        with turns.turn():
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.01)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert most[0] == 2


def test_a_turn_nests_in_the_same_thread_and_is_freed_by_an_exception():
    turns = Turns(1)
    with pytest.raises(RuntimeError):
        with turns.turn():
            with turns.turn():  # a page part inside its page's run: no wait for itself
                assert turns.holds()
                raise RuntimeError("a part failed")
    assert not turns.holds()
    done = threading.Event()
    threading.Thread(target=lambda: (turns.turn().__enter__(), done.set())).start()
    assert done.wait(5), "the slot was not freed by the exception"


def test_the_parts_of_one_rerun_wait_in_line_once_and_keep_the_slot_to_the_last():
    turns = Turns(1)
    order: list[str] = []
    waiter_queued = threading.Event()

    def waiter() -> None:
        with turns.turn():
            order.append("other session")

    run = ["part 1", "part 2", "part 3"]  # one rerun's parts, in the order Streamlit runs them
    thread = threading.Thread(target=waiter)
    for part in run:
        with turns.steps(run, last=part == run[-1]):
            if part == "part 1":
                thread.start()
                wait_until(lambda: turns.waiting == 1)
                waiter_queued.set()
            order.append(part)
        # between the parts the slot stays this thread's: the waiter is still waiting
        assert turns.holds() == (part != run[-1]) and turns.waiting == (part != run[-1])
    thread.join(10)
    assert order == ["part 1", "part 2", "part 3", "other session"]


def test_a_part_that_raises_frees_the_slot_at_once():
    turns = Turns(1)
    run = ["part 1", "part 2"]
    with pytest.raises(RuntimeError):
        with turns.steps(run, last=False):
            raise RuntimeError("interrupted by a newer change")
    assert not turns.holds() and turns.inside == 0


def test_a_slot_kept_for_a_part_that_never_comes_is_freed():
    turns = Turns(1)
    # The thread's next run (a whole page run, or another rerun's parts) frees it first.
    with turns.steps(["a", "b"], last=False):
        pass
    assert turns.inside == 1
    with turns.turn():
        assert turns.inside == 1
    assert turns.inside == 0 and not turns.holds()
    with turns.steps(["a", "b"], last=False):
        pass
    with turns.steps(["c", "d"], last=True):  # another run's list: the first was over
        assert turns.inside == 1
    assert turns.inside == 0
    # A thread that ends keeping a slot (its session had nothing more to run): the next in line gets it.
    def first_of_two_parts() -> None:
        with turns.steps(["e", "f"], last=False):
            pass

    ended = threading.Thread(target=first_of_two_parts)
    ended.start()
    ended.join(10)
    assert turns.inside == 1
    got_in = threading.Event()

    def waiter_run() -> None:
        with turns.turn():
            got_in.set()

    waiter = threading.Thread(target=waiter_run)
    waiter.start()
    assert got_in.wait(5), "the slot of a thread that ended was never freed"


def test_the_parts_of_a_whole_page_run_keep_nothing_after_it():
    turns = Turns(1)
    with turns.turn():
        with turns.steps(["a", "b"], last=False):  # a part inside the page's own run
            assert turns.inside == 1
        assert turns.holds()
    assert turns.inside == 0 and not turns.holds()


def test_stepping_aside_lets_another_thread_in_and_then_waits_its_turn_again():
    turns = Turns(1)
    events: list[str] = []
    other_inside = threading.Event()
    other_may_leave = threading.Event()

    def other() -> None:
        with turns.turn():
            events.append("other in")
            other_inside.set()
            other_may_leave.wait(10)
            events.append("other out")

    with turns.turn():
        thread = threading.Thread(target=other)
        thread.start()
        wait_until(lambda: turns.waiting == 1)
        with turns.step_aside():  # a training: the other session is answered meanwhile
            assert not turns.holds()
            assert other_inside.wait(5)
            other_may_leave.set()
        events.append("back in")
        assert turns.holds()
    thread.join(10)
    assert events == ["other in", "other out", "back in"]


def test_stepping_aside_outside_a_turn_does_nothing():
    turns = Turns(1)
    with turns.step_aside():
        assert not turns.holds()
    with turns.turn():
        assert turns.holds()


def test_the_setting_is_read_and_checked():
    assert max_concurrent_page_runs({}) == 1
    assert max_concurrent_page_runs({"ROTINV_MAX_CONCURRENT_PAGE_RUNS": "3"}) == 3
    for bad in ("0", "many", "-2"):
        with pytest.raises(ValueError, match="ROTINV_MAX_CONCURRENT_PAGE_RUNS"):
            max_concurrent_page_runs({"ROTINV_MAX_CONCURRENT_PAGE_RUNS": bad})
    with pytest.raises(ValueError):
        Turns(0)


def test_background_work_runs_at_a_lower_priority_in_its_own_thread_only():
    main_thread = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, main_thread)
    seen: dict[str, int] = {}

    def work() -> None:
        me = threading.get_native_id()
        with in_background():
            seen["inside"] = os.getpriority(os.PRIO_PROCESS, me)
            seen["main meanwhile"] = os.getpriority(os.PRIO_PROCESS, main_thread)
        seen["after"] = os.getpriority(os.PRIO_PROCESS, me)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(10)
    # Per-thread priority is Linux's: elsewhere the block runs as it is.
    lowered = max(before, BACKGROUND_NICENESS) if sys.platform.startswith("linux") else before
    assert seen["inside"] == lowered
    assert seen["main meanwhile"] == before  # the pages' threads keep theirs
    if os.geteuid() == 0:  # only a privileged process may raise a thread's priority again
        assert seen["after"] == before


def test_a_bad_page_runs_setting_is_named_on_the_page_and_the_default_used(new_app, monkeypatch):
    import app_shared

    monkeypatch.setattr(app_shared, "_turns", None)  # made again from the setting below
    monkeypatch.setattr(app_shared, "_turns_problem", None)
    monkeypatch.setenv("ROTINV_MAX_CONCURRENT_PAGE_RUNS", "none")
    at = new_app()
    at.run()
    assert not at.exception
    assert any("ROTINV_MAX_CONCURRENT_PAGE_RUNS" in warning.value for warning in at.warning)
    assert app_shared.page_turns().slots == 1
