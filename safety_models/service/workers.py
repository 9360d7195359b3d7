"""A worker: `python -m safety_models worker [--once]`, on this machine or any other.

It takes jobs that were queued (service/queue.py; `train --queue`, or the dashboard's
retrain button when SAFETY_MODELS_WORKERS=queue) from the PostgreSQL database every machine
shares, one at a time, and runs each in this process exactly as `run-job` would
(jobs.run_queued_job): progress, the cancel flag and the ending go to the job's row, so the
dashboard on another machine shows them and can cancel. procrastinate does the dispatch
(one worker per job), LISTEN/NOTIFY wake-ups and the heartbeat (every
QueueSettings.heartbeat_interval_s); a job whose worker stops sending one is marked failed by
whoever reads the jobs next (jobs.recover_stale_jobs): this worker at its start and after
each job, another worker, the dashboard or `python -m safety_models jobs`.

Model files are written under the home folder (SAFETY_MODELS_HOME), as on the dashboard's
machine: every worker must see the same home folder (a shared mount), or the dashboard
cannot load what a worker trained.

SIGINT/SIGTERM stop taking new jobs and let the running one finish (a second signal ends the
worker at once; its job is then failed by the heartbeat check). To stop a job now, cancel
it from the dashboard or with `python -m safety_models cancel ID`.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Callable

from safety_models.data.store import Store
from safety_models.service import jobs, queue


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_worker(store: Store, once: bool = False, settings: queue.QueueSettings | None = None,
               say: Callable[[str], None] = print) -> None:
    """Run queued jobs in this process until stopped (SIGINT/SIGTERM), or, with once, until
    no queued job is left. PostgreSQL only (UserError otherwise)."""
    import procrastinate

    queue.require_postgresql(store)
    settings = settings or queue.QueueSettings.from_env()
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(name)s: %(message)s")
    logging.getLogger("procrastinate").setLevel(logging.WARNING)   # its per-poll chatter
    recovered = jobs.recover_stale_jobs(store, settings)
    if recovered:
        say(f"marked failed, their worker gone: jobs {', '.join(map(str, recovered))}")

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=queue.conninfo(store), min_size=1, max_size=4))

    @app.task(name=queue.TASK_NAME, queue=queue.QUEUE_NAME)
    def run_job(job_id: int) -> None:
        try:
            jobs.run_queued_job(store, job_id)
        finally:
            jobs.recover_stale_jobs(store, settings)   # others' jobs whose worker died

    say(f"worker {worker_name()} on {store!r}: "
        + ("running the queued jobs, then stopping" if once else "waiting for jobs (Ctrl+C stops)"))
    app.run_worker(queues=[queue.QUEUE_NAME], name=worker_name(), wait=not once, concurrency=1,
                   update_heartbeat_interval=settings.heartbeat_interval_s,
                   stalled_worker_timeout=settings.heartbeat_timeout_s,
                   fetch_job_polling_interval=settings.poll_interval_s,
                   abort_job_polling_interval=settings.poll_interval_s,
                   delete_jobs="successful")
    say(f"worker {worker_name()} stopped")
