"""Points -> grid cells -> count tensors (pure).

A city is covered by a square grid in a local metric CRS (the UTM zone of the data), so that
cells have the same area everywhere and distances are in metres. Cells are numbered by a flat
id ``row * n_cols + col``; row 0 is the southernmost, column 0 the westernmost. Time is cut
into windows of ``window_hours`` that start at local midnight (Monday for week windows).

Everything here is a pure function of arrays and a ``GridSpec``; nothing touches disk.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyproj import Transformer

from safety_models.data.geo import points_in_geojson

WGS84 = "EPSG:4326"
HOURS_PER_WEEK = 168


@dataclass(frozen=True)
class GridSpec:
    """A square grid in a local metric CRS.

    crs:          local metric CRS, e.g. "EPSG:32616" (the UTM zone of the data)
    origin_x_m:   easting of the grid's south-west corner, metres in ``crs``
    origin_y_m:   northing of the grid's south-west corner, metres in ``crs``
    cell_size_m:  side of a square cell, metres
    n_rows:       number of rows; row 0 is the southernmost
    n_cols:       number of columns; column 0 is the westernmost
    """

    crs: str
    origin_x_m: float
    origin_y_m: float
    cell_size_m: float
    n_rows: int
    n_cols: int

    def __post_init__(self) -> None:
        if not self.cell_size_m > 0:
            raise ValueError(f"cell_size_m must be positive, got {self.cell_size_m!r}")
        if self.n_rows < 1 or self.n_cols < 1:
            raise ValueError(f"a grid needs at least one row and column, got {self.n_rows}x{self.n_cols}")

    @property
    def n_cells(self) -> int:
        return self.n_rows * self.n_cols

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols), the trailing shape of every count tensor on this grid."""
        return (self.n_rows, self.n_cols)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/checkpoint-safe types only (numpy scalars become int/float)."""
        return {
            "crs": str(self.crs),
            "origin_x_m": float(self.origin_x_m),
            "origin_y_m": float(self.origin_y_m),
            "cell_size_m": float(self.cell_size_m),
            "n_rows": int(self.n_rows),
            "n_cols": int(self.n_cols),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GridSpec:
        return cls(
            crs=str(d["crs"]),
            origin_x_m=float(d["origin_x_m"]),
            origin_y_m=float(d["origin_y_m"]),
            cell_size_m=float(d["cell_size_m"]),
            n_rows=int(d["n_rows"]),
            n_cols=int(d["n_cols"]),
        )


# ---------------------------------------------------------------------------------------------
# Projections


@functools.lru_cache(maxsize=32)
def _to_local(crs: str) -> Transformer:
    # Building a Transformer costs milliseconds; a dashboard re-projects on every rerun.
    return Transformer.from_crs(WGS84, crs, always_xy=True)


@functools.lru_cache(maxsize=32)
def _to_wgs84(crs: str) -> Transformer:
    return Transformer.from_crs(crs, WGS84, always_xy=True)


def _as_float_array(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def local_crs(lat: Any, lon: Any) -> str:
    """The UTM zone (WGS84, "EPSG:326zz" north / "EPSG:327zz" south) of the median point.

    lat, lon: degrees (array-likes of equal length); NaN rows are ignored.
    The standard 6-degree zones are used (no Norway/Svalbard exceptions): a city is small
    enough that the distortion in a neighbouring zone is well under 1 %.
    Raises ValueError when no point has finite coordinates.
    """
    lat_deg = _as_float_array(lat)
    lon_deg = _as_float_array(lon)
    ok = np.isfinite(lat_deg) & np.isfinite(lon_deg)
    if not ok.any():
        raise ValueError("no finite coordinates to choose a local CRS from")
    lat_mid = float(np.median(lat_deg[ok]))
    lon_mid = float(np.median(lon_deg[ok]))
    zone = int(math.floor((lon_mid + 180.0) / 6.0)) % 60 + 1  # 1..60; lon 180 wraps to zone 1
    return f"EPSG:{(32600 if lat_mid >= 0 else 32700) + zone}"


def _crs_of(spec_or_crs: GridSpec | str) -> str:
    return spec_or_crs.crs if isinstance(spec_or_crs, GridSpec) else str(spec_or_crs)


def latlon_to_xy(spec_or_crs: GridSpec | str, lat: Any, lon: Any) -> tuple[np.ndarray, np.ndarray]:
    """Project WGS84 degrees to metres in the grid's CRS.

    Returns (x_m, y_m) float64 arrays of the input's length; non-finite input gives
    non-finite output (pyproj's inf), never an exception.
    """
    transformer = _to_local(_crs_of(spec_or_crs))
    x_m, y_m = transformer.transform(_as_float_array(lon), _as_float_array(lat))
    return np.asarray(x_m, dtype=np.float64), np.asarray(y_m, dtype=np.float64)


def xy_to_latlon(spec_or_crs: GridSpec | str, x_m: Any, y_m: Any) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of latlon_to_xy: metres in the grid's CRS -> (lat, lon) degrees."""
    transformer = _to_wgs84(_crs_of(spec_or_crs))
    lon, lat = transformer.transform(_as_float_array(x_m), _as_float_array(y_m))
    return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Grids and cells


# Cell sizes a user may ask for: below 10 m a cell is smaller than the geocoding error of most
# exports; above 10 km a city is a handful of cells.
CELL_SIZE_RANGE_M: tuple[float, float] = (10.0, 10_000.0)


def fit_grid(lat: Any, lon: Any, cell_size_m: float = 500.0, trim_quantile: float = 0.001) -> GridSpec:
    """A grid covering the bulk of the points, in the UTM zone of their median point.

    The extent is the [trim_quantile, 1 - trim_quantile] range of the projected x and y, so a
    few mis-geocoded incidents (0,0 or another city) do not stretch it; it is snapped outward
    to whole multiples of ``cell_size_m`` and widened by one cell on every side.
    NaN rows are ignored. Raises ValueError when no point has finite coordinates.
    """
    if not cell_size_m > 0:
        raise ValueError(f"cell_size_m must be positive, got {cell_size_m!r}")
    if not 0.0 <= trim_quantile < 0.5:
        raise ValueError(f"trim_quantile must be in [0, 0.5), got {trim_quantile!r}")
    crs = local_crs(lat, lon)
    x_m, y_m = latlon_to_xy(crs, lat, lon)
    ok = np.isfinite(x_m) & np.isfinite(y_m)
    if not ok.any():
        raise ValueError("no finite coordinates to fit a grid to")
    x_lo, x_hi = np.quantile(x_m[ok], [trim_quantile, 1.0 - trim_quantile])
    y_lo, y_hi = np.quantile(y_m[ok], [trim_quantile, 1.0 - trim_quantile])
    # Snap to whole cells (in absolute CRS metres, so refits of similar data give the same
    # lines), then one cell of margin so points on the edge are not on the boundary.
    x0 = (math.floor(x_lo / cell_size_m) - 1) * cell_size_m
    y0 = (math.floor(y_lo / cell_size_m) - 1) * cell_size_m
    x1 = (math.floor(x_hi / cell_size_m) + 2) * cell_size_m
    y1 = (math.floor(y_hi / cell_size_m) + 2) * cell_size_m
    return GridSpec(
        crs=crs,
        origin_x_m=float(x0),
        origin_y_m=float(y0),
        cell_size_m=float(cell_size_m),
        n_rows=int(round((y1 - y0) / cell_size_m)),
        n_cols=int(round((x1 - x0) / cell_size_m)),
    )


def shifted_grid(spec: GridSpec, east_cells: float, north_cells: float) -> GridSpec:
    """The same grid with its lines moved east by east_cells and north by north_cells of a cell
    (fractions in [0, 1)); one column / row more when moved, so it covers what spec covers.

    A hot spot that sits on a corner of spec's cells sits inside one cell of the grid shifted
    by half a cell both ways (see modeling.city.choose_grid).
    """
    for value in (east_cells, north_cells):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"a shift is a fraction of a cell in [0, 1), got {value!r}")
    return GridSpec(
        crs=spec.crs,
        origin_x_m=float(spec.origin_x_m - (1.0 - east_cells) * spec.cell_size_m if east_cells else spec.origin_x_m),
        origin_y_m=float(spec.origin_y_m - (1.0 - north_cells) * spec.cell_size_m if north_cells else spec.origin_y_m),
        cell_size_m=spec.cell_size_m,
        n_rows=spec.n_rows + (1 if north_cells else 0),
        n_cols=spec.n_cols + (1 if east_cells else 0),
    )


