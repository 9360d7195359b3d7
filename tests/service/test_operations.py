"""Operations: the first start of an empty home, and what needs an operator's attention."""

from __future__ import annotations

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
    assert started == [("bootstrap", {})]
    # Once per home: a later start (even after the demo was removed) does nothing.
    assert operations.first_start(store, load_demo=load_demo) == {"demo_loaded": False,
                                                                  "job_id": None}
    assert started == [("bootstrap", {})]


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
