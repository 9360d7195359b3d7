"""Local accounts: argon2 hashes, sign-in, the lock after failed sign-ins, the last admin,
and the first start's admin account (on SQLite and PostgreSQL: conftest's `store`)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from safety_models.data.store import Store
from safety_models.errors import UserError
from safety_models.service import accounts
from safety_models.service.access import AccessSettings

PASSWORD = "correct horse battery"
SETTINGS = AccessSettings(login_attempts=3, lockout_minutes=10)


def test_passwords_are_stored_as_argon2id_hashes_only(store):
    accounts.add_account(store, "Ana", "analyst", PASSWORD)
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(accounts.accounts_table.c.password_hash)).scalar()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert "password_hash" not in accounts.get_account(store, "ana")
    assert accounts.get_account(store, "ANA")["name"] == "ana", "names ignore case"


def test_names_roles_and_passwords_are_checked(store):
    with pytest.raises(UserError, match="account name"):
        accounts.add_account(store, "no spaces", "viewer", PASSWORD)
    with pytest.raises(UserError, match="role"):
        accounts.add_account(store, "x", "owner", PASSWORD)
    with pytest.raises(UserError, match="at least 10"):
        accounts.add_account(store, "x", "viewer", "short")
    accounts.add_account(store, "x", "viewer", PASSWORD)
    with pytest.raises(UserError, match="already"):
        accounts.add_account(store, "X", "admin", PASSWORD)


def test_sign_in_and_the_lock_after_failures(store):
    accounts.add_account(store, "ana", "analyst", PASSWORD)
    t0 = datetime(2026, 11, 30, 9, 0)
    ok = accounts.authenticate(store, "ana", PASSWORD, SETTINGS, now=t0)
    assert ok.ok and ok.role == "analyst"
    assert accounts.get_account(store, "ana")["last_login_at"] == t0
    first = accounts.authenticate(store, "ana", "wrong", SETTINGS, now=t0)
    second = accounts.authenticate(store, "ana", "wrong", SETTINGS, now=t0)
    assert (first.outcome, second.outcome, second.locked_now) == ("failed", "failed", False)
    third = accounts.authenticate(store, "ana", "wrong", SETTINGS, now=t0)
    assert third.locked_now and "locked until 09:10" in third.message
    # Locked: even the right password is refused, until the lock ends.
    assert accounts.authenticate(store, "ana", PASSWORD, SETTINGS,
                                 now=t0 + timedelta(minutes=9)).outcome == "locked"
    later = accounts.authenticate(store, "ana", PASSWORD, SETTINGS,
                                  now=t0 + timedelta(minutes=11))
    assert later.ok
    assert accounts.get_account(store, "ana")["failed_logins"] == 0


def test_unknown_names_and_wrong_passwords_read_the_same(store):
    accounts.add_account(store, "ana", "analyst", PASSWORD)
    unknown = accounts.authenticate(store, "nobody", PASSWORD, SETTINGS)
    wrong = accounts.authenticate(store, "ana", "wrong", SETTINGS)
    assert unknown.message == wrong.message == accounts.WRONG
    assert accounts.authenticate(store, "=cmd|' /C calc'!A0", "x", SETTINGS).outcome == "failed"


def test_disabled_accounts_cannot_sign_in_and_enabling_lifts_a_lock(store):
    accounts.add_account(store, "ana", "analyst", PASSWORD)
    accounts.set_disabled(store, "ana", True)
    result = accounts.authenticate(store, "ana", PASSWORD, SETTINGS)
    assert not result.ok and "disabled" in result.message
    for _ in range(3):
        accounts.authenticate(store, "ana", "wrong", SETTINGS)
    accounts.set_disabled(store, "ana", False)
    assert accounts.authenticate(store, "ana", PASSWORD, SETTINGS).ok


def test_a_new_password_replaces_the_old_one_and_lifts_the_lock(store):
    accounts.add_account(store, "ana", "analyst", PASSWORD)
    for _ in range(3):
        accounts.authenticate(store, "ana", "wrong", SETTINGS)
    accounts.set_password(store, "ana", "another long one")
    assert not accounts.authenticate(store, "ana", PASSWORD, SETTINGS).ok
    assert accounts.authenticate(store, "ana", "another long one", SETTINGS).ok


def test_the_last_administrator_stays(store):
    accounts.add_account(store, "root", "admin", PASSWORD)
    with pytest.raises(UserError, match="last administrator"):
        accounts.set_role(store, "root", "analyst")
    with pytest.raises(UserError, match="last administrator"):
        accounts.set_disabled(store, "root")
    accounts.add_account(store, "second", "admin", PASSWORD)
    accounts.set_role(store, "root", "viewer")
    with pytest.raises(UserError, match="last administrator"):
        accounts.set_disabled(store, "second")


def test_first_start_makes_admin_once(store, monkeypatch):
    monkeypatch.delenv("SAFETY_MODELS_ADMIN_PASSWORD", raising=False)
    password = accounts.ensure_admin(store)
    assert password and len(password) >= 16
    assert accounts.first_admin_pending(store)
    assert accounts.ensure_admin(store) is None, "never a second password"
    assert accounts.authenticate(store, "admin", password, SETTINGS).ok
    assert not accounts.first_admin_pending(store)


def test_first_start_takes_the_password_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFETY_MODELS_ADMIN_PASSWORD", "scripted-install-pw")
    with Store(f"sqlite:///{tmp_path / 'a.db'}") as store:
        assert accounts.ensure_admin(store) is None
        assert accounts.authenticate(store, "admin", "scripted-install-pw", SETTINGS).ok
        assert not accounts.first_admin_pending(store)
    monkeypatch.setenv("SAFETY_MODELS_ADMIN_PASSWORD", "short")
    with Store(f"sqlite:///{tmp_path / 'b.db'}") as store:
        with pytest.raises(UserError, match="SAFETY_MODELS_ADMIN_PASSWORD"):
            accounts.ensure_admin(store)
