"""Workers on other machines: queued jobs, `worker --once`, two workers on one job, a worker
killed mid-job (found by its missing heartbeat), cancel from another connection.

The queue is procrastinate on PostgreSQL: the tests that need it run on the `store`
fixture's PostgreSQL variant (scripts/with_postgres.sh) and skip on SQLite, which has no
queue (its jobs run on the machine that starts them). Workers are real processes
(`python -m safety_models worker`), as on another machine: they share only the database and
the home folder with this test.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from conftest import TINY_CELL_SIZE_M, fake_checkpoint, tiny_train_config, wait_for

from safety_models import cli
from safety_models.data.store import Store
from safety_models.errors import UserError
from safety_models.modeling import registry
from safety_models.modeling.training import TrainConfig
from safety_models.service import actions, jobs, queue
from safety_models.service.access import cli_actor

NO_QUEUE = "the task queue (procrastinate) needs PostgreSQL; SQLite runs jobs where they start"
FAST_HEARTBEAT = {queue.HEARTBEAT_ENV: "0.5", queue.TIMEOUT_ENV: "4"}


@pytest.fixture()
def pg_store(store):
    if store.dialect != "postgresql":
        pytest.skip(NO_QUEUE)
    return store


@pytest.fixture()
def pg_crime_store(pg_store):
    """As conftest's crime_store, on PostgreSQL only: 300 synthetic crime incidents."""
    from conftest import synthetic_incidents_csv
    from safety_models.data import ingest

    ingest.ingest_bytes(pg_store, synthetic_incidents_csv("crime", n=300), "crime.csv", "crime")
    return pg_store


def quick_config() -> dict:
    return tiny_train_config("crime").to_dict()


def long_config() -> dict:
    """Real training that runs long enough (many epochs of 2 small batches) to be cancelled
    or killed midway; each epoch reports progress."""
    return {**TrainConfig(category="crime", base="none", freeze_up_to="none").to_dict(),
            "epochs": 500, "patience": 500, "steps_per_epoch": 2, "batch_size": 4,
            "cell_size_m": TINY_CELL_SIZE_M, "test_windows": 5, "val_windows": 5}


