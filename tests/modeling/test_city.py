"""City data: incidents binned on the category's one grid, which stays fixed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_CELL_SIZE_M, fake_checkpoint

from safety_models import paths
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


# A grid of two 1 km cells side by side (west: cell 0, east: cell 1) and points at their centres.
TWO_CELLS = GridSpec("EPSG:32616", 447_000.0, 4_636_000.0, 1000.0, 1, 2)


def _incidents_csv(rows: list[tuple[str, str, int]]) -> bytes:
    """A file of incidents (ID, Date, cell 0 or 1 of TWO_CELLS) at the cells' centres."""
    from safety_models import grid as gridlib

    lat, lon = gridlib.cell_centres(TWO_CELLS)
    lines = ["ID,Date,Primary Type,Latitude,Longitude"]
    lines += [f"{key},{when},THEFT,{lat[cell]:.6f},{lon[cell]:.6f}" for key, when, cell in rows]
    return ("\n".join(lines) + "\n").encode()


def test_model_city_keeps_its_counts_and_follows_uploads_and_removals(store, monkeypatch):
    from safety_models.data import ingest

    checkpoint = {"grid": TWO_CELLS.to_dict(), "feature_config": {"window_hours": 24}}
    ingest.ingest_bytes(store, _incidents_csv([("a", "2024-03-01 08:00", 0),
                                               ("b", "2024-03-01 23:59", 0),
                                               ("c", "2024-03-03 12:00", 1)]), "a.csv", "crime")
    first = city.model_city(store, "crime", checkpoint)
    # days 1-3 March: two in the west cell, nothing, one in the east cell
    assert first.counts.tolist() == [[[2, 0]], [[0, 0]], [[0, 1]]]
    assert list(first.starts) == list(pd.date_range("2024-03-01", periods=3, freq="D"))
    kept = sorted(p.name for p in (paths.home_dir() / city.CITIES_DIR).iterdir())
    assert len(kept) == 1 and kept[0].startswith("crime-")

    # The next call reads the kept counts, not the incidents; the same city.
    real_incidents = store.incidents
    monkeypatch.setattr(store, "incidents", lambda *a, **k: pytest.fail("incidents read"))
    again = city.model_city(store, "crime", checkpoint)
    assert again.counts.dtype == np.float32 and again.counts.tolist() == first.counts.tolist()
    assert list(again.starts) == list(first.starts)
    assert again.mask.tolist() == first.mask.tolist() == [[True, True]]
    monkeypatch.setattr(store, "incidents", real_incidents)

    # An upload: the new data (one more in the west cell on the 2nd, a new last day).
    second = ingest.ingest_bytes(store, _incidents_csv([("d", "2024-03-02 10:00", 0),
                                                        ("e", "2024-03-04 01:00", 1)]),
                                 "b.csv", "crime")
    after = city.model_city(store, "crime", checkpoint)
    assert after.counts.tolist() == [[[2, 0]], [[1, 0]], [[0, 1]], [[0, 1]]]
    assert len(list((paths.home_dir() / city.CITIES_DIR).iterdir())) == 1   # the old one went
    # Its removal: the first file's counts again.
    store.remove_upload(second.upload_id)
    assert city.model_city(store, "crime", checkpoint).counts.tolist() == first.counts.tolist()
    # Another window length is another file; the same rows binned by week (from Monday 26 Feb).
    weekly = city.model_city(store, "crime", {**checkpoint, "feature_config": {"window_hours": 168}})
    assert weekly.counts.tolist() == [[[2, 1]]]


def test_model_city_without_incidents_says_what_to_do(store):
    checkpoint = {"grid": TWO_CELLS.to_dict(), "feature_config": {"window_hours": 24}}
    with pytest.raises(NotReady, match="no crime incidents"):
        city.model_city(store, "crime", checkpoint)


def test_data_fingerprint_changes_with_the_categorys_uploads_only():
    listing = pd.DataFrame({"upload_id": [1, 2], "category": ["crime", "traffic"],
                            "checksum": ["aa", "bb"], "accepted": [3, 4]})
    crime = city.data_fingerprint(listing, "crime")
    assert crime == city.data_fingerprint(listing.iloc[::-1], "crime")     # order aside
    assert crime != city.data_fingerprint(listing.assign(accepted=[2, 4]), "crime")
    assert crime != city.data_fingerprint(listing.assign(checksum=["ab", "bb"]), "crime")
    assert crime == city.data_fingerprint(listing.assign(accepted=[3, 5]), "crime")
    assert city.data_fingerprint(listing.iloc[:0], "crime") != crime


# -- where a new grid's lines fall (choose_grid) ------------------------------------------------

