"""The load harness's browser session (rotinv.bench.stclient) against a real Streamlit server
running tests/fragment_app.py: a full run, a widget inside an st.fragment (only the
fragment reruns), a fragment on a timer (the client keeps the browser's timer), and an
exception element. The pages will use fragments; the harness must speak them."""

import asyncio
import re

import pytest

from rotinv.bench.server import start_app, stop
from rotinv.bench.stclient import Client

from realdata import ROOT

TIMEOUT = 60.0


@pytest.fixture
def fragment_app(tmp_path):
    with open(tmp_path / "server.log", "wb") as log:
        process, url = start_app(log, script=ROOT / "tests" / "fragment_app.py")
    try:
        yield url
    finally:
        stop(process)


def number(client: Client, prefix: str) -> int:
    return int(next(re.search(r"-?\d+", text)[0] for text in client.texts() if text.startswith(prefix)))


def test_the_client_speaks_fragments_timers_and_exceptions(fragment_app):
    async def session() -> None:
        client = Client(fragment_app)
        await client.connect()
        try:
            await client.rerun(TIMEOUT)
            assert number(client, "Full runs") == 1 and client.session_id
            slider = client.widget("slider", "Angle")
            assert slider is not None and slider.fragment_id  # drawn inside the fragment

            client.set_value(slider, double_array_value=[90.0])
            await client.rerun(TIMEOUT, fragment_id=slider.fragment_id)
            assert number(client, "Angle shown") == 90
            assert number(client, "Full runs") == 1  # the rest of the page stayed as it was

            assert client.auto_rerun_fragments  # the server asked for the timer
            ticks = number(client, "Ticks")
            await client.next_run(TIMEOUT)
            await client.next_run(TIMEOUT)
            assert number(client, "Ticks") > ticks and number(client, "Angle shown") == 90

            await client.rerun(TIMEOUT)  # a full run keeps the slider's value: the client sends it
            assert number(client, "Full runs") == 2 and number(client, "Angle shown") == 90

            button = client.widget("button", "Fail")
            await client.rerun(TIMEOUT, trigger=button.proto.id)
            # The message itself is redacted (client.showErrorDetails); the server's log has it.
            assert len(client.exceptions) == 1 and client.exceptions[0].startswith("ValueError")
            assert client.closed_by_server is None
        finally:
            await client.close()

    asyncio.run(session())
