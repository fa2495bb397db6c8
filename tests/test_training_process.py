"""Training in a worker process (rotinv.training_process): the same model as training here,
stopping part-way, failures said in words, and workers that are reused and then end."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
import torch

from rotinv.data import load_mnist
from rotinv.training import PrecisionChoice, TrainConfig, train
from rotinv.training_process import TrainingFailed, TrainingJob, TrainingProcess, idle_worker_pids, prepare_worker
from tests.realdata import real_data_root

CONFIG = TrainConfig(epochs=1, batch_size=128)  # 16 steps over 2,000 images
FP32 = PrecisionChoice("fp32", "fp32 asked for")


def job(root: str, **changes) -> TrainingJob:
    return TrainingJob(**{"config": CONFIG, "train_images": 2_000, "data_root": root, "precision": FP32,
                          "report_every": 4, "torch_threads": torch.get_num_threads(), **changes})


def wait_until(condition, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_worker_trains_the_model_train_makes_here_and_is_reused():
    root = real_data_root()
    with TrainingProcess(job(root)) as first:
        steps = [progress.step for progress in first.reports()]
        assert first.pid != os.getpid()
    assert steps == [4, 8, 12, 16] and not first.stopped_early
    images = load_mnist(True, root, as_bytes=True).subset(2_000)
    here = train(images.images, images.labels, CONFIG, report_every=4, precision=FP32).model.state_dict()
    assert here.keys() == first.state_dict.keys()
    assert all(torch.equal(here[name], first.state_dict[name]) for name in here)
    assert first.pid in idle_worker_pids()  # waiting for the next training
    with TrainingProcess(job(root, config=TrainConfig(epochs=1, batch_size=128, seed=1))) as second:
        list(second.reports())
    assert second.pid == first.pid  # torch imported once, not per training
    assert not all(torch.equal(here[name], second.state_dict[name]) for name in here)  # another seed


def test_a_stopped_training_hands_back_the_model_as_trained_so_far():
    root = real_data_root()
    with TrainingProcess(job(root, report_every=1)) as training:
        reports = training.reports()
        first = next(reports)
        late = training.stop()
    assert first.step == 1 and training.stopped_early
    assert late and late[-1].step < 16  # its last report says how far it got
    assert training.state_dict is not None
    # should_stop, asked between reports, stops it too: here once the first report has come
    seen: list[int] = []
    with TrainingProcess(job(root, report_every=1)) as training:
        for progress in training.reports(should_stop=lambda: bool(seen)):
            seen.append(progress.step)
    assert training.stopped_early and seen[0] == 1 and seen[-1] < 16


def test_a_failed_training_says_why_and_its_worker_carries_on(tmp_path):
    with pytest.raises(TrainingFailed, match="DataUnavailableError: MNIST was not found"):
        with TrainingProcess(job(str(tmp_path))) as training:
            list(training.reports())
    assert training.pid in idle_worker_pids()
    with TrainingProcess(job(real_data_root())) as again:
        assert len(list(again.reports())) == 4
    assert again.pid == training.pid


def test_a_worker_that_dies_is_a_failure_not_a_hang():
    with TrainingProcess(job(real_data_root(), report_every=1)) as training:
        reports = training.reports()
        next(reports)
        os.kill(training.pid, signal.SIGKILL)
        with pytest.raises(TrainingFailed, match="ended without a result|closed its connection"):
            list(reports)
    assert training.pid not in idle_worker_pids()  # never lent again


def test_a_worker_without_work_ends_itself():
    with TrainingProcess(job(real_data_root()), idle_s=0.5) as training:
        list(training.reports())
    pid = training.pid
    assert wait_until(lambda: pid not in idle_worker_pids())
    prepare_worker()  # the next training's worker starts before it is asked for
    assert len(idle_worker_pids()) == 1
    prepare_worker()  # one is waiting already: no second
    assert len(idle_worker_pids()) == 1


def test_no_more_workers_than_trainings_allowed_at_once():
    prepare_worker(most=1)
    waiting = idle_worker_pids()
    assert len(waiting) == 1
    with TrainingProcess(job(real_data_root())) as training:
        assert training.pid == waiting[0]  # the prepared worker trains
        prepare_worker(most=1)  # a second press while it trains, with one slot: it will wait, not need a worker
        assert idle_worker_pids() == []
        prepare_worker(most=2)  # with two slots it may start at once: its worker gets ready
        assert len(idle_worker_pids()) == 1
        list(training.reports())
    # the training's worker is not kept beside the one already waiting (~0.5 GB each)
    assert len(idle_worker_pids()) == 1 and training.pid not in idle_worker_pids()
    assert wait_until(lambda: not psutil.pid_exists(training.pid) or
                      psutil.Process(training.pid).status() == psutil.STATUS_ZOMBIE, 10)
