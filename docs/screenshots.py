"""Regenerate the README's screenshots (docs/train.png, sweep.png, inside.png) from the app.

    ROTINV_DATA_ROOT=/path/to/data python docs/screenshots.py

Starts `streamlit run streamlit_app.py` on a free local port, opens each page in Debian's
Chromium (driven by Playwright; never `playwright install`) at 1400 x 900, and writes
the three PNGs. Run it after retraining a shipped model, so the pictures show its numbers.
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

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOAD_MS = 120_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_health(url: str, server: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"streamlit exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"streamlit did not answer within {timeout:.0f} s")


def settle(page) -> None:
    """Wait until the script run is over and the charts have drawn."""
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=LOAD_MS)
    page.wait_for_timeout(1500)


def shoot(url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url, wait_until="domcontentloaded", timeout=LOAD_MS)
        expect(page.get_by_role("heading", name="Train LeNet-5 on upright digits")).to_be_visible(timeout=LOAD_MS)
        settle(page)
        page.screenshot(path=str(ROOT / "docs" / "train.png"))

        page.get_by_role("link", name="Rotation sweep").click()
        heading = page.get_by_role("heading", name="Accuracy against angle")
        expect(heading).to_be_visible(timeout=LOAD_MS)
        settle(page)
        for other in ("LeNet-5 + rotation augmentation", "C4-equivariant LeNet"):  # all three on one chart
            page.get_by_test_id("stMultiSelect").locator("input").click()
            page.get_by_role("option", name=other).click()
            settle(page)
        page.keyboard.press("Escape")
        heading.evaluate("element => element.scrollIntoView()")
        page.wait_for_timeout(500)
        page.screenshot(path=str(ROOT / "docs" / "sweep.png"))

        page.get_by_role("link", name="Inside the network").click()
        expect(page.get_by_role("heading", name="Inside the network")).to_be_visible(timeout=LOAD_MS)
        settle(page)
        number = page.get_by_label("Test image (0–9999)")
        number.fill("48")
        number.press("Enter")
        settle(page)
        page.get_by_role("button", name="180°", exact=True).click()
        settle(page)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ROOT / "docs" / "inside.png"))
        browser.close()


def main() -> int:
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
               "--server.address", "127.0.0.1", "--server.port", str(port),
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, server)
        shoot(url)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
    print("Wrote docs/train.png, docs/sweep.png and docs/inside.png.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
