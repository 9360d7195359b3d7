"""The dashboard's entry point: page setup, the first-start bootstrap, and navigation."""

import streamlit as st

from pages._ui import first_start, shown_errors

st.set_page_config(page_title="Safety risk maps", page_icon="🗺️", layout="wide")

# On an empty home: load the demo data and start the one background job that trains a model
# per category (a library call; cheap and idempotent on every later run).
first_start()

page = st.navigation({
    "Operations": [
        st.Page("pages/overview_page.py", title="Overview", icon=":material/dashboard:",
                url_path="overview", default=True),
        st.Page("pages/risk_map_page.py", title="Risk map", icon=":material/map:", url_path="map"),
    ],
    "Data and models": [
        st.Page("pages/data_page.py", title="Data", icon=":material/upload_file:", url_path="data"),
        st.Page("pages/models_page.py", title="Models and training", icon=":material/model_training:",
                url_path="models"),
        st.Page("pages/evaluation_page.py", title="Evaluation", icon=":material/query_stats:",
                url_path="evaluation"),
        st.Page("pages/method_page.py", title="Method and limitations", icon=":material/menu_book:",
                url_path="method"),
    ],
})
# Whatever a page does not handle itself is shown as a short message, never a bare traceback.
with shown_errors("showing this page"):
    page.run()
