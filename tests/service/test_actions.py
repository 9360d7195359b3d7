"""Guarded actions and the audit trail: each change is checked against the role and
leaves exactly one row; the trail can only grow."""

from __future__ import annotations

import inspect

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import district_outlines, synthetic_incidents, synthetic_incidents_csv

from safety_models.errors import PermissionDenied, SignInRefused, UserError
from safety_models.service import accounts, actions, audit, jobs
from safety_models.service.access import AccessSettings, Actor, SsoSettings

ADMIN = Actor("root", "admin", "cli")
ANALYST = Actor("ana", "analyst", "dashboard")
VIEWER = Actor("vera", "viewer", "dashboard")


def rows(store) -> list[tuple]:
    """(who, via, action, target, outcome), oldest first."""
    df = audit.query(store).iloc[::-1]
    return list(df[["who", "via", "action", "target", "outcome"]].itertuples(index=False,
                                                                          name=None))


@pytest.fixture
def fake_models(monkeypatch):
    """promote/rollback against a two-version registry in memory (the registry itself is
    tested in tests/modeling)."""
    from safety_models.modeling import registry

    state = {"active": "crime-1"}
    monkeypatch.setattr(registry, "model_info", lambda store, m: {"category": "crime"})
    monkeypatch.setattr(registry, "active_model_id", lambda store, c: state["active"])
    monkeypatch.setattr(registry, "promote", lambda store, m: state.update(active=m))
    monkeypatch.setattr(registry, "rollback",
                        lambda store, c: state.update(active="crime-1") or "crime-1")
    return state


def test_each_action_leaves_its_row(crime_store, fake_models, monkeypatch):
    store = crime_store
    more = synthetic_incidents("crime", 40, seed=3)
    more["ID"] = [f"more{i}" for i in range(len(more))]
    data = more.to_csv(index=False).encode()
    summary = actions.ingest(store, ANALYST, data, "more.csv", "crime")
    actions.set_boundary(store, ADMIN, "*", district_outlines(), "districts.geojson")
    actions.remove_upload(store, ADMIN, summary.upload_id)
    actions.remove_demo(store, ADMIN)

    def fake_start_job(store, kind, config, on_created=None):
        on_created(41)
        return 41

    monkeypatch.setattr(jobs, "start_job", fake_start_job)
    assert actions.start_training(store, ANALYST, {"category": "crime", "epochs": 2}) == 41
    actions.cancel_job(store, ANALYST, 41)
    actions.promote(store, ADMIN, "crime-2")
    assert actions.rollback(store, ADMIN, "crime") == "crime-1"
    actions.add_account(store, ADMIN, "Vera", "viewer", "viewer-password")
    actions.set_role(store, ADMIN, "vera", "analyst")
    actions.set_disabled(store, ADMIN, "vera", True)
    actions.set_disabled(store, ADMIN, "vera", False)
    actions.reset_password(store, ADMIN, "vera", "another-password")
    who = actions.log_in(store, "vera", "another-password")
    actions.log_out(store, who)
    assert rows(store) == [
        ("ana", "dashboard", "upload", f"upload #{summary.upload_id}", "ok"),
        ("root", "cli", "boundary.set", "outlines for every category", "ok"),
        ("root", "cli", "upload.remove", f"upload #{summary.upload_id}", "ok"),
        ("root", "cli", "demo.remove", "demo data", "ok"),
        ("ana", "dashboard", "train.start", "job 41", "ok"),
        ("ana", "dashboard", "train.cancel", "job 41", "ok"),
        ("root", "cli", "model.promote", "model crime-2", "ok"),
        ("root", "cli", "model.rollback", "crime", "ok"),
        ("root", "cli", "account.add", "account vera", "ok"),
        ("root", "cli", "account.role", "account vera", "ok"),
        ("root", "cli", "account.disable", "account vera", "ok"),
        ("root", "cli", "account.enable", "account vera", "ok"),
        ("root", "cli", "account.password", "account vera", "ok"),
        ("vera", "dashboard", "login", "account vera", "ok"),
        ("vera", "dashboard", "logout", "account vera", "ok"),
    ]
    detail = audit.query(store, actions=["upload"])["detail"].iloc[0]
    assert detail == "more.csv (crime): 40 incidents added, 0 duplicates, 0 rows rejected"
    assert audit.query(store, actions=["model.rollback"])["detail"].iloc[0] == \
        "crime-2 -> crime-1"
    assert audit.query(store, actions=["account.role"])["detail"].iloc[0] == \
        "viewer -> analyst"


def test_refusals_and_failures_are_rows_too(crime_store):
    store = crime_store
    with pytest.raises(PermissionDenied):
        actions.remove_upload(store, ANALYST, 1)
    with pytest.raises(PermissionDenied):
        actions.add_account(store, ANALYST, "x", "admin", "a-long-password")
    with pytest.raises(PermissionDenied):
        actions.audit_trail(store, ANALYST)
    with pytest.raises(UserError):
        actions.remove_upload(store, ADMIN, 999)
    with pytest.raises(UserError):
        actions.ingest(store, ANALYST, b"\x89PNG\r\n\x1a\nbinary", "photo.csv", "crime")
    assert [r[2:] for r in rows(store)] == [
        ("upload.remove", "upload #1", "refused"), ("account.add", "account x", "refused"),
        ("upload.remove", "upload #999", "failed"), ("upload", "photo.csv", "failed")]
    failed = audit.query(store, outcome="failed")["detail"]
    assert failed.str.contains("photo.csv").any() and failed.str.contains("999").any()
    assert len(store.list_uploads()) == 1 and accounts.get_account(store, "x") is None