def xy_to_cell(spec: GridSpec, x_m: Any, y_m: Any) -> np.ndarray:
    """Flat cell ids (int64, row * n_cols + col) of projected points; -1 outside or non-finite."""
    x_m = _as_float_array(x_m)
    y_m = _as_float_array(y_m)
    with np.errstate(invalid="ignore"):
        col_f = np.floor((x_m - spec.origin_x_m) / spec.cell_size_m)
        row_f = np.floor((y_m - spec.origin_y_m) / spec.cell_size_m)
        inside = (col_f >= 0) & (col_f < spec.n_cols) & (row_f >= 0) & (row_f < spec.n_rows)
    # `inside` is False for NaN/inf, so the casts below only see in-range values.
    cell_ids = np.full(x_m.shape, -1, dtype=np.int64)
    cell_ids[inside] = row_f[inside].astype(np.int64) * spec.n_cols + col_f[inside].astype(np.int64)
    return cell_ids


def latlon_to_cell(spec: GridSpec, lat: Any, lon: Any) -> np.ndarray:
    """Flat cell ids (int64, row * n_cols + col) of WGS84 points; -1 outside the grid or NaN."""
    x_m, y_m = latlon_to_xy(spec, lat, lon)
    return xy_to_cell(spec, x_m, y_m)


