"""`python -m rotinv.bench.loadtest`: a class of students on one server, through its real websocket.

For each number of sessions and each number of trainings asked for, it starts the app
(`streamlit run streamlit_app.py` on 127.0.0.1, a free port), lets one visitor warm it
up, then lets N simulated students (rotinv.bench.students) arrive over the first seconds
and use it until the lesson ends, a few of them pressing Train. Then it stops the server
(its own process group, by PID) and prints what the students saw:

- how long a widget change took to be answered (p50/p95/max), and a page switch;
- a new visitor's time to the first full page;
- every error: exception elements, error messages, dropped connections, timeouts,
  failed picture downloads, and answers that were not the session's own or not the model's;
- the trainings asked for and how they ended; the server's peak RSS (its process tree);
- the capacity: the largest N whose widget-change p95 stayed under 1 s.

    python -m rotinv.bench.loadtest --quick                     # 3 sessions for 20 s, prints only
    python -m rotinv.bench.loadtest --sessions 1 10 30 50 --trainings 0 3 --out BENCHMARKS.md

Only --out writes a file: its section between the load-test markers (BENCHMARKS.md keeps
the rest; `python -m rotinv.bench` keeps this section). --json writes every figure and
every error, for tests. It talks to 127.0.0.1 only, and every run is bounded: the lesson
lasts --seconds, then each student gets --timeout (a training --train-timeout) to finish.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rotinv.bench.loadreport import Result, markdown_section, summarise, text_table, write_section
from rotinv.bench.machine import load_now
from rotinv.bench.server import start_app, stop
from rotinv.bench.settings import DEFAULT_MODEL, DEFAULT_OUT
from rotinv.bench.stclient import Client, SessionError
from rotinv.bench.students import INSIDE_PAGE, Oracle, Plan, Student
from rotinv.data import resolve_data_root
from rotinv.limits import MAX_CONCURRENT_TRAININGS_ENV, TORCH_THREADS_ENV


@dataclass(frozen=True)
class LoadConfig:
    sessions: int
    trainings: int  # how many of them press Train
    seconds: float  # the lesson, from the first arrival to everyone leaving
    seed: int = 0
    timeout_s: float = 30.0
    train_timeout_s: float = 300.0
    env: tuple[tuple[str, str], ...] = ()  # for the server, on top of os.environ


def plans(config: LoadConfig) -> list[Plan]:
    """Who arrives when, and who trains: seeded, so a rerun of the harness is the same lesson.

    Arrivals spread over the first third of the lesson (at most 10 s): most students
    arrive while others already work, as a class does. The trainers press Train 2-4 s
    after they arrive, so their requests overlap and the queue (phase 2) is exercised.
    """
    chance = random.Random(config.seed)
    ramp = min(10.0, config.seconds / 3)
    trainers = set(chance.sample(range(config.sessions), min(config.trainings, config.sessions)))
    out = []
    for number in range(config.sessions):
        arrive = chance.uniform(0.0, ramp) if config.sessions > 1 else 0.0
        out.append(Plan(number=number, seed=config.seed * 1000 + number, arrive_s=arrive,
                        leave_s=config.seconds, train_at_s=arrive + chance.uniform(2.0, 4.0) if number in trainers
                        else None, timeout_s=config.timeout_s, train_timeout_s=config.train_timeout_s))
    return out


class PeakRss:
    """The server's resident memory, its whole process tree summed, sampled every 0.2 s in a thread."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                tree = [self._root, *self._root.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            self._stop.wait(0.2)

    def close(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) the process and its children have used so far.

    Beside the cores a lesson could use, it tells a server bound by its cores from one
    bound by its one interpreter (the sessions' script threads share one GIL).
    """
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for member in [root, *root.children(recursive=True)]:
            times = member.cpu_times()
            total += times.user + times.system
    except psutil.Error:
        pass
    return total


async def warm_up(url: str, timeout: float) -> float:
    """One visitor before the class: the server's first run (imports, models, MNIST) is paid
    here, so the students' first renders are a new visitor's on a running server. Its seconds."""
    client = Client(url)
    await client.connect()
    try:
        first = await client.rerun(timeout)
        await client.rerun(timeout, page=INSIDE_PAGE)
    finally:
        await client.close()
    return first


async def lesson(url: str, config: LoadConfig, oracle: Oracle) -> list:
    start = time.monotonic()
    students = [Student(url, plan, oracle) for plan in plans(config)]
    return await asyncio.gather(*(student.run(start) for student in students))


def run_config(config: LoadConfig, oracle: Oracle, log=print) -> Result:
    """One server, one lesson: what the students saw, summarised."""
    import psutil

    env = dict(os.environ, **dict(config.env))
    load_before = load_now()
    with tempfile.TemporaryFile() as server_log:
        process, url = start_app(server_log, env)
        try:
            rss = PeakRss(process.pid)
            harness = psutil.Process()
            cpu_before = sum(harness.cpu_times()[:2])
            try:
                cold = asyncio.run(warm_up(url, max(config.timeout_s, 120.0)))
            except (SessionError, OSError) as error:
                cold = None
                log(f"warm-up failed: {error}")
            server_before = tree_cpu_seconds(process.pid)
            started = time.monotonic()
            outcomes = asyncio.run(lesson(url, config, oracle))
            wall = time.monotonic() - started
            harness_cpu = sum(harness.cpu_times()[:2]) - cpu_before
            server_cpu = tree_cpu_seconds(process.pid) - server_before
            peak = rss.close()
        finally:
            stop(process)
        server_log.seek(0)
        tail = server_log.read().decode(errors="replace").splitlines()[-20:]
    result = summarise(config.sessions, config.trainings, outcomes, cold, peak, wall, harness_cpu / max(wall, 1e-9),
                       server_cpu / max(wall, 1e-9))
    result.load = f"before: {load_before}; after: {load_now()}"
    if any(kind == "exception" for kind, _ in result.error_list):
        result.server_log_tail = tail
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m rotinv.bench.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 10, 30, 50], help="class sizes to measure")
    parser.add_argument("--trainings", type=int, nargs="+", default=[0, 3],
                        help="how many students press Train, for each class size")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long each lesson lasts")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds one answer may take")
    parser.add_argument("--train-timeout", type=float, default=300.0, help="seconds one training may take, queue included")
    parser.add_argument("--max-trainings", type=int, default=None,
                        help=f"{MAX_CONCURRENT_TRAININGS_ENV} for the server (default: as set, or the app's default)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help=f"{TORCH_THREADS_ENV} for the server (default: as set, or torch's own choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="3 sessions, 0 and 1 trainings, 20 s; prints only")
    parser.add_argument("--out", default=None, help=f"write the section into this Markdown file (e.g. {DEFAULT_OUT.name})")
    parser.add_argument("--json", default=None, help="write every figure and error as JSON here")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="the shipped model the answers are checked against")
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions, args.trainings, args.seconds = [3], [0, 1], min(args.seconds, 20.0)
    problems = [f"--{name} must be at least {low}" for name, value, low in
                [("sessions", min(args.sessions), 1), ("trainings", min(args.trainings), 0),
                 ("seconds", args.seconds, 1), ("timeout", args.timeout, 1), ("train-timeout", args.train_timeout, 1),
                 ("max-trainings", 1 if args.max_trainings is None else args.max_trainings, 1),
                 ("torch-threads", 1 if args.torch_threads is None else args.torch_threads, 1)]
                if value < low]
    if max(args.sessions) > 200:
        problems.append("--sessions above 200 is not a class")
    if problems:
        parser.error("; ".join(problems))
    return args


def server_env(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    env = {}
    if args.max_trainings is not None:
        env[MAX_CONCURRENT_TRAININGS_ENV] = str(args.max_trainings)
    if args.torch_threads is not None:
        env[TORCH_THREADS_ENV] = str(args.torch_threads)
    return tuple(env.items())


def command_line(argv: list[str]) -> str:
    return " ".join(["python -m rotinv.bench.loadtest", *argv])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)

    def log(message: str) -> None:
        print(f"[loadtest {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    import torch

    torch.set_num_threads(1)  # the harness's own predictions are tiny; leave the cores to the server
    try:
        oracle = Oracle(Path(args.model), str(resolve_data_root()))
    except Exception as error:
        print(f"The load test cannot start: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    env = server_env(args)
    results = []
    for trainings in args.trainings:
        for sessions in args.sessions:
            config = LoadConfig(sessions, trainings, args.seconds, args.seed, args.timeout, args.train_timeout, env)
            log(f"{sessions} sessions, {trainings} trainings, {args.seconds:g} s ({load_now()})")
            results.append(run_config(config, oracle, log))
            log(results[-1].one_line())
    env_seen = dict(os.environ, **dict(env))
    print(text_table(results, env_seen))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(result) for result in results], indent=1))
    if args.out:
        write_section(Path(args.out), markdown_section(results, env_seen, command_line(argv), args.timeout,
                                                       args.train_timeout))
        print(f"Wrote the load-test section of {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