def test_an_upload_above_the_limit_is_refused_from_the_dashboard_only(crime_store):
    store = crime_store
    data = synthetic_incidents_csv("crime", 40, seed=4)
    small = AccessSettings(max_upload_mb=0.001)
    with pytest.raises(UserError, match=r"big.csv is 0.0 MB; files above 0.001 MB"):
        actions.ingest(store, ANALYST, data, "big.csv", "crime", settings=small)
    assert rows(store)[-1] == ("ana", "dashboard", "upload", "big.csv", "refused")
    assert len(store.list_uploads()) == 1
    actions.ingest(store, ADMIN, data, "big.csv", "crime", settings=small)   # the CLI
    assert len(store.list_uploads()) == 2


def test_sign_in_failures_and_the_lock_are_audited(crime_store):
    store = crime_store
    accounts.add_account(store, "ana", "analyst", "analyst-password")
    settings = AccessSettings(login_attempts=2, lockout_minutes=5)
    for _ in range(2):
        with pytest.raises(SignInRefused):
            actions.log_in(store, "ana", "wrong", settings)
    with pytest.raises(SignInRefused, match="locked"):
        actions.log_in(store, "ana", "analyst-password", settings)
    with pytest.raises(SignInRefused):
        actions.log_in(store, "=HYPERLINK(\"x\")", "wrong", settings)
    assert [r[2:] for r in rows(store)] == [
        ("login", "account ana", "failed"), ("login", "account ana", "failed"),
        ("account.lock", "account ana", "ok"), ("login", "account ana", "locked"),
        ("login", 'account =HYPERLINK("x")', "failed")]


def test_city_sign_in_maps_claims_and_is_audited(crime_store):
    store = crime_store
    sso = SsoSettings(role_claim="groups", role_map={"gis": "analyst"})
    who = actions.log_in_sso(store, {"email": "Ana@City.Example", "groups": ["gis"]}, sso)
    assert (who.name, who.role, who.method) == ("ana@city.example", "analyst", "sso")
    with pytest.raises(SignInRefused, match="no role"):
        actions.log_in_sso(store, {"email": "bob@city.example", "groups": ["hr"]}, sso)
    assert [r[0::2] for r in rows(store)] == [
        ("ana@city.example", "login", "ok"), ("bob@city.example", "login", "failed")]


def test_a_role_change_applies_to_a_signed_in_session(crime_store):
    store = crime_store
    accounts.add_account(store, "ana", "analyst", "analyst-password")
    who = actions.log_in(store, "ana", "analyst-password")
    accounts.add_account(store, "root", "admin", "root-password1")
    accounts.set_role(store, "ana", "viewer")
    assert actions.recheck(store, who).role == "viewer"
    accounts.set_disabled(store, "ana", True)
    assert actions.recheck(store, who) is None


def test_a_job_ends_in_the_name_of_whoever_started_it(crime_store, monkeypatch):
    """run_training (the CLI's inline job) writes train.start; the job runner writes
    train.end with the same account, whether the job succeeds or fails."""
    store = crime_store
    monkeypatch.setattr(jobs, "_execute", lambda store, kind, config, reporter: "crime-x")
    job = actions.run_training(store, ADMIN, "train", {"category": "crime"})
    assert job["status"] == "succeeded"

    def broken(store, kind, config, reporter):
        raise UserError("not enough history")

    monkeypatch.setattr(jobs, "_execute", broken)
    with pytest.raises(UserError):
        actions.run_training(store, ANALYST, "train", {"category": "crime"})
    first, second = f"job {job['job_id']}", f"job {job['job_id'] + 1}"
    assert rows(store) == [("root", "cli", "train.start", first, "ok"),
                           ("root", "cli", "train.end", first, "succeeded"),
                           ("ana", "dashboard", "train.start", second, "ok"),
                           ("ana", "dashboard", "train.end", second, "failed")]
    ends = audit.query(store, actions=["train.end"])["detail"]
    assert list(ends) == ["train crime: not enough history", "train crime: model crime-x"]


def test_the_trail_cannot_be_changed_through_the_library(crime_store):
    store = crime_store
    audit.record(store, ADMIN, "upload", "upload #1", "ok", "x")
    # The module offers appending and reading, nothing else.
    public = {name for name, value in vars(audit).items()
              if inspect.isfunction(value) and not name.startswith("_")
              and value.__module__ == audit.__name__}
    assert public == {"record", "query", "job_target", "record_job_end"}
    # Even SQL through the library's own engine is refused by the database.
    for statement in (audit.audit_table.update().values(who="someone else"),
                      audit.audit_table.delete()):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with store.begin() as conn:
                conn.execute(statement)
    assert rows(store) == [("root", "cli", "upload", "upload #1", "ok")]
    with pytest.raises(ValueError):
        audit.record(store, ADMIN, "drop everything", "", "ok")


def test_query_filters(crime_store):
    store = crime_store
    audit.record(store, ADMIN, "upload", "upload #1")
    audit.record(store, ANALYST, "train.start", "job 1")
    audit.record(store, VIEWER, "login", "account vera", "failed")
    assert len(audit.query(store)) == 3
    assert list(audit.query(store, who="ana")["action"]) == ["train.start"]
    assert list(audit.query(store, actions=["upload", "login"])["who"]) == ["vera", "root"]
    assert list(audit.query(store, outcome="failed")["who"]) == ["vera"]
    tomorrow = pd.Timestamp.now().normalize() + pd.Timedelta(days=1)
    assert audit.query(store, since=tomorrow).empty
    assert len(audit.query(store, until=tomorrow)) == 3
    assert list(audit.query(store).columns) == list(audit.COLUMNS)
