"""Accounts and audit (administrators): add accounts, change roles, disable, set passwords,
and read the audit trail with filters and a CSV download. Every change goes through
service/actions.py, which checks the role again and writes the audit row."""

import datetime as dt

import streamlit as st

from pages import _auth as auth
from pages import _ui as ui
from safety_models.presentation import export, tables
from safety_models.service import actions, audit
from safety_models.service.access import ROLE_DESCRIPTIONS, ROLES

st.title("Accounts and audit")
store = ui.get_store()
if not auth.allowed("accounts"):
    st.error("This page is for administrators.", icon=":material/block:")
    st.stop()

accounts_tab, audit_tab = st.tabs(["Accounts", "Audit trail"], key="admin_tab",
                                  on_change="rerun")


def done(message: str) -> None:
    st.session_state["admin_done"] = message
    st.rerun()


with accounts_tab:
    if accounts_tab.open:
        if "admin_done" in st.session_state:
            st.success(st.session_state.pop("admin_done"), icon=":material/task_alt:")
        listing = actions.list_accounts(store, auth.actor())
        st.dataframe(tables.accounts_table(listing), hide_index=True, width="stretch",
                     key="accounts_table", column_config={
                         "last_login_at": st.column_config.DatetimeColumn(
                             "last sign-in", format="D MMM YYYY, HH:mm"),
                         "created_at": st.column_config.DatetimeColumn(
                             "created", format="D MMM YYYY, HH:mm"),
                         "created_by": "by"})
        st.caption(" · ".join(f"**{r}** {ROLE_DESCRIPTIONS[r]}" for r in ROLES))
        left, right = st.columns(2)
        with left, st.form("account_add_form", border=True, clear_on_submit=True):
            st.markdown("**New account**")
            name = st.text_input("Account name", key="account_add_name")
            new_role = st.selectbox("Role", ROLES, key="account_add_role")
            password = st.text_input("Password", type="password", key="account_add_password",
                                     help="At least 10 characters; tell it to the person "
                                          "in person, not by e-mail.")
            if st.form_submit_button("Add account", type="primary", key="account_add",
                                     icon=":material/person_add:"):
                with ui.shown_errors("adding the account"):
                    made = actions.add_account(store, auth.actor(), name, new_role, password)
                    done(f"Account {made['name']} ({made['role']}) added.")
        with right, st.container(border=True):
            st.markdown("**Change an account**")
            names = listing["name"].tolist()
            chosen = st.selectbox("Account", names, key="account_name")
            row = listing.set_index("name").loc[chosen] if chosen else None
            if row is not None:
                a, b = st.columns([2, 1], vertical_alignment="bottom")
                changed_role = a.selectbox("Role", ROLES, index=ROLES.index(row["role"]),
                                           key="account_role")
                if b.button("Set role", key="account_set_role",
                            disabled=changed_role == row["role"]):
                    with ui.shown_errors("changing the role"):
                        actions.set_role(store, auth.actor(), chosen, changed_role)
                        done(f"{chosen} is now {changed_role}.")
                a, b = st.columns([2, 1], vertical_alignment="bottom")
                new_password = a.text_input("New password", type="password",
                                            key="account_password")
                if b.button("Set password", key="account_set_password",
                            disabled=not new_password):
                    with ui.shown_errors("setting the password"):
                        actions.reset_password(store, auth.actor(), chosen, new_password)
                        done(f"New password set for {chosen}; any sign-in lock is lifted.")
                disable = not bool(row["disabled"])
                if st.button("Disable the account" if disable else "Enable the account",
                             key="account_toggle",
                             icon=":material/block:" if disable else ":material/check:"):
                    with ui.shown_errors("changing the account"):
                        actions.set_disabled(store, auth.actor(), chosen, disable)
                        done(f"{chosen} is {'disabled' if disable else 'enabled'}.")

with audit_tab:
    if audit_tab.open:
        st.caption("Every sign-in, sign-out and change, from the dashboard and the command "
                   "line (who is then the server's user name). Rows are never changed or "
                   "removed.")
        a, b, c, d = st.columns([1.3, 1, 1.6, 1])
        today = dt.date.today()
        period = a.date_input("Between", (today - dt.timedelta(days=30), today),
                              key="audit_period", format="YYYY-MM-DD")
        who = b.text_input("Who", key="audit_who", placeholder="anyone")
        chosen_actions = c.multiselect("Actions", audit.ACTIONS, key="audit_actions",
                                       placeholder="all")
        outcome = d.selectbox("Outcome", ["", *audit.OUTCOMES], key="audit_outcome",
                              format_func=lambda o: o or "any")
        since = period[0] if len(period) else None
        until = period[1] + dt.timedelta(days=1) if len(period) > 1 else None
        rows = actions.audit_trail(store, auth.actor(), since=since, until=until,
                                   who=who.strip() or None, actions=chosen_actions or None,
                                   outcome=outcome or None)
        st.dataframe(rows.drop(columns=["id"]), hide_index=True, width="stretch",
                     key="audit_table", column_config={
                         "at": st.column_config.DatetimeColumn("when",
                                                               format="D MMM YYYY, HH:mm:ss")})
        st.download_button(f"Download these {len(rows):,} rows (CSV)",
                           data=export.csv_bytes(rows), file_name="audit-trail.csv",
                           mime="text/csv", key="audit_download", icon=":material/download:")
