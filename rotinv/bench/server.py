"""The app in a real server: `streamlit run streamlit_app.py` on 127.0.0.1 and a free port.

Shared by the load harness (rotinv.bench.loadtest), the browser tests and
docs/screenshots.py (through tests/app_server.py), so there is one way to start and stop it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Mapping

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 60.0  # seconds for the server to answer its health check


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_app(log: IO[bytes], env: Mapping[str, str] | None = None,
              script: Path = ROOT / "streamlit_app.py") -> tuple[subprocess.Popen, str]:
    """`streamlit run streamlit_app.py` (or `script`) on a free local port, once it answers:
    (process, url).

    `env` is the server's whole environment (os.environ unless given). The server gets its
    own process group, so stop() ends it and everything it started. RuntimeError (the
    server stopped) or TimeoutError (it never answered) otherwise.
    """
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
               "--server.address", "127.0.0.1", "--server.port", str(port),
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    process = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ if env is None else env), stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return process, url
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop(process)
            raise TimeoutError(f"streamlit did not answer within {STARTUP_TIMEOUT:.0f} s")
        time.sleep(0.5)


def stop(process: subprocess.Popen) -> None:
    """Terminate the server and everything it started, whatever state it is in.

    Only the group start_app made (its id is the server's PID) is signalled.
    """
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:  # stragglers in the group, even when the leader is gone
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if process.poll() is None:
        process.wait(timeout=10)
