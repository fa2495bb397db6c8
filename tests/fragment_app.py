"""A tiny app for tests/test_stclient.py: a fragment with a slider, one on a timer, and a
count of full runs, so the harness's client can be checked against what Streamlit sends."""

import streamlit as st

st.session_state.setdefault("full_runs", 0)
st.session_state.setdefault("ticks", 0)
st.session_state.full_runs += 1
st.markdown(f"Full runs: {st.session_state.full_runs}")


@st.fragment
def turn() -> None:
    angle = st.slider("Angle", 0, 360, 0, key="angle")
    st.markdown(f"Angle shown: {angle}")


@st.fragment(run_every=0.5)
def clock() -> None:
    st.session_state.ticks += 1
    st.markdown(f"Ticks: {st.session_state.ticks}")


turn()
clock()
if st.button("Fail"):
    raise ValueError("asked to fail")
