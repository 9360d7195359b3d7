"""The dashboard's entry point: page setup, the first start, the sign-in gate and navigation."""

import streamlit as st

from pages._navigation import only_app_navigation

# A fresh server's first run is routed through Streamlit's pages/-folder mode: leave it first.
only_app_navigation()

from pages import _auth as auth  # noqa: E402 - after the folder-mode repair
from pages._ui import first_start, shown_errors, warm_up  # noqa: E402

st.set_page_config(page_title="Safety risk maps", page_icon="🗺️", layout="wide")

# On an empty home: the `admin` account (its password printed once on the console), the
# demo data and the one background job that makes every category's first models (library
# calls; cheap and idempotent on every later run).
auth.ensure_first_admin()
first_start()

actor = auth.current()
role = actor.role if actor else "admin"   # signed out: every page is known, none is shown
OVERVIEW = "pages/overview_page.py"


def pages_for(role: str) -> list:
    """The navigation a role sees (the service refuses what a role may not do anyway), in one
    row at the top: the sidebar is left to the pages' own controls and the account box, and
    the pages/-folder list Streamlit could draw there is switched off (.streamlit/config.toml)."""
    analyst = role in ("analyst", "admin")
    return [
        st.Page(OVERVIEW, title="Overview", icon=":material/dashboard:", url_path="home",
                default=True),
        st.Page("pages/risk_map_page.py", title="Risk map", icon=":material/map:",
                url_path="map"),
        *([st.Page("pages/data_page.py", title="Data", icon=":material/upload_file:",
                   url_path="data"),
           st.Page("pages/models_page.py", title="Models and training",
                   icon=":material/model_training:", url_path="models")] if analyst else []),
        st.Page("pages/evaluation_page.py", title="Evaluation", icon=":material/query_stats:",
                url_path="evaluation"),
        st.Page("pages/method_page.py", title="Method and limitations",
                icon=":material/menu_book:", url_path="method"),
        *([st.Page("pages/admin_page.py", title="Accounts and audit",
                   icon=":material/admin_panel_settings:", url_path="admin")]
          if role == "admin" else []),
        # The default page is served at "/" whatever its url_path; /overview is its own address.
        st.Page(OVERVIEW, title="Overview", url_path="overview", visibility="hidden"),
    ]


# Signed out, the navigation still knows every page (hidden), so that the address a visitor
# came with (a deep link) is the page they see once signed in; nothing of it runs before.
page = st.navigation(pages_for(role), position="top" if actor else "hidden")
if actor is None:
    auth.sign_in_form()
    st.stop()
auth.account_box()
# Whatever a page does not handle itself is shown as a short message, never a bare traceback.
with shown_errors("showing this page"):
    page.run()
warm_up()   # the other pages' imports, in the background, once the first page is drawn
