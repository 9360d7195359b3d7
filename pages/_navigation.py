"""Only the app's own navigation (app.py's st.navigation), from the first request on.

Streamlit decides once per server process, when the first browser session opens, whether an
app uses the old pages/ folder convention: it does when a `pages/` folder sits beside the
entry script, as ours does (the design keeps the page scripts there). Until some run calls
st.navigation, every run is routed through that mode, so the first run of a fresh server
lists the folder's scripts as pages and answers a deep link such as /map with "Page not
found" (the folder has no `map` script). Calling st.navigation switches the mode off for the
whole process, but only after that first run has already answered.

`client.showSidebarNavigation = false` (.streamlit/config.toml) keeps the folder's list out
of sight; this module repairs the first run itself: it switches the mode off and, when the
first request named a page, loads that page's address again, which a fresh run now answers.
Imports nothing but streamlit, so it runs before the app's heavier imports.
"""

from __future__ import annotations

import json

import streamlit as st

# Hide the "Page not found" dialog the first run sent, until the page reloads (markdown's
# renderer is loaded with the page, so the style applies with the first elements drawn).
_HIDE_DIALOG = "<style>div[role='dialog']{display:none !important}</style>"
_RELOAD_HTML = "<script>window.location.replace({target} + window.location.search);</script>"


def first_run_in_folder_mode() -> bool:
    """Whether this run was routed through Streamlit's pages/-folder mode (see the module
    doc). Never under AppTest, which resets that mode on every run and shows no dialog."""
    from streamlit import config
    from streamlit.runtime.pages_manager import PagesManager

    return bool(PagesManager.uses_pages_directory) and not config.get_option("global.appTest")


def page_address(page_name: str) -> str:
    """The path the browser should load for a page's url_path, under server.baseUrlPath."""
    from streamlit import config

    base = str(config.get_option("server.baseUrlPath") or "").strip("/")
    return "/" + "/".join(part for part in (base, page_name) if part)


def only_app_navigation() -> None:
    """Call first in app.py. On a fresh server's first run (folder mode): switch the mode off
    for the process; when the request was a deep link, reload its address and stop this run."""
    if not first_run_in_folder_mode():
        return
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    PagesManager.uses_pages_directory = False
    ctx = get_script_run_ctx()
    requested = ctx.pages_manager.intended_page_name if ctx is not None else None
    if requested:
        st.markdown(_HIDE_DIALOG, unsafe_allow_html=True)
        st.html(_RELOAD_HTML.format(target=json.dumps(page_address(requested))),
                unsafe_allow_javascript=True)
        st.stop()
