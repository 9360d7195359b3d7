"""Workflows on a tiny synthetic city: grids that stay fixed, training, ranked predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_CELL_SIZE_M, synthetic_incidents_csv
from test_registry import fake_checkpoint

from safety_models.data import ingest
from safety_models.service import jobs, workflows
from safety_models.modeling import registry, synthetic, training
from safety_models.errors import GridMismatch, NotReady, WeightsMissing
from safety_models.grid import GridSpec
from safety_models.data.store import Store
from safety_models.modeling.training import TrainConfig


def quick_config(category: str = "crime", **changes) -> TrainConfig:
    """One short epoch on 1 km cells: 10 test days, 10 validation days, 2 batches of 4."""
    return TrainConfig.from_dict({
        **TrainConfig(category=category, base="none", freeze_up_to="none").to_dict(),
        "epochs": 1, "steps_per_epoch": 2, "batch_size": 4, "cell_size_m": TINY_CELL_SIZE_M,
        "test_windows": 10, "val_windows": 10, **changes})


# `crime_store` (conftest.py): a fresh home with 300 synthetic crime incidents, no model.
@pytest.fixture()
def store(crime_store):
    return crime_store


def test_prepare_city_bins_every_incident_on_a_new_grid(store):
    city = workflows.prepare_city(store, "crime", cell_size_m=TINY_CELL_SIZE_M)
    assert city.window_hours == 24 and city.grid.cell_size_m == TINY_CELL_SIZE_M
    assert city.counts.shape == (len(city.starts), *city.grid.shape)
    assert city.counts.dtype == np.float32 and city.mask.dtype == bool
    assert city.counts.sum() > 0.99 * 300  # fit_grid trims only a few outliers
    first, last = store.time_range("crime")
    assert city.starts[0] == first.normalize() and city.starts[-1] == last.normalize()
    assert city.mask.any() and not city.mask.all()


def test_prepare_city_without_data_says_what_to_do(store):
    with pytest.raises(NotReady, match="no traffic incidents.*ingest FILE --category traffic"):
        workflows.prepare_city(store, "traffic")


def test_category_grid_is_reused_until_another_cell_size_is_asked_for(store):
    recorded = GridSpec("EPSG:32616", 440_000.0, 4_630_000.0, 2000.0, 8, 8)
    store.set_meta("grid:crime", json.dumps(recorded.to_dict()))
    assert workflows.prepare_city(store, "crime").grid == recorded
    assert workflows.prepare_city(store, "crime", cell_size_m=2000).grid == recorded
    other = workflows.prepare_city(store, "crime", cell_size_m=TINY_CELL_SIZE_M).grid
    assert other.cell_size_m == TINY_CELL_SIZE_M and other != recorded
    # A size a model already uses gets that model's grid back, not a refit.
    registry.save_model(store, {**fake_checkpoint(grid=other), "train_config": {}}, "crime")
    store.set_meta("grid:crime", json.dumps(recorded.to_dict()))
    registry.promote(store, registry.list_models(store, "crime")["model_id"].iloc[0])
    assert workflows.prepare_city(store, "crime").grid == other          # the active model's
    assert workflows.prepare_city(store, "crime", cell_size_m=2000).grid == recorded


def test_risk_levels_by_rank_share():
    levels = workflows.risk_level(np.arange(1, 201), 200)
    assert list(levels[:2]) == ["very high"] * 2          # top 1 % of 200 cells
    assert list(levels[2:10]) == ["high"] * 8             # up to 5 %
    assert list(levels[10:40]) == ["elevated"] * 30       # up to 20 %
    assert set(levels[40:]) == {"low"}
    # A small city still shows one cell of each level.
    assert list(workflows.risk_level(np.arange(1, 11), 10)) == (
        ["very high", "high", "elevated"] + ["low"] * 7)


def test_train_then_predict_ranks_every_city_cell(store):
    model_id = workflows.train_category(store, quick_config())
    assert registry.active_model_id(store, "crime") == model_id  # the first one is active
    grid = GridSpec.from_dict(json.loads(store.get_meta("grid:crime")))
    assert grid.cell_size_m == TINY_CELL_SIZE_M

    df = workflows.predict_category(store, "crime")
    ckpt = registry.load_checkpoint(store, model_id)
    assert len(df) == int(ckpt["mask"].sum())
    assert df["rank"].tolist() == list(range(1, len(df) + 1))
    assert df["probability"].is_monotonic_decreasing
    assert df["probability"].between(0, 1).all() and (df["expected_count"] >= 0).all()
    assert df["cell_id"].is_unique and (df["cell_id"] == df["row"] * grid.n_cols + df["col"]).all()
    assert set(df["model_id"]) == {model_id}
    # The next window after the data: the day after the last incident.
    next_day = store.time_range("crime")[1].normalize() + pd.Timedelta(days=1)
    assert set(df["window_start"]) == {next_day}
    assert set(df["window_end"]) == {next_day + pd.Timedelta(days=1)}
    assert df["events_last_30d"].sum() == pytest.approx(300 * 30 / 420, rel=0.5)

    past = workflows.predict_category(store, "crime", at="2024-06-01 15:00")
    assert set(past["window_start"]) == {pd.Timestamp("2024-06-01")}
    with pytest.raises(NotReady, match="outside the crime data"):
        workflows.predict_category(store, "crime", at="2023-12-01")

    history = workflows.cell_history(store, "crime", int(df["cell_id"].iloc[0]))
    assert len(history) == len(workflows.prepare_city(store, "crime").starts)
    assert history["events"].sum() > 0
    assert history["probability"].notna().sum() == workflows.HISTORY_PREDICTED_WINDOWS

    # Continuing from the model keeps its grid; asking for another grid is refused.
    with pytest.raises(GridMismatch, match="train from 'pretrained' instead"):
        workflows.train_category(store, quick_config(base=model_id, cell_size_m=500.0))
    second = workflows.train_category(store, quick_config(base=model_id))
    info = registry.model_info(store, second)
    assert info["parent"] == model_id and info["status"] == "candidate"
    assert info["grid"] == grid.to_dict()


def test_first_start_loads_the_demo_and_starts_one_bootstrap_job_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFETY_MODELS_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("SAFETY_MODELS_DB_URL", raising=False)
    store = Store()
    started = []
    monkeypatch.setattr(jobs, "start_job",
                        lambda store, kind, config: started.append((kind, config)) or 41)

    def load_demo(store):
        ingest.ingest_bytes(store, synthetic_incidents_csv("traffic", n=50), "demo.csv", "traffic")

    assert workflows.first_start(store, load_demo=load_demo) == {"demo_loaded": True, "job_id": 41}
    assert started == [("bootstrap", {})]
    # Once per home: a later start (even after the demo was removed) does nothing.
    assert workflows.first_start(store, load_demo=load_demo) == {"demo_loaded": False,
                                                                 "job_id": None}
    assert started == [("bootstrap", {})]
    store.close()


def test_attention_items_name_missing_models_and_failed_jobs(store):
    items = workflows.attention_items(store)
    assert [(i["level"], i["category"]) for i in items] == [("warning", "crime")]
    assert "Crime has data but no model" in items[0]["message"]
    job_id = jobs._insert_job(store, "train", {"category": "crime"}, pid=None, status="failed")
    jobs._update(store, job_id, message="there are too few crime incidents to train")
    items = workflows.attention_items(store)
    assert items[0] == {"level": "error", "category": "crime",
                        "message": f"The last crime training (job {job_id}) failed: there are too "
                                   "few crime incidents to train"}


QUICK_TRAIN = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4, "cell_size_m": TINY_CELL_SIZE_M,
               "test_windows": 10, "val_windows": 10, "freeze_up_to": "layer2",
               "cache_frozen": False}  # caching encodes every train window: slower for 2 steps


def test_bootstrap_pretrains_once_and_fine_tunes_from_the_base(store, monkeypatch):
    # One small simulated city instead of the full corpus (which takes a while to simulate).
    monkeypatch.setattr(training, "synthetic_count_tensors", lambda seed=0: [
        (*synthetic.simulate_city(seed, rows=16, cols=16, n_windows=120), 24)])
    progress = []
    model_ids = workflows.bootstrap(store, on_progress=progress.append,
                                    train_overrides=QUICK_TRAIN,
                                    pretrain_options={"max_steps": 2, "batch_size": 2})
    base_id = registry.active_model_id(store, registry.BASE_CATEGORY)
    assert base_id is not None and len(model_ids) == 1
    info = registry.model_info(store, model_ids[0])
    assert info["category"] == "crime" and info["status"] == "active"
    assert info["base_model_id"] == base_id and info["parent"] is None
    # Progress covers the whole run: pretraining first (no category), then crime.
    assert progress[0]["category"] is None and progress[-1]["category"] == "crime"
    fractions = [p["fraction"] for p in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # The base exists now: it is reused, not trained again; nothing is left to bootstrap.
    assert workflows.ensure_pretrained(store) == base_id
    assert workflows.bootstrap(store) == []


def test_a_base_with_an_older_input_layout_is_pretrained_again(store, monkeypatch):
    """After an upgrade that adds input planes, the old base (29 planes) is replaced once;
    a base with this version's layout is reused."""
    from safety_models.features import FeatureConfig

    current = FeatureConfig().to_dict()
    older = {k: v for k, v in current.items() if k not in ("log_all_history", "ewma_half_life_days")}
    old_id = registry.save_base(store, {**fake_checkpoint(), "feature_config": older})
    pretrained = []

    def fake_pretrain(tensors, **kwargs):
        pretrained.append(len(tensors))
        return {**fake_checkpoint(), "feature_config": current}

    monkeypatch.setattr(training, "pretrain", fake_pretrain)
    new_id = workflows.ensure_pretrained(store)
    assert new_id != old_id and len(pretrained) == 1
    assert registry.active_model_id(store, registry.BASE_CATEGORY) == new_id
    assert workflows.ensure_pretrained(store) == new_id and len(pretrained) == 1


