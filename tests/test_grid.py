"""Grid: exact answers on tiny, hand-made grids (Chicago's UTM zone 16N unless stated)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from safety_models import grid
from safety_models.grid import GridSpec

CHICAGO = (41.88, -87.63)


def small_spec(n_rows: int = 3, n_cols: int = 4, cell_size_m: float = 100.0) -> GridSpec:
    # South-west corner at a point inside Chicago, in metres of UTM 16N.
    x0, y0 = grid.latlon_to_xy("EPSG:32616", [CHICAGO[0]], [CHICAGO[1]])
    return GridSpec("EPSG:32616", float(np.floor(x0[0])), float(np.floor(y0[0])), cell_size_m, n_rows, n_cols)


def test_spec_round_trips_through_json():
    spec = small_spec()
    assert GridSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.n_cells == 12 and spec.shape == (3, 4)
    numpy_typed = GridSpec("EPSG:32616", np.float64(1.0), np.float64(2.0), np.float32(100.0), np.int64(3), np.int64(4))
    assert json.dumps(numpy_typed.to_dict())  # no numpy scalars left


def test_spec_rejects_nonsense():
    with pytest.raises(ValueError):
        GridSpec("EPSG:32616", 0.0, 0.0, 0.0, 1, 1)
    with pytest.raises(ValueError):
        GridSpec("EPSG:32616", 0.0, 0.0, 100.0, 0, 1)


@pytest.mark.parametrize(
    ("lat", "lon", "expected"),
    [
        (41.88, -87.63, "EPSG:32616"),     # Chicago: zone 16 north
        (-33.87, 151.21, "EPSG:32756"),    # Sydney: zone 56 south
        (41.39, 2.17, "EPSG:32631"),       # Barcelona: zone 31 north
        (51.51, -0.13, "EPSG:32630"),      # London: zone 30 (just west of the meridian)
    ],
)
def test_local_crs_is_the_utm_zone_of_the_median(lat, lon, expected):
    lats = np.array([lat, lat + 0.01, lat - 0.01, np.nan])
    lons = np.array([lon, lon + 0.01, lon - 0.01, 0.0])
    assert grid.local_crs(lats, lons) == expected


def test_local_crs_needs_a_point():
    with pytest.raises(ValueError):
        grid.local_crs([np.nan], [np.nan])


def test_projection_round_trip_and_metres():
    x, y = grid.latlon_to_xy("EPSG:32616", [41.88, 41.89], [-87.63, -87.63])
    # 0.01 degree of latitude is about 1.11 km everywhere.
    assert y[1] - y[0] == pytest.approx(1110.0, rel=0.01)
    lat, lon = grid.xy_to_latlon("EPSG:32616", x, y)
    np.testing.assert_allclose(lat, [41.88, 41.89], atol=1e-9)
    np.testing.assert_allclose(lon, [-87.63, -87.63], atol=1e-9)


def test_latlon_to_cell_numbers_row_major_from_the_south_west():
    spec = small_spec()
    # Points at the centres of cells (row 0, col 0), (row 0, col 3), (row 2, col 1), one west
    # of the grid, one NaN.
    xs = spec.origin_x_m + np.array([50.0, 350.0, 150.0, -10.0, np.nan])
    ys = spec.origin_y_m + np.array([50.0, 50.0, 250.0, 50.0, 50.0])
    lat, lon = grid.xy_to_latlon(spec, xs, ys)
    np.testing.assert_array_equal(grid.latlon_to_cell(spec, lat, lon), [0, 3, 9, -1, -1])
    assert grid.latlon_to_cell(spec, lat, lon).dtype == np.int64


def test_xy_to_cell_edges_are_half_open():
    spec = small_spec()
    ox, oy = spec.origin_x_m, spec.origin_y_m
    xs = np.array([ox, ox + 100.0, ox + 399.999, ox + 400.0, ox])
    ys = np.array([oy, oy, oy, oy, oy + 300.0])
    np.testing.assert_array_equal(grid.xy_to_cell(spec, xs, ys), [0, 1, 3, -1, -1])


def test_fit_grid_ignores_outliers_and_keeps_a_margin():
    rng = np.random.default_rng(0)
    lat = 41.88 + rng.uniform(-0.05, 0.05, 20_000)
    lon = -87.63 + rng.uniform(-0.05, 0.05, 20_000)
    lat[:5], lon[:5] = 0.0, 0.0  # mis-geocoded to null island
    lat[5:10], lon[5:10] = 42.5, -87.63  # 70 km north
    spec = grid.fit_grid(lat, lon, cell_size_m=500.0)
    assert spec.crs == "EPSG:32616"
    assert spec.origin_x_m % 500.0 == 0 and spec.origin_y_m % 500.0 == 0
    # The bulk spans ~8.3 x 11.1 km: about 17 x 23 cells plus margins, nowhere near 70 km.
    assert 18 <= spec.n_cols <= 21 and 24 <= spec.n_rows <= 27
    cells = grid.latlon_to_cell(spec, lat[10:], lon[10:])
    assert (cells >= 0).mean() > 0.995
    assert grid.latlon_to_cell(spec, lat[:10], lon[:10]).tolist() == [-1] * 10
    # One cell of margin: nothing in the outer ring of cells.
    rows, cols = grid.cell_to_rowcol(spec, cells[cells >= 0])
    assert rows.min() >= 1 and cols.min() >= 1
    assert rows.max() <= spec.n_rows - 2 and cols.max() <= spec.n_cols - 2


def test_fit_grid_single_point_gives_three_by_three():
    spec = grid.fit_grid([41.88], [-87.63], cell_size_m=500.0)
    assert spec.shape == (3, 3)
    assert grid.latlon_to_cell(spec, [41.88], [-87.63]).tolist() == [4]


def test_shifted_grid_moves_the_lines_and_still_covers_the_grid():
    spec = small_spec()                                   # 4 x 3 cells of 100 m
    ox, oy = spec.origin_x_m, spec.origin_y_m
    east = grid.shifted_grid(spec, 0.5, 0.0)
    # Lines 50 m east of the old ones: the grid starts half a cell west and is a column wider.
    assert (east.origin_x_m, east.origin_y_m, east.n_cols, east.n_rows) == (ox - 50.0, oy, 5, 3)
    both = grid.shifted_grid(spec, 0.5, 0.5)
    assert (both.origin_x_m, both.origin_y_m, both.shape) == (ox - 50.0, oy - 50.0, (4, 5))
    # A point on the corner of four old cells is at the centre of one new cell (row 1, col 1 of
    # a 5-column grid, from the south-west), and the old grid's far corner is still covered.
    xs, ys = np.array([ox + 100.0, ox + 399.0]), np.array([oy + 100.0, oy + 299.0])
    assert grid.xy_to_cell(both, xs, ys).tolist() == [1 * 5 + 1, 3 * 5 + 4]
    assert grid.cell_centres_xy(both)[0][1 * 5 + 1] == pytest.approx(ox + 100.0)
    assert grid.shifted_grid(spec, 0.0, 0.0) == spec
    with pytest.raises(ValueError, match="fraction of a cell"):
        grid.shifted_grid(spec, 1.0, 0.0)


def test_cell_boundary_is_a_closed_counter_clockwise_square():
    spec = small_spec()
    (ring,) = grid.cell_to_boundary(spec, [5])  # row 1, col 1
    assert len(ring) == 5 and ring[0] == ring[-1]
    lon = np.array([p[0] for p in ring])
    lat = np.array([p[1] for p in ring])
    x, y = grid.latlon_to_xy(spec, lat, lon)
    np.testing.assert_allclose(x - spec.origin_x_m, [100, 200, 200, 100, 100], atol=1e-6)
    np.testing.assert_allclose(y - spec.origin_y_m, [100, 100, 200, 200, 100], atol=1e-6)
    with pytest.raises(ValueError):
        grid.cell_to_boundary(spec, [12])


def test_cell_centres_are_in_flat_order_and_map_back_to_their_cell():
    spec = small_spec()
    lat, lon = grid.cell_centres(spec)
    assert lat.shape == (12,)
    np.testing.assert_array_equal(grid.latlon_to_cell(spec, lat, lon), np.arange(12))
    assert lat[4] > lat[0] and lon[1] > lon[0]  # row 1 is north of row 0, col 1 east of col 0


@pytest.mark.parametrize("hours", [1, 2, 3, 4, 6, 8, 12, 24, 48, 168, 336])
def test_allowed_window_hours(hours):
    assert grid.check_window_hours(hours) == hours


@pytest.mark.parametrize("hours", [0, 5, 7, 25, 30, -24, 1.5])
def test_refused_window_hours(hours):
    with pytest.raises(ValueError):
        grid.check_window_hours(hours)


def test_window_starts_align_at_midnight():
    starts = grid.window_starts("2024-03-05 13:20", "2024-03-06 09:00", 8)
    # 8-hour shifts from midnight of the 5th, the last one holding 09:00 on the 6th.
    assert list(starts.strftime("%d %H")) == ["05 00", "05 08", "05 16", "06 00", "06 08"]


def test_window_starts_days_include_t_max():
    starts = grid.window_starts("2024-01-01 10:00", "2024-01-03 00:00", 24)
    assert list(starts) == list(pd.date_range("2024-01-01", "2024-01-03", freq="D"))


def test_week_windows_start_on_the_monday_before():
    # 2024-03-07 is a Thursday; the Monday before is 2024-03-04.
    starts = grid.window_starts("2024-03-07 15:00", "2024-03-18 00:00", 168)
    assert list(starts) == [pd.Timestamp("2024-03-04"), pd.Timestamp("2024-03-11"), pd.Timestamp("2024-03-18")]
    assert grid.window_starts("2024-03-04", "2024-03-04", 168)[0] == pd.Timestamp("2024-03-04")


def test_window_starts_refuses_reversed_range():
    with pytest.raises(ValueError):
        grid.window_starts("2024-01-02", "2024-01-01", 24)


def test_count_tensor_from_cells_by_hand():
    times = pd.to_datetime(
        [
            "2024-01-01 00:00",  # window 0, cell 1
            "2024-01-01 23:59",  # window 0, cell 1
            "2024-01-02 00:00",  # window 1, cell 5
            "2024-01-03 12:00",  # window 2, cell 0
            "2023-12-31 23:59",  # before start: ignored
            "2024-01-04 00:00",  # after the last window: ignored
            None,                # NaT: ignored
            "2024-01-02 05:00",  # outside the grid: ignored
        ]
    )
    cells = np.array([1, 1, 5, 0, 0, 0, 0, -1])
    counts = grid.count_tensor_from_cells(cells, times, (2, 3), "2024-01-01", 24, 3)
    assert counts.dtype == np.float32 and counts.shape == (3, 2, 3)
    expected = np.zeros((3, 2, 3), dtype=np.float32)
    expected[0, 0, 1] = 2
    expected[1, 1, 2] = 1
    expected[2, 0, 0] = 1
    np.testing.assert_array_equal(counts, expected)


def test_count_tensor_accepts_microsecond_series():
    times = pd.Series(pd.to_datetime(["2024-01-01 07:59", "2024-01-01 08:00"])).astype("datetime64[us]")
    counts = grid.count_tensor_from_cells([0, 0], times, (1, 1), pd.Timestamp("2024-01-01"), 8, 2)
    np.testing.assert_array_equal(counts[:, 0, 0], [1, 1])


def test_count_tensor_projects_and_counts():
    spec = small_spec()
    lat, lon = grid.xy_to_latlon(spec, spec.origin_x_m + np.array([50.0, 50.0, 350.0]), spec.origin_y_m + np.array([50.0, 50.0, 250.0]))
    times = pd.to_datetime(["2024-01-01 01:00", "2024-01-02 01:00", "2024-01-02 02:00"])
    counts = grid.count_tensor(spec, times, lat, lon, "2024-01-01", 24, 2)
    assert counts.sum() == 3
    assert counts[0, 0, 0] == 1 and counts[1, 0, 0] == 1 and counts[1, 2, 3] == 1


def test_history_and_city_mask():
    counts = np.zeros((2, 4, 5), dtype=np.float32)
    counts[1, 0, 0] = 1
    counts[0, 2, 3] = 2
    history = grid.history_mask(counts)
    assert history.sum() == 2 and history[0, 0] and history[2, 3]
    spec = GridSpec("EPSG:32616", 0.0, 0.0, 100.0, 4, 5)
    city = grid.city_mask(spec, counts)
    expected = np.array(
        [
            [1, 1, 0, 0, 0],
            [1, 1, 1, 1, 1],
            [0, 0, 1, 1, 1],
            [0, 0, 1, 1, 1],
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(city, expected)


def _square(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def test_boundary_mask_with_hole_and_multipolygon():
    spec = GridSpec("EPSG:32616", 447_000.0, 4_636_000.0, 100.0, 5, 5)
    lat, lon = grid.cell_centres(spec)
    lat, lon = lat.reshape(5, 5), lon.reshape(5, 5)

    def between(row0, col0, row1, col1):
        # A lon/lat rectangle from the centre of (row0, col0) to the centre of (row1, col1),
        # padded by a quarter cell's worth of degrees so the centres lie well inside.
        pad_lon = abs(lon[0, 1] - lon[0, 0]) / 4
        pad_lat = abs(lat[1, 0] - lat[0, 0]) / 4
        return _square(
            lon[row0, col0] - pad_lon, lat[row0, col0] - pad_lat,
            lon[row1, col1] + pad_lon, lat[row1, col1] + pad_lat,
        )

    # A 3x3 block (rows 0-2, cols 0-2) with the middle cell (1, 1) cut out as a hole, plus a
    # separate single-cell polygon at (4, 4) in a MultiPolygon.
    feature = {
        "type": "Feature",
        "properties": {},
        "geometry": {
            "type": "MultiPolygon",
            "coordinates": [
                [between(0, 0, 2, 2), between(1, 1, 1, 1)[::-1]],
                [between(4, 4, 4, 4)],
            ],
        },
    }
    collection = {
        "type": "FeatureCollection",
        "features": [feature, {"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}}],
    }
    mask = grid.boundary_mask(spec, collection)
    expected = np.zeros((5, 5), dtype=bool)
    expected[0:3, 0:3] = True
    expected[1, 1] = False
    expected[4, 4] = True
    np.testing.assert_array_equal(mask, expected)
    assert grid.city_mask(spec, np.zeros((1, 5, 5)), collection).sum() == 9


def test_boundary_mask_concave_polygon():
    spec = GridSpec("EPSG:32616", 500_000.0, 4_600_000.0, 100.0, 3, 3)
    lat, lon = grid.cell_centres(spec)
    lat, lon = lat.reshape(3, 3), lon.reshape(3, 3)
    d_lon = abs(lon[0, 1] - lon[0, 0])
    d_lat = abs(lat[1, 0] - lat[0, 0])
    w, e = lon[0, 0] - d_lon / 2, lon[0, 2] + d_lon / 2
    s, n = lat[0, 0] - d_lat / 2, lat[2, 0] + d_lat / 2
    # A "U": the whole square minus a notch cut from the north edge down over cells (1..2, 1).
    notch_w, notch_e, notch_s = lon[0, 1] - d_lon / 4, lon[0, 1] + d_lon / 4, lat[1, 0] - d_lat / 4
    ring = [[w, s], [e, s], [e, n], [notch_e, n], [notch_e, notch_s], [notch_w, notch_s], [notch_w, n], [w, n], [w, s]]
    mask = grid.boundary_mask(spec, {"type": "Polygon", "coordinates": [ring]})
    expected = np.ones((3, 3), dtype=bool)
    expected[1:, 1] = False
    np.testing.assert_array_equal(mask, expected)
