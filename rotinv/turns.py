"""Page runs take turns: at most a few at once, let in first come, first served.

Streamlit runs every browser session's script in a thread of its own, and all of them
share one Python interpreter. With a class on one server, thirty sessions answering a
slider at the same moment do not finish sooner by running side by side: they take turns
on the GIL every few milliseconds, each answer is stretched by all the others, and the
switching itself costs CPU. Letting one run at a time (the setting's default) answers
each change in its own tenth of a second and the next one after it, in the order they
came; the load test measured more answers per minute that way, and shorter waits
(BENCHMARKS.md, "Page runs take turns").

Long work inside a turn (a training, a sweep over the whole test set) steps aside, so the
others' pages are answered meanwhile, and takes its turn again afterwards. It must not hold
a lock then that a thread in a turn may wait for (st.cache_data holds one while it
computes): the lock's holder would wait for the turn, and the turn's holder for the lock.
It also runs at a lower CPU priority (in_background): when a training and the pages want
the same cores, the pages are answered first, and the training takes what is left.

A change that reruns several parts of a page (Streamlit fragments, one after the other in
one script run) waits in line once for all of them (steps()), not once per part: waiting
per part, each of thirty students' answers waited behind every other student's parts,
about eleven times over.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from contextlib import contextmanager
from typing import Iterator

DEAD_HOLDER_CHECK_S = 0.1  # how often a waiting thread looks for a slot kept by a thread that has ended


class Turns:
    """At most `slots` threads inside at once; the others wait, first come, first served.

    Re-entrant per thread: a page run's parts nest inside the run's own turn. A freed slot
    is handed to the first thread in line directly, so a thread that has just left
    cannot step in front of those waiting.
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"At least one slot is needed, got {slots}.")
        self.slots = slots
        self._holders: list[threading.Thread] = []  # one entry per slot taken
        self._line: deque[tuple[threading.Event, threading.Thread]] = deque()
        self._lock = threading.Lock()
        self._local = threading.local()  # .depth: how deep in turn(); .kept_for: the run a slot is kept for

    @property
    def inside(self) -> int:
        """How many threads hold a slot now."""
        with self._lock:
            return len(self._holders)

    @property
    def waiting(self) -> int:
        """How many threads are waiting for a slot now."""
        with self._lock:
            return len(self._line)

    def _enter(self) -> None:
        me = threading.current_thread()
        with self._lock:
            if len(self._holders) < self.slots and not self._line:
                self._holders.append(me)
                return
            called = threading.Event()
            self._line.append((called, me))
        # The slot is ours when called: _hand_on counted it for us.
        while not called.wait(DEAD_HOLDER_CHECK_S):
            self._free_slots_of_ended_threads()

    def _leave(self) -> None:
        with self._lock:
            self._holders.remove(threading.current_thread())
            self._hand_on()

    def _hand_on(self) -> None:
        """With the lock held and a slot just freed: give it to the first in line, if any."""
        if self._line:
            called, thread = self._line.popleft()
            self._holders.append(thread)
            called.set()

    def _free_slots_of_ended_threads(self) -> None:
        # A slot kept for a run's next step (steps()) by a thread that then ended
        # (a Streamlit script thread ends when its session has nothing more to run).
        with self._lock:
            for ended in [thread for thread in self._holders if not thread.is_alive()]:
                self._holders.remove(ended)
                self._hand_on()

    def holds(self) -> bool:
        """Whether the current thread is inside (in a turn, and not stepped aside)."""
        return getattr(self._local, "depth", 0) > 0

    def _end_kept(self) -> None:
        """Free a slot this thread kept for a run that is over (its last step never came)."""
        if getattr(self._local, "kept_for", None) is not None:
            self._local.kept_for = None
            self._local.depth = 0
            self._leave()

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Wait for a slot (unless this thread holds one already), keep it until the block ends."""
        self._end_kept()  # a new run has begun in this thread
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            self._enter()
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                self._leave()

    @contextmanager
    def steps(self, run: object, last: bool) -> Iterator[None]:
        """One step of a run made of several (`run`: any object that is the same for all its
        steps, and another for the next run): the first waits for a slot, the slot is kept
        between the steps, and freed after the `last` one, or as soon as a step raises.

        A run whose last step never comes frees its slot when the thread's next run begins
        or when the thread ends (a thread waiting in line frees it then).
        """
        kept = getattr(self._local, "kept_for", None)
        if kept is not None and kept is not run:
            self._end_kept()  # an earlier run's slot, kept for a step that never came
        if kept is run:
            self._local.kept_for = None  # ours already since this run's previous step (depth 1)
        elif self.holds():  # inside a turn already: a step of a whole page run
            with self.turn():
                yield
            return
        else:
            self._enter()
            self._local.depth = 1
        try:
            yield
        except BaseException:
            self._local.depth = 0
            self._leave()
            raise
        if last:
            self._local.depth = 0
            self._leave()
        else:
            self._local.kept_for = run  # depth stays 1: the slot is this thread's until the next step

    @contextmanager
    def step_aside(self) -> Iterator[None]:
        """For long work inside a turn: free the slot meanwhile, and queue for it again after."""
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            yield
            return
        self._local.depth = 0
        self._leave()
        try:
            yield
        finally:
            self._enter()
            self._local.depth = depth


BACKGROUND_NICENESS = 19  # the lowest priority: it only gives way, it is never starved on an idle core


@contextmanager
def in_background(niceness: int = BACKGROUND_NICENESS) -> Iterator[None]:
    """Run the block at a lower CPU priority: this thread only, on Linux (elsewhere, as it is).

    The priority is put back after the block where the OS allows it; an unprivileged
    process may lower a thread's priority but not raise it again, so there the thread
    stays low until it ends (a Streamlit script thread ends with its session's run).
    """
    if not sys.platform.startswith("linux"):
        yield
        return
    thread = threading.get_native_id()
    try:
        before = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, max(before, niceness))
    except OSError:
        before = None
    try:
        yield
    finally:
        if before is not None:
            try:
                os.setpriority(os.PRIO_PROCESS, thread, before)
            except OSError:
                pass  # not allowed to raise it again: see above
