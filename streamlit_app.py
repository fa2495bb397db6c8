"""rotinv: is a CNN rotation invariant? The app's entry point: page setup, navigation, sidebar."""

import streamlit as st

import app_shared

st.set_page_config(**app_shared.PAGE_CONFIG)

pages = [
    st.Page("pages/1_train.py", title="Train", icon=":material/model_training:", default=True),
    st.Page("pages/2_sweep.py", title="Rotation sweep", icon=":material/rotate_90_degrees_ccw:"),
    st.Page("pages/3_inside.py", title="Inside the network", icon=":material/grid_view:"),
]
page = st.navigation(pages)
app_shared.sidebar()
app_shared.run_page(page)
