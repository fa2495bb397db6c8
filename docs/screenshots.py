"""Regenerate the README's screenshots (docs/train.png, sweep.png, inside.png) from the app.

    ROTINV_DATA_ROOT=/path/to/data python docs/screenshots.py

Starts `streamlit run streamlit_app.py` on a free local port, opens each page in Debian's
Chromium (driven by Playwright; never `playwright install`) at 1400 x 900, and writes
the three PNGs. Run it after retraining a shipped model, so the pictures show its numbers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from app_server import CHROMIUM, CHROMIUM_ARGS, start_app, stop  # noqa: E402  (the browser tests' helpers)

LOAD_MS = 120_000


def settle(page) -> None:
    """Wait until the script run is over and the charts have drawn."""
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=LOAD_MS)
    page.wait_for_timeout(1500)


def shoot(url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
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
        page.get_by_role("heading", name="Rotation sweep").click()  # out of the models' menu
        settle(page)
        heading.evaluate("element => element.scrollIntoView()")
        page.mouse.move(5, 5)  # off the chart, so its toolbar stays hidden
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
    with open(os.devnull, "wb") as quiet:
        server, url = start_app(quiet)
    try:
        shoot(url)
    finally:
        stop(server)
    print("Wrote docs/train.png, docs/sweep.png and docs/inside.png.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
