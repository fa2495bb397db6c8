"""End to end in a real browser: draw a 1 on the canvas, see it read, turn it 90 degrees;
stop a training run part-way while another visitor's session stays as it was; and every
page at a projector's 1400 px and a small laptop's 800 px: no label cut off, no chart
cut off or squeezed, the canvas whole and drawable, the numbered sections in order, the
quick demo's training curves drawn as curves.

Starts `streamlit run streamlit_app.py` on a free local port (one server for the module)
and drives Debian's chromium through Playwright (never `playwright install`). Chromium
must be at /usr/bin/chromium: CI installs it; a missing browser fails the test, it does
not skip. Screenshots are kept in test-artifacts/.
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


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
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


def new_tab(browser, width: int = 1400, height: int = 900):
    """A tab in a browser context of its own: its own cookies, so its own Streamlit session."""
    tab = browser.new_context(viewport={"width": width, "height": height}).new_page()
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


def draw_a_one(tab) -> None:
    """A vertical stroke down the middle of the canvas, as a hand draws it."""
    canvas = tab.locator("canvas.upper-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None, "the drawing canvas has no size"
    x, top, bottom = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.15, box["y"] + box["height"] * 0.85
    tab.mouse.move(x, top)
    tab.mouse.down()
    for step in range(1, 21):
        tab.mouse.move(x, top + (bottom - top) * step / 20)
        tab.wait_for_timeout(15)
    tab.mouse.up()


def test_draw_a_one_and_turn_it(app_url, page):
    from playwright.sync_api import expect

    try:
        page.goto(app_url, wait_until="domcontentloaded", timeout=FIRST_LOAD_MS)
        page.get_by_role("link", name="Inside the network").click(timeout=FIRST_LOAD_MS)
        expect(page.get_by_role("heading", name="Inside the network")).to_be_visible(timeout=FIRST_LOAD_MS)
        page.get_by_test_id("stRadio").get_by_text("Draw a digit", exact=True).click()

        expect(page.locator("canvas.upper-canvas")).to_be_visible()
        draw_a_one(page)

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
    return tab.get_by_test_id("stSidebar").get_by_text(re.compile(r"shipped models?;"))


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


# --- every page at a projector's and a small laptop's width -------------------------------------

WIDTHS = (1400, 800)

# Text that does not fit its box: widget labels, radio and multiselect options, metric
# labels, values and deltas, button and tab labels, and the values in input boxes.
# Elements not displayed (a tab not chosen) have no client rects and are left out.
CUT_TEXT = """() => {
  const selectors = ['[data-testid="stWidgetLabel"] *', '[data-testid="stRadio"] label *',
    '[data-testid="stMultiSelect"] span', '[data-testid="stMetricLabel"] *', '[data-testid="stMetricValue"] *',
    '[data-testid="stMetricDelta"] *', '[data-testid="stButton"] p', '[data-testid="stDownloadButton"] p',
    '[role="tab"] p', '[data-testid="stNumberInput"] input', '[data-testid="stSelectbox"] input'];
  const cut = [];
  for (const element of document.querySelectorAll(selectors.join(', '))) {
    const text = (element.value ?? element.innerText ?? '').trim();
    if (!text || !element.getClientRects().length) continue;  // icons, hidden tabs
    if (element.scrollWidth > element.clientWidth + 1) {
      cut.push(`${text} (${element.scrollWidth} px in ${element.clientWidth})`);
    }
  }
  return cut;
}"""

# Charts drawn narrower than the space they are given, or with text (a legend, an axis
# title, a label) outside their own drawing, where the browser clips it, or cut by Vega.
CUT_CHARTS = """() => {
  const problems = [];
  for (const svg of document.querySelectorAll('[data-testid="stVegaLiteChart"] svg.marks')) {
    const box = svg.getBoundingClientRect();
    if (!box.width) continue;
    const space = svg.closest('[data-testid="stElementContainer"]').getBoundingClientRect();
    const name = [...svg.querySelectorAll('.role-axis-title text')].map(t => t.textContent).join(' / ');
    if (box.width > space.width + 1 || box.width < 0.9 * space.width) {
      problems.push(`${name}: ${Math.round(box.width)} px wide in ${Math.round(space.width)} px`);
    }
    for (const text of svg.querySelectorAll('text')) {
      const r = text.getBoundingClientRect();
      if (!r.width) continue;
      // 4 px of slack: a text's box includes the line's empty ascent, a rotated axis title's too
      if (r.left < box.left - 4 || r.right > box.right + 4 || text.textContent.endsWith('…')) {
        problems.push(`${name}: "${text.textContent}" cut off`);
      }
    }
  }
  return problems;
}"""

# The numbered section headings ("1 · Choose a digit"), in the order of the page's source
# and where they are drawn.
SECTIONS = """() => [...document.querySelectorAll('h1, h2, h3')]
  .map(h => [h.innerText.trim(), h.getBoundingClientRect()])
  .filter(([text, r]) => /^[0-9]+ · /.test(text) && r.width)
  .map(([text, r]) => [parseInt(text), Math.round(r.top + window.scrollY), Math.round(r.left)])"""


def settle(tab) -> None:
    """Wait until the script run is over and the charts have drawn."""
    tab.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=FIRST_LOAD_MS)
    tab.wait_for_timeout(800)


def assert_reads_whole(tab, where: str) -> None:
    assert tab.evaluate(CUT_TEXT) == [], f"{where}: text cut off"
    assert tab.evaluate(CUT_CHARTS) == [], f"{where}: charts cut off or squeezed"


def chart_points(tab, axis_title: str) -> int:
    """How many points the chart with this y-axis title draws."""
    chart = tab.get_by_test_id("stVegaLiteChart").filter(
        has=tab.locator(".role-axis-title text", has_text=axis_title))
    return chart.locator(".mark-symbol path").count()


# The canvas whole and on top: its full 280 x 280 px, and at its corners (8 px in, clear of
# the hovered toolbar's lower edge) nothing else is hit, so no column or scroll box cuts it.
CANVAS_IN_SIGHT = """canvas => {
  const r = canvas.getBoundingClientRect(), root = canvas.getRootNode(), inset = 8;
  const corners = [[r.left + inset, r.top + inset], [r.right - inset, r.top + inset],
                   [r.left + inset, r.bottom - inset], [r.right - inset, r.bottom - inset]];
  const hiding = corners.map(([x, y]) => root.elementFromPoint(x, y)).filter(hit => hit !== canvas);
  return {width: r.width, height: r.height,
          hidden: hiding.map(hit => hit ? `${hit.tagName}.${hit.className}` : 'nothing (out of the window)')};
}"""


def overlap(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_reads_whole_at_this_width(app_url, browser, width):
    from playwright.sync_api import expect

    tab = new_tab(browser, width, 1000)
    where = "Train"
    try:
        tab.goto(app_url, wait_until="domcontentloaded", timeout=FIRST_LOAD_MS)
        expect(tab.get_by_role("heading", name="Train your own")).to_be_visible(timeout=FIRST_LOAD_MS)
        settle(tab)
        assert_reads_whole(tab, where)
        if width == min(WIDTHS):  # the quick demo, once: the form's own settings
            tab.get_by_test_id("stBaseButton-primaryFormSubmit").click()
            finished = tab.get_by_text(re.compile(r"^Trained in [0-9.]+ s \(\d+ steps in fp32\); [0-9.]+ s from your click"))
            expect(finished).to_be_visible(timeout=FIRST_LOAD_MS)
            settle(tab)
            trained, waited = (float(n) for n in re.findall(r"([0-9.]+) s\b", finished.inner_text()))
            assert trained <= waited
            for title in ("Training loss (cross-entropy)", "Training accuracy"):
                assert chart_points(tab, title) >= 10, f"the quick demo's {title} curve is hardly a curve"
            upright = metric_value(tab, "Final test accuracy (upright)").inner_text()
            assert float(upright.strip().rstrip("%")) >= 70, f"the quick demo ends at {upright}"
            expect(tab.get_by_test_id("stDownloadButton")).to_have_count(1)
            expect(tab.get_by_test_id("stSidebar").get_by_text(re.compile(r"\(trained here\)$"))).to_be_visible()
            assert_reads_whole(tab, "Train, after the quick demo")  # its long name in the sidebar too
            # Back to the shipped LeNet-5, whose sweep is recorded (the new one's would be measured first).
            tab.get_by_test_id("stSidebar").get_by_text("LeNet-5 (upright training)", exact=True).click()
            expect(tab.get_by_role("heading", name="The active model: LeNet-5 (upright training)")).to_be_visible()
            settle(tab)

        where = "Rotation sweep"
        tab.get_by_role("link", name="Rotation sweep").click()
        expect(tab.get_by_role("heading", name="Accuracy against angle")).to_be_visible(timeout=FIRST_LOAD_MS)
        settle(tab)
        for other in ("LeNet-5 + rotation augmentation", "C4-equivariant LeNet"):  # every shipped model
            tab.get_by_test_id("stMultiSelect").locator("input").click()
            tab.get_by_role("option", name=other).click()
            settle(tab)
        tab.keyboard.press("Escape")
        tab.get_by_role("heading", name="Rotation sweep").click()  # out of the menu
        settle(tab)
        chooser = tab.get_by_test_id("stMultiSelect")
        chips = chooser.get_by_test_id("stMultiSelectTagsContainer").locator("span:not(:has(*))")
        expect(chips).to_have_count(3)
        box = chooser.bounding_box()
        for chip in chips.all():  # every chosen model in sight, none scrolled away
            chip_box = chip.bounding_box()
            assert chip_box is not None, f"{chip.inner_text()} is not drawn"
            assert box["x"] <= chip_box["x"] and chip_box["x"] + chip_box["width"] <= box["x"] + box["width"]
        assert_reads_whole(tab, where)

        where = "Inside the network"
        tab.get_by_role("link", name="Inside the network").click()
        expect(tab.get_by_role("heading", name="Inside the network")).to_be_visible(timeout=FIRST_LOAD_MS)
        settle(tab)
        sections = tab.evaluate(SECTIONS)
        assert [number for number, _, _ in sections] == [1, 2, 3, 4, 5, 6]  # in the page's source
        in_reading_order = sorted(sections, key=lambda section: (section[1], section[2]))
        assert [number for number, _, _ in in_reading_order] == [1, 2, 3, 4, 5, 6]  # and where drawn
        assert_reads_whole(tab, where)

        tab.get_by_test_id("stRadio").get_by_text("Draw a digit", exact=True).click()
        canvas = tab.locator("canvas.upper-canvas")
        expect(canvas).to_be_visible()
        canvas.scroll_into_view_if_needed()
        canvas.hover()  # as a hand about to draw: the toolbar fades in and moves up, off the canvas
        tab.wait_for_timeout(600)
        assert canvas.evaluate(CANVAS_IN_SIGHT) == {"width": 280, "height": 280, "hidden": []}
        toolbar = tab.locator(".dc-toolbar-card").bounding_box()
        radio = tab.get_by_test_id("stRadio").filter(has_text="Draw a digit").bounding_box()
        assert not overlap(toolbar, radio), "the canvas toolbar covers the radio buttons"
        draw_a_one(tab)
        expect(metric_value(tab, "Prediction (upright)")).to_have_text(re.compile(r"^\s*1\s*$"))
        settle(tab)
        assert canvas.evaluate(CANVAS_IN_SIGHT)["hidden"] == []
        assert_reads_whole(tab, where + ", with a drawing")
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / f"browser_{width}px.png"), full_page=False)