def start_worker(store, tmp_path, name: str, *args: str, env: dict | None = None):
    """`python -m safety_models worker ARGS` as its own process (its output in a file)."""
    log = open(tmp_path / f"{name}.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "safety_models", "worker", *args],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        env={**jobs._child_env(store), **(env or {})})
    process.log_path = tmp_path / f"{name}.log"
    return process


def ended(store, job_id):
    job = jobs.get_job(store, job_id)
    return job if job["status"] not in jobs.ACTIVE_STATUSES else None


def active_state(store) -> tuple[str | None, int]:
    return registry.active_model_id(store, "crime"), len(registry.list_models(store, "crime"))


# ---------------------------------------------------------------------------------------------
# Settings: who runs the dashboard's jobs (pure)


def test_settings_read_from_the_environment():
    assert queue.QueueSettings.from_env({}) == queue.QueueSettings(
        mode="local", heartbeat_interval_s=10.0, heartbeat_timeout_s=60.0)
    assert queue.QueueSettings.from_env({queue.WORKERS_ENV: " Queue ", **FAST_HEARTBEAT}) == \
        queue.QueueSettings(mode="queue", heartbeat_interval_s=0.5, heartbeat_timeout_s=4.0)
    with pytest.raises(UserError, match="SAFETY_MODELS_WORKERS='celery' is not a mode"):
        queue.QueueSettings.from_env({queue.WORKERS_ENV: "celery"})
    with pytest.raises(UserError, match="SAFETY_MODELS_WORKER_TIMEOUT_S='soon' is not a number"):
        queue.QueueSettings.from_env({queue.TIMEOUT_ENV: "soon"})
    with pytest.raises(UserError, match="must be positive and shorter than the timeout"):
        queue.QueueSettings.from_env({queue.HEARTBEAT_ENV: "60", queue.TIMEOUT_ENV: "30"})


def test_without_postgresql_the_dashboard_runs_its_jobs_itself(home, monkeypatch):
    """SQLite: SAFETY_MODELS_WORKERS=queue changes nothing for the retrain button (the job
    starts here), and `train --queue` says what it needs."""
    monkeypatch.setenv(queue.WORKERS_ENV, "queue")
    store = Store()
    assert store.dialect == "sqlite" and not queue.QueueSettings.from_env().queues(store)
    started = []
    monkeypatch.setattr(jobs, "start_job", lambda store, kind, config, on_created=None:
                        started.append(kind) or 41)
    assert actions.start_training(store, cli_actor(), {"category": "crime"}) == 41
    assert started == ["train"]
    with pytest.raises(UserError, match="queued jobs and workers need PostgreSQL"):
        jobs.queue_job(store, "train", {"category": "crime"})
    store.close()


def test_train_queue_and_worker_on_sqlite_are_refused_with_the_reason(home, capsys):
    assert cli.main(["train", "--category", "crime", "--queue"]) == cli.EXIT_USER_ERROR
    assert "queued jobs and workers need PostgreSQL" in capsys.readouterr().err
    assert cli.main(["worker", "--once"]) == cli.EXIT_USER_ERROR
    assert "queued jobs and workers need PostgreSQL" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# PostgreSQL: the queue


def test_train_queue_prints_the_job_id_and_a_waiting_job_cancels_at_once(pg_store, capsys):
    assert cli.main(["train", "--category", "crime", "--queue", "--base", "none"]) == 0
    out = capsys.readouterr()
    job_id = int(out.out.strip())
    assert f"job {job_id} queued" in out.err
    assert "no worker is running now" in out.err and jobs.workers_alive(pg_store) == 0
    job = jobs.get_job(pg_store, job_id)
    assert job["status"] == "queued" and job["queue_job_id"] is not None
    assert job["config"]["base"] == "none" and job["host"] is None
    assert jobs.active_job(pg_store, "crime")["job_id"] == job_id   # not failed as stale
    assert cli.main(["jobs"]) == 0
    assert f"#{job_id:<4} train     crime    queued for a worker" in capsys.readouterr().out
    # Cancelled from another connection before any worker took it: out of the queue at once.
    other = Store()
    jobs.cancel_job(other, job_id)
    other.close()
    job = jobs.get_job(pg_store, job_id)
    assert job["status"] == "cancelled" and job["message"] == jobs.CANCELLED_MESSAGE
    with pg_store.engine.connect() as conn:   # no worker can take it any more
        assert not queue.cancel_waiting(conn, job["queue_job_id"])


def test_with_workers_the_first_start_and_an_upload_queue_their_bootstrap(pg_store, monkeypatch):
    """SAFETY_MODELS_WORKERS=queue: the first start's bootstrap and the first models after an
    upload go to the queue like the retrain button's jobs (no training process on the
    dashboard's machine)."""
    from conftest import synthetic_incidents_csv
    from safety_models.data import ingest
    from safety_models.service import operations

    monkeypatch.setenv(queue.WORKERS_ENV, "queue")
    monkeypatch.setattr(jobs, "start_job", lambda *a, **k: pytest.fail("started a local process"))
    first = operations.first_start(pg_store, load_demo=lambda store: None)
    job = jobs.get_job(pg_store, first["job_id"])
    assert (job["kind"], job["status"], job["pid"]) == ("bootstrap", "queued", None)
    assert job["queue_job_id"] is not None
    with pg_store.engine.connect() as conn:
        assert queue.state(conn, job["queue_job_id"]) == "todo"
    jobs.cancel_job(pg_store, first["job_id"])
    assert jobs.get_job(pg_store, first["job_id"])["status"] == "cancelled"
    ingest.ingest_bytes(pg_store, synthetic_incidents_csv("crime", n=300), "crime.csv", "crime")
    after = operations.after_upload(pg_store, "crime")
    job = jobs.get_job(pg_store, after["job_id"])
    assert (job["kind"], job["status"], job["pid"]) == ("bootstrap", "queued", None)
    assert job["queue_job_id"] is not None


def test_a_worker_claims_a_job_only_once(pg_store, monkeypatch):
    """The row's own guard, beside the queue's lock: a job that is running already (or has
    ended) is not run again by a second claim."""
    job_id = jobs._insert_job(pg_store, "train", {"category": "crime"}, pid=None,
                              status="queued")
    calls = []
    monkeypatch.setattr(jobs, "_execute", lambda *args: calls.append(args) or "m-1")
    assert jobs._run(pg_store, job_id, claim=True)["status"] == "succeeded"
    assert jobs._run(pg_store, job_id, claim=True) is None
    assert len(calls) == 1


def test_a_late_ending_does_not_overwrite_a_failure_already_recorded(store, monkeypatch):
    """A worker that was only slow to send heartbeats finds its job failed when it ends: the
    verdict people were shown stands (no database queue needed: both databases)."""
    job_id = jobs._insert_job(store, "train", {"category": "crime"}, pid=None,
                              status="queued")

    def execute(store, kind, config, reporter):
        jobs._update(store, job_id, status="failed", message="no heartbeat")   # meanwhile
        return "crime-m-1"

    monkeypatch.setattr(jobs, "_execute", execute)
    job = jobs._run(store, job_id, claim=True)
    assert (job["status"], job["message"], job["model_id"]) == ("failed", "no heartbeat", None)


def test_a_job_the_queue_dropped_does_not_block_its_category(pg_store):
    """An entry the queue ended without running it (here: taken out by hand) fails its job
    with a reason, instead of leaving the category's one active job queued for ever."""
    job_id = jobs.queue_job(pg_store, "train", {"category": "crime"})
    with pg_store.begin() as conn:
        assert queue.cancel_waiting(conn, jobs.get_job(pg_store, job_id)["queue_job_id"])
    assert jobs.recover_stale_jobs(pg_store) == [job_id]
    job = jobs.get_job(pg_store, job_id)
    assert job["status"] == "failed"
    assert job["message"].startswith("the task queue ended it before any worker ran it "
                                     "(cancelled)")
    assert jobs.active_job(pg_store, "crime") is None


def test_worker_once_runs_a_queued_train_job(pg_crime_store, tmp_path):
    job_id = actions.start_training(pg_crime_store, cli_actor(), quick_config(), via_queue=True)
    worker = start_worker(pg_crime_store, tmp_path, "worker", "--once")
    assert worker.wait(timeout=300) == 0, worker.log_path.read_text()
    job = jobs.get_job(pg_crime_store, job_id)
    assert job["status"] == "succeeded", (job["message"], worker.log_path.read_text())
    assert job["pid"] == worker.pid and job["progress"]["fraction"] == 1.0
    assert registry.active_model_id(pg_crime_store, "crime") == job["model_id"]   # its first
    assert f"job {job_id} ran here" in worker.log_path.read_text()


def test_two_workers_racing_on_one_job_run_it_once(pg_crime_store, tmp_path):
    job_id = jobs.queue_job(pg_crime_store, "train", quick_config())
    racers = [start_worker(pg_crime_store, tmp_path, f"worker{i}", "--once") for i in range(2)]
    for racer in racers:
        assert racer.wait(timeout=300) == 0, racer.log_path.read_text()
    ran = [r for r in racers if f"job {job_id} ran here" in r.log_path.read_text()]
    assert len(ran) == 1, [r.log_path.read_text() for r in racers]
    job = jobs.get_job(pg_crime_store, job_id)
    assert job["status"] == "succeeded" and job["pid"] == ran[0].pid
    assert len(registry.list_models(pg_crime_store, "crime")) == 1


def test_a_worker_killed_mid_job_is_found_by_its_missing_heartbeat(pg_crime_store, tmp_path,
                                                                   monkeypatch):
    for name, value in FAST_HEARTBEAT.items():
        monkeypatch.setenv(name, value)
    registry.save_model(pg_crime_store, fake_checkpoint(), "crime")
    before = active_state(pg_crime_store)
    job_id = jobs.queue_job(pg_crime_store, "train", long_config())
    worker = start_worker(pg_crime_store, tmp_path, "worker")
    try:
        job = wait_for(lambda: (lambda j: j if (j["progress"] or {}).get("epoch") else None)(
            jobs.get_job(pg_crime_store, job_id)), 180, "the worker to train")
        assert job["status"] == "running" and job["pid"] == worker.pid
        assert jobs.workers_alive(pg_crime_store) == 1
        # Alive and beating: reading the jobs leaves it running.
        assert jobs.recover_stale_jobs(pg_crime_store) == []
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    # The row still says running; only the missing heartbeat tells (the pid is not used:
    # on another machine it would mean nothing).
    wait_for(lambda: jobs.recover_stale_jobs(pg_crime_store) == [job_id], 60,
             "the heartbeat timeout")
    job = jobs.get_job(pg_crime_store, job_id)
    assert job["status"] == "failed" and "sent no heartbeat for over 4 s" in job["message"]
    assert job["cancel_requested"]   # were the worker only late, it would stop at its next check
    assert active_state(pg_crime_store) == before
    with pg_crime_store.engine.connect() as conn:   # ended in the queue too: reported once
        assert queue.stalled(conn, 0.0) == []


def test_cancel_from_another_connection_stops_a_running_job(pg_crime_store, tmp_path):
    before = active_state(pg_crime_store)
    job_id = jobs.queue_job(pg_crime_store, "train", long_config())
    worker = start_worker(pg_crime_store, tmp_path, "worker")
    try:
        wait_for(lambda: (jobs.get_job(pg_crime_store, job_id)["progress"] or {}).get("epoch"),
                 180, "the worker to train")
        other = Store()   # another engine, as the dashboard on another machine
        jobs.cancel_job(other, job_id)
        other.close()
        job = wait_for(lambda: ended(pg_crime_store, job_id), 60, "the job to stop")
        assert job["status"] == "cancelled" and job["message"] == jobs.CANCELLED_MESSAGE
        assert active_state(pg_crime_store) == before
        # SIGTERM: the worker, idle now, stops cleanly.
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, worker.log_path.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
