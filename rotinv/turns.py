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
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from contextlib import contextmanager
from typing import Iterator


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
        self._inside = 0
        self._line: deque[threading.Event] = deque()
        self._lock = threading.Lock()
        self._depth = threading.local()  # .n: how deep the current thread is in turn()

    @property
    def inside(self) -> int:
        """How many threads hold a slot now."""
        with self._lock:
            return self._inside

    @property
    def waiting(self) -> int:
        """How many threads are waiting for a slot now."""
        with self._lock:
            return len(self._line)

    def _enter(self) -> None:
        with self._lock:
            if self._inside < self.slots and not self._line:
                self._inside += 1
                return
            called = threading.Event()
            self._line.append(called)
        called.wait()  # the slot is ours when called: _leave counted it for us

    def _leave(self) -> None:
        with self._lock:
            if self._line:
                self._line.popleft().set()
            else:
                self._inside -= 1

    def holds(self) -> bool:
        """Whether the current thread is inside (in a turn, and not stepped aside)."""
        return getattr(self._depth, "n", 0) > 0

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Wait for a slot (unless this thread holds one already), keep it until the block ends."""
        depth = getattr(self._depth, "n", 0)
        if depth == 0:
            self._enter()
        self._depth.n = depth + 1
        try:
            yield
        finally:
            self._depth.n = depth
            if depth == 0:
                self._leave()

    @contextmanager
    def step_aside(self) -> Iterator[None]:
        """For long work inside a turn: free the slot meanwhile, and queue for it again after."""
        depth = getattr(self._depth, "n", 0)
        if depth == 0:
            yield
            return
        self._depth.n = 0
        self._leave()
        try:
            yield
        finally:
            self._enter()
            self._depth.n = depth


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
