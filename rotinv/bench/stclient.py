"""One browser session of a Streamlit app, spoken over the server's own websocket.

What the browser does, with Streamlit's protobuf messages from the installed package:

- open ws://host/_stcore/stream with the subprotocol "streamlit" (the server echoes the
  first entry; the second and third carry an XSRF token and a session id to resume, which
  a new visitor does not have);
- send BackMsg.rerun_script with a ClientState: the page (page_script_hash; empty for the
  default page), the values of the widgets on the page (widget_states), and for a
  widget inside an st.fragment that fragment's id, so only the fragment reruns;
- read ForwardMsgs: new_session starts a script run (metadata.run names it, and the
  session id comes in new_session.initialize), deltas fill the page at
  metadata.delta_path, and script_finished ends the run: FINISHED_SUCCESSFULLY,
  FINISHED_FRAGMENT_RUN_SUCCESSFULLY, FINISHED_EARLY_FOR_RERUN (a newer request stopped
  it) or FINISHED_WITH_COMPILE_ERROR. An exception in the script comes as a delta whose
  element is an `exception`.

A change is answered when a run that started after it was sent finishes: with
runner.fastReruns (the default) a newer request stops the run in progress, and the run
that answers includes every change sent before it started.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ANSWERED = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}


class SessionError(Exception):
    """The server closed the connection, or did not answer in time."""


class PageProblem(Exception):
    """The page lacks what the session looked for: a page, a widget."""


@dataclass
class Element:
    kind: str  # the Element oneof's name: "slider", "metric", "markdown", ...
    proto: Any  # that oneof's message
    fragment_id: str = ""  # the st.fragment it was drawn in, "" outside fragments

    @property
    def label(self) -> str:
        return getattr(self.proto, "label", "")


@dataclass
class Run:
    run_id: str
    fragment_ids: tuple[str, ...]
    started_seq: int
    elements: dict[tuple[int, ...], Element] = field(default_factory=dict)


@dataclass
class _Waiter:
    sent_seq: int
    fragment_id: str | None  # "" for a full run, None for whichever run comes next
    future: asyncio.Future

    def answered_by(self, run: Run) -> bool:
        """A full run answers every request sent before it started; a fragment run only
        requests for one of its fragments (an auto-rerun of another one answers nothing)."""
        return self.sent_seq < run.started_seq and (
            self.fragment_id is None or not run.fragment_ids or self.fragment_id in run.fragment_ids)


class Client:
    """A browser session: connect(), then rerun() with the page and widget values it shows."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.stream_url = f"ws://{parts.netloc}/_stcore/stream"
        self.session_id = ""
        self.pages: dict[str, str] = {}  # page title -> page_script_hash
        self.page_hash = ""  # the page on screen ("" until the first run names it)
        self.page: dict[tuple[int, ...], Element] = {}  # what the browser would show, by delta path
        self.exceptions: list[str] = []  # every exception element and compile error the server sent
        self.closed_by_server: str | None = None
        self._closing = False
        self._fetched: set[str] = set()  # media already fetched: the browser caches them by URL
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task | None = None
        self._seq = 0  # ForwardMsgs received so far
        self._runs: dict[str, Run] = {}
        self._waiters: list[_Waiter] = []
        self._values: dict[str, WidgetState] = {}  # widget id -> the value this session gave it
        self._auto_reruns: dict[str, tuple[float, asyncio.Task]] = {}  # fragment id -> (interval, timer)

    # --- connection -----------------------------------------------------------------------------

    async def connect(self) -> None:
        # No client pings: a browser sends none, and on a busy server a late pong would
        # close the connection, a drop the harness made rather than the server.
        self._ws = await connect(self.stream_url, subprotocols=["streamlit"], origin=self.origin,
                                 max_size=None, open_timeout=30, ping_interval=None)
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        self._closing = True
        self._stop_auto_reruns()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    # --- requests ---------------------------------------------------------------------------------

    async def rerun(self, timeout: float, page: str | None = None, fragment_id: str = "",
                    trigger: str | None = None) -> float:
        """Ask for a run (of `page`, a title, when given) and wait until one that started
        after the request finishes: the seconds it took. SessionError when the server
        closes the connection or `timeout` passes first.

        The request carries every value this session set on a widget still on the page,
        and `trigger` (a button's id) pressed, as the browser sends them.
        """
        if page is not None:
            if page not in self.pages:
                raise PageProblem(f"no page {page!r} among {sorted(self.pages)}")
            self.page_hash = self.pages[page]
            self._stop_auto_reruns()  # as the browser does on a page change
        message = self._rerun_message(fragment_id, trigger)
        if page is not None:
            message.rerun_script.page_name = page
        return await self._wait(fragment_id, timeout, message)

    async def next_run(self, timeout: float) -> float:
        """Wait, sending nothing, until the next run that starts (a fragment's timer, an
        st.rerun) finishes: the seconds it took. SessionError as for rerun()."""
        return await self._wait(None, timeout)

    async def _wait(self, fragment_id: str | None, timeout: float, message: BackMsg | None = None) -> float:
        waiter = _Waiter(self._seq, fragment_id, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        started = time.perf_counter()
        try:
            if message is not None:
                await self._send(message)
            await asyncio.wait_for(waiter.future, timeout)
        except asyncio.TimeoutError:
            raise SessionError(f"no answer within {timeout:.0f} s") from None
        finally:
            self._waiters.remove(waiter)
        return time.perf_counter() - started

    def _rerun_message(self, fragment_id: str = "", trigger: str | None = None, auto: bool = False) -> BackMsg:
        message = BackMsg()
        state = message.rerun_script
        state.page_script_hash = self.page_hash
        state.fragment_id = fragment_id
        state.is_auto_rerun = auto
        on_page = self._widget_ids()
        state.widget_states.widgets.extend(value for widget_id, value in self._values.items() if widget_id in on_page)
        if trigger is not None:
            state.widget_states.widgets.append(WidgetState(id=trigger, trigger_value=True))
        return message

    def set_value(self, widget: Element, **value: Any) -> None:
        """Give a widget a value for the next request, e.g. double_array_value=…; the keyword
        is the WidgetState field its Streamlit widget type reads."""
        state = WidgetState(id=widget.proto.id)
        for name, given in value.items():
            target = getattr(state, name)
            if hasattr(target, "data"):  # the array values: DoubleArray, StringArray, …
                target.data.extend(given)
            else:
                setattr(state, name, given)
        self._values[widget.proto.id] = state

    async def _send(self, message: BackMsg) -> None:
        if self._ws is None or self.closed_by_server is not None:
            raise SessionError(f"connection closed: {self.closed_by_server or 'never opened'}")
        try:
            await self._ws.send(message.SerializeToString())
        except ConnectionClosed as error:
            raise SessionError(f"connection closed: {error}") from None

    # --- what the page shows -----------------------------------------------------------------------

    def elements(self, kind: str | None = None) -> list[Element]:
        """The page's elements in page order, of one kind when given."""
        return [self.page[path] for path in sorted(self.page) if kind is None or self.page[path].kind == kind]

    def _widget_ids(self) -> set[str]:
        return {element.proto.id for element in self.page.values() if hasattr(element.proto, "id")}

    def widget(self, kind: str, label_start: str) -> Element | None:
        """The first widget of this kind whose label starts so, or None."""
        return next((e for e in self.elements(kind) if e.label.startswith(label_start)), None)

    def texts(self) -> list[str]:
        """Every markdown body, metric (label: body) and alert body on the page."""
        out = []
        for element in self.elements():
            if element.kind in ("markdown", "alert", "heading"):
                out.append(element.proto.body)
            elif element.kind == "metric":
                out.append(f"{element.proto.label}: {element.proto.body}")
        return out

    async def fetch_media(self, timeout: float) -> list[str]:
        """GET every picture on the page not fetched before, as the browser loads them;
        a line for each one that failed."""
        paths = [image.url for element in self.elements("imgs") for image in element.proto.imgs
                 if image.url.startswith("/") and image.url not in self._fetched]
        self._fetched.update(paths)
        answers = await asyncio.gather(*(self._get(path, timeout) for path in paths), return_exceptions=True)
        return [f"GET {path}: {answer}" for path, answer in zip(paths, answers) if answer is not None]

    async def _get(self, path: str, timeout: float) -> str | None:
        """One HTTP/1.1 GET on a fresh connection: None for a 200, else what went wrong."""
        host, port = urlsplit(self.origin).hostname, urlsplit(self.origin).port
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
                answer = await asyncio.wait_for(reader.read(), timeout)
            finally:
                writer.close()
        except (OSError, asyncio.TimeoutError) as error:
            return f"{type(error).__name__} {error}"
        status = answer.split(b"\r\n", 1)[0].decode(errors="replace")
        return None if " 200 " in f"{status} " else status

    # --- the reader ---------------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for data in self._ws:
                message = ForwardMsg()
                message.ParseFromString(data)
                self._handle(message)
        except ConnectionClosed as error:
            if not self._closing:
                self.closed_by_server = str(error)
        if not self._closing and self.closed_by_server is None:
            self.closed_by_server = f"closed by the server (code {self._ws.close_code})"
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_exception(SessionError(f"connection closed: {self.closed_by_server or 'by us'}"))

    def _handle(self, message: ForwardMsg) -> None:
        self._seq += 1
        kind = message.WhichOneof("type")
        run_id = message.metadata.run.script_run_id
        if kind == "new_session":
            session = message.new_session
            if session.initialize.session_id:
                self.session_id = session.initialize.session_id
            self.pages = {page.page_name: page.page_script_hash for page in session.app_pages} or self.pages
            self.page_hash = session.page_script_hash
            fragments = tuple(message.metadata.run.fragment_ids)
            if not fragments:
                self._stop_auto_reruns()  # a full run registers its fragments' timers again
            self._runs[run_id] = Run(run_id, fragments, self._seq)
        elif kind == "navigation":
            self.pages = {page.page_name: page.page_script_hash for page in message.navigation.app_pages}
            if message.navigation.page_script_hash:
                self.page_hash = message.navigation.page_script_hash
        elif kind == "delta":
            self._delta(message)
        elif kind == "session_event" and message.session_event.HasField("script_compilation_exception"):
            error = message.session_event.script_compilation_exception
            self.exceptions.append(f"{error.type}: {error.message}")
        elif kind == "script_finished":
            self._finished(run_id, message.script_finished)
        elif kind == "auto_rerun":
            self._start_auto_rerun(message.auto_rerun.fragment_id, message.auto_rerun.interval)
        elif kind == "stop_auto_rerun":
            for fragment_id in message.stop_auto_rerun.fragment_ids:
                self._stop_auto_reruns(fragment_id)

    # --- st.fragment(run_every=…): the browser's timers ----------------------------------------------

    def _start_auto_rerun(self, fragment_id: str, interval: float) -> None:
        if not fragment_id or interval <= 0 or self._auto_reruns.get(fragment_id, (None,))[0] == interval:
            return
        self._stop_auto_reruns(fragment_id)

        async def tick() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self._send(self._rerun_message(fragment_id, auto=True))
                except SessionError:
                    return

        self._auto_reruns[fragment_id] = (interval, asyncio.get_running_loop().create_task(tick()))

    def _stop_auto_reruns(self, fragment_id: str | None = None) -> None:
        for key in [fragment_id] if fragment_id is not None else list(self._auto_reruns):
            if key in self._auto_reruns:
                self._auto_reruns.pop(key)[1].cancel()

    @property
    def auto_rerun_fragments(self) -> list[str]:
        """The fragments the server asked this session to rerun on a timer."""
        return list(self._auto_reruns)

    def _delta(self, message: ForwardMsg) -> None:
        delta = message.delta
        path = tuple(message.metadata.delta_path)
        run = self._current_run()
        if delta.WhichOneof("type") == "new_element":
            element_kind = delta.new_element.WhichOneof("type")
            element = Element(element_kind, getattr(delta.new_element, element_kind), delta.fragment_id)
            if getattr(element.proto, "set_value", False):
                # The script set this widget's value (a callback, st.session_state): the
                # browser takes it, and so does this session instead of what it sent before.
                self._values.pop(element.proto.id, None)
            if element_kind == "exception":
                self.exceptions.append(f"{element.proto.type}: {element.proto.message}")
        else:  # a container (add_block) or a transient: nothing to read, but it holds the path
            element = Element(delta.WhichOneof("type") or "", None, delta.fragment_id)
        if run is not None:
            run.elements[path] = element

    def _current_run(self) -> Run | None:
        return max(self._runs.values(), key=lambda run: run.started_seq, default=None)

    def _finished(self, run_id: str, status: int) -> None:
        run = self._runs.pop(run_id, None)
        if run is None:
            return
        if status == ForwardMsg.FINISHED_SUCCESSFULLY:
            self.page = run.elements  # the browser drops what the run did not draw again,
            on_page = self._widget_ids()
            self._values = {key: value for key, value in self._values.items() if key in on_page}  # and their values
        elif status == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
            # A fragment run redraws only its own parts: the rest of the page stays, and
            # what a rerun fragment drew before but not this time goes, as in the browser.
            self.page = {path: element for path, element in self.page.items()
                         if element.fragment_id not in run.fragment_ids or path in run.elements}
            self.page.update(run.elements)
        if status == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
            return  # a newer run is coming
        for waiter in self._waiters:
            if waiter.answered_by(run) and not waiter.future.done():
                if status in ANSWERED:
                    waiter.future.set_result(None)
                else:
                    waiter.future.set_exception(SessionError("the script did not compile"))
