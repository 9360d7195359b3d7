"""A category's history as the models see it: its incidents binned on its grid (`CityData`).

    category_grid  the grid a category's models share (active model's, else the recorded one)
    known_grid     a grid of a given cell size the category already uses
    record_grid    remember a category's grid (meta ``grid:<category>``)
    choose_grid    a new grid: where its lines fall chosen on the validation period
    prepare_city   store -> CityData on the category's grid (or a new one)
    model_city     store + checkpoint -> CityData on that model's own grid, windows and mask
    data_fingerprint  a text that changes whenever a category's incidents do

The grid of a category is FIXED once its first model is trained: it is recorded under the
meta key ``grid:<category>`` and reused, so every version of a category shares one grid and
their maps and scores compare cell for cell. Asking for another cell size explicitly makes a
new grid (and reuses it when asked for again).

Where a new grid's lines fall is chosen (choose_grid): a hot spot cut by a cell corner is
spread over four cells, and a flagged area of a few cells then catches less of it. The grid
fitted to the data is tried as it is and shifted by half a cell east, north and both; the
placement whose cells, ranked by their training-period counts, catch the most of the
validation period's events in the top cells filling 1 % and 5 % of the fitted grid's city
(fixed areas: a shifted grid's city has a few more or fewer cells) wins, by at least
GRID_OFFSET_MIN_GAIN; the test period is never read.

model_city keeps the count tensor it builds in the home (cities/, one file per category, grid
and window length, named by the data's fingerprint): the risk map's reads (a cell's history,
a past date's forecast) would otherwise read every incident on each visit (half a minute at
ten million). The file is made when a model's forecasts are computed (a model made, data
loaded: service.forecasts.refresh) and is used only while the category's uploads are those
it was made from; files of other uploads are removed when a new one is saved.

Training (service.workflows.train_category), the pretrained base (modeling.pretrained), the
backtest and the study all build their inputs here, so this module sits below the service
layer and below evaluation.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from safety_models import grid as gridlib
from safety_models import paths
from safety_models.errors import NotReady
from safety_models.files import write_atomic
from safety_models.grid import GridSpec
from safety_models.modeling import registry
from safety_models.schema import DEFAULT_CELL_SIZE_M, DEFAULT_WINDOW_HOURS, check_category


def grid_meta_key(category: str) -> str:
    """The store's meta key under which a category's grid is recorded."""
    return f"grid:{category}"


@dataclass(frozen=True, eq=False)
class CityData:
    """One category's history on its grid.

    counts: (windows, rows, cols) float32 events per window and cell
    starts: DatetimeIndex of the window starts (len == counts.shape[0]), naive local
    mask:   (rows, cols) bool, the cells that are the city (trained on, scored, shown)
    boundary: the district outlines used for the mask (GeoJSON), None when there are none
    """

    category: str
    grid: GridSpec
    window_hours: int
    starts: pd.DatetimeIndex
    counts: np.ndarray
    mask: np.ndarray
    boundary: dict | None = None

    @property
    def n_windows(self) -> int:
        return int(self.counts.shape[0])

    @property
    def data_end(self) -> pd.Timestamp:
        """End of the last window (the next window starts here)."""
        return self.starts[-1] + pd.Timedelta(hours=self.window_hours)


# ---------------------------------------------------------------------------------------------
# Grids


def category_grid(store: Any, category: str) -> GridSpec | None:
    """The grid a category's models share: the active model's, else the recorded one
    (meta ``grid:<category>``), else None (no model trained yet)."""
    model_id = registry.active_model_id(store, category)
    if model_id is not None:
        spec = registry.model_info(store, model_id).get("grid")
        if spec:
            return GridSpec.from_dict(spec)
    text = store.get_meta(grid_meta_key(category))
    return GridSpec.from_dict(json.loads(text)) if text else None


def known_grid(store: Any, category: str, cell_size_m: float) -> GridSpec | None:
    """A grid of this cell size that the category already uses: the category grid, the
    recorded one, else the newest model's of that size; None when there is none (then a new
    grid is fitted). Reusing it keeps versions of one cell size comparable cell for cell."""
    candidates = [category_grid(store, category)]
    text = store.get_meta(grid_meta_key(category))
    if text:
        candidates.append(GridSpec.from_dict(json.loads(text)))
    models = registry.list_models(store, category)
    candidates += [GridSpec.from_dict(g) for g in models["grid"] if g]
    for spec in candidates:
        if spec is not None and math.isclose(spec.cell_size_m, float(cell_size_m)):
            return spec
    return None


def record_grid(store: Any, category: str, spec: GridSpec) -> None:
    """Record spec as the category's grid (what category_grid falls back to)."""
    store.set_meta(grid_meta_key(category), json.dumps(spec.to_dict()))