def cell_to_rowcol(spec: GridSpec, cell_ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Flat ids -> (row, col) int64 arrays. Ids must be valid (0..n_cells-1)."""
    cell_ids = np.asarray(cell_ids, dtype=np.int64)
    return cell_ids // spec.n_cols, cell_ids % spec.n_cols


def cell_to_boundary(spec: GridSpec, cell_ids: Any) -> list[list[list[float]]]:
    """Closed outlines of cells for maps: one ring [[lon, lat], ...] of 5 points per cell.

    Corners go SW, SE, NE, NW and back to SW (counter-clockwise, as GeoJSON wants for outer
    rings). Raises ValueError for ids outside 0..n_cells-1.
    """
    cell_ids = np.atleast_1d(np.asarray(cell_ids, dtype=np.int64))
    if cell_ids.size and (cell_ids.min() < 0 or cell_ids.max() >= spec.n_cells):
        raise ValueError(f"cell ids must be in 0..{spec.n_cells - 1}")
    rows, cols = cell_to_rowcol(spec, cell_ids)
    x0 = spec.origin_x_m + cols * spec.cell_size_m  # (cells,)
    y0 = spec.origin_y_m + rows * spec.cell_size_m
    s = spec.cell_size_m
    corner_x = np.stack([x0, x0 + s, x0 + s, x0, x0], axis=1)  # (cells, 5)
    corner_y = np.stack([y0, y0, y0 + s, y0 + s, y0], axis=1)
    lat, lon = xy_to_latlon(spec, corner_x.ravel(), corner_y.ravel())
    ring = np.stack([lon, lat], axis=1).reshape(len(cell_ids), 5, 2)  # (cells, 5, [lon, lat])
    return ring.tolist()


def cell_centres_xy(spec: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """Centres of all cells in flat-id order, metres in the grid's CRS: (x_m, y_m) of n_cells."""
    cols = np.arange(spec.n_cols, dtype=np.float64)
    rows = np.arange(spec.n_rows, dtype=np.float64)
    x_m = spec.origin_x_m + (cols + 0.5) * spec.cell_size_m
    y_m = spec.origin_y_m + (rows + 0.5) * spec.cell_size_m
    xx, yy = np.meshgrid(x_m, y_m)  # (rows, cols) each; flat order = row * n_cols + col
    return xx.ravel(), yy.ravel()


def cell_centres(spec: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """Centres of all cells in flat-id order: (lat, lon) degree arrays of n_cells."""
    return xy_to_latlon(spec, *cell_centres_xy(spec))


# ---------------------------------------------------------------------------------------------
# Time windows


def check_window_hours(window_hours: int) -> int:
    """Return window_hours if allowed: 1..24 dividing 24 (1, 2, 3, 4, 6, 8, 12, 24) or a
    multiple of 24 (days, 168 = a week). Raises ValueError otherwise."""
    if isinstance(window_hours, bool) or int(window_hours) != window_hours:
        raise ValueError(f"window_hours must be a whole number of hours, got {window_hours!r}")
    hours = int(window_hours)
    if hours < 1 or (hours <= 24 and 24 % hours) or (hours > 24 and hours % 24):
        raise ValueError(
            f"window_hours must divide a day (1, 2, 3, 4, 6, 8, 12, 24) or be whole days "
            f"(48, 168, ...), got {hours}"
        )
    return hours


def window_anchor(t_min: Any, window_hours: int) -> pd.Timestamp:
    """The first window start for data beginning at t_min: local midnight of t_min's day, or
    the Monday midnight on or before it for windows of a week or longer."""
    hours = check_window_hours(window_hours)
    anchor = pd.Timestamp(t_min).normalize()
    if hours >= HOURS_PER_WEEK:
        anchor -= pd.Timedelta(days=anchor.day_of_week)  # Monday is 0
    return anchor


def window_starts(t_min: Any, t_max: Any, window_hours: int) -> pd.DatetimeIndex:
    """Starts of the consecutive windows that cover [t_min, t_max] (both inclusive).

    The first start is window_anchor(t_min, window_hours); the last window contains t_max.
    Times are naive local datetimes; arithmetic is in plain hours, so a DST day is still 24 h.
    Raises ValueError when t_max < t_min or window_hours is not allowed.
    """
    hours = check_window_hours(window_hours)
    t_min, t_max = pd.Timestamp(t_min), pd.Timestamp(t_max)
    if t_max < t_min:
        raise ValueError(f"t_max {t_max} is before t_min {t_min}")
    anchor = window_anchor(t_min, hours)
    step = pd.Timedelta(hours=hours)
    n_windows = int((t_max - anchor) // step) + 1
    return pd.date_range(start=anchor, periods=n_windows, freq=step)


def _to_int64_ns(times: Any) -> tuple[np.ndarray, np.ndarray]:
    """Datetimes (any resolution, Series/Index/array) -> (int64 ns since epoch, valid mask)."""
    values = np.asarray(times)
    if not np.issubdtype(values.dtype, np.datetime64):
        values = pd.to_datetime(values).to_numpy()
    values = values.astype("datetime64[ns]", copy=False)
    valid = ~np.isnat(values)
    return values.view(np.int64), valid


def count_tensor_from_cells(
    cell_ids: Any,
    occurred_at: Any,
    n_cells_shape: tuple[int, int],
    start: Any,
    window_hours: int,
    n_windows: int,
) -> np.ndarray:
    """Events per (window, row, col) from precomputed flat cell ids.

    cell_ids:      (events,) int, -1 for outside the grid (ignored)
    occurred_at:   (events,) naive datetimes; NaT ignored
    n_cells_shape: (rows, cols) of the grid
    start:         start of window 0; window w covers [start + w*h, start + (w+1)*h)
    Events before start or at/after the end of the last window are ignored.
    Returns float32 (n_windows, rows, cols).
    """
    n_rows, n_cols = (int(v) for v in n_cells_shape)
    n_cells = n_rows * n_cols
    hours = check_window_hours(window_hours)
    if n_windows < 0:
        raise ValueError(f"n_windows must be >= 0, got {n_windows}")
    cell_ids = np.asarray(cell_ids, dtype=np.int64)
    t_ns, valid = _to_int64_ns(occurred_at)
    if t_ns.shape != cell_ids.shape:
        raise ValueError(f"{len(cell_ids)} cell ids but {len(t_ns)} times")
    start_ns = pd.Timestamp(start).as_unit("ns").value
    window_ns = hours * 3_600_000_000_000
    # NaT is int64 min: masked before subtracting so it cannot wrap round into range.
    offset_ns = np.where(valid, t_ns, start_ns) - start_ns
    window_idx = offset_ns // window_ns  # floor division: negative offsets -> negative windows
    keep = valid & (offset_ns >= 0) & (window_idx < n_windows) & (cell_ids >= 0) & (cell_ids < n_cells)
    flat = window_idx[keep] * n_cells + cell_ids[keep]
    # Only the occupied (window, cell) slots are written: a full-size int64 bincount and its
    # float32 copy wrote three times the tensor (a gigabyte at 150 m over four years).
    counts = np.zeros(n_windows * n_cells, dtype=np.float32)
    slots, per_slot = np.unique(flat, return_counts=True)
    counts[slots] = per_slot
    return counts.reshape(n_windows, n_rows, n_cols)  # (windows, rows, cols)


def count_tensor(
    spec: GridSpec,
    occurred_at: Any,
    lat: Any,
    lon: Any,
    start: Any,
    window_hours: int,
    n_windows: int,
) -> np.ndarray:
    """Events per (window, row, col) as float32 (n_windows, n_rows, n_cols).

    Events outside the grid, with NaN coordinates or NaT times, before ``start`` or after the
    last window are ignored. See count_tensor_from_cells for the window arithmetic.
    """
    cell_ids = latlon_to_cell(spec, lat, lon)
    return count_tensor_from_cells(cell_ids, occurred_at, spec.shape, start, window_hours, n_windows)


# ---------------------------------------------------------------------------------------------
# City masks


def history_mask(counts: np.ndarray) -> np.ndarray:
    """(rows, cols) bool: cells with at least one event in counts (windows, rows, cols).

    A 2-D (rows, cols) array is accepted as a single window.
    """
    counts = np.asarray(counts)
    if counts.ndim == 2:
        return counts > 0
    return np.any(counts > 0, axis=0)


def dilate(mask: np.ndarray, n_cells: int = 1) -> np.ndarray:
    """(rows, cols) bool grown by n_cells in all 8 directions (a square structuring element)."""
    out = np.asarray(mask, dtype=bool).copy()
    for _ in range(n_cells):
        grown = out.copy()
        grown[1:, :] |= out[:-1, :]
        grown[:-1, :] |= out[1:, :]
        rows_grown = grown.copy()
        grown[:, 1:] |= rows_grown[:, :-1]
        grown[:, :-1] |= rows_grown[:, 1:]
        out = grown
    return out


def boundary_mask(spec: GridSpec, geojson: dict[str, Any]) -> np.ndarray:
    """(rows, cols) bool: cells whose centre lies inside any Polygon/MultiPolygon of geojson.

    geojson: a FeatureCollection (or a single Feature / geometry) in WGS84 [lon, lat].
    Holes are honoured; overlapping polygons are united. Points and lines are ignored, so a
    collection without polygons gives an all-False mask.
    """
    lat, lon = cell_centres(spec)
    inside = points_in_geojson(lon, lat, geojson)
    return inside.reshape(spec.shape)


def city_mask(spec: GridSpec, counts: np.ndarray, geojson: dict[str, Any] | None = None) -> np.ndarray:
    """(rows, cols) bool of the cells that are 'the city' for training and scoring.

    With a boundary GeoJSON: boundary_mask. Without: cells with any event in counts
    (windows, rows, cols), grown by one cell so quiet cells next to busy ones count too.
    """
    if geojson is not None:
        return boundary_mask(spec, geojson)
    return dilate(history_mask(counts), 1)
