"""The dashboard's entry point: page setup, the first-start bootstrap, and navigation."""

import streamlit as st

from pages._navigation import only_app_navigation

# A fresh server's first run is routed through Streamlit's pages/-folder mode: leave it first.
only_app_navigation()

from pages._ui import first_start, shown_errors, warm_up  # noqa: E402 - after the folder-mode repair

st.set_page_config(page_title="Safety risk maps", page_icon="🗺️", layout="wide")

# On an empty home: load the demo data and start the one background job that makes a first
# model per category (a library call; cheap and idempotent on every later run).
first_start()

OVERVIEW = "pages/overview_page.py"
# Every page in one row at the top: the sidebar is left to the pages' own controls, and the
# pages/-folder list Streamlit could draw there is switched off (.streamlit/config.toml).
page = st.navigation([
    st.Page(OVERVIEW, title="Overview", icon=":material/dashboard:", url_path="home",
            default=True),
    st.Page("pages/risk_map_page.py", title="Risk map", icon=":material/map:", url_path="map"),
    st.Page("pages/data_page.py", title="Data", icon=":material/upload_file:", url_path="data"),
    st.Page("pages/models_page.py", title="Models and training", icon=":material/model_training:",
            url_path="models"),
    st.Page("pages/evaluation_page.py", title="Evaluation", icon=":material/query_stats:",
            url_path="evaluation"),
    st.Page("pages/method_page.py", title="Method and limitations", icon=":material/menu_book:",
            url_path="method"),
    # The default page is served at "/" whatever its url_path; /overview is its own address.
    st.Page(OVERVIEW, title="Overview", url_path="overview", visibility="hidden"),
], position="top")
# Whatever a page does not handle itself is shown as a short message, never a bare traceback.
with shown_errors("showing this page"):
    page.run()
warm_up()   # the other pages' imports, in the background, once the first page is drawn