# Grid placements tried for a new grid: (east, north) shifts in cells; the first is the
# fitted grid, kept unless another catches GRID_OFFSET_MIN_GAIN more of the validation events.
GRID_OFFSETS_CELLS: tuple[tuple[float, float], ...] = ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5))
GRID_OFFSET_MIN_GAIN = 0.005         # in hit rate at 1 % + at 5 % (shares of the events)
GRID_OFFSET_COVERAGES = (0.01, 0.05)  # ... of the fitted grid's city, as fixed areas


def placement_score(counts: np.ndarray, mask: np.ndarray, train_end: int, val_end: int,
                    areas_km2: Sequence[float], cell_size_m: float) -> float:
    """How well a grid's cells hold the hot spots (pure): city cells (mask) ranked by their
    events in windows [0, train_end); the sum over areas_km2 of the share of the events of
    windows [train_end, val_end) in the top cells filling that area (metrics.hit_rate_area).
    Fixed areas, not shares of the city: a shifted grid's city has a few more or fewer cells.
    NaN when validation has no events."""
    from safety_models.evaluation.metrics import hit_rate_area

    ranking = counts[:train_end].sum(axis=0).ravel()                 # one window: (cells,)
    observed = counts[train_end:val_end].sum(axis=0).ravel()
    return float(sum(hit_rate_area(ranking, observed, area, cell_size_m, mask) for area in areas_km2))


def grid_placements(category: str, incidents: pd.DataFrame, cell_size_m: float, window_hours: int,
                    boundary: dict | None = None) -> list[dict]:
    """Each placement of GRID_OFFSETS_CELLS for a new grid of cell_size_m over incidents:
    [{"east_cells", "north_cells", "grid" (GridSpec), "score" (placement_score)}], in that
    order, all scored on the areas of GRID_OFFSET_COVERAGES of the fitted grid's city. The
    windows are split as training splits them by default (the category's own TrainConfig):
    the ranking reads the training windows, the score the validation windows, nothing reads
    the test period. Scores are NaN when the history is too short to split."""
    from safety_models.features import FeatureConfig
    from safety_models.modeling.training import TrainConfig, split_windows

    fitted = gridlib.fit_grid(incidents["latitude"], incidents["longitude"], float(cell_size_m))
    starts = gridlib.window_starts(incidents["occurred_at"].min(), incidents["occurred_at"].max(),
                                   window_hours)
    cell_km2 = (float(cell_size_m) / 1000.0) ** 2
    rows: list[dict] = []
    split: tuple = ()
    areas_km2: list[float] = []
    for east, north in GRID_OFFSETS_CELLS:
        spec = gridlib.shifted_grid(fitted, east, north)
        counts = gridlib.count_tensor(spec, incidents["occurred_at"], incidents["latitude"],
                                      incidents["longitude"], starts[0], window_hours, len(starts))
        if not rows:
            try:
                split = split_windows(counts, TrainConfig(category=category, window_hours=window_hours),
                                      FeatureConfig(window_hours=window_hours))
            except NotReady:
                split = ()
        score = math.nan
        if split:
            _, train_end, val_end, _ = split
            mask = _city_mask(spec, counts[:train_end], boundary)
            if not rows:
                areas_km2 = [coverage * int(mask.sum()) * cell_km2 for coverage in GRID_OFFSET_COVERAGES]
            score = placement_score(counts, mask, train_end, val_end, areas_km2, cell_size_m)
        rows.append({"east_cells": east, "north_cells": north, "grid": spec, "score": score})
    return rows


