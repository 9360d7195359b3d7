"""Background training jobs that every dashboard session (and the CLI) can start and watch.

A job is a row of the ``jobs`` table and, while it runs, a separate process
``python -m safety_models run-job JOB_ID`` (its own session, so a Streamlit rerun or a
closed browser tab does not stop it). The process writes its progress to the row (at most
PROGRESS_INTERVAL_S apart), reads ``cancel_requested`` to stop early, and ends the row as
'succeeded' (with the new model id), 'cancelled' or 'failed' (with a message for people;
the traceback goes to the log ``home/jobs/<job_id>.log`` only).

Kinds:
  train      config = TrainConfig.to_dict(): workflows.train_category
  pretrain   config = {"force": bool, "pretrain": {training.pretrain options}}:
             modeling.pretrained.ensure_pretrained
  bootstrap  config = {} (optionally "train": TrainConfig overrides, "pretrain": options,
             "await_meta": [key, value] to wait while the store's meta key reads value):
             workflows.bootstrap: for every category with data and no model, the starting
             forecast at once, then the base and the fine-tuned networks (started by
             operations.first_start and after the upload of a new category)

A job whose model becomes a category's active one computes that model's forecasts before it
ends (service.forecasts.model_ready), so the map shows it at once.

A job that fails or is killed never touches the active model: models are saved only once
training has finished. recover_stale_jobs marks jobs whose process has died as failed.

Workers on other machines (PostgreSQL only): queue_job records a job and puts it in the task
queue (service/queue.py) instead of starting a process; `python -m safety_models worker`
takes it (run_queued_job claims the row, so one job runs once) and runs it like run-job
does. Progress and the cancel flag are in the row, so they work across machines. Such a job
has a queue_job_id; its liveness is the worker's heartbeat, not a pid: when the worker stops
sending one for QueueSettings.heartbeat_timeout_s, recover_stale_jobs marks the job failed
(HEARTBEAT_MESSAGE). It is not run again by itself: a job that took its worker down (memory,
a GPU fault) would take the next one down too, and a rerun is one click; a failed job never
saved a model, so the active one is as it was.

Jobs run workflow steps; workflows never import this module (operations, above both, starts
the first-start job and reads jobs for what needs attention).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa

from safety_models import paths
from safety_models.errors import UserError
from safety_models.data.store import Store, metadata
from safety_models.files import to_jsonable
from safety_models.service import queue

KINDS = ("train", "pretrain", "bootstrap")
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIVE_STATUSES = ("queued", "running")
PROGRESS_INTERVAL_S = 0.5        # at most ~2 progress writes per second
CANCEL_POLL_INTERVAL_S = 0.5     # how often should_stop reads the row
QUEUED_GRACE_S = 120.0           # a queued job with no live process after this is stale
STALE_MESSAGE = "the training process stopped unexpectedly"
CANCELLED_MESSAGE = "cancelled on request"
HEARTBEAT_MESSAGE = ("the worker running it ({where}) sent no heartbeat for over {timeout_s:g} s "
                     "(it stopped, or lost the database); the job was not run again, and the "
                     "active model is unchanged: start it again once a worker is running")
LOST_MESSAGE = ("the task queue ended it before any worker ran it ({state}); start it again, "
                "and see the workers' output if this repeats")
HISTORY_MAX_POINTS = 2000
RUN_JOB_COMMAND = "run-job"     # `python -m safety_models run-job ID`: the job process

jobs_table = sa.Table(
    "jobs", metadata,
    sa.Column("job_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),          # KINDS
    sa.Column("category", sa.String(16)),                      # None for pretrain/bootstrap
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),        # STATUSES
    sa.Column("pid", sa.Integer),
    sa.Column("host", sa.String(255)),                         # where pid lives
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("started_at", sa.DateTime),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("progress", sa.JSON),                            # the last on_progress dict
    sa.Column("history", sa.JSON),                             # [{"epoch", "loss", ...}, ...]
    sa.Column("message", sa.Text),
    sa.Column("model_id", sa.Text),                            # comma-separated for bootstrap
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("log_path", sa.Text),
    sa.Column("queue_job_id", sa.BigInteger),                  # its task-queue entry (workers)
    sa.Index("ix_jobs_status", "status"),
    keep_existing=True,
)

_children: list[subprocess.Popen] = []   # started here; polled so they never linger as zombies


def _ensure_tables(store: Store) -> None:
    store.ensure_table(jobs_table)


def _now() -> datetime:
    return datetime.now()

def _update(store: Store, job_id: int, **values: Any) -> None:
    with store.begin() as conn:
        conn.execute(jobs_table.update().where(jobs_table.c.job_id == job_id).values(**values))


def _row_dict(row: Any) -> dict:
    job = dict(row)
    job["cancel_requested"] = bool(job["cancel_requested"])
    return job


def log_path(job_id: int) -> Path:
    return paths.sub_dir("jobs") / f"{job_id}.log"


# ---------------------------------------------------------------------------------------------
# Reading


def get_job(store: Store, job_id: int) -> dict | None:
    """A job as a dict (every column; config/progress/history decoded), None when unknown."""
    _ensure_tables(store)
    _reap_children()
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(jobs_table).where(jobs_table.c.job_id == int(job_id))
                           ).mappings().first()
    return None if row is None else _row_dict(row)


def list_jobs(store: Store, category: str | None = None, limit: int = 50) -> list[dict]:
    """Recent jobs, newest first, as dicts (see get_job). category: that category's train
    jobs plus the pretrain/bootstrap jobs every category depends on."""
    _ensure_tables(store)
    _reap_children()
    j = jobs_table.c
    stmt = sa.select(jobs_table).order_by(j.job_id.desc()).limit(int(limit))
    if category is not None:
        stmt = stmt.where(sa.or_(j.category == category, j.category.is_(None)))
    with store.engine.connect() as conn:
        return [_row_dict(r) for r in conn.execute(stmt).mappings()]


def active_job(store: Store, category: str | None = None) -> dict | None:
    """The newest queued or running job that trains `category` (its train jobs and the
    bootstrap/pretrain jobs), or any active job when category is None. A job whose process
    has died is marked failed first, so it never blocks a new one."""
    recover_stale_jobs(store)
    j = jobs_table.c
    stmt = (sa.select(jobs_table).where(j.status.in_(ACTIVE_STATUSES))
            .order_by(j.job_id.desc()).limit(1))
    if category is not None:
        stmt = stmt.where(sa.or_(j.category == category, j.category.is_(None)))
    with store.engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    return None if row is None else _row_dict(row)


# ---------------------------------------------------------------------------------------------
# Liveness


def _reap_children() -> None:
    for child in list(_children):
        if child.poll() is not None:
            _children.remove(child)


def pid_alive(pid: int | None, job_id: int | None = None) -> bool:
    """Whether process pid exists and is not a zombie (and, when job_id is given and /proc
    can tell, is the runner of that job: a pid reused by another program does not count)."""
    if not pid:
        return False
    _reap_children()
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:
        return False
    proc = Path("/proc") / str(int(pid))
    if not proc.exists():
        return not Path("/proc/self").exists()  # no /proc here (macOS): trust os.kill
    try:
        # State is the field after the parenthesised command name, which may hold spaces.
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
        if job_id is not None:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            if RUN_JOB_COMMAND.encode() in args:
                return str(int(job_id)).encode() in args
    except (OSError, IndexError):
        return False
    return True   # the job runs inline in another program (CLI): the pid is that program


def recover_stale_jobs(store: Store, settings: queue.QueueSettings | None = None) -> list[int]:
    """Mark queued/running jobs whose process is gone as failed (STALE_MESSAGE), and queued
    jobs whose worker stopped sending heartbeats (HEARTBEAT_MESSAGE, see _recover_queued);
    returns their ids. Jobs of another host are left alone (their pid means nothing here)."""
    _ensure_tables(store)
    j = jobs_table.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(j.job_id, j.pid, j.host, j.created_at, j.status,
                                      j.queue_job_id)
                            .where(j.status.in_(ACTIVE_STATUSES))).all()
    host = socket.gethostname()
    stale = []
    queued = [row for row in rows if row.queue_job_id is not None]
    for row in rows:
        if row.queue_job_id is not None or row.host not in (None, host):
            continue
        if row.pid is None:
            # Between the row's insert and the process start: give it time.
            if (_now() - row.created_at).total_seconds() < QUEUED_GRACE_S:
                continue
        elif pid_alive(row.pid, row.job_id):
            continue
        stale.append(row.job_id)
    for job_id in stale:
        with store.begin() as conn:
            ended = conn.execute(jobs_table.update()
                                 .where(j.job_id == job_id, j.status.in_(ACTIVE_STATUSES))
                                 .values(status="failed", message=STALE_MESSAGE,
                                         finished_at=_now())).rowcount
        if ended:   # this call ended it (not another session a moment before)
            _audit_end(store, job_id)
    if queued and store.dialect == "postgresql":
        stale += _recover_queued(store, queued, settings or queue.QueueSettings.from_env())
    return stale


def _recover_queued(store: Store, rows: list[Any], settings: queue.QueueSettings) -> list[int]:
    """Fail the queued jobs whose queue entry belongs to a worker that has sent no heartbeat
    for settings.heartbeat_timeout_s (by the database's clock), and end that entry too; and
    the jobs still waiting whose entry the queue ended without running them (removed by
    hand, or a worker that could not run the task), which would otherwise block their
    category for good."""
    with store.engine.connect() as conn:
        stalled = set(queue.stalled(conn, settings.heartbeat_timeout_s))
        lost = {row.queue_job_id: queue.state(conn, row.queue_job_id)
                for row in rows if row.status == "queued"
                and row.queue_job_id not in stalled}
    j = jobs_table.c
    failed = []
    for row in rows:
        if row.queue_job_id in stalled:
            where = (f"{row.host}, pid {row.pid}" if row.host
                     else "a worker that had not started it")
            message = HEARTBEAT_MESSAGE.format(where=where,
                                               timeout_s=settings.heartbeat_timeout_s)
            still = ACTIVE_STATUSES
        elif row.queue_job_id in lost and lost[row.queue_job_id] not in ("todo", "doing"):
            message = LOST_MESSAGE.format(state=lost[row.queue_job_id] or "gone from the queue")
            still = ("queued",)   # a worker that took it since has it: leave it
        else:
            continue
        with store.begin() as conn:
            # cancel_requested: a worker that was only late (not dead) stops at its next
            # check instead of training on for a job already reported failed.
            ended = conn.execute(jobs_table.update()
                                 .where(j.job_id == row.job_id, j.status.in_(still))
                                 .values(status="failed", message=message, finished_at=_now(),
                                         cancel_requested=True)).rowcount
            if ended:
                queue.end_failed(conn, row.queue_job_id)
        if ended:
            _audit_end(store, row.job_id)
            failed.append(row.job_id)
    return failed


# ---------------------------------------------------------------------------------------------
# Starting and cancelling


def _category_of(kind: str, config: dict) -> str | None:
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind != "train":
        return None
    category = config.get("category")
    if not category:
        raise UserError("a training job needs a category in its configuration")
    return str(category)


def _insert_job(store: Store, kind: str, config: dict, pid: int | None, status: str,
                exclusive: bool = False) -> int:
    """Insert a job row; with exclusive, in the same write transaction as the check that no
    job for its category (or for every category) is active, so two sessions clicking
    "train" at once start one job, and the other gets a UserError naming it."""
    _ensure_tables(store)
    category = _category_of(kind, config)
    values = dict(kind=kind, category=category, config=to_jsonable(dict(config)), status=status,
                  pid=pid, host=socket.gethostname(), created_at=_now(), history=[],
                  cancel_requested=False)
    j = jobs_table.c
    with store.begin() as conn:
        if exclusive:
            clash = sa.select(j.job_id, j.kind, j.status).where(j.status.in_(ACTIVE_STATUSES))
            if category is not None:
                clash = clash.where(sa.or_(j.category == category, j.category.is_(None)))
            running = conn.execute(clash.order_by(j.job_id.desc()).limit(1)).first()
            if running is not None:
                raise UserError(
                    f"job {running.job_id} ({running.kind}) is already {running.status} for "
                    f"{category or 'the models'}; wait for it to finish or cancel it first")
        job_id = int(conn.execute(jobs_table.insert().values(**values)).inserted_primary_key[0])
        conn.execute(jobs_table.update().where(jobs_table.c.job_id == job_id)
                     .values(log_path=str(log_path(job_id))))
    return job_id


def _child_env(store: Store) -> dict[str, str]:
    env = dict(os.environ)
    env[paths.HOME_ENV] = str(paths.home_dir())
    env[paths.DB_URL_ENV] = store.engine.url.render_as_string(hide_password=False)
    # The child must import this very package, installed or not.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def start_job(store: Store, kind: str, config: dict,
              on_created: Callable[[int], None] | None = None) -> int:
    """Record a job and start its process in the background; returns the job id at once.

    The process is detached (its own session), so it outlives a Streamlit rerun; its output
    goes to log_path(job_id). Raises UserError when the category already has an active job.
    on_created(job_id) runs once the job is recorded, before its process starts (the audit
    trail's start row must come before the end row the process writes).
    """
    recover_stale_jobs(store)  # a dead job must not block this one
    job_id = _insert_job(store, kind, config, pid=None, status="queued", exclusive=True)
    if on_created is not None:
        on_created(job_id)
    log = log_path(job_id)
    try:
        with open(log, "ab") as out:
            child = subprocess.Popen(
                [sys.executable, "-m", "safety_models", RUN_JOB_COMMAND, str(job_id)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=_child_env(store), start_new_session=True, close_fds=True)
    except OSError as err:
        _update(store, job_id, status="failed", finished_at=_now(),
                message=f"could not start the training process: {err}")
        raise
    _children.append(child)
    # The runner records its own pid too; whichever write is last, the value is the same.
    with store.begin() as conn:
        conn.execute(jobs_table.update()
                     .where(jobs_table.c.job_id == job_id, jobs_table.c.pid.is_(None))
                     .values(pid=child.pid))
    return job_id


def queue_job(store: Store, kind: str, config: dict,
              on_created: Callable[[int], None] | None = None) -> int:
    """Record a job and queue it for a worker (`python -m safety_models worker`, on this
    machine or another); returns the job id at once. PostgreSQL only (UserError otherwise);
    UserError when the category already has an active job. on_created: as for start_job."""
    queue.require_postgresql(store)
    recover_stale_jobs(store)
    job_id = _insert_job(store, kind, config, pid=None, status="queued", exclusive=True)
    if on_created is not None:
        on_created(job_id)   # before any worker can take it: the start row comes first
    try:
        with store.begin() as conn:
            queue_job_id = queue.enqueue(conn, job_id)
            # Which host runs it is known once a worker takes it.
            conn.execute(jobs_table.update().where(jobs_table.c.job_id == job_id)
                         .values(queue_job_id=queue_job_id, host=None, log_path=None))
    except Exception as err:
        _update(store, job_id, status="failed", finished_at=_now(),
                message=f"could not queue the job: {_summary(err)}")
        raise
    return job_id


def begin_job(store: Store, kind: str, config: dict,
              on_created: Callable[[int], None] | None = None,
              settings: queue.QueueSettings | None = None) -> int:
    """Start a background job as this home is configured: queued for a worker (queue_job)
    when SAFETY_MODELS_WORKERS=queue on PostgreSQL (QueueSettings.queues), else a process on
    this machine (start_job). The retrain button, the first start's bootstrap and the first
    models after an upload all go through here, so with workers none of them trains on the
    dashboard's machine. Returns the job id at once; UserError as start_job/queue_job."""
    settings = settings or queue.QueueSettings.from_env()
    begin = queue_job if settings.queues(store) else start_job
    if on_created is None:
        return begin(store, kind, config)
    return begin(store, kind, config, on_created=on_created)


def workers_alive(store: Store, settings: queue.QueueSettings | None = None) -> int | None:
    """How many workers are up (a heartbeat within the timeout); None on SQLite (no
    workers there)."""
    if store.dialect != "postgresql":
        return None
    settings = settings or queue.QueueSettings.from_env()
    with store.engine.connect() as conn:
        return queue.live_workers(conn, settings.heartbeat_timeout_s)


def cancel_job(store: Store, job_id: int) -> None:
    """Ask a job to stop: it ends as 'cancelled' after its current step (a queued job as
    soon as its process starts; one queued for a worker that none has taken yet at once,
    out of the queue). Does nothing to a job that has already finished."""
    _ensure_tables(store)
    j = jobs_table.c
    ended = False
    with store.begin() as conn:
        row = conn.execute(sa.select(j.status, j.queue_job_id)
                           .where(j.job_id == int(job_id))).first()
        conn.execute(jobs_table.update()
                     .where(j.job_id == int(job_id), j.status.in_(ACTIVE_STATUSES))
                     .values(cancel_requested=True))
        if (row is not None and row.status == "queued" and row.queue_job_id is not None
                and store.dialect == "postgresql" and queue.cancel_waiting(conn, row.queue_job_id)):
            conn.execute(jobs_table.update().where(j.job_id == int(job_id))
                         .values(status="cancelled", message=CANCELLED_MESSAGE,
                                 finished_at=_now()))
            ended = True
    if ended:
        _audit_end(store, int(job_id))


# ---------------------------------------------------------------------------------------------
# Running (in the job's process, or inline for the CLI)


class _Reporter:
    """on_progress and should_stop for one job, backed by its row.

    Progress is written at most every PROGRESS_INTERVAL_S (and always when the stage
    changes); loss points (dicts with an "epoch" and a loss) go to the history. A database
    that is busy for a moment only delays a write: progress is never worth failing a job.
    Cancellation is checked in should_stop AND on every progress call, so work that takes
    no should_stop (pretraining) stops at its next progress report too.
    """

    def __init__(self, store: Store, job_id: int, forward: Callable[[dict], None] | None = None):
        self.store, self.job_id, self.forward = store, job_id, forward
        self.started = time.monotonic()
        self.last_write = 0.0
        self.last_stage: Any = None
        self.last_poll = 0.0
        self.cancelled = False
        self.progress: dict = {}
        self.history: list[dict] = []
        self.history_index: dict[tuple, int] = {}
        self.loss_sums: dict[tuple, dict[str, tuple[float, int]]] = {}
        self.dirty = False

    def on_progress(self, info: dict) -> None:
        from safety_models.modeling.training import Cancelled

        info = dict(info)
        info.setdefault("elapsed_s", round(time.monotonic() - self.started, 1))
        self.progress = to_jsonable(info)
        self._add_history(self.progress)
        self.dirty = True
        now = time.monotonic()
        stage = (info.get("stage"), info.get("category"))
        if now - self.last_write >= PROGRESS_INTERVAL_S or stage != self.last_stage:
            self.flush()
        self.last_stage = stage
        if self.forward is not None:
            self.forward(info)
        if self.should_stop():
            raise Cancelled(CANCELLED_MESSAGE)

    def _add_history(self, info: dict) -> None:
        """The loss curve: one point per (stage, category, epoch) with the MEAN of the loss
        values reported during that epoch (fit reports every batch). A "val_score" reported
        during epoch e was computed at the end of epoch e - 1, so it goes to that point."""
        epoch = info.get("epoch")
        if epoch is None:
            return
        key = (info.get("stage"), info.get("category"), epoch)
        if key not in self.history_index:
            if len(self.history) >= HISTORY_MAX_POINTS:
                return
            self.history_index[key] = len(self.history)
            self.history.append({"stage": key[0], "category": key[1], "epoch": epoch})
            self.loss_sums[key] = {}
        point = self.history[self.history_index[key]]
        sums = self.loss_sums[key]
        for name, value in info.items():
            if "loss" in name and isinstance(value, (int, float)) and not isinstance(value, bool):
                total, n = sums.get(name, (0.0, 0))
                sums[name] = (total + float(value), n + 1)
                point[name] = sums[name][0] / sums[name][1]
        previous = self.history_index.get((key[0], key[1], epoch - 1)) \
            if isinstance(epoch, int) else None
        if previous is not None and isinstance(info.get("val_score"), (int, float)):
            self.history[previous]["val_score"] = float(info["val_score"])

    def flush(self) -> None:
        if not self.dirty:
            return
        try:
            _update(self.store, self.job_id, progress=self.progress, history=self.history)
            self.last_write = time.monotonic()
            self.dirty = False
        except sa.exc.OperationalError:
            pass  # busy database: the next report writes it

    def should_stop(self) -> bool:
        if self.cancelled:
            return True
        now = time.monotonic()
        if now - self.last_poll < CANCEL_POLL_INTERVAL_S:
            return False
        self.last_poll = now
        try:
            with self.store.engine.connect() as conn:
                self.cancelled = bool(conn.execute(
                    sa.select(jobs_table.c.cancel_requested)
                    .where(jobs_table.c.job_id == self.job_id)).scalar())
        except sa.exc.OperationalError:
            return False
        return self.cancelled


def _summary(err: BaseException) -> str:
    """One line for people: a UserError's own message, else the exception in brief."""
    if isinstance(err, UserError):
        return str(err)
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _execute(store: Store, kind: str, config: dict, reporter: _Reporter) -> str | None:
    from safety_models.service import forecasts, workflows

    if kind == "train":
        from safety_models.modeling import registry
        from safety_models.modeling.training import TrainConfig

        cfg = TrainConfig.from_dict(config)
        model_id = workflows.train_category(store, cfg, on_progress=reporter.on_progress,
                                            should_stop=reporter.should_stop)
        # a category's first model, or its model for a horizon: the map shows it at once
        if registry.active_model_id(store, cfg.category) == model_id or cfg.horizon_days:
            forecasts.model_ready(store, cfg.category, model_id)
        return model_id
    if kind == "pretrain":
        from safety_models.modeling.pretrained import ensure_pretrained

        return ensure_pretrained(store, on_progress=reporter.on_progress,
                                 force=bool(config.get("force", False)),
                                 should_stop=reporter.should_stop,
                                 pretrain_options=config.get("pretrain"))
    if kind == "bootstrap":
        if config.get("await_meta"):
            from safety_models.modeling import training  # noqa: F401 - its import overlaps the wait

            await_meta(store, *config["await_meta"], should_stop=reporter.should_stop)
        model_ids = workflows.bootstrap(store, on_progress=reporter.on_progress,
                                        should_stop=reporter.should_stop,
                                        train_overrides=config.get("train"),
                                        pretrain_options=config.get("pretrain"),
                                        on_model=lambda category, model_id:
                                        forecasts.model_ready(store, category, model_id))
        return ",".join(model_ids) or None
    raise ValueError(f"unknown job kind {kind!r}")


AWAIT_META_LIMIT_S = 600.0


def await_meta(store: Store, key: str, value: str, should_stop: Callable[[], bool] | None = None,
               limit_s: float = AWAIT_META_LIMIT_S, poll_s: float = 0.2) -> None:
    """Wait while the store's meta `key` reads `value` (another process is still preparing
    what this job needs, e.g. the first start loading the demo data), at most limit_s."""
    deadline = time.monotonic() + limit_s
    while store.get_meta(key) == value and time.monotonic() < deadline:
        if should_stop is not None and should_stop():
            return
        time.sleep(poll_s)


class Terminated(BaseException):
    """SIGTERM reached the job's process (shutdown, or someone stopped it by hand)."""


def _run(store: Store, job_id: int, forward: Callable[[dict], None] | None = None,
         reraise: bool = False, claim: bool = False) -> dict | None:
    """Run a recorded job to its end in this process and record how it ended.

    Returns the final job dict. With reraise, the exception that ended a failed or
    cancelled job is raised again after it was recorded (the CLI shows it); without, only
    KeyboardInterrupt and other BaseExceptions are. With claim (a worker), the job runs only
    if this call moves it from 'queued' to 'running' (one write, so of two callers one runs
    it); otherwise nothing is done and None is returned.
    """
    from safety_models.modeling.training import Cancelled

    job = get_job(store, job_id)
    if job is None:
        raise ValueError(f"there is no job {job_id}")
    if claim and job["status"] != "queued":
        return None
    j = jobs_table.c
    start = dict(started_at=_now(), pid=os.getpid(), host=socket.gethostname())
    if job["cancel_requested"]:
        with store.begin() as conn:
            ended = conn.execute(jobs_table.update()
                                 .where(j.job_id == job_id, j.status.in_(ACTIVE_STATUSES))
                                 .values(status="cancelled", message=CANCELLED_MESSAGE,
                                         finished_at=_now(), **start)).rowcount
        if ended:
            _audit_end(store, job_id)
        return get_job(store, job_id)
    with store.begin() as conn:
        stmt = jobs_table.update().where(j.job_id == job_id)
        if claim:
            stmt = stmt.where(j.status == "queued")
        claimed = conn.execute(stmt.values(status="running", **start)).rowcount
    if not claimed:
        return None
    reporter = _Reporter(store, job_id, forward)
    try:
        model_id = _execute(store, job["kind"], job["config"] or {}, reporter)
    except (Cancelled, KeyboardInterrupt) as err:
        reporter.flush()
        _end(store, job_id, status="cancelled", finished_at=_now(),
             message=CANCELLED_MESSAGE if isinstance(err, Cancelled) else "interrupted")
        if reraise or not isinstance(err, Exception):
            raise
    except BaseException as err:  # noqa: BLE001 - every failure must end the row
        traceback.print_exc()     # to the job's log (stderr), never to the dashboard
        reporter.flush()
        message = ("the training process was stopped (SIGTERM)" if isinstance(err, Terminated)
                   else _summary(err))
        _end(store, job_id, status="failed", finished_at=_now(), message=message)
        if reraise or not isinstance(err, Exception):
            raise
    else:
        reporter.progress = {**reporter.progress, "fraction": 1.0}
        reporter.dirty = True
        reporter.flush()
        _end(store, job_id, status="succeeded", finished_at=_now(), model_id=model_id,
             message=None)
    return get_job(store, job_id)


def _end(store: Store, job_id: int, **values: Any) -> None:
    """Record how a running job ended, and its audit row, unless the row has ended already:
    a worker that was slow to send heartbeats may find its job failed by recover_stale_jobs
    meanwhile, and that verdict stands (the row is what people were told)."""
    j = jobs_table.c
    with store.begin() as conn:
        ended = conn.execute(jobs_table.update()
                             .where(j.job_id == job_id, j.status.in_(ACTIVE_STATUSES))
                             .values(**values)).rowcount
    if ended:
        _audit_end(store, job_id)


def _audit_end(store: Store, job_id: int) -> None:
    """The job's train.end row. A database too busy to take it is reported in the job's log:
    the job's own row already says how it ended, and that must not turn into a failure."""
    from safety_models.service import audit

    try:
        audit.record_job_end(store, get_job(store, job_id))
    except sa.exc.SQLAlchemyError:
        traceback.print_exc()


def run_job_inline(store: Store, kind: str, config: dict,
                   on_progress: Callable[[dict], None] | None = None,
                   on_created: Callable[[int], None] | None = None) -> dict:
    """Run a job in this process (the CLI), recorded in the jobs table like a background one,
    so the dashboard shows it and can cancel it. Returns the final job dict of a succeeded
    job; the exception that ended a failed or cancelled one is raised again once recorded
    (a UserError for the CLI to print, training.Cancelled, ...). on_created: as for
    start_job."""
    recover_stale_jobs(store)
    job_id = _insert_job(store, kind, config, pid=os.getpid(), status="queued")
    if on_created is not None:
        on_created(job_id)
    return _run(store, job_id, forward=on_progress, reraise=True)


def run_queued_job(store: Store, job_id: int) -> dict:
    """What a worker runs for a queued job: claim the row and run it in this process (see
    _run); returns the final job dict. A job that another worker took, or that ended before
    this one got to it, is left as it is."""
    job = _run(store, int(job_id), claim=True)
    if job is None:
        job = get_job(store, int(job_id)) or {"status": "unknown"}
        print(f"[{_now():%Y-%m-%d %H:%M:%S}] job {job_id} left alone: it is {job['status']} "
              "(another worker has it, or it ended)", flush=True)
        return job
    print(f"[{_now():%Y-%m-%d %H:%M:%S}] job {job_id} ran here (pid {os.getpid()}): "
          f"{job['status']}{': ' + job['message'] if job.get('message') else ''}", flush=True)
    return job


def run_job_process(job_id: int) -> int:
    """The body of ``python -m safety_models run-job JOB_ID`` (what start_job launches):
    run the job recorded under JOB_ID in this process; SIGTERM ends it as failed."""
    def on_sigterm(_signum: int, _frame: Any) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, on_sigterm)
    store = Store()
    print(f"[{_now():%Y-%m-%d %H:%M:%S}] job {job_id} starting (pid {os.getpid()})", flush=True)
    job = _run(store, int(job_id))
    print(f"[{_now():%Y-%m-%d %H:%M:%S}] job {job_id} {job['status']}"
          f"{': ' + job['message'] if job.get('message') else ''}", flush=True)
    return 0 if job["status"] in ("succeeded", "cancelled") else 1
