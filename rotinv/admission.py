"""Fair admission for trainings: at most K run at once in a server process, the rest queue.

A class shares one small server. Ten students pressing Train at once would make ten
trainings share two cores, every one of them ten times slower, and every slider on the
server with them. Instead each request takes a Ticket: K of them run (K from
ROTINV_MAX_CONCURRENT_TRAININGS, see rotinv.limits), the others wait first come, first
served. A waiting student sees their place and an estimate, and can cancel; a session
that closes gives its place up.

Nothing here blocks or imports Streamlit, because a Streamlit page cannot wait: it
reruns. A page asks again on each run (or on a fragment's timer) and gets an answer at
once:

    admission = shared_admission()
    ticket = admission.request(session_id)      # the session's ticket; a new one joins the end
    if ticket.try_start():                      # its turn: it is running now
        with ticket:                            # finish() on the way out, however it ends
            train(...)
    else:
        status = ticket.status()                # status.position, status.estimate_s
        ...                                     # show them; ticket.cancel() on Cancel

acquire(timeout) blocks for code that can (scripts, tests). Sessions are told apart by
any string id (Streamlit's session id on a page). With `is_alive` the registry drops the
tickets of sessions that have been gone for `grace_s` seconds, running ones included, so
a closed tab never keeps a place, nor a slot if its training was not ended through
`with ticket` or finish(). Every method is thread-safe (each session has its own thread).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

WAITING, RUNNING, DONE, CANCELLED = "waiting", "running", "done", "cancelled"
DEFAULT_EXPECTED_S = 60.0  # a training's length until one has been seen to end
DEFAULT_GRACE_S = 10.0  # how long a session may look gone (a reconnecting browser) before it loses its place
RECENT = 10  # finished trainings the estimate averages over


@dataclass(frozen=True)
class Status:
    state: str  # WAITING, RUNNING, DONE or CANCELLED
    position: int  # 1 = next to start, 2 = after that one …; 0 unless waiting
    running: int  # trainings running now, in this process
    waiting: int  # tickets in the queue now
    limit: int  # K
    estimate_s: float | None  # seconds until it may start, when waiting (0: any moment)
    reason: str = ""  # why a ticket was cancelled: "cancelled", "session closed"


class Ticket:
    """One session's request for a training slot. Made by Admission.request, never directly."""

    def __init__(self, admission: Admission, session_id: str, number: int, expected_s: float | None) -> None:
        self.session_id = session_id
        self.number = number  # arrival order
        self.expected_s = expected_s
        self.state = WAITING
        self.reason = ""
        self.started_at: float | None = None
        self.dead_since: float | None = None  # when its session was first seen gone
        self._admission = admission

    def __repr__(self) -> str:
        return f"Ticket({self.session_id!r}, #{self.number}, {self.state})"

    def try_start(self) -> bool:
        """Start now if it is this ticket's turn and a slot is free: True while it runs."""
        return self._admission._try_start(self)

    def acquire(self, timeout: float | None = None) -> bool:
        """Wait (blocking) until it runs, at most `timeout` seconds: whether it runs."""
        return self._admission._acquire(self, timeout)

    def status(self) -> Status:
        return self._admission._status(self)

    def position(self) -> int:
        return self.status().position

    def finish(self) -> None:
        """The training is over (finished, stopped or failed): free its slot. Idempotent."""
        self._admission._end(self, DONE, "")

    def cancel(self) -> None:
        """Give up the place in the queue, or the slot if it runs. Idempotent."""
        self._admission._end(self, CANCELLED, "cancelled")

    def __enter__(self) -> Ticket:
        if self.state != RUNNING:
            raise RuntimeError(f"{self!r} is not running: try_start() or acquire() it first")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finish()


