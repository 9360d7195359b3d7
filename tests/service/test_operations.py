"""Operations: the first start of an empty home, and what needs an operator's attention."""

from __future__ import annotations

import time

from conftest import synthetic_incidents_csv

from safety_models.data import ingest
from safety_models.service import jobs, operations

# `store` (conftest.py): a Store on a fresh, empty home; `crime_store`: the same with 300
# synthetic crime incidents.


def test_first_start_loads_the_demo_and_starts_one_bootstrap_job_once(store, monkeypatch):
    started = []
    monkeypatch.setattr(jobs, "start_job",
                        lambda store, kind, config: started.append((kind, config)) or 41)

    def load_demo(store):
        ingest.ingest_bytes(store, synthetic_incidents_csv("traffic", n=50), "demo.csv", "traffic")

    assert operations.first_start(store, load_demo=load_demo) == {"demo_loaded": True,
                                                                  "job_id": 41}
    # The job starts before the demo loads and waits for it (its start overlaps the load).
    waiting = {"await_meta": [operations.FIRST_START_KEY, operations.FIRST_START_LOADING]}
    assert started == [("bootstrap", waiting)]
    assert store.get_meta(operations.FIRST_START_KEY) != operations.FIRST_START_LOADING
    # Once per home: a later start (even after the demo was removed) does nothing.
    assert operations.first_start(store, load_demo=load_demo) == {"demo_loaded": False,
                                                                  "job_id": None}
    assert started == [("bootstrap", waiting)]


def test_a_job_waits_while_the_first_start_loads(store):
    store.set_meta("first_start", "loading")
    started = time.monotonic()
    jobs.await_meta(store, "first_start", "loading", limit_s=0.5, poll_s=0.05)
    assert time.monotonic() - started >= 0.5
    store.set_meta("first_start", "{}")
    started = time.monotonic()
    jobs.await_meta(store, "first_start", "loading", limit_s=5)
    assert time.monotonic() - started < 1


def test_attention_items_name_missing_models_and_failed_jobs(crime_store):
    items = operations.attention_items(crime_store)
    assert [(i["level"], i["category"]) for i in items] == [("warning", "crime")]
    assert "Crime has data but no model" in items[0]["message"]
    job_id = jobs._insert_job(crime_store, "train", {"category": "crime"}, pid=None,
                              status="failed")
    jobs._update(crime_store, job_id, message="there are too few crime incidents to train")
    items = operations.attention_items(crime_store)
    assert items[0] == {"level": "error", "category": "crime",
                        "message": f"The last crime training (job {job_id}) failed: there are too "
                                   "few crime incidents to train"}


def test_after_upload_refreshes_the_map_or_starts_the_first_models(crime_store, monkeypatch):
    from safety_models.service import forecasts, workflows

    started = []
    monkeypatch.setattr(jobs, "start_job",
                        lambda store, kind, config: started.append((kind, config)) or 7)
    # A category without a model gets its first ones in the background.
    assert operations.after_upload(crime_store, "crime") == {"refreshed": False, "job_id": 7}
    assert started == [("bootstrap", {})]
    # With a model, its forecasts follow the data at once.
    model_id = workflows.train_starting_forecast(crime_store, "crime", evaluate=False)
    refreshed = []
    monkeypatch.setattr(forecasts, "refresh", lambda store, category, model_id=None:
                        refreshed.append((category, model_id)))
    assert operations.after_upload(crime_store, "crime") == {"refreshed": True, "job_id": None}
    assert refreshed == [("crime", model_id)]
    # No data for a category: nothing to do.
    assert operations.after_upload(crime_store, "health") == {"refreshed": False, "job_id": None}


def test_first_models_asked_for_while_another_job_runs_start_later(crime_store, monkeypatch):
    from safety_models.errors import UserError

    monkeypatch.setattr(jobs, "start_job", lambda store, kind, config: (_ for _ in ()).throw(
        UserError("job 3 (train) is already running")))
    monkeypatch.setattr(jobs, "active_job", lambda store, category=None: {
        "job_id": 3, "kind": "train", "status": "running"})
    assert operations.after_upload(crime_store, "crime") == {"refreshed": False, "job_id": None}
    assert crime_store.get_meta(operations.MODELS_WANTED_KEY)
    crime_store.set_meta(operations.FIRST_START_KEY, "done")
    # The next session's first_start starts them once no job runs.
    monkeypatch.setattr(jobs, "active_job", lambda store, category=None: None)
    monkeypatch.setattr(jobs, "start_job", lambda store, kind, config: 12)
    assert operations.first_start(crime_store) == {"demo_loaded": False, "job_id": 12}
    assert operations.first_start(crime_store) == {"demo_loaded": False, "job_id": None}
