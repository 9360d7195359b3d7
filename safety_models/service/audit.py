"""The audit trail: one append-only row per change, sign-in and sign-out.

A row says when (the server's local clock), who (an account, the OS user for the command
line, or "system"), through what ("dashboard" or "cli"), what was done (one of ACTIONS), on
which object (an upload, a model, a job, an account), the outcome (OUTCOMES) and a short
detail for people.

This module offers `record` and `query` and nothing else: the library never updates or
deletes a row. The database refuses it too: SQLite and PostgreSQL triggers abort any UPDATE
or DELETE on the table, so even a direct SQL statement through the library's engine fails.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from safety_models.data.store import Store, metadata
from safety_models.service.access import SYSTEM, Actor

ACTIONS: tuple[str, ...] = (
    "login", "logout", "account.lock",
    "upload", "upload.remove", "demo.load", "demo.remove", "boundary.set",
    "train.start", "train.cancel", "train.end",
    "model.promote", "model.rollback", "evaluate", "study",
    "account.add", "account.role", "account.disable", "account.enable", "account.password",
    "home.restore",
)
# ok: done; refused: the role or a limit did not allow it; failed: tried and failed (the
# detail says why); locked: a sign-in to a locked account; for train.end, how the job ended.
OUTCOMES: tuple[str, ...] = ("ok", "refused", "failed", "locked", "expired",
                             "succeeded", "cancelled")
COLUMNS: tuple[str, ...] = ("id", "at", "who", "via", "action", "target", "outcome", "detail")
_TEXT_MAX = 2000      # a detail longer than this is cut (an error message, not a dump)
_NAME_MAX = 200       # who: a typed name at a failed sign-in can be anything

audit_table = sa.Table(
    "audit_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False),             # naive, the server's local clock
    sa.Column("who", sa.String(255), nullable=False),
    sa.Column("via", sa.String(16), nullable=False),           # access.VIAS
    sa.Column("action", sa.String(32), nullable=False),        # ACTIONS
    sa.Column("target", sa.Text, nullable=False, default=""),
    sa.Column("outcome", sa.String(16), nullable=False),       # OUTCOMES
    sa.Column("detail", sa.Text, nullable=False, default=""),
    sa.Index("ix_audit_log_at", "at"),
    sqlite_autoincrement=True,   # ids never reused: a gap would show
    keep_existing=True,
)

_REFUSE = "the audit trail is append-only: rows cannot be changed or removed"
# Created with the table (ensure_table / create_all), on the dialects that have triggers.
for _statement in (
        f"CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
        f"BEGIN SELECT RAISE(ABORT, '{_REFUSE}'); END",
        f"CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
        f"BEGIN SELECT RAISE(ABORT, '{_REFUSE}'); END"):
    sa.event.listen(audit_table, "after_create",
                    sa.DDL(_statement).execute_if(dialect="sqlite"))
for _statement in (
        "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$ BEGIN "
        f"RAISE EXCEPTION '{_REFUSE}'; END; $$ LANGUAGE plpgsql",
        "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"):
    sa.event.listen(audit_table, "after_create",
                    sa.DDL(_statement).execute_if(dialect="postgresql"))


def _ensure_tables(store: Store) -> None:
    store.ensure_table(audit_table)


def _cut(text: Any, limit: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def record(store: Store, actor: Actor | str, action: str, target: str = "",
           outcome: str = "ok", detail: str = "", via: str | None = None) -> None:
    """Append one row. actor: an Actor, or a bare name (a failed sign-in's typed name) with
    `via`. Unknown actions and outcomes are programming errors (ValueError)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown audit outcome {outcome!r}")
    if isinstance(actor, Actor):
        who, via = actor.name, via or actor.via
    else:
        who, via = str(actor), via or "dashboard"
    _ensure_tables(store)
    with store.begin() as conn:
        conn.execute(audit_table.insert().values(
            at=datetime.now(), who=_cut(who, _NAME_MAX) or "(empty)", via=via, action=action,
            target=_cut(target, _TEXT_MAX), outcome=outcome, detail=_cut(detail, _TEXT_MAX)))


def query(store: Store, since: Any = None, until: Any = None, who: str | None = None,
          actions: list[str] | tuple[str, ...] | None = None, outcome: str | None = None,
          target: str | None = None, limit: int | None = None) -> pd.DataFrame:
    """Rows newest first, with COLUMNS. since/until: anything pd.Timestamp reads (a date
    alone means its midnight; until is exclusive); who/outcome/target: exact matches;
    actions: any of these."""
    _ensure_tables(store)
    a = audit_table.c
    stmt = sa.select(*(a[name] for name in COLUMNS)).order_by(a.id.desc())
    if since is not None:
        stmt = stmt.where(a.at >= pd.Timestamp(since).to_pydatetime())
    if until is not None:
        stmt = stmt.where(a.at < pd.Timestamp(until).to_pydatetime())
    if who:
        stmt = stmt.where(a.who == who)
    if actions:
        stmt = stmt.where(a.action.in_(list(actions)))
    if outcome:
        stmt = stmt.where(a.outcome == outcome)
    if target is not None:
        stmt = stmt.where(a.target == target)
    if limit is not None:
        stmt = stmt.limit(int(limit))
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    df = pd.DataFrame([tuple(r) for r in rows], columns=list(COLUMNS))
    df["at"] = pd.to_datetime(df["at"])
    df["id"] = df["id"].astype("int64")
    return df


def job_target(job_id: int) -> str:
    """How a job is named in the trail (train.start, train.cancel and train.end share it)."""
    return f"job {int(job_id)}"


def record_job_end(store: Store, job: dict) -> None:
    """A job's end (succeeded, failed or cancelled), in the name of whoever started it (the
    train.start row of the same job), or of the system for the first start's own job."""
    target = job_target(job["job_id"])
    started = query(store, actions=["train.start"], target=target, limit=1)
    if started.empty:
        who, via = SYSTEM.name, SYSTEM.via
    else:
        who, via = str(started["who"].iloc[0]), str(started["via"].iloc[0])
    what = job.get("kind", "job") + (f" {job['category']}" if job.get("category") else "")
    detail = what + (f": model {job['model_id']}" if job.get("model_id") else "") \
        + (f": {job['message']}" if job.get("message") else "")
    record(store, who, "train.end", target, outcome=str(job["status"]), detail=detail, via=via)
