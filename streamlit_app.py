"""rotinv: is a CNN rotation invariant? The app's entry point: page setup, navigation, sidebar."""

import streamlit as st
import torch

import app_shared
from rotinv.limits import torch_threads

st.set_page_config(**app_shared.PAGE_CONFIG)
try:
    if (threads := torch_threads()) is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)  # process-wide; set once, before any session computes
except ValueError as error:
    st.warning(f"{error} Using torch's default thread count.")

# The page files live in app_pages/, not pages/: a folder named pages/ beside the entry
# point makes Streamlit serve each page file on its own (no sidebar, no layout) to a
# first visitor who opens a page's URL directly, until st.navigation has run once.
pages = [
    st.Page("app_pages/1_train.py", title="Train", icon=":material/model_training:", default=True),
    st.Page("app_pages/2_sweep.py", title="Rotation sweep", icon=":material/rotate_90_degrees_ccw:"),
    st.Page("app_pages/3_inside.py", title="Inside the network", icon=":material/grid_view:"),
]
page = st.navigation(pages)
if problem := app_shared.page_turns_problem():
    st.warning(f"{problem} Using the default.")
# One page run at a time by default: the sessions share one interpreter (rotinv.turns);
# the page's parts run inside this turn.
with app_shared.page_turns().turn():
    app_shared.sidebar()
    page.run()
app_shared.warm_up_in_background()  # after the first page, so that it never delays one
