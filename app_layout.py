"""Streamlit glue for the pages' layout: side-by-side sections that wrap on a narrow screen.

st.columns keeps its columns side by side down to a 640 px wide window, whatever is in
them: at 800 px, with the sidebar open, three columns get ~150 px each and every label,
input and chart in them is cut. row() is st.columns with a minimum width per column:
where the columns do not fit side by side, the last ones move onto the next line and
take its whole width. It is a horizontal st.container whose children get a flex rule
through the container's key (Streamlit gives every keyed container the CSS class
st-key-<key>); the rule is a style-only st.html, which takes no space on the page.
"""

from __future__ import annotations

import re
from typing import Sequence

import streamlit as st
from streamlit.delta_generator import DeltaGenerator


def row(key: str, min_widths: Sequence[int], weights: Sequence[float] | None = None,
        gap: str = "small") -> list[DeltaGenerator]:
    """Containers side by side, sharing the width in proportion to `weights` (equal by
    default), none narrower than its `min_widths` entry (pixels) unless the page itself
    is narrower; those that do not fit wrap onto the next line.

    `key` names the row; it must be unique on the page and a plain identifier.
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", key):
        raise ValueError(f"A row's key is a CSS class name too: letters, digits and _ only, got {key!r}.")
    weights = list(weights) if weights is not None else [1.0] * len(min_widths)
    if len(weights) != len(min_widths) or not min_widths:
        raise ValueError("row() needs one weight per minimum width, and at least one column.")
    smallest = min(weights)
    if smallest <= 0:
        raise ValueError("row() weights must be positive.")
    # Scaled so the smallest is 1: a line whose flex-grow factors add up to less than 1
    # leaves the rest of its width empty (a column alone on its line would not fill it).
    weights = [weight / smallest for weight in weights]
    rules = "".join(
        f".st-key-{key} > [data-testid='stLayoutWrapper']:nth-child({position}) "
        f"{{flex: {weight:g} 1 0; min-width: min({width}px, 100%);}}"
        for position, (width, weight) in enumerate(zip(min_widths, weights), start=1)
    )
    # Wrapped lines sit as far apart as any two elements, whatever the gap between columns.
    rules += f".st-key-{key} {{row-gap: 1rem;}}"
    st.html(f"<style>{rules}</style>")
    with st.container(horizontal=True, key=key, gap=gap):
        return [st.container() for _ in min_widths]
