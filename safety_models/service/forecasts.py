"""What the risk map and the Overview show, computed when a model is made or data arrives and
kept on disk, so that a page visit only reads it (no streamlit here).

    data_version  changes whenever a category's incidents do (an upload, a removal)
    refresh       compute and save a model's forecasts for the data as they are now
    load          the saved forecasts of a model for the data now (computed first if missing)
    cell_history  a clicked cell's history, the model's chances read from its forecasts
    model_ready   after a model became a category's active one: its forecasts, its evaluation

One `Forecasts` per model version and data version:
    next_window  workflows.predict_category's table for the window after the data (for a
                 horizon model: the horizon's days from that window on)
    past         the latest PLAYBACK_DAYS of windows, each forecast from the windows before it
                 only (as the backtest forecasts): every city cell's chance, and the
                 incidents that then happened there (over the horizon, for a horizon model:
                 the latest forecasts whose whole horizon lies in the data)
    places       per city cell, the place text (block, street, address) most frequent among
                 its own incidents, where the files had one
    history      (a next-window model's) its chance per city cell for the windows a clicked
                 cell's history shows (workflows.history_probabilities), so that a click only
                 reads the cell's counts (cell_history)
Files: home/forecasts/<model_id>/<data_version>/ (next.parquet, past.npz, places.parquet,
meta.json), written to a temporary folder and renamed into place, so a reader never sees half
a bundle; older data versions of the model are removed.

The category's active model and each of its horizon models (7/14/30/60/90 days) have their own
bundle. Jobs call model_ready (service.jobs) for a new active or horizon model,
operations.after_upload calls refresh_category when a file is loaded, and the dashboard calls load through its cache. This module sits after workflows (it uses its steps) and
before jobs and operations.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from safety_models import grid as gridlib
from safety_models import paths
from safety_models.errors import NotReady
from safety_models.modeling import registry
from safety_models.schema import check_category
from safety_models.service import workflows

FORECASTS_DIR = "forecasts"            # under the home folder
# How far the map's look-back reaches: eight weeks of daily windows, half a year of weekly ones.
PLAYBACK_DAYS = {"daily": 56, "weekly": 182}
RECENT_DAYS = workflows.RECENT_DAYS    # events_last_30d, as predict_category counts them


def playback_windows(window_hours: int) -> int:
    days = PLAYBACK_DAYS["weekly" if window_hours >= 168 else "daily"]
    return max(1, int(round(days * 24 / window_hours)))


@dataclass(frozen=True, eq=False)
class Forecasts:
    """A model's forecasts for one version of the data (see the module doc).

    past_starts (K,) window starts, oldest first; cell_ids (cells,) the city cells
    (row * n_cols + col); past_probability (K, cells) float32 chance of at least one
    incident; past_events (K, cells) int32 incidents that happened in the window;
    past_recent (K, cells) int32 incidents in the RECENT_DAYS before the window.
    places: DataFrame cell_id, place (only cells that have one).
    blend: the version's validation-chosen mix ({candidate: weight}: "network", "base_rate",
    a baseline's name), {} when it ships its network (or starting forecast) alone.
    horizon_windows: windows each forecast covers (1: the next window; 7 for a 7-day horizon
    of daily windows): past_probability is the chance of at least one incident over them and
    past_events the incidents of all of them.
    history_probability: (windows, cells) float64, the model's chance in each of the windows
    workflows.history_window_indices names (the latest HISTORY_PREDICTED_WINDOWS); None for
    a horizon model and for forecasts saved before it was kept.
    """

    category: str
    model_id: str
    data_version: str
    forecaster: str
    window_hours: int
    computed_at: str
    next_window: pd.DataFrame
    past_starts: pd.DatetimeIndex
    cell_ids: np.ndarray
    past_probability: np.ndarray
    past_events: np.ndarray
    past_recent: np.ndarray
    places: pd.DataFrame
    blend: dict = field(default_factory=dict)
    horizon_windows: int = 1
    history_probability: np.ndarray | None = None

    @property
    def n_past(self) -> int:
        return len(self.past_starts)

    def past_window(self, index: int) -> pd.DataFrame:
        """Past window `index` (0 = oldest, -1 = latest) as a ranked table like
        predict_category's (expected_count NaN: only the chance is kept), plus `happened`:
        the incidents recorded in the cell during the window."""
        index = range(self.n_past)[index]
        table = self.next_window[["cell_id", "row", "col", "lat", "lon"]].set_index("cell_id")
        table = table.loc[self.cell_ids].reset_index()
        table["probability"] = self.past_probability[index].astype(np.float64)
        table["expected_count"] = np.nan
        table["events_last_30d"] = self.past_recent[index].astype(np.int64)
        table["happened"] = self.past_events[index].astype(np.int64)
        start = self.past_starts[index]
        table = rank_cells(table)
        table["model_id"] = self.model_id
        table["window_start"] = pd.Series(start, index=table.index, dtype="datetime64[ns]")
        table["window_end"] = pd.Series(start + pd.Timedelta(hours=self.window_hours
                                                             * self.horizon_windows),
                                        index=table.index, dtype="datetime64[ns]")
        return table


def rank_cells(table: pd.DataFrame) -> pd.DataFrame:
    """Highest chance first (ties by expected count, then cell id), with rank and risk_level
    as predict_category gives them."""
    table = table.sort_values(["probability", "expected_count", "cell_id"],
                              ascending=[False, False, True], kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1, dtype=np.int64)
    table["risk_level"] = pd.array(workflows.risk_level(table["rank"].to_numpy(), len(table)),
                                   dtype="str")
    return table


# ---------------------------------------------------------------------------------------------
# Data versions and places


def data_version(store: Any, category: str) -> str:
    """A short text that changes whenever the category's incidents change: its uploads (ids
    and accepted counts). Cheap: reads the uploads table only."""
    return version_of(store.list_uploads(), category)


def version_of(uploads: pd.DataFrame, category: str) -> str:
    """data_version from a listing of the uploads (Store.list_uploads) already read."""
    mine = uploads[uploads["category"] == check_category(category)]
    if mine.empty:
        return "none"
    return f"u{int(mine['upload_id'].max())}-n{len(mine)}-i{int(mine['accepted'].sum())}"


def places_per_cell(places: pd.DataFrame, spec: Any, cell_ids: np.ndarray) -> pd.DataFrame:
    """The most frequent place text among each cell's incidents (ties: the first in
    alphabetical order): DataFrame cell_id, place, for the cells of cell_ids that have one.
    places: latitude, longitude, place (Store.incident_places)."""
    if places.empty:
        return pd.DataFrame({"cell_id": pd.Series(dtype="int64"), "place": pd.Series(dtype="str")})
    cells = gridlib.latlon_to_cell(spec, places["latitude"], places["longitude"])
    table = pd.DataFrame({"cell_id": cells, "place": places["place"].astype(str).to_numpy()})
    table = table[np.isin(table["cell_id"], cell_ids) & (table["place"] != "")]
    counts = table.groupby(["cell_id", "place"], sort=True).size().rename("n").reset_index()
    best = counts.sort_values(["cell_id", "n", "place"], ascending=[True, False, True],
                              kind="stable").drop_duplicates("cell_id")
    return best[["cell_id", "place"]].astype({"cell_id": "int64"}).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Computing and saving


def _model_dir(model_id: str) -> Path:
    return paths.sub_dir(FORECASTS_DIR) / model_id


def past_forecast_indices(n_windows: int, horizon_windows: int, n_past: int) -> np.ndarray:
    """The window indices t of the look-back: the latest (at most n_past) forecasts whose
    whole horizon (windows t .. t + horizon_windows - 1) lies in the data's n_windows, each
    with at least one window before it; oldest first, empty when there is none."""
    h = max(1, int(horizon_windows))
    last = n_windows - h                              # the latest t whose horizon is complete
    first = max(1, last - max(0, int(n_past)) + 1)
    return np.arange(first, last + 1, dtype=np.int64)


def refresh(store: Any, category: str, model_id: str | None = None) -> Forecasts:
    """Compute a model's forecasts (the category's active model by default; any of its
    versions, a horizon model included) for the data as they are now and save them; returns
    them. NotReady without a model or incidents."""
    from safety_models.evaluation.backtest import horizon_counts, model_probabilities
    from safety_models.modeling.city import model_city
    from safety_models.modeling.forecaster import blend_of, horizon_windows_of

    category = check_category(category)
    model_id = model_id or registry.active_model_id(store, category)
    if model_id is None:
        raise NotReady(f"there is no {category} model yet")
    version = data_version(store, category)
    next_window = workflows.predict_category(store, category, model_id=model_id)
    model, checkpoint = registry.load_model(store, model_id)
    city = model_city(store, category, checkpoint)
    h = horizon_windows_of(checkpoint)
    t_indices = past_forecast_indices(city.n_windows, h, playback_windows(city.window_hours))
    rows, cols = np.nonzero(city.mask)                                  # (cells,) each
    cell_ids = (rows * city.grid.n_cols + cols).astype(np.int64)
    if len(t_indices):
        probability = model_probabilities(model, checkpoint, city, t_indices)  # (K, H, W)
        happened = horizon_counts(city.counts, t_indices, h)            # (K, H, W)
    else:
        probability = happened = np.zeros((0,) + city.mask.shape)
    history = None                                                      # (N, H, W)
    if h == 1:
        # daily windows: the look-back's windows are the history's, computed the same way
        same = np.array_equal(t_indices, workflows.history_window_indices(city.n_windows))
        history = probability if same else workflows.history_probabilities(model, checkpoint,
                                                                           city)
    cumulative = np.concatenate([np.zeros((1,) + city.mask.shape, np.float64),
                                 np.cumsum(city.counts, axis=0, dtype=np.float64)])
    recent_windows = max(1, int(round(RECENT_DAYS * 24 / city.window_hours)))
    recent = cumulative[t_indices] - cumulative[np.maximum(t_indices - recent_windows, 0)]
    forecasts = Forecasts(
        category=category, model_id=model_id, data_version=version,
        forecaster=workflows.forecaster_of(checkpoint), window_hours=int(city.window_hours),
        computed_at=datetime.now().isoformat(timespec="seconds"), next_window=next_window,
        past_starts=pd.DatetimeIndex(city.starts[t_indices]), cell_ids=cell_ids,
        past_probability=probability[:, rows, cols].astype(np.float32),
        past_events=np.rint(happened[:, rows, cols]).astype(np.int32),
        past_recent=np.rint(recent[:, rows, cols]).astype(np.int32),
        places=places_per_cell(store.incident_places(category), city.grid, cell_ids),
        blend={} if blend_of(checkpoint).network_only else dict(blend_of(checkpoint).weights),
        horizon_windows=h,
        history_probability=None if history is None else history[:, rows, cols].astype(np.float64))
    _save(forecasts)
    return forecasts


def _save(forecasts: Forecasts) -> None:
    folder = _model_dir(forecasts.model_id)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        forecasts.next_window.to_parquet(tmp / "next.parquet", index=False)
        forecasts.places.to_parquet(tmp / "places.parquet", index=False)
        history = {} if forecasts.history_probability is None else \
            {"history": forecasts.history_probability}
        np.savez(tmp / "past.npz", starts=forecasts.past_starts.asi8, cell_ids=forecasts.cell_ids,
                 probability=forecasts.past_probability, events=forecasts.past_events,
                 recent=forecasts.past_recent, **history)
        meta = {"category": forecasts.category, "model_id": forecasts.model_id,
                "data_version": forecasts.data_version, "forecaster": forecasts.forecaster,
                "window_hours": forecasts.window_hours, "computed_at": forecasts.computed_at,
                "blend": forecasts.blend, "horizon_windows": forecasts.horizon_windows}
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        target = folder / forecasts.data_version
        if target.exists():
            shutil.rmtree(tmp, ignore_errors=True)       # another process saved it first
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in folder.iterdir():                           # older data versions of the model
        if old.name != forecasts.data_version and not old.name.startswith(".tmp-"):
            shutil.rmtree(old, ignore_errors=True)


def _read(folder: Path) -> Forecasts:
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    with np.load(folder / "past.npz") as past:
        arrays = {name: past[name] for name in past.files}
    return Forecasts(
        category=meta["category"], model_id=meta["model_id"],
        data_version=meta["data_version"], forecaster=meta["forecaster"],
        window_hours=int(meta["window_hours"]), computed_at=meta["computed_at"],
        next_window=pd.read_parquet(folder / "next.parquet"),
        past_starts=pd.DatetimeIndex(arrays["starts"].astype("datetime64[ns]")),
        cell_ids=arrays["cell_ids"], past_probability=arrays["probability"],
        past_events=arrays["events"], past_recent=arrays["recent"],
        places=pd.read_parquet(folder / "places.parquet"), blend=dict(meta.get("blend") or {}),
        horizon_windows=int(meta.get("horizon_windows") or 1),
        history_probability=arrays.get("history"))


def cell_history(store: Any, category: str, cell_id: int, forecasts: Forecasts) -> pd.DataFrame:
    """workflows.cell_history of the forecasts' model (the map's clicked cell), with the
    model's chances read from the forecasts (saved when they were computed) instead of
    running the model on every click; a cell outside the city, or forecasts saved without
    them, run it as before."""
    predicted = None
    if forecasts.history_probability is not None:
        where = np.flatnonzero(forecasts.cell_ids == int(cell_id))
        if len(where):
            predicted = forecasts.history_probability[:, where[0]]
    return workflows.cell_history(store, category, cell_id, model_id=forecasts.model_id,
                                  predicted=predicted)


def known_forecaster(model_id: str) -> str | None:
    """The forecaster of a model whose forecasts were saved (for any data version), read from
    their meta.json without computing anything; None when none were saved."""
    folder = paths.home_dir() / FORECASTS_DIR / model_id
    for meta in sorted(folder.glob("*/meta.json")) if folder.is_dir() else []:
        try:
            return str(json.loads(meta.read_text(encoding="utf-8"))["forecaster"])
        except (OSError, ValueError, KeyError):
            continue
    return None


def load(store: Any, category: str, model_id: str, version: str | None = None) -> Forecasts:
    """The saved forecasts of model_id for the data now (version: data_version, when the
    caller has it), computing and saving them first when there are none (a model promoted
    by hand, data loaded from the command line)."""
    version = version or data_version(store, category)
    folder = _model_dir(model_id) / version
    if (folder / "meta.json").exists():
        try:
            return _read(folder)
        except (OSError, ValueError, KeyError):
            pass                                            # unreadable: compute again
    return refresh(store, category, model_id)


# ---------------------------------------------------------------------------------------------
# When models and data change


def category_models(store: Any, category: str) -> list[str]:
    """The model ids whose forecasts the dashboard shows for a category: the active model
    (the next window) first, then the model of each horizon it has (7/14/30/60/90 days)."""
    ids = [registry.active_model_id(store, category)]
    ids += [workflows.horizon_model_id(store, category, h)
            for h in workflows.available_horizons(store, category)]
    return list(dict.fromkeys(i for i in ids if i is not None))


def refresh_category(store: Any, category: str) -> list[str]:
    """refresh for every model the dashboard shows of the category (category_models), after
    its data changed; returns their ids (none without an active model or incidents)."""
    if store.time_range(category) is None:
        return []
    model_ids = category_models(store, category)
    for model_id in model_ids:
        refresh(store, category, model_id)
    return model_ids


def model_ready(store: Any, category: str, model_id: str) -> None:
    """After model_id became the category's active model, or its model for a horizon:
    compute its forecasts (the map is ready at once), then backtest a network that has no
    saved evaluation yet (a starting forecast gets its quick one from the workflow that made
    it). A city too short for a test period (or the horizon) stays unevaluated."""
    from safety_models.evaluation import backtest

    made = refresh(store, category, model_id)
    if made.forecaster != workflows.STARTING_FORECASTER and \
            backtest.load_evaluation(model_id) is None:
        try:
            backtest.evaluate_category(store, category, model_id)
        except NotReady:
            pass
