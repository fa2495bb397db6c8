"""app_layout.row: columns that wrap instead of shrinking below their minimum widths.

How they look is checked in a real browser (test_browser.py, at 1400 and 800 px); here,
the rule each column gets and the mistakes row() refuses."""

import pytest
from streamlit.testing.v1 import AppTest

import app_layout


def test_each_column_gets_its_share_and_its_minimum_width():
    def page():
        import streamlit as st

        import app_layout

        left, right = app_layout.row("demo_row", [300, 120], [0.5, 1.5])
        left.write("left")
        right.write("right")

    at = AppTest.from_function(page).run()
    assert not at.exception
    [style] = [element.proto.body for element in at.get("html")]
    # weights scaled so the smallest is 1, so a column alone on its line fills it
    assert ".st-key-demo_row > [data-testid='stLayoutWrapper']:nth-child(1) {flex: 1 1 0; min-width: min(300px, 100%);}" in style
    assert ".st-key-demo_row > [data-testid='stLayoutWrapper']:nth-child(2) {flex: 3 1 0; min-width: min(120px, 100%);}" in style
    assert [markdown.value for markdown in at.markdown] == ["left", "right"]


@pytest.mark.parametrize("key, widths, weights", [
    ("two words", [100], None),  # the key is a CSS class name
    ("row", [100, 100], [1]),  # one weight per column
    ("row", [], None),
    ("row", [100], [0]),
])
def test_mistakes_are_refused(key, widths, weights):
    with pytest.raises(ValueError):
        app_layout.row(key, widths, weights)
