"""City data: incidents binned on the category's one grid, which stays fixed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TINY_CELL_SIZE_M, fake_checkpoint

from safety_models.errors import NotReady
from safety_models.grid import GridSpec
from safety_models.modeling import city, registry

# `crime_store` (conftest.py): a fresh home with 300 synthetic crime incidents, no model.


def test_prepare_city_bins_every_incident_on_a_new_grid(crime_store):
    data = city.prepare_city(crime_store, "crime", cell_size_m=TINY_CELL_SIZE_M)
    assert data.window_hours == 24 and data.grid.cell_size_m == TINY_CELL_SIZE_M
    assert data.counts.shape == (len(data.starts), *data.grid.shape)
    assert data.counts.dtype == np.float32 and data.mask.dtype == bool
    assert data.counts.sum() > 0.99 * 300  # fit_grid trims only a few outliers
    first, last = crime_store.time_range("crime")
    assert data.starts[0] == first.normalize() and data.starts[-1] == last.normalize()
    assert data.mask.any() and not data.mask.all()


def test_prepare_city_without_data_says_what_to_do(crime_store):
    with pytest.raises(NotReady, match="no traffic incidents.*ingest FILE --category traffic"):
        city.prepare_city(crime_store, "traffic")


def test_category_grid_is_reused_until_another_cell_size_is_asked_for(crime_store):
    store = crime_store
    recorded = GridSpec("EPSG:32616", 440_000.0, 4_630_000.0, 2000.0, 8, 8)
    city.record_grid(store, "crime", recorded)
    assert json.loads(store.get_meta("grid:crime")) == recorded.to_dict()
    assert city.prepare_city(store, "crime").grid == recorded
    assert city.prepare_city(store, "crime", cell_size_m=2000).grid == recorded
    other = city.prepare_city(store, "crime", cell_size_m=TINY_CELL_SIZE_M).grid
    assert other.cell_size_m == TINY_CELL_SIZE_M and other != recorded
    # A size a model already uses gets that model's grid back, not a refit.
    registry.save_model(store, {**fake_checkpoint(grid=other), "train_config": {}}, "crime")
    city.record_grid(store, "crime", recorded)
    registry.promote(store, registry.list_models(store, "crime")["model_id"].iloc[0])
    assert city.prepare_city(store, "crime").grid == other          # the active model's
    assert city.prepare_city(store, "crime", cell_size_m=2000).grid == recorded


def test_model_city_uses_the_models_grid_window_and_cells(crime_store):
    spec = city.prepare_city(crime_store, "crime", cell_size_m=TINY_CELL_SIZE_M).grid
    mask = np.zeros(spec.shape, dtype=bool)
    mask[1, 2] = True
    checkpoint = {"grid": spec.to_dict(), "mask": mask, "feature_config": {"window_hours": 168}}
    data = city.model_city(crime_store, "crime", checkpoint)
    assert data.grid == spec and data.window_hours == 168
    assert data.mask.sum() == 1 and data.mask[1, 2]
    assert (data.starts.day_of_week == 0).all()   # weekly windows start on Mondays
