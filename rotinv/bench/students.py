"""A simulated student: what one browser session does during the load test, and what it saw.

Each student follows a seeded random script, the lecture's: open the app (the Train
page), go to Inside the network, then until the lesson ends look, think 1-3 s and act:
turn the rotation slider, pick a test image (by number, or with a Random button), now
and then visit Rotation sweep and come back. A student waits to see the answer before
acting again (a closed loop: a slow server slows its students down, as in a lecture).
Some students press Train first, with the quick-demo settings the page suggests.

After every answer on Inside the network the page is checked against the model itself,
computed here with rotinv: the test image shown is the one this session picked, the
rotated prediction's angle is this session's, and both predictions are what the model
says for that image and angle. A mixed-up session (another student's picture or angle)
or a wrong answer is an error like any other.

The labels the script looks for are the pages' own (below, in one place): when a page
renames a widget, change it here. Page titles are read from streamlit_app.py.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from rotinv.admission import QUEUE_PHRASE
from rotinv.bench.settings import PAGES
from rotinv.bench.stclient import Client, Element, PageProblem, SessionError


def _page(file_part: str) -> str:
    """A page's title as streamlit_app.py registers it, found by its file's name."""
    return next(title for title, path in PAGES if file_part in path)


SWEEP_PAGE, INSIDE_PAGE = _page("sweep"), _page("inside")  # the first visit lands on the default page, Train
ANGLE_SLIDER = "Rotation"
INDEX_INPUT = "Test image"
RANDOM_BUTTONS = ("Random 4", "Random digit")
TRAIN_SIZE = "Training images"
TRAIN_EPOCHS = "Epochs"
TRAIN_BUTTON = "Train"
SHOWN_IMAGE = re.compile(r"Test image (\d+), labelled \*\*(\d)\*\*")
UPRIGHT = "Prediction (upright)"
ROTATED = re.compile(r"Prediction \(rotated (-?\d+)°\)")
# How the Train page reports a training run's end, and a place in the queue (rotinv.admission.queue_message).
TRAINING_ENDS = {"Trained in": "finished", "Stopped at": "stopped", "stopped before its first step": "cancelled"}
QUEUED = re.compile(rf"number \d+ {re.escape(QUEUE_PHRASE)}")

# What a student does next on Inside the network, and how often.
ACTIONS = {"turn": 6, "pick": 3, "sweep": 1}


@dataclass(frozen=True)
class Plan:
    number: int
    seed: int
    arrive_s: float  # after the lesson starts
    leave_s: float
    train_at_s: float | None  # None: never presses Train
    timeout_s: float  # for one answer
    train_timeout_s: float  # for a training run, queue included


@dataclass
class Training:
    outcome: str  # "finished", "stopped", "cancelled", or what went wrong
    seconds: float  # from pressing Train to the page saying how it ended
    queued: bool  # the page showed a place in the queue before it ran


@dataclass
class Outcome:
    """What one student saw."""

    first_render_s: float | None = None
    interactions: list[tuple[str, float]] = field(default_factory=list)  # (what, seconds to the answer)
    trainings: list[Training] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (kind, detail)
    checked: int = 0  # answers compared with the model


class Oracle:
    """The shipped model's own answers, to check what the pages show."""

    def __init__(self, model_path: Path, data_root: str) -> None:
        from rotinv.checkpoints import load_checkpoint
        from rotinv.data import load_mnist

        self.model, _ = load_checkpoint(model_path)
        self.model.eval()
        self.test = load_mnist(False, data_root, download=False)

    def label(self, index: int) -> int:
        return int(self.test.labels[index])

    def agrees(self, index: int, degrees: int, shown: int) -> bool:
        """Whether `shown` is the model's prediction for this image and angle. A near tie
        (within 1e-4 in probability) accepts either digit: the server may sum in another order."""
        probabilities = self._probabilities(index, degrees)
        return bool(probabilities[shown] >= probabilities.max() - 1e-4)

    @lru_cache(maxsize=4096)
    def _probabilities(self, index: int, degrees: int):
        from rotinv.introspection import predict
        from rotinv.rotation import rotate_tensor

        return predict(self.model, rotate_tensor(self.test.images[index], degrees))[1]


