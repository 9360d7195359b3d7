"""The task queue that hands jobs to workers on other machines (procrastinate, on PostgreSQL).

The jobs table (service/jobs.py) stays the record of every job: status, progress, the
cancel flag and how it ended, which is what the pages read. The queue does three things
only: it hands each queued job to exactly one worker (`python -m safety_models worker`;
procrastinate fetches with FOR UPDATE SKIP LOCKED), it keeps each worker's heartbeat in the
database, and it says which running jobs belong to a worker that has stopped sending one.
Its tables come with migration 0004 (data/migrations), so a PostgreSQL database gets them
when a Store opens it. SQLite has no queue: jobs there run on the machine that starts them.

Every call here takes the SQLAlchemy connection of the caller's transaction and runs on its
psycopg connection, so a job row and its queue entry change together or not at all.

Settings (environment, read by QueueSettings.from_env):
  SAFETY_MODELS_WORKERS             local (default: the dashboard runs its jobs itself) or
                                    queue (its retrain button queues them for workers;
                                    PostgreSQL only, SQLite always runs them itself)
  SAFETY_MODELS_WORKER_HEARTBEAT_S  seconds between a worker's heartbeats (default 10)
  SAFETY_MODELS_WORKER_TIMEOUT_S    a running job whose worker sent no heartbeat for this
                                    long has lost its worker (default 60)
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any, Mapping

import sqlalchemy as sa

from safety_models.data.store import Store
from safety_models.errors import UserError

WORKERS_ENV = "SAFETY_MODELS_WORKERS"
HEARTBEAT_ENV = "SAFETY_MODELS_WORKER_HEARTBEAT_S"
TIMEOUT_ENV = "SAFETY_MODELS_WORKER_TIMEOUT_S"
MODES = ("local", "queue")
TASK_NAME = "safety_models.run_job"     # the one task: run the jobs-table row job_id
QUEUE_NAME = "safety_models"


@dataclass(frozen=True)
class QueueSettings:
    """Who runs jobs, and how a worker's heartbeat is kept and judged."""

    mode: str = "local"                  # MODES
    heartbeat_interval_s: float = 10.0
    heartbeat_timeout_s: float = 60.0
    poll_interval_s: float = 5.0         # a worker's fallback poll (it also LISTENs)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"{WORKERS_ENV}={self.mode!r} is not a mode; expected one of "
                            f"{', '.join(MODES)}")
        if not 0 < self.heartbeat_interval_s < self.heartbeat_timeout_s:
            raise UserError(
                f"the worker heartbeat ({HEARTBEAT_ENV}={self.heartbeat_interval_s:g} s) must "
                f"be positive and shorter than the timeout ({TIMEOUT_ENV}="
                f"{self.heartbeat_timeout_s:g} s), or every running job would look abandoned")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "QueueSettings":
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(mode=env.get(WORKERS_ENV, "").strip().lower() or defaults.mode,
                   heartbeat_interval_s=_seconds(env, HEARTBEAT_ENV,
                                                 defaults.heartbeat_interval_s),
                   heartbeat_timeout_s=_seconds(env, TIMEOUT_ENV, defaults.heartbeat_timeout_s))

    def queues(self, store: Store) -> bool:
        """Whether a job started from the dashboard goes to the queue: mode 'queue' on
        PostgreSQL. On SQLite the dashboard always runs its jobs itself."""
        return self.mode == "queue" and store.dialect == "postgresql"


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{name}={text!r} is not a number of seconds") from None


def require_postgresql(store: Store) -> None:
    """UserError unless the store is PostgreSQL, the only database with a queue."""
    if store.dialect != "postgresql":
        raise UserError(
            f"queued jobs and workers need PostgreSQL; this home's database is {store.dialect} "
            f"({store!r}). Set SAFETY_MODELS_DB_URL=postgresql://USER@HOST/DATABASE on the "
            "dashboard and on every worker, or train without --queue")


def conninfo(store: Store) -> str:
    """The store's database as a libpq URL (what psycopg's pool takes)."""
    return store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


@functools.lru_cache(maxsize=1)
def _app() -> Any:
    """A procrastinate App for deferring and cancelling on a caller's connection (no pool of
    its own: every call below passes a connection, so one serves every store and thread)."""
    import procrastinate

    return procrastinate.App(connector=procrastinate.SyncPsycopgConnector())


def _driver(conn: sa.Connection) -> Any:
    return conn.connection.driver_connection   # the psycopg.Connection of this transaction


def enqueue(conn: sa.Connection, job_id: int) -> int:
    """Queue the jobs-table row job_id for a worker, in conn's transaction; returns the
    queue's own id for it."""
    return int(_app().configure_task(TASK_NAME, queue=QUEUE_NAME, connection=_driver(conn))
               .defer(job_id=int(job_id)))


def cancel_waiting(conn: sa.Connection, queue_job_id: int) -> bool:
    """Take a job that no worker has started out of the queue; False when a worker has it
    already (it then stops at its next cancel check) or it has ended."""
    return bool(_app().job_manager.cancel_job_by_id(int(queue_job_id), connection=_driver(conn)))


def state(conn: sa.Connection, queue_job_id: int) -> str | None:
    """The queue's status of an entry (todo, doing, succeeded, failed, cancelled, aborting,
    aborted), None when the queue no longer has it."""
    from procrastinate import exceptions

    try:
        return _app().job_manager.get_job_status(int(queue_job_id),
                                                 connection=_driver(conn)).value
    except exceptions.NoResult:
        return None


def stalled(conn: sa.Connection, timeout_s: float) -> list[int]:
    """The queue ids of the running jobs whose worker has sent no heartbeat for timeout_s
    (it was killed, its machine stopped, or it lost the database), by the database's clock,
    so the machines' clocks need not agree."""
    from procrastinate import sql

    rows = _app().connector.execute_query_all_with_connection(
        _driver(conn), query=sql.queries["select_stalled_jobs_by_heartbeat"],
        seconds_since_heartbeat=float(timeout_s), queue=QUEUE_NAME, task_name=TASK_NAME)
    return [int(row["id"]) for row in rows]


def live_workers(conn: sa.Connection, timeout_s: float) -> int:
    """How many workers have sent a heartbeat within timeout_s (by the database's clock).
    procrastinate has no call for this; its workers table (id, last_heartbeat) is read."""
    return int(conn.execute(sa.text(
        "SELECT count(*) FROM procrastinate_workers "
        "WHERE last_heartbeat >= now() - make_interval(secs => :timeout_s)"),
        {"timeout_s": float(timeout_s)}).scalar())


def end_failed(conn: sa.Connection, queue_job_id: int) -> None:
    """Mark a stalled job failed in the queue too, so no worker takes it again and it is not
    reported twice. A savepoint keeps the caller's transaction usable when another session
    ended it first."""
    from procrastinate import exceptions, sql

    try:
        with conn.begin_nested():
            _app().connector.execute_query_all_with_connection(
                _driver(conn), query=sql.queries["finish_job"], job_id=int(queue_job_id),
                status="failed", delete_job=False)
    except exceptions.ConnectorException:
        pass   # no longer todo/doing: someone ended it already