def test_placement_score_by_hand():
    # One row of three city cells, three windows: training = windows 0-1, validation = 2.
    counts = np.array([[[2, 1, 0]], [[1, 0, 0]], [[1, 2, 1]]], dtype=np.float32)
    mask = np.ones((1, 3), dtype=bool)
    # 100 m cells (0.01 km²). Training ranks cell 0 (3 events), then cell 1 (1 event): one
    # cell's area flags cell 0, which holds 1 of the validation's 4 events; two cells' area
    # flags cells 0 and 1, which hold 3 of them: 0.25 + 0.75.
    assert city.placement_score(counts, mask, 2, 3, [0.01, 0.02], 100.0) == pytest.approx(1.0)
    # Only the city's cells are ranked: without cell 0, cell 1 holds 2 of 3 events.
    assert city.placement_score(counts, np.array([[False, True, True]]), 2, 3, [0.01], 100.0) == pytest.approx(2 / 3)
    # No events in validation: no score.
    assert np.isnan(city.placement_score(np.zeros_like(counts), mask, 2, 3, [0.01], 100.0))


def _incidents(points_by_day: list[tuple[float, float, int, int]], days: int, seed: int = 0) -> pd.DataFrame:
    """Synthetic daily incidents around Chicago in UTM 16N metres: uniform background over
    10 km square plus (x_m, y_m, first_day, per_day) hot spots jittered by 20 m."""
    from safety_models import grid as gridlib

    rng = np.random.default_rng(seed)
    xs, ys, ts = [], [], []
    for day in range(days):
        n = 20
        xs.append(rng.uniform(440_000, 450_000, n))
        ys.append(rng.uniform(4_630_000, 4_640_000, n))
        ts += [day] * n
        for x, y, first, per_day in points_by_day:
            if day >= first:
                xs.append(x + rng.uniform(-20, 20, per_day))
                ys.append(y + rng.uniform(-20, 20, per_day))
                ts += [day] * per_day
    lat, lon = gridlib.xy_to_latlon("EPSG:32616", np.concatenate(xs), np.concatenate(ys))
    when = pd.Timestamp("2024-01-01 12:00") + pd.to_timedelta(np.array(ts), unit="D")
    return pd.DataFrame({"occurred_at": when, "latitude": lat, "longitude": lon})


def test_choose_grid_centres_a_hot_spot_that_sits_on_cell_corners():
    # Grids snap to whole multiples of the cell size in the CRS, so (445000, 4635000) is the
    # corner of four 500 m cells of the fitted grid, and the centre of one cell of the grid
    # shifted half a cell east and north. Four such hot spots: the top 1 % of the ~420 city
    # cells (5 cells) hold all four on the shifted grid, a quarter of each on the fitted one.
    incidents = _incidents([(445_000.0 + 1000.0 * i, 4_635_000.0, 0, 2) for i in range(4)], days=120)
    rows = city.grid_placements("crime", incidents, 500.0, 24)
    assert [(r["east_cells"], r["north_cells"]) for r in rows] == list(city.GRID_OFFSETS_CELLS)
    by_shift = {(r["east_cells"], r["north_cells"]): r["score"] for r in rows}
    assert by_shift[(0.5, 0.5)] > by_shift[(0.0, 0.0)] + 0.1
    chosen = city.choose_grid("crime", incidents, 500.0, 24)
    assert chosen == rows[-1]["grid"] and chosen != rows[0]["grid"]
    assert chosen.origin_x_m % 500.0 == 250.0 and chosen.origin_y_m % 500.0 == 250.0


def test_choose_grid_never_reads_the_test_period():
    # Four hot spots in fitted cells' centres all along, and four far bigger ones on corners
    # that start in the test period (the last 30 of 120 days): the fitted grid stays.
    centres = [(445_250.0 + 1000.0 * i, 4_635_250.0, 0, 2) for i in range(4)]
    corners_later = [(445_000.0 + 1000.0 * i, 4_637_000.0, 90, 20) for i in range(4)]
    incidents = _incidents(centres + corners_later, days=120)
    rows = city.grid_placements("crime", incidents, 500.0, 24)
    assert rows[0]["score"] > max(r["score"] for r in rows[1:])
    assert city.choose_grid("crime", incidents, 500.0, 24) == rows[0]["grid"]
    # The same corner hot spots from the start move the grid.
    corners = [(x, y, 0, per_day) for x, y, _, per_day in corners_later]
    assert city.choose_grid("crime", _incidents(centres + corners, days=120), 500.0, 24) != rows[0]["grid"]


def test_too_short_a_history_keeps_the_fitted_grid():
    incidents = _incidents([(445_000.0, 4_635_000.0, 0, 3)], days=3)
    rows = city.grid_placements("crime", incidents, 500.0, 24)
    assert all(np.isnan(r["score"]) for r in rows)
    assert city.choose_grid("crime", incidents, 500.0, 24) == rows[0]["grid"]
