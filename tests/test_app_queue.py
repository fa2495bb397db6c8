"""The training queue through the Train page (AppTest, one slot): when the running training
is stopped, or fails, the page lets go of its ticket, so the student waiting behind it gets
the turn. tests/test_admission.py tests the queue itself; tests/test_app_train.py a
training that waits and one that fails.

A Stop click reaches a training in a browser as Streamlit interrupting the script run at
its next call into Streamlit (the progress bar, in on_progress), with a RerunException:
here the training raises it at its first progress report, after another student has
joined the queue behind it. (Two AppTests cannot run at once in one process: they share
Streamlit's runtime, so the one waiting is a ticket asked for directly.)"""

from __future__ import annotations

import pytest

import app_shared
import rotinv.training
from rotinv.limits import MAX_CONCURRENT_TRAININGS_ENV

REAL_TRAIN = rotinv.training.train


def press_train(at) -> None:
    at.select_slider(key="train_size").set_value(2_000)
    at.number_input(key="train_epochs").set_value(1)
    at.button(key="train_button").click()
    at.run()


class InterruptedTraining:
    """rotinv.training.train for the page: the first real training, at its first progress
    report, lets another student join the queue, then ends as told ("stop" or "fail")."""

    def __init__(self, ending: str, admission) -> None:
        self.ending = ending
        self.admission = admission
        self.waiting = None  # the other student's ticket
        self.interrupted = False

    def __call__(self, *args, **kwargs):
        if "model" not in kwargs or self.interrupted:  # the page's few timed steps, or a later training
            return REAL_TRAIN(*args, **kwargs)
        on_progress = kwargs["on_progress"]

        def interrupting(progress) -> None:
            on_progress(progress)
            if self.interrupted:
                return
            self.interrupted = True
            assert self.admission.counts() == (1, 0)  # this session holds the one slot
            self.waiting = self.admission.request("another student")
            assert not self.waiting.try_start()  # not while this training runs
            if self.ending == "stop":
                from streamlit.runtime.scriptrunner_utils.exceptions import RerunException
                from streamlit.runtime.scriptrunner_utils.script_requests import RerunData

                raise RerunException(RerunData())  # what the Stop click does to the running script
            raise RuntimeError("training failed")

        return REAL_TRAIN(*args, **{**kwargs, "on_progress": interrupting})


@pytest.mark.parametrize("ending", ["stop", "fail"])
def test_a_stopped_or_failed_training_gives_the_next_one_in_the_queue_its_turn(new_app, monkeypatch, ending):
    monkeypatch.setenv(MAX_CONCURRENT_TRAININGS_ENV, "1")
    admission = app_shared.training_admission()
    training = InterruptedTraining(ending, admission)
    monkeypatch.setattr(rotinv.training, "train", training)  # the page imports it on each run
    at = new_app().run()
    press_train(at)
    assert training.interrupted and training.waiting is not None
    if ending == "stop":
        assert not at.exception
        assert any("Stopped at step" in warning.value for warning in at.warning)
        assert at.session_state[app_shared.TRAINING_RUN].status == "stopped"
    else:
        assert at.exception  # the failure is shown (redacted in this configuration)
    assert admission.counts() == (0, 1)  # the slot is free; the other student still waits
    assert training.waiting.position() == 1 and training.waiting.try_start()  # and its turn has come
    assert admission.counts() == (1, 0)
