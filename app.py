"""The dashboard's entry point: page setup, the first start, the sign-in gate and navigation."""

import streamlit as st

from pages import _auth as auth
from pages._ui import first_start, shown_errors

st.set_page_config(page_title="Safety risk maps", page_icon="🗺️", layout="wide")

# On an empty home: the `admin` account (its password printed once on the console), the
# demo data and the one background job that trains a model per category (library calls;
# cheap and idempotent on every later run).
auth.ensure_first_admin()
first_start()

actor = auth.current()
role = actor.role if actor else "admin"   # signed out: every page is known, none is shown


def pages_for(role: str) -> dict:
    """The navigation a role sees (the service refuses what a role may not do anyway)."""
    analyst = role in ("analyst", "admin")
    return {
        "Operations": [
            st.Page("pages/overview_page.py", title="Overview", icon=":material/dashboard:",
                    url_path="overview", default=True),
            st.Page("pages/risk_map_page.py", title="Risk map", icon=":material/map:",
                    url_path="map"),
        ],
        "Data and models": [
            *([st.Page("pages/data_page.py", title="Data", icon=":material/upload_file:",
                       url_path="data"),
               st.Page("pages/models_page.py", title="Models and training",
                       icon=":material/model_training:", url_path="models")] if analyst else []),
            st.Page("pages/evaluation_page.py", title="Evaluation",
                    icon=":material/query_stats:", url_path="evaluation"),
            st.Page("pages/method_page.py", title="Method and limitations",
                    icon=":material/menu_book:", url_path="method"),
        ],
        **({"Administration": [
            st.Page("pages/admin_page.py", title="Accounts and audit",
                    icon=":material/admin_panel_settings:", url_path="admin")]}
           if role == "admin" else {}),
    }


# Signed out, the navigation still knows every page (hidden), so that the address a visitor
# came with (a deep link) is the page they see once signed in; nothing of it runs before.
page = st.navigation(pages_for(role), position="sidebar" if actor else "hidden")
if actor is None:
    auth.sign_in_form()
    st.stop()
auth.account_box()
# Whatever a page does not handle itself is shown as a short message, never a bare traceback.
with shown_errors("showing this page"):
    page.run()
