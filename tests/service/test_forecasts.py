"""forecasts.py: what the map shows is computed once per model and data version, and read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_CELL_SIZE_M, synthetic_incidents_csv

from safety_models.data import ingest
from safety_models.grid import GridSpec
from safety_models.modeling import registry
from safety_models.service import forecasts, workflows

# `crime_store` (conftest.py): a fresh home with 300 synthetic crime incidents, no model.


@pytest.fixture
def starting(crime_store):
    """The crime starting forecast (a model in seconds), not evaluated."""
    return workflows.train_starting_forecast(crime_store, "crime", evaluate=False)


def test_refresh_saves_the_next_window_the_past_windows_and_places(crime_store, starting):
    made = forecasts.refresh(crime_store, "crime")
    assert made.model_id == starting and made.forecaster == "linear"
    pd.testing.assert_frame_equal(made.next_window,
                                  workflows.predict_category(crime_store, "crime"))
    k = forecasts.playback_windows(24)
    assert k == 56 and made.n_past == k
    assert made.past_probability.shape == made.past_events.shape == (k, len(made.cell_ids))
    # What happened: the windows' counts at the city cells, oldest first, up to the data's end.
    model, checkpoint = registry.load_model(crime_store, starting)
    from safety_models.modeling.city import model_city

    city = model_city(crime_store, "crime", checkpoint)
    assert made.past_starts[-1] == city.starts[-1]
    assert made.past_events.sum() == city.counts[-k:][:, city.mask].sum()
    latest = made.past_window(-1)
    assert latest["rank"].tolist() == list(range(1, len(latest) + 1))
    assert latest["happened"].sum() == made.past_events[-1].sum()
    assert latest["window_start"].iloc[0] == city.starts[-1]
    # Read back from disk without computing again.
    again = forecasts.load(crime_store, "crime", starting)
    pd.testing.assert_frame_equal(again.next_window, made.next_window)
    np.testing.assert_array_equal(again.past_probability, made.past_probability)


def test_load_computes_once_per_data_version(crime_store, starting, monkeypatch):
    forecasts.refresh(crime_store, "crime")
    calls = []
    real_refresh = forecasts.refresh
    monkeypatch.setattr(forecasts, "refresh",
                        lambda *a, **k: calls.append(a) or real_refresh(*a, **k))
    forecasts.load(crime_store, "crime", starting)
    assert calls == []                                     # saved: only read
    before = forecasts.data_version(crime_store, "crime")
    ingest.ingest_bytes(crime_store, synthetic_incidents_csv("crime", n=50, seed=7),
                        "more.csv", "crime")
    assert forecasts.data_version(crime_store, "crime") != before
    fresh = forecasts.load(crime_store, "crime", starting)
    assert len(calls) == 1 and fresh.data_version != before
    folders = [p.name for p in (forecasts._model_dir(starting)).iterdir()]
    assert folders == [fresh.data_version]                 # the older version is removed


def test_places_are_each_cells_most_frequent_text():
    spec = GridSpec("EPSG:32616", 447_000.0, 4_636_000.0, 500.0, 2, 2)
    from safety_models.grid import cell_centres

    lat, lon = cell_centres(spec)
    places = pd.DataFrame({"latitude": [lat[0]] * 3 + [lat[3]] * 2,
                           "longitude": [lon[0]] * 3 + [lon[3]] * 2,
                           "place": ["0XX W A ST", "0XX W A ST", "1XX W B ST",
                                     "2XX N C AVE", "1XX N C AVE"]})
    table = forecasts.places_per_cell(places, spec, np.array([0, 1, 3]))
    assert table.to_dict("records") == [{"cell_id": 0, "place": "0XX W A ST"},
                                        {"cell_id": 3, "place": "1XX N C AVE"}]  # tie: A-Z
    assert forecasts.places_per_cell(places.iloc[:0], spec, np.array([0])).empty


def test_model_ready_computes_the_map_and_evaluates_a_network_without_an_evaluation(
        crime_store, starting, monkeypatch):
    from safety_models.evaluation import backtest

    evaluated = []
    monkeypatch.setattr(backtest, "evaluate_category",
                        lambda store, category, model_id, **kw: evaluated.append(model_id))
    forecasts.model_ready(crime_store, "crime", starting)
    assert (forecasts._model_dir(starting)).exists()
    assert evaluated == []                     # the starting forecast's comes from its workflow


def test_the_forecaster_is_known_from_saved_forecasts_alone(crime_store, starting):
    assert forecasts.known_forecaster(starting) is None       # nothing saved yet
    forecasts.refresh(crime_store, "crime", starting)
    assert forecasts.known_forecaster(starting) == "linear"


def test_past_forecasts_are_the_latest_whose_whole_horizon_is_in_the_data():
    # 10 windows (0..9): one-window forecasts from t = 1 (one window before it) to 9.
    assert forecasts.past_forecast_indices(10, 1, 3).tolist() == [7, 8, 9]
    assert forecasts.past_forecast_indices(10, 1, 50).tolist() == list(range(1, 10))
    # 7-window forecasts: the latest starts at 3 (windows 3..9).
    assert forecasts.past_forecast_indices(10, 7, 2).tolist() == [2, 3]
    assert forecasts.past_forecast_indices(10, 7, 50).tolist() == [1, 2, 3]
    # a horizon longer than the data has no past forecast
    assert forecasts.past_forecast_indices(5, 7, 50).tolist() == []


def test_a_horizon_models_forecasts_cover_its_days(crime_store, starting):
    from safety_models.modeling.city import model_city
    from safety_models.modeling.training import TrainConfig

    weekly = workflows.train_category(crime_store, TrainConfig.from_dict({
        **TrainConfig(category="crime", base="none", freeze_up_to="none").to_dict(),
        "epochs": 1, "steps_per_epoch": 1, "batch_size": 2, "horizon_days": 7,
        "cell_size_m": TINY_CELL_SIZE_M, "test_windows": 10, "val_windows": 10}))
    assert forecasts.category_models(crime_store, "crime") == [starting, weekly]
    made = forecasts.refresh(crime_store, "crime", weekly)
    assert made.horizon_windows == 7
    pd.testing.assert_frame_equal(made.next_window,
                                  workflows.predict_category(crime_store, "crime", horizon="7d"))
    _, checkpoint = registry.load_model(crime_store, weekly)
    city = model_city(crime_store, "crime", checkpoint)
    # The latest past forecast is the one whose 7 days end with the data; what happened is
    # the incidents of those 7 days.
    assert made.past_starts[-1] == city.starts[-7]
    assert made.past_events[-1].sum() == city.counts[-7:][:, city.mask].sum()
    latest = made.past_window(-1)
    assert (latest["window_end"] - latest["window_start"]).iloc[0] == pd.Timedelta(days=7)
    assert latest["happened"].sum() == made.past_events[-1].sum()
    again = forecasts.load(crime_store, "crime", weekly)
    assert again.horizon_windows == 7
    # After new data, the next window's and the horizon's forecasts are both renewed.
    assert forecasts.refresh_category(crime_store, "crime") == [starting, weekly]


def test_a_clicked_cells_history_reads_the_models_chances_from_its_forecasts(crime_store,
                                                                             monkeypatch):
    from conftest import network_checkpoint

    model_id = registry.save_model(crime_store, network_checkpoint(), "crime")
    registry.promote(crime_store, model_id)
    made = forecasts.refresh(crime_store, "crime")
    assert made.history_probability.shape == (workflows.HISTORY_PREDICTED_WINDOWS,
                                              len(made.cell_ids))
    # daily windows: the history's windows are the look-back's, and so are the chances
    np.testing.assert_allclose(made.history_probability, made.past_probability, rtol=1e-6)
    cell = int(made.next_window["cell_id"].iloc[0])
    expected = workflows.cell_history(crime_store, "crime", cell)       # runs the model
    assert expected["probability"].notna().sum() == workflows.HISTORY_PREDICTED_WINDOWS
    saved = forecasts.load(crime_store, "crime", model_id)
    monkeypatch.setattr(workflows, "history_probabilities",
                        lambda *a, **k: pytest.fail("the model ran"))
    pd.testing.assert_frame_equal(forecasts.cell_history(crime_store, "crime", cell, saved),
                                  expected)
    # Forecasts saved without the chances (before they were kept) still give the history.
    monkeypatch.undo()
    older = forecasts.Forecasts(**{**saved.__dict__, "history_probability": None})
    pd.testing.assert_frame_equal(forecasts.cell_history(crime_store, "crime", cell, older),
                                  expected)
