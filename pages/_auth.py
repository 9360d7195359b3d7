"""Signing in to the dashboard: the sign-in form, the session's account, idle expiry, and
the sidebar's account box. The decisions (passwords, locks, roles, the audit trail) are the
library's (service/accounts.py, access.py, actions.py); this module only keeps the signed-in
`Actor` in the session and draws the widgets.

A session lives in the browser tab: reloading the page or opening a new tab asks to sign in
again (a city sign-in's cookie signs the new tab in by itself).
"""

from __future__ import annotations

import importlib.util
import sys
import time

import streamlit as st

from pages import _ui as ui
from safety_models.errors import SignInRefused
from safety_models.service import accounts, actions
from safety_models.service.access import AccessSettings, Actor, SsoSettings, can, \
    session_expired, sso_settings_from_secrets

ACTOR_KEY = "auth_actor"
LAST_SEEN_KEY = "auth_last_seen"
NOTICE_KEY = "auth_notice"


def settings() -> AccessSettings:
    return AccessSettings.from_env()


def sso_settings() -> SsoSettings | None:
    """The city sign-in's settings when .streamlit/secrets.toml configures one (and Authlib,
    which st.login needs, is installed), else None."""
    if importlib.util.find_spec("authlib") is None:
        return None
    try:
        if not st.secrets.load_if_toml_exists():
            return None
        return sso_settings_from_secrets(st.secrets.to_dict())
    except Exception:  # noqa: BLE001 - an unreadable secrets file means no SSO, not no app
        return None


# ---------------------------------------------------------------------------- first start


def ensure_first_admin() -> None:
    """On a home without accounts, make `admin` and print its random password once on the
    server console (stdout of `streamlit run`); with SAFETY_MODELS_ADMIN_PASSWORD, use that.
    Checked once per session (one COUNT query); the library makes sure only one session
    ever creates the account, so the password is printed once."""
    if st.session_state.get("_admin_checked"):
        return
    with ui.shown_errors("creating the first administrator account"):
        password = accounts.ensure_admin(ui.get_store())
        st.session_state["_admin_checked"] = True
        if password is not None:
            bar = "=" * 72
            print(f"\n{bar}\nSafety risk maps: first start. Sign in to the dashboard as\n\n"
                  f"    account:  {accounts.ADMIN_NAME}\n    password: {password}\n\n"
                  "This password is shown only now. Change it on the Accounts page, or with\n"
                  f"    python -m safety_models users reset-password {accounts.ADMIN_NAME}\n"
                  f"{bar}\n", file=sys.stdout, flush=True)


# ---------------------------------------------------------------------------- the session


def _sign_out_state() -> None:
    for key in (ACTOR_KEY, LAST_SEEN_KEY):
        st.session_state.pop(key, None)


def current() -> Actor | None:
    """The signed-in account of this session, None when nobody is. Ends a session idle for
    longer than the limit (audited) and applies a role changed or an account disabled since
    it signed in."""
    actor = st.session_state.get(ACTOR_KEY)
    if actor is None:
        return None
    store = ui.get_store()
    now = time.time()
    if session_expired(st.session_state.get(LAST_SEEN_KEY), now, settings().idle_minutes):
        actions.log_out(store, actor, expired=True)
        _sign_out_state()
        st.session_state[NOTICE_KEY] = (f"You were signed out after {settings().idle_minutes:g} "
                                        "minutes without activity.")
        if actor.method == "sso":
            st.logout()
        return None
    fresh = actions.recheck(store, actor)
    if fresh is None:
        _sign_out_state()
        st.session_state[NOTICE_KEY] = "Your account was disabled. Ask an administrator."
        return None
    st.session_state[ACTOR_KEY] = fresh
    st.session_state[LAST_SEEN_KEY] = now
    return fresh


def actor() -> Actor:
    """The signed-in account, for a page's call into the service (which checks the role);
    a session that ended in the meantime goes back to the sign-in form."""
    who = current()
    if who is None:
        st.rerun(scope="app")
    return who


def allowed(permission: str) -> bool:
    """Whether the session's account may do this (to hide what it may not; the service
    refuses it anyway)."""
    who = st.session_state.get(ACTOR_KEY)
    return who is not None and can(who.role, permission)


# ---------------------------------------------------------------------------- widgets


def sign_in_form() -> None:
    """The only thing an anonymous visitor sees, whatever page the address names."""
    store = ui.get_store()
    sso = sso_settings()
    _, middle, _ = st.columns([1, 1.4, 1])
    with middle:
        st.title("Safety risk maps")
        notice = st.session_state.pop(NOTICE_KEY, None)
        if notice:
            st.info(notice, icon=":material/logout:")
        if sso is not None:
            if st.user.is_logged_in:
                # Signed in at the city, but refused here (no role, or disabled).
                try:
                    who = actions.log_in_sso(store, st.user.to_dict(), sso)
                except SignInRefused as err:
                    st.error(str(err), icon=":material/block:")
                    st.button("Sign out of the city account", key="sso_logout",
                              on_click=st.logout)
                    return
                _signed_in(who)
            st.button(sso.label, key="sso_login", type="primary", icon=":material/badge:",
                      on_click=st.login, args=(sso.provider,) if sso.provider else ())
            st.caption("Or with an account of this dashboard:")
        with st.form("login_form", border=True):
            name = st.text_input("Account", key="login_name", autocomplete="username")
            password = st.text_input("Password", type="password", key="login_password",
                                     autocomplete="current-password")
            submitted = st.form_submit_button("Sign in", type="primary", key="login_submit",
                                              icon=":material/login:")
        if submitted:
            try:
                who = actions.log_in(store, name, password, settings())
            except SignInRefused as err:
                st.error(str(err), icon=":material/lock:")
            else:
                _signed_in(who)
        with ui.shown_errors("checking the first start"):
            if accounts.first_admin_pending(store):
                st.info(f"**First start:** sign in as **{accounts.ADMIN_NAME}** with the "
                        "password printed once in the server's console (the terminal running "
                        "`streamlit run app.py`, or its service log). To choose it yourself, "
                        f"start the server with `{accounts.ADMIN_PASSWORD_ENV}` set on a new "
                        "home.", icon=":material/key:")


def _signed_in(who: Actor) -> None:
    st.session_state[ACTOR_KEY] = who
    st.session_state[LAST_SEEN_KEY] = time.time()
    st.session_state.pop("login_password", None)
    st.rerun()


def sign_out() -> None:
    who = st.session_state.get(ACTOR_KEY)
    if who is None:
        return
    actions.log_out(ui.get_store(), who)
    _sign_out_state()
    st.session_state[NOTICE_KEY] = "You are signed out."
    if who.method == "sso":
        st.logout()


def account_box() -> None:
    """The sidebar's account line and Sign out button."""
    who = st.session_state.get(ACTOR_KEY)
    if who is None:
        return
    with st.sidebar:
        st.caption(f"Signed in as **{who.name}** ({who.role})")
        if st.button("Sign out", key="logout_button", icon=":material/logout:"):
            sign_out()
            st.rerun()
