"""The training queue (rotinv.admission) and its setting (rotinv.limits): order, cancelling,
closed sessions, more than one slot, the estimate, and bad settings. No timing is asserted:
a fake clock stands in for time where the estimate is checked."""

import threading

import pytest

from rotinv.admission import CANCELLED, DONE, RUNNING, WAITING, Admission, shared_admission
from rotinv.limits import MAX_CONCURRENT_TRAININGS_ENV, default_concurrent_trainings, max_concurrent_trainings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_first_come_first_served_with_one_slot():
    admission = Admission(1)
    a, b, c = (admission.request(name) for name in "abc")
    assert [t.position() for t in (a, b, c)] == [1, 2, 3]
    assert not b.try_start() and not c.try_start()  # not their turn, though nobody runs yet
    assert a.try_start() and a.status().state == RUNNING
    assert [b.position(), c.position()] == [1, 2]
    assert not b.try_start()  # the slot is taken
    a.finish()
    assert not c.try_start() and b.try_start()
    assert admission.counts() == (1, 1)


def test_asking_again_keeps_the_place():
    admission = Admission(1)
    first = admission.request("a")
    admission.request("b")
    assert admission.request("a") is first  # a page rerun asks again: still one place
    assert admission.ticket("a") is first and admission.counts() == (0, 2)
    first.try_start()
    first.finish()
    assert admission.ticket("a") is None
    again = admission.request("a")
    assert again is not first and again.position() == 2  # a new request goes to the end


def test_cancel_gives_the_place_up_and_the_ones_behind_move_up():
    admission = Admission(1)
    a, b, c = (admission.request(name) for name in "abc")
    a.try_start()
    b.cancel()
    assert b.status().state == CANCELLED and b.status().reason == "cancelled" and b.position() == 0
    assert c.position() == 1 and not b.try_start()
    a.cancel()  # a running training cancelled frees its slot
    assert c.try_start()
    b.cancel(), a.finish()  # idempotent, and an ended ticket stays ended
    assert a.status().state == CANCELLED and admission.counts() == (1, 0)


def test_a_closed_session_frees_its_place_and_its_slot():
    admission = Admission(1)
    a, b, c = (admission.request(name) for name in "abc")
    a.try_start()
    admission.close_session("b")
    assert b.status().reason == "session closed" and c.position() == 1
    admission.close_session("a")
    assert a.status().state == CANCELLED and c.try_start()
    admission.close_session("nobody")  # a session without a ticket: nothing to do


def test_a_session_gone_longer_than_the_grace_period_loses_its_place():
    clock = Clock()
    alive = {"a", "b", "c"}
    admission = Admission(1, is_alive=alive.__contains__, grace_s=10, clock=clock)
    a, b, c = (admission.request(name) for name in "abc")
    a.try_start()
    alive.discard("b")
    clock.now = 5
    assert b.position() == 1  # gone 0 s when first noticed: could be a reconnecting browser
    clock.now = 9
    alive.add("b")
    assert b.position() == 1  # back in time
    alive.discard("b")
    clock.now = 10
    b.position()
    clock.now = 20
    assert b.status().state == CANCELLED and b.status().reason == "session closed"
    assert c.position() == 1
    alive.discard("a")  # a running training whose session is gone does not keep the slot forever
    admission.counts()
    clock.now = 31
    assert c.try_start() and a.status().state == CANCELLED


def test_more_than_one_slot():
    admission = Admission(2)
    a, b, c, d = (admission.request(name) for name in "abcd")
    assert b.try_start()  # two free slots: the first two in line may start, in either order
    assert not c.try_start()
    assert a.try_start()
    assert not c.try_start() and c.position() == 1 and admission.counts() == (2, 2)
    b.finish()
    assert not d.try_start() and c.try_start()
    assert c.status().running == 2 and d.status().limit == 2


