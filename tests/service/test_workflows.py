"""Workflows on a tiny synthetic city: the grid training uses, training, ranked predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_CELL_SIZE_M

from safety_models.errors import GridMismatch, NotReady, WeightsMissing
from safety_models.grid import GridSpec
from safety_models.evaluation import backtest
from safety_models.modeling import city, pretrained, registry, synthetic, training
from safety_models.modeling.training import TrainConfig
from safety_models.service import workflows


def quick_config(category: str = "crime", **changes) -> TrainConfig:
    """One short epoch on 1 km cells: 10 test days, 10 validation days, 2 batches of 4."""
    return TrainConfig.from_dict({
        **TrainConfig(category=category, base="none", freeze_up_to="none").to_dict(),
        "epochs": 1, "steps_per_epoch": 2, "batch_size": 4, "cell_size_m": TINY_CELL_SIZE_M,
        "test_windows": 10, "val_windows": 10, **changes})


# `crime_store` (conftest.py): a fresh home with 300 synthetic crime incidents, no model.


def test_training_keeps_the_category_grid_unless_another_size_is_asked_for(crime_store):
    kept = city.prepare_city(crime_store, "crime", cell_size_m=250.0).grid
    city.record_grid(crime_store, "crime", kept)   # as the first model's training does
    assert workflows.training_city(crime_store, TrainConfig(category="crime")).grid == kept
    same = TrainConfig(category="crime", cell_size_m=250.0)
    assert workflows.training_city(crime_store, same).grid == kept
    other = workflows.training_city(crime_store, TrainConfig(category="crime", cell_size_m=500.0))
    assert other.grid.cell_size_m == 500.0 and other.grid != kept


def test_risk_levels_by_rank_share():
    levels = workflows.risk_level(np.arange(1, 201), 200)
    assert list(levels[:2]) == ["very high"] * 2          # top 1 % of 200 cells
    assert list(levels[2:10]) == ["high"] * 8             # up to 5 %
    assert list(levels[10:40]) == ["elevated"] * 30       # up to 20 %
    assert set(levels[40:]) == {"low"}
    # A small city still shows one cell of each level.
    assert list(workflows.risk_level(np.arange(1, 11), 10)) == (
        ["very high", "high", "elevated"] + ["low"] * 7)


def test_train_then_predict_ranks_every_city_cell(crime_store):
    model_id = workflows.train_category(crime_store, quick_config())
    assert registry.active_model_id(crime_store, "crime") == model_id  # the first one is active
    grid = GridSpec.from_dict(json.loads(crime_store.get_meta("grid:crime")))
    assert grid.cell_size_m == TINY_CELL_SIZE_M

    df = workflows.predict_category(crime_store, "crime")
    ckpt = registry.load_checkpoint(crime_store, model_id)
    assert len(df) == int(ckpt["mask"].sum())
    assert df["rank"].tolist() == list(range(1, len(df) + 1))
    assert df["probability"].is_monotonic_decreasing
    assert df["probability"].between(0, 1).all() and (df["expected_count"] >= 0).all()
    assert df["cell_id"].is_unique and (df["cell_id"] == df["row"] * grid.n_cols + df["col"]).all()
    assert set(df["model_id"]) == {model_id}
    # The next window after the data: the day after the last incident.
    next_day = crime_store.time_range("crime")[1].normalize() + pd.Timedelta(days=1)
    assert set(df["window_start"]) == {next_day}
    assert set(df["window_end"]) == {next_day + pd.Timedelta(days=1)}
    assert df["events_last_30d"].sum() == pytest.approx(300 * 30 / 420, rel=0.5)

    past = workflows.predict_category(crime_store, "crime", at="2024-06-01 15:00")
    assert set(past["window_start"]) == {pd.Timestamp("2024-06-01")}
    with pytest.raises(NotReady, match="outside the crime data"):
        workflows.predict_category(crime_store, "crime", at="2023-12-01")

    history = workflows.cell_history(crime_store, "crime", int(df["cell_id"].iloc[0]))
    assert len(history) == len(city.prepare_city(crime_store, "crime").starts)
    assert history["events"].sum() > 0
    assert history["probability"].notna().sum() == workflows.HISTORY_PREDICTED_WINDOWS

    # Continuing from the model keeps its grid; asking for another grid is refused.
    with pytest.raises(GridMismatch, match="train from 'pretrained' instead"):
        workflows.train_category(crime_store, quick_config(base=model_id, cell_size_m=500.0))
    second = workflows.train_category(crime_store, quick_config(base=model_id))
    info = registry.model_info(crime_store, second)
    assert info["parent"] == model_id and info["status"] == "candidate"
    assert info["grid"] == grid.to_dict()


QUICK_TRAIN = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4, "cell_size_m": TINY_CELL_SIZE_M,
               "test_windows": 10, "val_windows": 10, "freeze_up_to": "layer2",
               "cache_frozen": False}  # caching encodes every train window: slower for 2 steps


def test_bootstrap_shows_the_starting_forecast_first_then_fine_tunes_from_the_base(
        crime_store, monkeypatch):
    # One small simulated city instead of the full corpus (which takes a while to simulate).
    monkeypatch.setattr(training, "synthetic_count_tensors", lambda seed=0: [
        (*synthetic.simulate_city(seed, rows=16, cols=16, n_windows=120), 24)])
    progress, ready = [], []
    model_ids = workflows.bootstrap(crime_store, on_progress=progress.append,
                                    train_overrides=QUICK_TRAIN,
                                    pretrain_options={"max_steps": 2, "batch_size": 2},
                                    on_model=lambda category, model_id:
                                    ready.append((category, model_id)))
    base_id = registry.active_model_id(crime_store, registry.BASE_CATEGORY)
    # The starting forecasts of the next 7 and 30 days came right after the map's, before
    # pretraining: the map's horizon choice from the first minute, never the active model.
    horizon_ids = model_ids[1:-1]
    assert [registry.horizon_days_of(registry.model_info(crime_store, m)["val_metrics"])
            for m in horizon_ids] == list(workflows.STARTING_HORIZONS)
    assert workflows.available_horizons(crime_store, "crime") == ["7d", "30d"]
    assert [registry.horizon_model_id(crime_store, "crime", h) for h in ("7d", "30d")] == horizon_ids
    assert [workflows.forecaster_of(registry.load_checkpoint(crime_store, m)) for m in horizon_ids] \
        == ["linear", "linear"]
    assert ready[1:3] == [("crime", m) for m in horizon_ids]
    ready = ready[:1] + ready[3:]
    model_ids = [model_ids[0], model_ids[-1]]
    assert base_id is not None and len(model_ids) == 2
    starting, network = (registry.model_info(crime_store, m) for m in model_ids)
    # The starting forecast came first, was active at once and was evaluated at once.
    assert starting["category"] == "crime" and starting["base_model_id"] is None
    assert workflows.forecaster_of(registry.load_checkpoint(crime_store, model_ids[0])) == "linear"
    # The first map's stack read the first minute's smaller sample; the horizons' the default.
    fit_rows = [registry.load_checkpoint(crime_store, m)["train_config"]["stack_fit_rows"]
                for m in [model_ids[0], *horizon_ids]]
    assert fit_rows == [workflows.FIRST_MAP_STACK_FIT_ROWS, None, None]
    assert ready[0] == ("crime", model_ids[0])
    assert backtest.load_evaluation(model_ids[0]) is not None
    # The network started from the base, and is active only where it scored better.
    assert network["base_model_id"] == base_id and network["parent"] is None
    better, _ = registry.should_promote(network["val_metrics"], starting["val_metrics"])
    active = registry.active_model_id(crime_store, "crime")
    assert active == (model_ids[1] if better else model_ids[0])
    assert ready[1:] == ([("crime", model_ids[1])] if better else [])
    # Progress covers the whole run: the starting forecast, pretraining (no category), the
    # network; the run's fraction only grows, to 1.
    steps = list(dict.fromkeys((p["step"], p["category"]) for p in progress))
    assert steps == [("starting forecast", "crime"), ("pretrain", None), ("network", "crime")]
    fractions = [p["fraction"] for p in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # The base exists now: it is reused, not trained again; nothing is left to bootstrap.
    assert pretrained.ensure_pretrained(crime_store) == base_id
    assert workflows.bootstrap(crime_store) == []


def test_the_starting_forecast_is_a_model_version_of_its_own(crime_store):
    model_id = workflows.train_starting_forecast(crime_store, "crime")
    assert registry.active_model_id(crime_store, "crime") == model_id   # the first one
    model, checkpoint = registry.load_model(crime_store, model_id)
    assert checkpoint["forecaster"] == workflows.STARTING_FORECASTER
    assert model.cfg.backbone == "none" and model.head is None
    assert checkpoint["metrics"]["validation"]["best_epoch"] == 0
    evaluation = backtest.load_evaluation(model_id)
    assert evaluation["n_windows"] == workflows.starting_evaluation_windows(24) == 28
    # Its grid and split are those a network trained next with the defaults uses, so the
    # two are validated on the same windows and cells.
    from safety_models.features import FeatureConfig

    cfg = TrainConfig(category="crime")
    data = workflows.training_city(crime_store, cfg)
    assert data.grid.to_dict() == registry.model_info(crime_store, model_id)["grid"]
    _, train_end, val_end, _ = training.split_windows(data.counts, cfg,
                                                      FeatureConfig(window_hours=24))
    info = registry.model_info(crime_store, model_id)
    assert (info["train_end"], info["val_end"]) == (data.starts[train_end], data.starts[val_end])
    df = workflows.predict_category(crime_store, "crime", model_id=model_id)
    assert df["probability"].between(0, 1).all() and df["rank"].iloc[0] == 1
    with pytest.raises(NotReady, match="no network to continue"):
        workflows.train_category(crime_store, quick_config(base=model_id))


def test_promote_if_better_compares_validation_scores(store):
    from conftest import fake_checkpoint

    first = registry.save_model(store, fake_checkpoint(score=0.5), "crime")
    worse = registry.save_model(store, fake_checkpoint(score=0.4, seed=1), "crime")
    assert workflows.promote_if_better(store, worse) == (
        False, "worse validation hit_rate_5: 0.4 vs 0.5 for the active model")
    assert registry.active_model_id(store, "crime") == first
    better = registry.save_model(store, fake_checkpoint(score=0.6, seed=2), "crime")
    promoted, reason = workflows.promote_if_better(store, better)
    assert promoted and "better validation hit_rate_5" in reason
    assert registry.active_model_id(store, "crime") == better


def test_imagenet_without_weights_says_where_to_put_them(crime_store, tmp_path):
    cfg = quick_config(base="imagenet", imagenet_weights=str(tmp_path / "missing.pth"))
    with pytest.raises(WeightsMissing, match="Nothing is downloaded"):
        workflows.train_category(crime_store, cfg)
    assert registry.list_models(crime_store).empty


def test_a_horizon_model_serves_predict_horizon_and_never_the_map(crime_store):
    from safety_models.errors import UserError
    from safety_models.service import operations

    store = crime_store
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
    with pytest.raises(UserError, match="next 7 days"):
        registry.promote(store, weekly)
    # no attention item suggests replacing the daily model by the 7-day one
    assert not [i for i in operations.attention_items(store) if weekly in i["message"]]
    # a 7-day forecast "at" a date starts at that date's window (and reads only before it)
    before = workflows.predict_category(store, "crime", at=pd.Timestamp("2024-12-01 10:00"), horizon="7d")
    assert before["window_start"].iloc[0] == pd.Timestamp("2024-12-01")


def test_cell_history_and_a_past_dates_forecast_read_the_kept_counts_and_match(crime_store,
                                                                                monkeypatch):
    from conftest import FAKE_GRID as spec, network_checkpoint

    from safety_models import grid as gridlib
    from safety_models import paths

    store = crime_store
    model_id = registry.save_model(store, network_checkpoint(), "crime")
    registry.promote(store, model_id)
    assert not (paths.home_dir() / city.CITIES_DIR).exists()
    incidents = store.incidents("crime")
    cells = gridlib.latlon_to_cell(spec, incidents["latitude"], incidents["longitude"])
    busiest = int(np.bincount(cells[cells >= 0]).argmax())
    at = incidents["occurred_at"].iloc[len(incidents) // 2]
    # First calls: no counts kept yet, so every incident is read (as before they were kept).
    history = workflows.cell_history(store, "crime", busiest)
    forecast = workflows.predict_category(store, "crime", at=at)
    assert history["events"].sum() == (cells == busiest).sum() > 0
    window_start = forecast["window_start"].iloc[0]
    recent = incidents[(incidents["occurred_at"] >= window_start - pd.Timedelta(days=30))
                       & (incidents["occurred_at"] < window_start)]
    recent_cells = gridlib.latlon_to_cell(spec, recent["latitude"], recent["longitude"])
    expected_recent = np.bincount(recent_cells[recent_cells >= 0], minlength=spec.n_cells)
    assert (forecast["events_last_30d"].to_numpy()
            == expected_recent[forecast["cell_id"].to_numpy()]).all()

    assert len(list((paths.home_dir() / city.CITIES_DIR).iterdir())) == 1
    # Then from the kept counts: only the 30 days before the window are read, and the tables
    # are the same.
    reads = []

    def ranged_only(category, start=None, end=None):
        assert start is not None and end is not None, "every incident read"
        reads.append((start, end))
        return type(store).incidents(store, category, start, end)

    monkeypatch.setattr(store, "incidents", ranged_only)
    pd.testing.assert_frame_equal(workflows.cell_history(store, "crime", busiest), history)
    pd.testing.assert_frame_equal(workflows.predict_category(store, "crime", at=at), forecast)
    assert reads == [(window_start - pd.Timedelta(days=30), window_start)]
