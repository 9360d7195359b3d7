"""How soon a worker starts a queued job: `queue_job` -> the worker's claim of the row.

A worker (`python -m safety_models worker`) waits on PostgreSQL; this script queues N jobs one
after the other and reads, for each, the time from the row's insert (created_at) to the
worker's claim (started_at). The jobs are train jobs on an empty home, which end at once
("no incidents"): what is measured is the hand-over, not training. The first job is a
warm-up (the worker imports the training code then).

The floor, measured in the same run on the same database: one write transaction of the kind
a hand-over needs several of (Store.begin(), its advisory lock, one UPDATE, COMMIT). The
worker's fallback poll is QueueSettings.poll_interval_s (5 s); a hand-over far below it
shows that LISTEN/NOTIFY woke the worker.

    scripts/with_postgres.sh python benchmarks/bench_queue.py [n_jobs]
    SAFETY_MODELS_DB_URL=postgresql://... python benchmarks/bench_queue.py [n_jobs]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(n_jobs: int = 10) -> None:
    url = os.environ.get("SAFETY_MODELS_DB_URL") or os.environ.get("SAFETY_MODELS_TEST_PG_URL")
    if not url or not url.startswith("postgresql"):
        sys.exit("bench_queue needs PostgreSQL: run it under scripts/with_postgres.sh or set "
                 "SAFETY_MODELS_DB_URL=postgresql://...")
    os.environ["SAFETY_MODELS_DB_URL"] = url
    os.environ["SAFETY_MODELS_HOME"] = tempfile.mkdtemp(prefix="bench-queue-")
    import sqlalchemy as sa

    from safety_models.data.store import Store
    from safety_models.service import jobs, queue

    store = Store()
    with store.begin() as conn:   # a fresh database for the run: no earlier jobs
        conn.execute(jobs.jobs_table.delete())
    worker = subprocess.Popen([sys.executable, "-m", "safety_models", "worker"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=jobs._child_env(store))
    try:
        handovers_s = []
        for i in range(n_jobs + 1):
            job_id = jobs.queue_job(store, "train", {"category": "crime"})
            deadline = time.monotonic() + 300
            while (job := jobs.get_job(store, job_id))["status"] in jobs.ACTIVE_STATUSES:
                if time.monotonic() > deadline or worker.poll() is not None:
                    sys.exit(f"job {job_id} did not end: {job}")
                time.sleep(0.05)
            if i > 0:   # the first is the warm-up
                handovers_s.append((job["started_at"] - job["created_at"]).total_seconds())
    finally:
        worker.terminate()
        worker.wait(timeout=60)

    writes_s = []
    for _ in range(50):
        start = time.perf_counter()
        with store.begin() as conn:
            conn.execute(jobs.jobs_table.update().where(jobs.jobs_table.c.job_id == job_id)
                         .values(message=sa.func.coalesce(jobs.jobs_table.c.message, "")))
        writes_s.append(time.perf_counter() - start)
    store.close()

    handover = statistics.median(handovers_s)
    floor = statistics.median(writes_s)
    poll = queue.QueueSettings().poll_interval_s
    print(f"queued job -> worker's claim, median of {n_jobs}: {handover * 1000:8.1f} ms "
          f"(max {max(handovers_s) * 1000:.1f} ms)")
    print(f"floor: one write transaction on the same database: {floor * 1000:8.1f} ms "
          f"-> ratio {handover / floor:.1f}x")
    print(f"(the last job ended {job['status']}: {job['message']})")
    print(f"the worker's fallback poll interval: {poll * 1000:8.0f} ms "
          f"-> the hand-over took {handover / poll:.1%} of it (LISTEN/NOTIFY woke the worker)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