class Student:
    def __init__(self, url: str, plan: Plan, oracle: Oracle) -> None:
        self.plan = plan
        self.oracle = oracle
        self.client = Client(url)
        self.random = random.Random(plan.seed)
        self.outcome = Outcome()
        self.trained = False  # its own model is the active one from then on
        self.index: int | None = None  # the test image and angle this session chose
        self.angle: int | None = None
        self._exceptions_seen = 0

    async def run(self, start: float) -> Outcome:
        """The whole visit, `start` being the lesson's start (time.monotonic())."""
        await asyncio.sleep(max(0.0, start + self.plan.arrive_s - time.monotonic()))
        try:
            opened = time.perf_counter()  # a new visitor's wait includes opening the websocket
            await self.client.connect()
            await self.answer("first render", self.client.rerun(self.plan.timeout_s))
            self.outcome.first_render_s = time.perf_counter() - opened
            if self.plan.train_at_s is not None:
                await asyncio.sleep(max(0.0, start + self.plan.train_at_s - time.monotonic()))
                await self.train()
            await self.visit_inside()
            while time.monotonic() < start + self.plan.leave_s:
                await asyncio.sleep(self.random.uniform(1.0, 3.0))
                action = self.random.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
                if action == "sweep" and not self.trained:  # a trained model's sweep is measured live:
                    await self.visit_sweep()                # minutes of CPU, not a lecture's click
                elif action == "pick":
                    await self.pick()
                else:
                    await self.turn()
        # Any of these ends the visit (a student whose page broke leaves), counted by kind.
        except SessionError as error:
            self.error("dropped" if self.client.closed_by_server else "timeout", str(error))
        except OSError as error:  # the connection could not be opened
            self.error("dropped", f"{type(error).__name__}: {error}")
        except PageProblem as error:
            self.error("missing widget", str(error))
        except Exception as error:  # a bug of the harness: shown, and the other students go on
            self.error("harness", f"{type(error).__name__}: {error}")
        finally:
            await self.client.close()
        return self.outcome

    # --- what a student does ------------------------------------------------------------------------

    async def visit_inside(self) -> None:
        await self.timed("page switch", self.client.rerun(self.plan.timeout_s, page=INSIDE_PAGE))
        self.index = self.angle = None  # the page starts from its own defaults: read them
        self.check()

    async def visit_sweep(self) -> None:
        await self.timed("page switch", self.client.rerun(self.plan.timeout_s, page=SWEEP_PAGE))
        await asyncio.sleep(self.random.uniform(1.0, 3.0))
        await self.visit_inside()

    async def turn(self) -> None:
        slider = self.need("slider", ANGLE_SLIDER)
        angle = self.random.choice([a for a in range(0, 361) if a != self.angle])
        self.client.set_value(slider, double_array_value=[float(angle)])
        await self.timed("turn", self.client.rerun(self.plan.timeout_s, fragment_id=slider.fragment_id))
        self.angle = angle
        self.check()

    async def pick(self) -> None:
        if self.random.random() < 0.3:  # a Random button: the server picks, the page says which
            button = self.need("button", self.random.choice(RANDOM_BUTTONS))
            await self.timed("pick", self.client.rerun(self.plan.timeout_s, fragment_id=button.fragment_id,
                                                       trigger=button.proto.id))
            self.index = None
        else:
            field_ = self.need("number_input", INDEX_INPUT)
            index = self.random.randrange(0, int(field_.proto.max) + 1)
            self.client.set_value(field_, double_value=float(index))
            await self.timed("pick", self.client.rerun(self.plan.timeout_s, fragment_id=field_.fragment_id))
            self.index = index
        self.check()

    async def train(self) -> None:
        """Press Train with the quick demo's settings, and wait until the page says how it ended."""
        size, epochs = self.need("slider", TRAIN_SIZE), self.need("number_input", TRAIN_EPOCHS)
        self.client.set_value(size, string_array_value=[size.proto.options[0]])  # the smallest set
        self.client.set_value(epochs, double_value=1.0)
        button = self.need("button", TRAIN_BUTTON)
        started = time.perf_counter()
        deadline = time.monotonic() + self.plan.train_timeout_s
        queued = False
        waited = self.client.rerun(self.plan.train_timeout_s, fragment_id=button.fragment_id, trigger=button.proto.id)
        while True:
            await self.answer("training", waited)
            outcome = next((name for text in self.client.texts() for start, name in TRAINING_ENDS.items()
                            if start in text), None)
            if outcome is not None:
                break
            if not any(QUEUED.search(text) for text in self.client.texts()):
                outcome = "no result on the page"
                self.error("training", outcome)
                break
            queued = True  # waiting its turn: the page reruns by itself until it is
            waited = self.client.next_run(max(1.0, deadline - time.monotonic()))
        self.outcome.trainings.append(Training(outcome, time.perf_counter() - started, queued))
        self.trained = outcome in ("finished", "stopped")

    # --- bookkeeping --------------------------------------------------------------------------------------

    def need(self, kind: str, label: str) -> Element:
        widget = self.client.widget(kind, label)
        if widget is None:
            raise PageProblem(f"no {kind} {label!r} on the page")
        return widget

    async def answer(self, what: str, request) -> float:
        """Await a request's answer, then note the exceptions and error messages it showed."""
        seconds = await request
        for text in self.client.exceptions[self._exceptions_seen:]:
            self.error("exception", f"{what}: {text}")
        self._exceptions_seen = len(self.client.exceptions)
        for alert in self.client.elements("alert"):
            if alert.proto.format == alert.proto.ERROR:
                self.error("error message", f"{what}: {alert.proto.body[:200]}")
        for problem in await self.client.fetch_media(self.plan.timeout_s):
            self.error("media", problem)
        return seconds

    async def timed(self, what: str, request) -> None:
        self.outcome.interactions.append((what, await self.answer(what, request)))

    def error(self, kind: str, detail: str) -> None:
        self.outcome.errors.append((kind, f"session {self.plan.number}: {detail}"))

    def check(self) -> None:
        """The page on Inside the network shows this session's image and angle, and the model's answers."""
        texts = self.client.texts()
        shown = next((m for m in map(SHOWN_IMAGE.search, texts) if m), None)
        upright = next((t.split(": ", 1)[1] for t in texts if t.startswith(UPRIGHT + ": ")), None)
        rotated = next(((m, t.split(": ", 1)[1]) for t in texts if (m := ROTATED.match(t))), None)
        if shown is None or upright is None or rotated is None:
            self.error("wrong answer", "Inside the network shows no test image and predictions")
            return
        index, label, angle = int(shown[1]), int(shown[2]), int(rotated[0][1])
        problems = []
        if self.index is not None and index != self.index:
            problems.append(f"test image {index}, but this session chose {self.index}")
        if self.angle is not None and angle != self.angle:
            problems.append(f"rotated {angle}°, but this session chose {self.angle}°")
        if label != self.oracle.label(index):
            problems.append(f"image {index} labelled {label}, but it is a {self.oracle.label(index)}")
        if not self.trained:  # a session's own model answers for itself; the shipped one is checked
            if not self.oracle.agrees(index, 0, int(upright)):
                problems.append(f"upright prediction {upright} for image {index} is not the model's")
            if not self.oracle.agrees(index, angle, int(rotated[1])):
                problems.append(f"prediction {rotated[1]} for image {index} at {angle}° is not the model's")
        for problem in problems:
            self.error("wrong answer", problem)
        self.index, self.angle = index, angle
        self.outcome.checked += 1