def choose_grid(category: str, incidents: pd.DataFrame, cell_size_m: float, window_hours: int,
                boundary: dict | None = None) -> GridSpec:
    """A new grid of cell_size_m for a category's incidents: the placement of grid_placements
    with the best validation score when it beats the fitted grid's by GRID_OFFSET_MIN_GAIN,
    else the fitted grid."""
    return pick_placement(grid_placements(category, incidents, cell_size_m, window_hours, boundary))


def pick_placement(rows: Sequence[dict]) -> GridSpec:
    """The grid of grid_placements' rows that choose_grid takes (pure): the best-scoring
    shift when it beats the fitted grid (the first row) by GRID_OFFSET_MIN_GAIN, else the
    fitted grid."""
    fitted, *shifted = rows
    scored = [row for row in shifted if not math.isnan(row["score"])]
    best = max(scored, key=lambda row: row["score"], default=None)
    if best is not None and best["score"] > fitted["score"] + GRID_OFFSET_MIN_GAIN:
        return best["grid"]
    return fitted["grid"]


def _as_spec(spec: GridSpec | Mapping) -> GridSpec:
    return spec if isinstance(spec, GridSpec) else GridSpec.from_dict(dict(spec))


# ---------------------------------------------------------------------------------------------
# Cities


def _city_from_incidents(category: str, spec: GridSpec, window_hours: int,
                         incidents: pd.DataFrame, boundary: dict | None,
                         mask: np.ndarray | None = None) -> CityData:
    starts = gridlib.window_starts(incidents["occurred_at"].min(), incidents["occurred_at"].max(),
                                   window_hours)
    counts = gridlib.count_tensor(spec, incidents["occurred_at"], incidents["latitude"],
                                  incidents["longitude"], starts[0], window_hours, len(starts))
    if mask is None:
        mask = _city_mask(spec, counts, boundary)
    return CityData(category=category, grid=spec, window_hours=int(window_hours), starts=starts,
                    counts=counts, mask=np.asarray(mask, dtype=bool), boundary=boundary)


def _city_mask(spec: GridSpec, counts: np.ndarray, boundary: dict | None) -> np.ndarray:
    mask = gridlib.city_mask(spec, counts, boundary)
    if not mask.any():
        # Outlines that miss the grid (another city's file) must not blank the map.
        mask = gridlib.city_mask(spec, counts, None)
    return mask


def incidents_or_raise(store: Any, category: str) -> pd.DataFrame:
    """store.incidents(category); NotReady, saying how to load some, when there are none."""
    incidents = store.incidents(category)
    if incidents.empty:
        raise NotReady(f"there are no {category} incidents in this home yet; load a file on the "
                       f"Data page or with `python -m safety_models ingest FILE --category "
                       f"{category}`")
    return incidents


def prepare_city(store: Any, category: str, cell_size_m: float | None = None,
                 window_hours: int | None = None, grid: GridSpec | Mapping | None = None) -> CityData:
    """The category's incidents binned on its grid.

    cell_size_m: None -> the category's grid (see category_grid), or a new one of
        DEFAULT_CELL_SIZE_M when no model was trained yet; a size -> the grid of that size
        the category already uses (see known_grid), else a new grid fitted to the data and
        placed on its validation period (choose_grid).
    window_hours: None -> DEFAULT_WINDOW_HOURS[category].
    grid: use exactly this grid (e.g. a model's own); overrides cell_size_m.
    Raises NotReady when the category has no incidents.
    """
    category = check_category(category)
    hours = gridlib.check_window_hours(window_hours or DEFAULT_WINDOW_HOURS[category])
    incidents = incidents_or_raise(store, category)
    boundary = store.boundary(category)
    if grid is not None:
        spec = _as_spec(grid)
    elif cell_size_m is None:
        spec = category_grid(store, category)
    else:
        spec = known_grid(store, category, float(cell_size_m))
    if spec is None:
        spec = choose_grid(category, incidents, float(cell_size_m or DEFAULT_CELL_SIZE_M), hours, boundary)
    return _city_from_incidents(category, spec, hours, incidents, boundary)


