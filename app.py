"""The dashboard's entry point: navigation over the pages in pages/, nothing else."""

import streamlit as st

st.set_page_config(page_title="safety_models", page_icon=":material/map:", layout="wide")
st.title("safety_models")
st.write("The dashboard is being built; use `python -m safety_models --help` meanwhile.")
