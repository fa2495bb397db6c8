"""End to end in a real browser: draw a 1 on the canvas, see it read, turn it 90 degrees;
stop a training run part-way while another visitor's session stays as it was.

Starts `streamlit run streamlit_app.py` on a free local port and drives Debian's
chromium through Playwright (never `playwright install`). Chromium must be at
/usr/bin/chromium: CI installs it; a missing browser fails the test, it does not skip.
A screenshot is kept in test-artifacts/browser_inside.png.
"""

from __future__ import annotations

import math
import os
import re

import pytest

from app_server import CHROMIUM, CHROMIUM_ARGS, ROOT, start_app, stop
from rotinv.data import DATA_ROOT_ENV, mnist_available
from rotinv.training import TrainConfig

ARTIFACTS = ROOT / "test-artifacts"
WAIT_MS = 30_000  # for the page to react to a stroke or a click
FIRST_LOAD_MS = 120_000  # the first run of the app imports torch and loads MNIST and the models


@pytest.fixture
def app_url():
    root = os.environ.get(DATA_ROOT_ENV)
    if not root or not mnist_available(root):
        pytest.fail(f"The browser test needs the real MNIST: set {DATA_ROOT_ENV} (currently {root!r}).")
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / "browser_server.log"
    with open(log_path, "wb") as log:
        try:
            process, url = start_app(log)
        except (RuntimeError, TimeoutError) as error:
            pytest.fail(f"{error}:\n{log_path.read_text()[-3000:]}")
    try:
        yield url
    finally:
        stop(process)


@pytest.fixture
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium is not at {CHROMIUM}: install it (apt-get install -y chromium). "
                    "Do not use `playwright install`.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def new_tab(browser):
    """A tab in a browser context of its own: its own cookies, so its own Streamlit session."""
    tab = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    tab.set_default_timeout(WAIT_MS)
    return tab


@pytest.fixture
def page(browser):
    return new_tab(browser)


def metric_value(page, label: str):
    """The value element of the st.metric whose label is exactly `label`."""
    metric = page.get_by_test_id("stMetric").filter(
        has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True))
    return metric.get_by_test_id("stMetricValue")


def test_draw_a_one_and_turn_it(app_url, page):
    from playwright.sync_api import expect

    try:
        page.goto(app_url, wait_until="domcontentloaded", timeout=FIRST_LOAD_MS)
        page.get_by_role("link", name="Inside the network").click(timeout=FIRST_LOAD_MS)
        expect(page.get_by_role("heading", name="Inside the network")).to_be_visible(timeout=FIRST_LOAD_MS)
        page.get_by_test_id("stRadio").get_by_text("Draw a digit", exact=True).click()

        canvas = page.locator("canvas.upper-canvas")
        expect(canvas).to_be_visible()
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        assert box is not None, "the drawing canvas has no size"
        x, top, bottom = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.15, box["y"] + box["height"] * 0.85
        page.mouse.move(x, top)
        page.mouse.down()
        for step in range(1, 21):
            page.mouse.move(x, top + (bottom - top) * step / 20)
            page.wait_for_timeout(15)
        page.mouse.up()

        expect(metric_value(page, "Prediction (upright)")).to_have_text(re.compile(r"^\s*1\s*$"))
        expect(metric_value(page, "Prediction (rotated 0°)")).to_have_text(re.compile(r"^\s*1\s*$"))
        rotated_input = page.locator('img[alt^="Rotated input"]')
        expect(rotated_input).to_have_attribute("alt", "Rotated input, 0 degrees")
        before = rotated_input.get_attribute("src")
        assert before, "the rotated input image has no source"

        page.get_by_role("button", name="90°", exact=True).click()

        # The model input is turned: a new picture, captioned with the new angle ...
        expect(rotated_input).to_have_attribute("alt", "Rotated input, 90 degrees")
        expect(rotated_input).not_to_have_attribute("src", before)
        expect(page.get_by_text("Rotated input: the same 28×28 turned 90° counter-clockwise.")).to_be_visible()
        # ... and its prediction is recomputed (a new metric), while the upright one stays 1.
        expect(page.get_by_text("Prediction (rotated 0°)", exact=True)).to_have_count(0)
        expect(metric_value(page, "Prediction (rotated 90°)")).to_have_text(re.compile(r"^\s*\d\s*$"))
        expect(metric_value(page, "Prediction (upright)")).to_have_text(re.compile(r"^\s*1\s*$"))
        page.wait_for_timeout(500)  # let the charts finish drawing for the screenshot
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "browser_inside.png"), full_page=False)


def sidebar_caption(tab):
    return tab.get_by_test_id("stSidebar").get_by_text(re.compile(r"shipped model\(s\);"))


def test_stop_keeps_the_model_and_another_session_is_untouched(app_url, browser):
    from playwright.sync_api import expect

    trainer, visitor = new_tab(browser), new_tab(browser)
    try:
        trainer.goto(app_url, wait_until="domcontentloaded", timeout=FIRST_LOAD_MS)
        expect(trainer.get_by_role("heading", name="Train your own")).to_be_visible(timeout=FIRST_LOAD_MS)
        expect(sidebar_caption(trainer)).to_contain_text("0 of yours")
        epochs = trainer.get_by_role("spinbutton", name="Epochs")
        steps = 20 * math.ceil(10_000 / TrainConfig.batch_size)  # the page's default 10,000 images
        epochs.fill("20")  # thousands of steps: far longer than this test waits
        epochs.press("Tab")
        trainer.get_by_test_id("stBaseButton-primaryFormSubmit").click()
        progress = trainer.get_by_text(re.compile(rf"Epoch 1 of 20 · step [1-9][0-9,]* of {steps:,}"))
        expect(progress).to_be_visible(timeout=FIRST_LOAD_MS)

        # While the first session trains, a second visitor gets the whole app, with nothing of the first's.
        visitor.goto(app_url, wait_until="domcontentloaded", timeout=FIRST_LOAD_MS)
        expect(visitor.get_by_role("heading", name="Train your own")).to_be_visible(timeout=FIRST_LOAD_MS)
        expect(sidebar_caption(visitor)).to_contain_text("0 of yours")

        trainer.get_by_test_id("stButton").get_by_role("button", name="Stop").click()  # the page's own Stop
        stopped = trainer.get_by_text(re.compile(rf"Stopped at step [1-9][0-9,]* of {steps:,}"))
        expect(stopped).to_be_visible(timeout=FIRST_LOAD_MS)
        expect(sidebar_caption(trainer)).to_contain_text("1 of yours")
        told = [int(n.replace(",", "")) for n in re.findall(r"step ([0-9,]+)", stopped.inner_text())]
        # "Stopped at step N of {steps}: ... kept as <label>, stopped at step N": the kept model's label
        # and the message agree, so the model stopped changing before it was kept.
        assert len(told) == 2 and told[0] == told[1] and 0 < told[0] < steps, told

        # The visitor, reloaded, still sees only the shipped models: the stopped model stays in its session.
        visitor.reload(wait_until="domcontentloaded")
        expect(visitor.get_by_role("heading", name="Train your own")).to_be_visible(timeout=FIRST_LOAD_MS)
        expect(sidebar_caption(visitor)).to_contain_text("0 of yours")
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        trainer.screenshot(path=str(ARTIFACTS / "browser_stopped.png"), full_page=False)