def model_city(store: Any, category: str, checkpoint: Mapping[str, Any],
               incidents: pd.DataFrame | None = None) -> CityData:
    """The category's data now, on a model's own grid, window length and city cells (the
    cells the model was trained and validated on: new data must not move them).
    incidents: the category's incidents when the caller already read them. Without them,
    the counts kept for the data now are read when there are some (see the module doc);
    otherwise every incident is read and the counts are kept for the next call."""
    hours = window_hours_of(checkpoint, category)
    spec = GridSpec.from_dict(checkpoint["grid"])
    mask = checkpoint.get("mask")
    if mask is not None:
        mask = np.asarray(mask.numpy() if hasattr(mask, "numpy") else mask, dtype=bool)
    boundary = store.boundary(category)
    if incidents is not None:
        return _city_from_incidents(category, spec, hours, incidents, boundary, mask=mask)
    # The fingerprint before the incidents: an upload committed in between then makes the
    # kept file one nobody asks for, never a file of older data under the newer name.
    path = counts_path(category, data_fingerprint(store.list_uploads(), category), spec, hours)
    kept = _read_counts(path)
    if kept is not None:
        starts, counts = kept
        if mask is None:
            mask = _city_mask(spec, counts, boundary)
        return CityData(category=category, grid=spec, window_hours=hours, starts=starts,
                        counts=counts, mask=mask, boundary=boundary)
    city = _city_from_incidents(category, spec, hours, incidents_or_raise(store, category),
                                boundary, mask=mask)
    _keep_counts(path, city)
    return city


# ---------------------------------------------------------------------------------------------
# Kept counts

CITIES_DIR = "cities"     # under the home folder


def data_fingerprint(uploads: pd.DataFrame, category: str) -> str:
    """A short hex text that changes whenever the category's incidents do, from a listing of
    the uploads (Store.list_uploads): each of its uploads' id, file checksum and accepted
    count. Every incident arrives with an upload and leaves with it, upload ids are never
    reused, and the checksum tells another database's upload #1 from this one's."""
    mine = uploads[uploads["category"] == check_category(category)]
    text = json.dumps(sorted(zip(mine["upload_id"].astype(int).tolist(),
                                 mine["checksum"].astype(str).tolist(),
                                 mine["accepted"].astype(int).tolist())))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def counts_path(category: str, fingerprint: str, spec: GridSpec, window_hours: int) -> Path:
    """Where model_city keeps the counts of a category's data (fingerprint) on one grid and
    window length: home/cities/<category>-<fingerprint>-<grid and window digest>.npz."""
    grid_text = json.dumps({**spec.to_dict(), "window_hours": int(window_hours)}, sort_keys=True)
    digest = hashlib.sha1(grid_text.encode()).hexdigest()[:16]
    return paths.home_dir() / CITIES_DIR / f"{check_category(category)}-{fingerprint}-{digest}.npz"


def _read_counts(path: Path) -> tuple[pd.DatetimeIndex, np.ndarray] | None:
    """(starts, counts) kept at path, or None when there is no (readable) file."""
    try:
        with np.load(path) as kept:
            starts = pd.DatetimeIndex(kept["starts_ns"].astype("datetime64[ns]"))
            counts = kept["counts"]
    except (OSError, ValueError, KeyError):
        return None
    if counts.ndim != 3 or len(starts) != counts.shape[0]:
        return None
    return starts, counts


def _keep_counts(path: Path, city: CityData) -> None:
    """Save city's window starts and counts at path (atomically), then remove the category's
    files of other data (older uploads). A home that cannot be written only loses the
    speed-up: the counts are made again on the next call."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda fh: np.savez(fh, starts_ns=city.starts.asi8,
                                               counts=city.counts))
    except OSError:
        return
    category, fingerprint = path.name.split("-")[:2]
    for old in path.parent.glob(f"{category}-*.npz"):
        if not old.name.startswith(f"{category}-{fingerprint}-"):
            old.unlink(missing_ok=True)


def window_hours_of(checkpoint: Mapping[str, Any], category: str) -> int:
    """The window length a checkpoint was trained on (its feature or train config), else the
    category's default."""
    for key in ("feature_config", "train_config"):
        hours = (checkpoint.get(key) or {}).get("window_hours")
        if hours:
            return int(hours)
    return DEFAULT_WINDOW_HOURS[category]
