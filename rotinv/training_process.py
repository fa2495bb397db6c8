"""train() in a process of its own, reporting to the thread that started it.

A Streamlit server runs every session's script in threads of one Python interpreter, and
only one thread runs Python at a time. A training step is mostly Python (autograd, Adam,
the loop) between short torch calls that let go of the interpreter and must queue to get
it back: trained in a session's thread under a class, a quick demo took five times as
long and made every student's answer slower (BENCHMARKS.md). In a worker process it has
an interpreter of its own and shares only the cores.

    job = TrainingJob(config, train_images=10_000, data_root="…", precision=choice)
    with TrainingProcess(job) as training:      # the worker is given back (or ended) on the way out
        for progress in training.reports():      # blocks until the next report
            ...                                  # an exception here leaves the loop: then stop()
        state = training.state_dict              # the trained weights, once reports() ends

A worker is a fresh `python -m rotinv.training_process` (never a fork of the server's
threads). It loads the training images itself, so they never enter the server, trains
with rotinv.training.train as a script would (same seed, same model), answers a stop at
its next step, and then waits for the next job: importing torch takes a worker a few
seconds and ~0.5 GB, paid once, not per training. A worker left without a job for
WORKER_IDLE_S seconds ends itself and gives that memory back; so does one whose server
has gone. It runs at a lower CPU priority than the server: on a small machine the
students' answers come first, the training takes the rest.
"""

from __future__ import annotations

import io
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable, Iterator

import torch

from rotinv.training import PrecisionChoice, Progress, TrainConfig

POLL_S = 0.5  # how often a waiting parent checks that its worker is still there
WORKER_IDLE_S = 120.0  # a worker with no job for this long ends itself
WORKER_NICENESS = 5  # added to the worker's CPU niceness: the server's answers first
STOP_MESSAGE = "stop"


class TrainingFailed(RuntimeError):
    """The training failed in its worker, or the worker ended without a result."""


@dataclass(frozen=True)
class TrainingJob:
    """What a worker needs for one training: all picklable, nothing shared with the server."""

    config: TrainConfig
    train_images: int  # the first N of MNIST's training split
    data_root: str
    precision: PrecisionChoice  # config.precision, already settled
    report_every: int = 20
    held_out: tuple[torch.Tensor, torch.Tensor] | None = None  # images and labels for the live accuracy
    torch_threads: int = 1


def _send(connection: Connection, message: object) -> None:
    # Plain pickles, not Connection.send's: where torch.multiprocessing is imported, that one
    # passes tensors as shared-memory handles only a multiprocessing child may open.
    connection.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def _receive(connection: Connection) -> object:
    return pickle.loads(connection.recv_bytes())


# --- the parent's side -------------------------------------------------------------------------


