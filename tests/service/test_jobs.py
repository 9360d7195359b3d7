"""Jobs: real background processes that are cancelled or killed, stale rows, inline runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import TINY_CELL_SIZE_M, fake_checkpoint, wait_for

from safety_models.service import jobs, workflows
from safety_models.modeling import registry
from safety_models.errors import NotReady, UserError
from safety_models.modeling.training import Cancelled, TrainConfig


# `store` (conftest.py): a Store on a fresh, empty home; `crime_store`: the same with 300
# synthetic crime incidents (for the tests that really train).


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def fake_train(progress_epochs: int = 3, result: str = "crime-20260101-000000-abcd"):
    def train_category(store, cfg, on_progress=None, should_stop=None):
        for epoch in range(1, progress_epochs + 1):
            for batch_loss in (0.5 / epoch, 1.5 / epoch):   # two batches per epoch
                on_progress({"stage": "train", "fraction": epoch / progress_epochs,
                             "epoch": epoch, "epochs": progress_epochs, "loss": batch_loss,
                             "val_score": 0.5 + epoch / 10 if epoch > 1 else None})
        return result
    return train_category


def long_train_config() -> dict:
    """Real training on the tiny city that runs long enough (many epochs of 2 small batches)
    to be cancelled or killed midway; each epoch reports progress."""
    return {**TrainConfig(category="crime", base="none", freeze_up_to="none").to_dict(),
            "epochs": 500, "patience": 500, "steps_per_epoch": 2, "batch_size": 4,
            "cell_size_m": TINY_CELL_SIZE_M, "test_windows": 5, "val_windows": 5}


# ---------------------------------------------------------------------------------------------
# Stale jobs and liveness


def test_a_job_whose_process_is_gone_becomes_failed(store):
    alive = jobs._insert_job(store, "train", {"category": "crime"}, pid=os.getpid(),
                             status="running")
    gone = jobs._insert_job(store, "train", {"category": "crime"}, pid=dead_pid(),
                            status="running")
    assert jobs.recover_stale_jobs(store) == [gone]
    assert jobs.get_job(store, gone)["status"] == "failed"
    assert jobs.get_job(store, gone)["message"] == jobs.STALE_MESSAGE
    assert jobs.get_job(store, alive)["status"] == "running"  # an inline run in this process


def test_a_zombie_or_reused_pid_is_not_alive():
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_for(lambda: open(f"/proc/{zombie.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z",
             10, "the child to exit")
    assert not jobs.pid_alive(zombie.pid)
    zombie.wait()
    # This pytest process is alive, but it is not the runner of job 7.
    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)",
                               "safety_models", "run-job", "7"])
    try:
        # Until the child has exec'd, /proc shows the parent's (pytest's) command line.
        wait_for(lambda: b"run-job" in open(f"/proc/{runner.pid}/cmdline", "rb").read(),
                 10, "the runner to start")
        assert jobs.pid_alive(runner.pid, 7) and not jobs.pid_alive(runner.pid, 8)
    finally:
        runner.kill()
        runner.wait()


def test_one_active_job_per_category(store):
    running = jobs._insert_job(store, "train", {"category": "crime"}, pid=os.getpid(),
                               status="running")
    with pytest.raises(UserError, match=f"job {running} \\(train\\) is already running"):
        jobs.start_job(store, "train", {"category": "crime"})
    assert jobs.active_job(store, "crime")["job_id"] == running
    assert jobs.active_job(store, "traffic") is None
    jobs.cancel_job(store, running)
    assert jobs.get_job(store, running)["cancel_requested"] is True


# ---------------------------------------------------------------------------------------------
# Inline runs (the CLI's path)


def test_inline_run_records_progress_history_and_model(store, monkeypatch):
    monkeypatch.setattr(workflows, "train_category", fake_train())
    seen = []
    job = jobs.run_job_inline(store, "train", {"category": "crime"}, on_progress=seen.append)
    assert job["status"] == "succeeded" and job["model_id"] == "crime-20260101-000000-abcd"
    assert job["pid"] == os.getpid() and job["finished_at"] >= job["started_at"]
    assert [p["epoch"] for p in seen] == [1, 1, 2, 2, 3, 3]
    # One point per epoch: the mean batch loss, and the validation score computed after it.
    assert [(h["epoch"], h["loss"], h.get("val_score")) for h in job["history"]] == [
        (1, 1.0, 0.7), (2, 0.5, 0.8), (3, pytest.approx(1 / 3), None)]
    assert job["progress"]["fraction"] == 1.0 and job["progress"]["epoch"] == 3
    assert jobs.list_jobs(store)[0]["job_id"] == job["job_id"]


def test_a_horizon_models_job_precomputes_its_forecasts(store, monkeypatch):
    from safety_models.service import forecasts

    monkeypatch.setattr(workflows, "train_category", fake_train(progress_epochs=1))
    ready = []
    monkeypatch.setattr(forecasts, "model_ready",
                        lambda store, category, model_id: ready.append((category, model_id)))
    # A model for the next 7 days never becomes active, but the map shows it: computed now.
    jobs.run_job_inline(store, "train", {"category": "crime", "horizon_days": 7})
    assert ready == [("crime", "crime-20260101-000000-abcd")]
    # A candidate for the next window is not shown until it is promoted.
    jobs.run_job_inline(store, "train", {"category": "crime"})
    assert len(ready) == 1


def test_inline_failure_keeps_the_users_message_and_the_traceback_out(store, monkeypatch):
    def broken(store, cfg, on_progress=None, should_stop=None):
        raise NotReady("there are no crime incidents in this home yet")

    monkeypatch.setattr(workflows, "train_category", broken)
    with pytest.raises(NotReady):
        jobs.run_job_inline(store, "train", {"category": "crime"})
    job = jobs.list_jobs(store)[0]
    assert job["status"] == "failed"
    assert job["message"] == "there are no crime incidents in this home yet"

    def crash(store, cfg, on_progress=None, should_stop=None):
        raise RuntimeError("CUDA error: out of memory\nlong details")

    monkeypatch.setattr(workflows, "train_category", crash)
    with pytest.raises(RuntimeError):
        jobs.run_job_inline(store, "train", {"category": "crime"})
    assert jobs.list_jobs(store)[0]["message"] == "RuntimeError: CUDA error: out of memory"


def test_cancel_requested_stops_at_the_next_progress_report(store, monkeypatch):
    def train_until_cancelled(store, cfg, on_progress=None, should_stop=None):
        job_id = jobs.list_jobs(store)[0]["job_id"]
        jobs.cancel_job(store, job_id)  # as another session would
        time.sleep(jobs.CANCEL_POLL_INTERVAL_S)
        for epoch in range(1, 100):
            on_progress({"stage": "train", "fraction": epoch / 100, "epoch": epoch})
        raise AssertionError("on_progress should have raised Cancelled")

    monkeypatch.setattr(workflows, "train_category", train_until_cancelled)
    with pytest.raises(Cancelled):
        jobs.run_job_inline(store, "train", {"category": "crime"})
    assert jobs.list_jobs(store)[0]["status"] == "cancelled"


# ---------------------------------------------------------------------------------------------
# Background processes (real training, tiny city)


def active_state(store) -> tuple[str | None, int]:
    return registry.active_model_id(store, "crime"), len(registry.list_models(store, "crime"))


def test_a_cancelled_background_job_leaves_the_active_model_alone(crime_store):
    registry.save_model(crime_store, fake_checkpoint(), "crime")
    before = active_state(crime_store)
    job_id = jobs.start_job(crime_store, "train", long_train_config())
    wait_for(lambda: (jobs.get_job(crime_store, job_id)["progress"] or {}).get("epoch"),
             120, "the first epoch")
    jobs.cancel_job(crime_store, job_id)
    job = wait_for(lambda: (lambda j: j if j["status"] not in jobs.ACTIVE_STATUSES else None)(
        jobs.get_job(crime_store, job_id)), 60, "the job to stop")
    assert job["status"] == "cancelled" and job["message"] == jobs.CANCELLED_MESSAGE
    assert active_state(crime_store) == before
    assert "starting" in jobs.log_path(job_id).read_text()


def test_a_killed_background_job_is_recovered_as_failed(crime_store):
    registry.save_model(crime_store, fake_checkpoint(), "crime")
    before = active_state(crime_store)
    job_id = jobs.start_job(crime_store, "train", long_train_config())
    job = wait_for(lambda: (lambda j: j if (j["progress"] or {}).get("epoch") else None)(
        jobs.get_job(crime_store, job_id)), 120, "the job to train")
    os.kill(job["pid"], signal.SIGKILL)
    wait_for(lambda: not jobs.pid_alive(job["pid"], job_id), 20, "the process to die")
    assert jobs.recover_stale_jobs(crime_store) == [job_id]
    job = jobs.get_job(crime_store, job_id)
    assert job["status"] == "failed" and job["message"] == jobs.STALE_MESSAGE
    assert active_state(crime_store) == before