def test_the_estimate_follows_the_trainings_ahead():
    clock = Clock()
    admission = Admission(1, clock=clock)
    a = admission.request("a", expected_s=30)
    b = admission.request("b", expected_s=20)
    c = admission.request("c")  # no estimate of its own and none seen yet: the default
    assert b.status().estimate_s == 30  # waits for a, which has not started
    a.try_start()
    clock.now = 10
    assert b.status().estimate_s == 20 and c.status().estimate_s == 40
    clock.now = 100  # a overran its estimate: b may start any moment
    assert b.status().estimate_s == 0
    a.finish()
    assert a.status().estimate_s is None
    b.try_start()
    clock.now = 110
    b.finish()
    assert c.status().estimate_s == 0
    d = admission.request("d")
    assert d.status().estimate_s == pytest.approx((100 + 10) / 2)  # the trainings seen to end, averaged


def test_with_ticket_frees_the_slot_however_the_training_ends():
    admission = Admission(1)
    a, b = admission.request("a"), admission.request("b")
    with pytest.raises(RuntimeError, match="not running"):
        with b:
            pass
    assert a.try_start()
    with pytest.raises(KeyboardInterrupt):
        with a:
            raise KeyboardInterrupt  # Streamlit stops a script with an exception too
    assert a.status().state == DONE and b.try_start()


def test_acquire_waits_for_its_turn_and_gives_up_after_the_timeout():
    admission = Admission(1)
    a, b = admission.request("a"), admission.request("b")
    a.try_start()
    assert not b.acquire(timeout=0.05) and b.status().state == WAITING
    started = threading.Event()

    def second() -> None:
        started.set()
        assert b.acquire(timeout=30)

    thread = threading.Thread(target=second)
    thread.start()
    started.wait()
    a.finish()
    thread.join(timeout=30)
    assert b.status().state == RUNNING
    c = admission.request("c")
    threading.Timer(0.05, c.cancel).start()
    assert not c.acquire(timeout=30)  # a cancel from another thread ends the wait


def test_many_threads_never_run_more_than_the_limit():
    admission = Admission(2)
    running, most, lock = [0], [0], threading.Lock()

    def student(name: str) -> None:
        ticket = admission.request(name)
        assert ticket.acquire(timeout=60)
        with ticket:
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=student, args=(f"s{i}",)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert most[0] <= 2 and admission.counts() == (0, 0)


def test_the_setting_defaults_to_the_cores():
    assert default_concurrent_trainings(1) == 1
    assert default_concurrent_trainings(2) == 1
    assert default_concurrent_trainings(4) == 2
    assert default_concurrent_trainings(16) == 8
    assert max_concurrent_trainings({}, cores=2) == 1
    assert max_concurrent_trainings({MAX_CONCURRENT_TRAININGS_ENV: " "}, cores=8) == 4
    assert max_concurrent_trainings({MAX_CONCURRENT_TRAININGS_ENV: "3"}, cores=2) == 3


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", "65"])
def test_a_bad_setting_says_which_and_why(text):
    with pytest.raises(ValueError, match=MAX_CONCURRENT_TRAININGS_ENV) as raised:
        max_concurrent_trainings({MAX_CONCURRENT_TRAININGS_ENV: text})
    assert "between 1 and 64" in str(raised.value)


@pytest.mark.parametrize("limit", [0, -1, 1.0, None])
def test_an_admission_needs_a_slot(limit):
    with pytest.raises(ValueError, match="At least one training"):
        Admission(limit)


def test_one_registry_per_process(monkeypatch):
    import rotinv.admission

    monkeypatch.setattr(rotinv.admission, "_shared", None)
    monkeypatch.setenv(MAX_CONCURRENT_TRAININGS_ENV, "3")
    assert shared_admission() is shared_admission() and shared_admission().limit == 3
    monkeypatch.setattr(rotinv.admission, "_shared", None)
    monkeypatch.setenv(MAX_CONCURRENT_TRAININGS_ENV, "many")
    with pytest.raises(ValueError, match=MAX_CONCURRENT_TRAININGS_ENV):
        shared_admission()