class Admission:
    """The registry of one server process: who runs, who waits, in which order."""

    def __init__(self, limit: int, is_alive: Callable[[str], bool] | None = None, grace_s: float = DEFAULT_GRACE_S,
                 default_expected_s: float = DEFAULT_EXPECTED_S, clock: Callable[[], float] = time.monotonic) -> None:
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"At least one training must be allowed at a time, got {limit!r}.")
        self.limit = limit
        self._is_alive = is_alive
        self._grace_s = grace_s
        self._default_expected_s = default_expected_s
        self._clock = clock
        self._changed = threading.Condition(threading.RLock())
        self._numbers = itertools.count(1)
        self._waiting: list[Ticket] = []  # first come first
        self._running: list[Ticket] = []
        self._by_session: dict[str, Ticket] = {}  # each session's live (waiting or running) ticket
        self._durations: deque[float] = deque(maxlen=RECENT)

    # --- what pages call ---------------------------------------------------------------------------

    def request(self, session_id: str, expected_s: float | None = None) -> Ticket:
        """The session's live ticket, or a new one at the end of the queue. Asking again on
        every rerun is safe: a session holds one place at most."""
        with self._changed:
            self._prune()
            ticket = self._by_session.get(session_id)
            if ticket is None:
                ticket = Ticket(self, session_id, next(self._numbers), expected_s)
                self._waiting.append(ticket)
                self._by_session[session_id] = ticket
            return ticket

    def ticket(self, session_id: str) -> Ticket | None:
        """The session's waiting or running ticket, or None."""
        with self._changed:
            self._prune()
            return self._by_session.get(session_id)

    def close_session(self, session_id: str) -> None:
        """The session ended: its place (or its slot) is given up now."""
        with self._changed:
            ticket = self._by_session.get(session_id)
            if ticket is not None:
                self._end(ticket, CANCELLED, "session closed")

    def counts(self) -> tuple[int, int]:
        """(running, waiting) now."""
        with self._changed:
            self._prune()
            return len(self._running), len(self._waiting)

    # --- the tickets' work, under the lock ------------------------------------------------------------

    def _try_start(self, ticket: Ticket) -> bool:
        with self._changed:
            self._prune()
            if ticket.state == WAITING and self._waiting.index(ticket) < self.limit - len(self._running):
                self._waiting.remove(ticket)
                self._running.append(ticket)
                ticket.state, ticket.started_at = RUNNING, self._clock()
                self._changed.notify_all()  # the tickets behind moved up
            return ticket.state == RUNNING

    def _acquire(self, ticket: Ticket, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not self._try_start(ticket):
                if ticket.state != WAITING:
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                # Wake now and then even without news: a gone session is only noticed by looking.
                self._changed.wait(0.5 if left is None else min(left, 0.5))
            return True

    def _end(self, ticket: Ticket, state: str, reason: str) -> None:
        with self._changed:
            if ticket.state in (DONE, CANCELLED):
                return
            if ticket.state == RUNNING:
                self._running.remove(ticket)
                if state == DONE and ticket.started_at is not None:
                    self._durations.append(self._clock() - ticket.started_at)
            else:
                self._waiting.remove(ticket)
            ticket.state, ticket.reason = state, reason
            if self._by_session.get(ticket.session_id) is ticket:
                del self._by_session[ticket.session_id]
            self._changed.notify_all()

    def _status(self, ticket: Ticket) -> Status:
        with self._changed:
            self._prune()
            waiting = ticket.state == WAITING
            position = self._waiting.index(ticket) + 1 if waiting else 0
            return Status(ticket.state, position, len(self._running), len(self._waiting), self.limit,
                          self._estimate(position) if waiting else None, ticket.reason)

    def _prune(self) -> None:
        """Cancel the tickets of sessions gone for longer than the grace period."""
        if self._is_alive is None:
            return
        now = self._clock()
        for ticket in list(self._by_session.values()):
            if self._is_alive(ticket.session_id):
                ticket.dead_since = None
            elif ticket.dead_since is None:
                ticket.dead_since = now
            elif now - ticket.dead_since >= self._grace_s:
                self._end(ticket, CANCELLED, "session closed")

    def _expected(self, ticket: Ticket) -> float:
        if ticket.expected_s is not None:
            return ticket.expected_s
        return sum(self._durations) / len(self._durations) if self._durations else self._default_expected_s

    def _estimate(self, position: int) -> float:
        """When the ticket at this place in the queue may start: each slot frees when its
        training is expected to end, and the tickets ahead take the slots as they free."""
        now = self._clock()
        free_at = [max(0.0, ticket.started_at + self._expected(ticket) - now) for ticket in self._running
                   if ticket.started_at is not None]
        free_at += [0.0] * (self.limit - len(free_at))
        heapq.heapify(free_at)
        for ahead in self._waiting[:position - 1]:
            heapq.heapreplace(free_at, free_at[0] + self._expected(ahead))
        return free_at[0]


# What a waiting student reads; the load harness (rotinv.bench.students) looks for it.
QUEUE_PHRASE = "in the queue to train"


def queue_message(status: Status) -> str:
    """A waiting ticket's place and estimate, in a sentence for the page."""
    ahead = status.position - 1
    if status.estimate_s is None or status.estimate_s < 1:
        when = "any moment now"
    else:
        when = f"in about {status.estimate_s:,.0f} s"
    return (f"You are number {status.position} {QUEUE_PHRASE} ({status.running} of {status.limit} training "
            f"slot{'s' if status.limit != 1 else ''} busy, {ahead} ahead of you): yours starts {when}. "
            "The rest of the app is yours meanwhile.")


_shared: Admission | None = None
_shared_lock = threading.Lock()


def shared_admission(is_alive: Callable[[str], bool] | None = None) -> Admission:
    """This process's registry, made on first use with K from ROTINV_MAX_CONCURRENT_TRAININGS
    (ValueError, naming the setting, for a bad value). `is_alive` is taken the first time."""
    global _shared
    with _shared_lock:
        if _shared is None:
            from rotinv.limits import max_concurrent_trainings

            _shared = Admission(max_concurrent_trainings(), is_alive=is_alive)
        return _shared
