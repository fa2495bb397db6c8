"""The app in a real server and Debian's Chromium: shared by the browser tests and
docs/screenshots.py. Never `playwright install` (no downloads here).

Starting and stopping the server lives in rotinv.bench.server, which the load harness uses too.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # docs/screenshots.py puts only tests/ on the path
    sys.path.insert(0, str(ROOT))

from rotinv.bench.server import STARTUP_TIMEOUT, free_port, start_app, stop  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "ROOT", "STARTUP_TIMEOUT", "free_port", "start_app", "stop"]
