"""The dashboard over Streamlit's own websocket, as the browser's frontend speaks it
(tests/streamlit_ws.py), without a browser: only the app's navigation from a fresh server's
first request on, and every page by its own address. (Uses test_browser's server helpers, so
it is skipped where that module is: without chromium.)"""

from __future__ import annotations

import asyncio

from conftest import copy_home
from streamlit.proto.Navigation_pb2 import Navigation
from streamlit_ws import Session
from test_browser import ADDRESSES, ADMIN_PASSWORD, NO_STREETS, running

SIGN_IN = {"login_name": "admin", "login_password": ADMIN_PASSWORD}


async def open_signed_in(url: str, path: str) -> tuple[Session, list]:
    """A new session that opens path by its address and signs in: (session, the runs)."""
    session = Session(url, timeout_s=120)
    await session.__aenter__()
    runs = [await session.open_page(path)]
    if "login_name" not in runs[-1].widgets:
        # The first run of a fresh server asked the browser to load the address again
        # (pages/_navigation.py): do what the browser does, in a new session.
        await session.__aexit__()
        session = Session(url, timeout_s=120)
        await session.__aenter__()
        runs.append(await session.open_page(path))
    assert "login_name" in runs[-1].widgets, runs[-1].headings
    runs.append(await session.submit_form(SIGN_IN, "login_submit", runs[-1]))
    return session, runs


def only_the_apps_pages_offered(session: Session) -> None:
    """Every navigation the server sent either lists the app's own addresses or is hidden
    (the pages/-folder list Streamlit makes on a fresh server's first run is never shown)."""
    for position, paths in session.navigations:
        assert position == Navigation.Position.HIDDEN or set(paths) <= set(ADDRESSES), \
            (position, paths)


def test_a_deep_link_as_a_fresh_servers_first_request(tiny_home_with_models, tmp_path):
    home = tmp_path / "home"
    copy_home(tiny_home_with_models, home)

    async def visits(url: str) -> None:
        session, runs = await open_signed_in(url, "map")
        try:
            only_the_apps_pages_offered(session)
            assert "Risk map" in runs[-1].headings and not runs[-1].errors
            # Signed in, the app's own navigation at the top: its pages, nothing else.
            position, paths = session.navigations[-1]
            assert position == Navigation.Position.TOP and set(paths) <= set(ADDRESSES)
        finally:
            await session.__aexit__()
        # Every other address as a new session's first request (a bookmark, a shared link).
        for path, title in ADDRESSES.items():
            session, runs = await open_signed_in(url, path)
            try:
                only_the_apps_pages_offered(session)
                assert not any(run.page_not_found for run in runs), path
                assert title in runs[-1].headings and not runs[-1].errors, (path, runs[-1])
            finally:
                await session.__aexit__()

    with running(home, "streamlit-websocket", env=NO_STREETS) as url:
        asyncio.run(visits(url))