class _Worker:
    def __init__(self, idle_s: float) -> None:
        ours, theirs = socket.socketpair()
        package_root = str(Path(__file__).resolve().parents[1])  # so the worker imports this rotinv
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rotinv.training_process", str(theirs.fileno()), repr(idle_s)],
            pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL)
        theirs.close()
        self.connection = Connection(ours.detach())

    def alive(self) -> bool:
        return self.process.poll() is None

    def end(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait(timeout=10)
        self.connection.close()


_idle_workers: list[_Worker] = []
_busy_workers = 0  # workers training now
_workers_lock = threading.Lock()


def _borrow_worker(idle_s: float) -> _Worker:
    global _busy_workers
    with _workers_lock:
        _busy_workers += 1
        while _idle_workers:
            worker = _idle_workers.pop()
            if worker.alive():
                return worker
            worker.end()
    return _Worker(idle_s)


def prepare_worker(most: int = 1, idle_s: float = WORKER_IDLE_S) -> None:
    """Start a worker now, so it has imported torch by the time a training needs it: unless one is
    already waiting, or `most` (the trainings allowed at once) are there already. A worker costs
    ~0.5 GB; a server that runs one training at a time never needs two."""
    with _workers_lock:
        _idle_workers[:] = [worker for worker in _idle_workers if worker.alive()]
        if _idle_workers or _busy_workers + len(_idle_workers) >= most:
            return
        _idle_workers.append(_Worker(idle_s))


def _give_back_worker(worker: _Worker | None) -> None:
    """A training is over: keep its worker for the next one, unless another is waiting already."""
    global _busy_workers
    with _workers_lock:
        _busy_workers -= 1
        if worker is not None and not any(waiting.alive() for waiting in _idle_workers):
            _idle_workers.append(worker)
            return
    if worker is not None:
        worker.end()


def idle_worker_pids() -> list[int]:
    """The processes of the workers waiting for a job (for tests and the load harness)."""
    with _workers_lock:
        return [worker.process.pid for worker in _idle_workers if worker.alive()]


class TrainingProcess:
    """One training in a worker process; the thread that started it reads the reports as they come."""

    def __init__(self, job: TrainingJob, idle_s: float = WORKER_IDLE_S) -> None:
        self._worker = _borrow_worker(idle_s)
        self._connection = self._worker.connection
        self._stop_sent = False
        self._ended = False  # the worker said how the job ended: its weights, or why it failed
        self.state_dict: dict[str, torch.Tensor] | None = None  # the weights, once the training has ended
        self.stopped_early = False
        self._closed = False
        try:
            _send(self._connection, job)
        except OSError:  # the worker ended itself just now: a new one
            self._worker.end()
            self._worker = _Worker(idle_s)
            self._connection = self._worker.connection
            try:
                _send(self._connection, job)
            except OSError as error:
                self._worker.end()
                _give_back_worker(None)
                raise TrainingFailed(f"A training process could not be started: {error}") from None

    @property
    def pid(self) -> int:
        return self._worker.process.pid

    def reports(self, should_stop: Callable[[], bool] | None = None) -> Iterator[Progress]:
        """Each progress report as it arrives, until the training ends (then state_dict is set).

        `should_stop` is asked between reports, at least every POLL_S seconds: once it answers
        True the worker is asked to stop at its next step, and its last reports still come.
        """
        while not self._ended:
            if should_stop is not None and not self._stop_sent and should_stop():
                self._send_stop()
            progress = self._next(POLL_S)
            if progress is not None:
                yield progress

    def stop(self, timeout: float = 30.0) -> list[Progress]:
        """Ask the worker to stop at its next step and wait for the weights: the reports it sent meanwhile.

        Waits at most `timeout` seconds; state_dict is still None if no weights came by then.
        """
        late: list[Progress] = []
        if self._ended:
            return late
        try:
            self._send_stop()
            deadline = time.monotonic() + timeout
            while not self._ended and (left := deadline - time.monotonic()) > 0:
                if (progress := self._next(min(POLL_S, left))) is not None:
                    late.append(progress)
        except (TrainingFailed, OSError):
            pass
        return late

    def close(self) -> None:
        """Give the worker back for the next training, or end it if its training did not end cleanly."""
        if self._closed:
            return
        self._closed = True
        if not self._ended:
            self.stop(timeout=10.0)
        if self._ended and self._worker.alive():
            _give_back_worker(self._worker)
        else:
            self._worker.end()
            _give_back_worker(None)

    def __enter__(self) -> TrainingProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send_stop(self) -> None:
        if not self._stop_sent:
            _send(self._connection, STOP_MESSAGE)
            self._stop_sent = True

    def _next(self, wait_s: float) -> Progress | None:
        """The next report within `wait_s` seconds, or None (nothing yet, or the final weights came)."""
        if not self._connection.poll(wait_s):
            if not self._worker.alive() and not self._connection.poll():
                raise TrainingFailed("The training's worker process ended without a result "
                                     f"(exit code {self._worker.process.returncode}).")
            return None
        try:
            kind, payload = _receive(self._connection)
        except (EOFError, OSError):
            raise TrainingFailed("The training's worker process closed its connection before it finished.") from None
        if kind == "progress":
            return payload
        self._ended = True
        if kind == "failed":
            raise TrainingFailed(payload)
        weights, self.stopped_early = payload
        self.state_dict = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
        return None


# --- the worker ---------------------------------------------------------------------------------


_training_splits: dict[str, object] = {}  # a worker's training images, by data root: loaded once


def run_job(job: TrainingJob, connection: Connection) -> None:
    """Train one job, sending its reports and then its weights (or why it failed) over `connection`."""
    from rotinv.data import load_mnist
    from rotinv.training import train

    stopping = False

    def should_stop() -> bool:
        nonlocal stopping
        try:
            stopping = stopping or (connection.poll() and _receive(connection) == STOP_MESSAGE)
        except (EOFError, OSError):  # the server is gone: nobody to train for
            stopping = True
        return stopping

    try:
        torch.set_num_threads(job.torch_threads)
        if job.data_root not in _training_splits:  # as the files' bytes: 47 MB, not 188
            _training_splits[job.data_root] = load_mnist(True, job.data_root, download=False, as_bytes=True)
        split = _training_splits[job.data_root].subset(job.train_images)
        result = train(split.images, split.labels, job.config,
                       on_progress=lambda progress: _send(connection, ("progress", progress)),
                       should_stop=should_stop, report_every=job.report_every, held_out=job.held_out,
                       precision=job.precision)
        weights = io.BytesIO()
        torch.save({name: tensor.detach().contiguous() for name, tensor in result.model.state_dict().items()}, weights)
        _send(connection, ("done", (weights.getvalue(), result.stopped_early)))
    except OSError:
        raise  # the connection: the server is gone
    except Exception as error:  # the parent shows it
        _send(connection, ("failed", f"{type(error).__name__}: {error}"))


def serve(connection: Connection, idle_s: float) -> None:
    """A worker's life: one job after another, until none comes for `idle_s` seconds or the server goes."""
    try:
        while connection.poll(idle_s):
            job = _receive(connection)
            if isinstance(job, TrainingJob):  # a stop that crossed the job's end is dropped here
                run_job(job, connection)
    except (EOFError, OSError):
        pass


if __name__ == "__main__":
    from rotinv import training_process  # by its name: the jobs pickled in the server name its classes

    os.nice(WORKER_NICENESS)
    training_process.serve(Connection(int(sys.argv[1])), float(sys.argv[2]))
