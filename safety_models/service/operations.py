"""Running the app as an operator would: what happens on the first start, what needs attention.

    first_start      on an empty home: demo data and one background bootstrap job
    after_upload     after a file was loaded or removed: the maps follow the data, and a
                     category without a model gets its first ones (the bootstrap job)
    attention_items  what an operator should act on (no model, stale model, failed job)

These orchestrate the app around the workflow steps and the jobs that run them in the
background, so they sit above both: operations -> jobs -> workflows, never back (a job runs
a workflow step; a workflow step never starts or reads a job). The dashboard's pages and the
CLI call them.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import pandas as pd

from safety_models.errors import UserError
from safety_models.modeling import registry
from safety_models.schema import CATEGORIES, DEFAULT_WINDOW_HOURS
from safety_models.service import jobs
from safety_models.service.workflows import categories_without_model

FIRST_START_KEY = "first_start"  # meta key: the first start has run in this home
FIRST_START_LOADING = "loading"  # ... its value while the demo data loads
# meta key: first models were asked for (an upload of a new category) while another job ran;
# the next session's first_start starts them.
MODELS_WANTED_KEY = "first_models_wanted"
STALE_AFTER_WINDOWS = 14         # attention: the model has not seen this many newer windows


def first_start(store: Any, load_demo: Callable[[Any], Any] | None = None) -> dict:
    """Once per home: on an empty store load the demo data, with one background bootstrap
    job that makes every category's first models (their maps within the first minute).

    The job is started first (queued for a worker when SAFETY_MODELS_WORKERS=queue on
    PostgreSQL, as every background job: jobs.begin_job), told to wait while the demo loads (its config "await_meta"):
    its own start (importing torch) then overlaps the loading instead of following it. A home
    that has data but models missing gets the job too. Records that it ran (meta
    ``first_start``, "loading" meanwhile), so removing the demo data later does not bring it
    back. load_demo: a function of the store; default ``demo.load_demo``.
    Returns {"demo_loaded": bool, "job_id": int | None}.
    """
    jobs.recover_stale_jobs(store)
    if store.get_meta(FIRST_START_KEY) is not None:
        return {"demo_loaded": False, "job_id": _start_wanted_models(store)}
    empty = sum(store.incident_counts().values()) == 0
    store.set_meta(FIRST_START_KEY, FIRST_START_LOADING)
    job_id = None
    demo_loaded = False
    try:
        if (empty or categories_without_model(store)) and jobs.active_job(store) is None:
            try:
                job_id = jobs.begin_job(store, "bootstrap",
                                        {"await_meta": [FIRST_START_KEY, FIRST_START_LOADING]})
            except UserError:
                job_id = None  # another session started one a moment ago
        if empty:
            if load_demo is None:
                from safety_models.data.demo import load_demo
            load_demo(store)
            demo_loaded = True
    finally:
        store.set_meta(FIRST_START_KEY, json.dumps({"at": pd.Timestamp.now().isoformat(),
                                                    "demo_loaded": demo_loaded,
                                                    "job_id": job_id}))
    return {"demo_loaded": demo_loaded, "job_id": job_id}


def _start_bootstrap(store: Any) -> int | None:
    """Start the bootstrap job; None when another job runs (then it is remembered, see
    MODELS_WANTED_KEY)."""
    try:
        job_id = jobs.begin_job(store, "bootstrap", {})
    except UserError:
        store.set_meta(MODELS_WANTED_KEY, pd.Timestamp.now().isoformat())
        return None
    store.set_meta(MODELS_WANTED_KEY, "")
    return job_id


def _start_wanted_models(store: Any) -> int | None:
    """The bootstrap job that an upload asked for while another job ran, once none runs."""
    if not store.get_meta(MODELS_WANTED_KEY) or jobs.active_job(store) is not None:
        return None
    if not categories_without_model(store):
        store.set_meta(MODELS_WANTED_KEY, "")
        return None
    return _start_bootstrap(store)


def after_upload(store: Any, category: str) -> dict:
    """After a file of `category` was loaded or removed. The forecasts of the active model
    and of each horizon model are computed again for the new data (a few seconds each;
    forecasts.refresh_category), so the map and the Overview show them at once. A category with data and no model gets its first models in
    the background, as on the first start: its starting forecast within a minute, then the
    fine-tuned network (the bootstrap job; when another job runs, the next session starts it,
    and a running bootstrap job takes the category in turn).
    Returns {"refreshed": bool, "job_id": int | None}."""
    from safety_models.service import forecasts

    if store.time_range(category) is None:
        return {"refreshed": False, "job_id": None}
    if registry.active_model_id(store, category) is not None:
        forecasts.refresh_category(store, category)   # the next window's and each horizon's
        return {"refreshed": True, "job_id": None}
    running = jobs.active_job(store)
    if running is not None and running["kind"] == "bootstrap":
        return {"refreshed": False, "job_id": int(running["job_id"])}   # takes it in turn
    return {"refreshed": False, "job_id": _start_bootstrap(store)}


def attention_items(store: Any) -> list[dict]:
    """What an operator should act on, most urgent first: dicts with "level" ('error',
    'warning' or 'info'), "category" (or None) and "message" (one sentence for people)."""
    items: list[dict] = []
    recent = jobs.list_jobs(store, limit=50)        # newest first
    running = {job.get("category") for job in recent if job["status"] in jobs.ACTIVE_STATUSES}
    latest_by_category: dict[str | None, dict] = {}
    for job in recent:
        latest_by_category.setdefault(job.get("category"), job)
    for category, job in latest_by_category.items():
        if job["status"] == "failed":
            what = f"{category} training" if category else f"{job['kind']} job"
            items.append({"level": "error", "category": category,
                          "message": f"The last {what} (job {job['job_id']}) failed: "
                                     f"{job.get('message') or 'no reason recorded'}"})
    counts = store.incident_counts()
    for category in CATEGORIES:
        if counts.get(category, 0) == 0:
            continue
        model_id = registry.active_model_id(store, category)
        busy = category in running or None in running
        if model_id is None:
            if not busy:
                items.append({"level": "warning", "category": category,
                              "message": f"{category.capitalize()} has data but no model: "
                                         "train one on the Models page."})
            continue
        info = registry.model_info(store, model_id)
        span = store.time_range(category)
        hours = int(info.get("window_hours") or DEFAULT_WINDOW_HOURS[category])
        if span is not None and info.get("data_end") is not None:
            newer = (span[1] - pd.Timestamp(info["data_end"])) / pd.Timedelta(hours=hours)
            if newer >= STALE_AFTER_WINDOWS and not busy:
                items.append({"level": "warning", "category": category,
                              "message": f"The {category} model {model_id} was trained on data "
                                         f"up to {pd.Timestamp(info['data_end']):%d %b %Y}; "
                                         f"{int(newer)} newer windows have been loaded since. "
                                         "Retrain it to use them."})
        models = registry.list_models(store, category)
        # a horizon model is no candidate for the next-window map
        next_window = models["val_metrics"].map(lambda m: registry.horizon_days_of(m) is None)
        candidates = models[(models["status"] == "candidate") & next_window
                            & (models["created_at"] > pd.Timestamp(info["created_at"]))]
        for _, candidate in candidates.iterrows():
            better, reason = registry.should_promote(candidate["val_metrics"], info["val_metrics"])
            if better:
                items.append({"level": "info", "category": category,
                              "message": f"The {category} candidate {candidate['model_id']} "
                                         f"scores better than the active model ({reason}); "
                                         "consider promoting it."})
                break
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(items, key=lambda item: order[item["level"]])