def test_imagenet_without_weights_says_where_to_put_them(store, tmp_path):
    cfg = quick_config(base="imagenet", imagenet_weights=str(tmp_path / "missing.pth"))
    with pytest.raises(WeightsMissing, match="Nothing is downloaded"):
        workflows.train_category(store, cfg)
    assert registry.list_models(store).empty


def test_a_horizon_model_serves_predict_horizon_and_never_the_map(store):
    daily = workflows.train_category(store, quick_config())
    assert workflows.available_horizons(store, "crime") == []
    weekly = workflows.train_category(store, quick_config(horizon_days=7))
    assert registry.active_model_id(store, "crime") == daily              # the map's model stays
    assert registry.model_info(store, weekly)["status"] == "candidate"
    assert workflows.available_horizons(store, "crime") == ["7d"]
    assert workflows.horizon_model_id(store, "crime", "7d") == weekly
    with pytest.raises(NotReady, match="--horizon 30d"):
        workflows.horizon_model_id(store, "crime", "30d")
    df = workflows.predict_category(store, "crime", horizon="7d")
    assert (df["model_id"] == weekly).all()
    assert (df["window_end"] - df["window_start"]).iloc[0] == pd.Timedelta(days=7)
    one_day = workflows.predict_category(store, "crime")
    assert (one_day["model_id"] == daily).all()
    assert df["probability"].mean() > one_day["probability"].mean()       # 7 days hold more
    from safety_models.errors import UserError
    with pytest.raises(UserError, match="next 7 days"):
        registry.promote(store, weekly)
    # no attention item suggests replacing the daily model by the 7-day one
    assert not [i for i in workflows.attention_items(store) if weekly in i["message"]]
    # a 7-day forecast "at" a date uses only the data before that date's window
    at = pd.Timestamp("2024-12-01 10:00")
    before = workflows.predict_category(store, "crime", at=at, horizon="7d")
    assert before["window_start"].iloc[0] == pd.Timestamp("2024-12-01")
