"""The dashboard's entry point: page setup, the first-start bootstrap, and navigation."""

import streamlit as st

from app_pages._common import first_start, shown_errors

st.set_page_config(page_title="Safety risk maps", page_icon="🗺️", layout="wide")

# On an empty home: load the demo data and start the one background job that trains a model
# per category (a library call; cheap and idempotent on every later run).
first_start()

page = st.navigation({
    "Operations": [
        st.Page("app_pages/overview.py", title="Overview", icon=":material/dashboard:",
                url_path="overview", default=True),
        st.Page("app_pages/risk_map.py", title="Risk map", icon=":material/map:", url_path="map"),
    ],
    "Data and models": [
        st.Page("app_pages/data.py", title="Data", icon=":material/upload_file:", url_path="data"),
        st.Page("app_pages/models.py", title="Models and training", icon=":material/model_training:",
                url_path="models"),
        st.Page("app_pages/evaluation.py", title="Evaluation", icon=":material/query_stats:",
                url_path="evaluation"),
        st.Page("app_pages/method.py", title="Method and limitations", icon=":material/menu_book:",
                url_path="method"),
    ],
})
# Whatever a page does not handle itself is shown as a short message, never a bare traceback.
with shown_errors("showing this page"):
    page.run()
