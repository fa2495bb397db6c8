"""The load harness's browser session (rotinv.bench.stclient) against a real Streamlit server
running tests/fragment_app.py: a full run, a widget inside an st.fragment (only the
fragment reruns), a fragment on a timer (the client keeps the browser's timer), and an
exception element. The pages will use fragments; the harness must speak them."""

import asyncio
import os
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


def test_a_picked_digit_stays_when_the_next_change_is_a_turn(data_root, tmp_path):
    """On Inside the network the picker and the slider rerun only the page's parts. A Random
    button sets the test image from its callback; the next turn must keep that image.

    The first fragment version set the number input's value in the callback and then reran
    the parts: Streamlit redrew the input without telling the browser its new value, the
    browser sent the old one back with the next turn, and the page jumped back to the
    previous image (the load harness's "test image … but this session chose …")."""
    from rotinv.bench.students import INSIDE_PAGE, SHOWN_IMAGE

    def shown(client: Client) -> int:
        return int(next(m for m in map(SHOWN_IMAGE.search, client.texts()) if m)[1])

    async def session(url: str) -> None:
        client = Client(url)
        await client.connect()
        try:
            await client.rerun(TIMEOUT)
            await client.rerun(TIMEOUT, page=INSIDE_PAGE)
            picker = client.widget("number_input", "Test image")
            client.set_value(picker, double_value=42.0)
            await client.rerun(TIMEOUT, fragment_id=picker.fragment_id)
            assert shown(client) == 42
            for turn, angle in enumerate((90, 200, 300)):
                button = client.widget("button", "Random digit")
                assert button.fragment_id  # the picker is a page part, not the whole page
                await client.rerun(TIMEOUT, fragment_id=button.fragment_id, trigger=button.proto.id)
                picked = shown(client)
                slider = client.widget("slider", "Rotation")
                client.set_value(slider, double_array_value=[float(angle)])
                await client.rerun(TIMEOUT, fragment_id=slider.fragment_id)
                assert shown(client) == picked, f"turn {turn}: the page went back to another image"
                assert any(text.startswith(f"Prediction (rotated {angle}°)") for text in client.texts())
            assert not client.exceptions and client.closed_by_server is None
        finally:
            await client.close()

    with open(tmp_path / "server.log", "wb") as log:
        process, url = start_app(log, env={**os.environ, "ROTINV_DATA_ROOT": data_root})
    try:
        asyncio.run(session(url))
    finally:
        stop(process)
