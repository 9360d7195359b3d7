"""The steps the command line, the job runner and the dashboard share (no streamlit here).

    prepare_city      store -> CityData: the category's grid, count tensor and city mask
    ensure_pretrained the product's own base model (synthetic cities + every stored category)
    train_category    CityData + TrainConfig -> a new model version in the registry
    predict_category  a model's risk for one window (or the next 7/14/30/90 days), one row per city cell, ranked
    available_horizons the horizons a category has a model for
    cell_history      events per window for one cell (the map's click-through)
    bootstrap         pretrain, then a first model for every category that has data
    first_start       on an empty home: demo data and one background bootstrap job
    attention_items   what an operator should act on (no model, stale model, failed job)

The grid of a category is FIXED once its first model is trained: it is recorded under the
meta key ``grid:<category>`` and reused, so every version of a category shares one grid and
their maps and scores compare cell for cell. Asking for another cell size explicitly makes a
new grid; continuing from a model on another grid raises GridMismatch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from safety_models import grid as gridlib
from safety_models.modeling import registry
from safety_models.errors import NotReady, UserError
from safety_models.grid import GridSpec
from safety_models.schema import (CATEGORIES, DEFAULT_CELL_SIZE_M, DEFAULT_WINDOW_HOURS, check_category,
                                  horizon_days)

ProgressFn = Callable[[dict], None]
StopFn = Callable[[], bool]

# Risk levels by rank share among the city's cells: the top 1 % are 'very high', the next
# up to 5 % 'high', up to 20 % 'elevated', the rest 'low' (see risk_level_counts for the
# rounding: every level holds at least one cell, so a small city still shows each level).
RISK_LEVELS: tuple[tuple[str, float], ...] = (("very high", 0.01), ("high", 0.05),
                                              ("elevated", 0.20))
LOWEST_RISK_LEVEL = "low"
RECENT_DAYS = 30                 # events_last_30d
HISTORY_PREDICTED_WINDOWS = 56   # cell_history adds the model's probability for these windows
STALE_AFTER_WINDOWS = 14         # attention: the model has not seen this many newer windows


def _grid_meta_key(category: str) -> str:
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
# Cities


def category_grid(store: Any, category: str) -> GridSpec | None:
    """The grid a category's models share: the active model's, else the recorded one
    (meta ``grid:<category>``), else None (no model trained yet)."""
    model_id = registry.active_model_id(store, category)
    if model_id is not None:
        spec = registry.model_info(store, model_id).get("grid")
        if spec:
            return GridSpec.from_dict(spec)
    text = store.get_meta(_grid_meta_key(category))
    return GridSpec.from_dict(json.loads(text)) if text else None


def known_grid(store: Any, category: str, cell_size_m: float) -> GridSpec | None:
    """A grid of this cell size that the category already uses: the category grid, the
    recorded one, else the newest model's of that size; None when there is none (then a new
    grid is fitted). Reusing it keeps versions of one cell size comparable cell for cell."""
    candidates = [category_grid(store, category)]
    text = store.get_meta(_grid_meta_key(category))
    if text:
        candidates.append(GridSpec.from_dict(json.loads(text)))
    models = registry.list_models(store, category)
    candidates += [GridSpec.from_dict(g) for g in models["grid"] if g]
    for spec in candidates:
        if spec is not None and math.isclose(spec.cell_size_m, float(cell_size_m)):
            return spec
    return None


def _as_spec(spec: GridSpec | dict) -> GridSpec:
    return spec if isinstance(spec, GridSpec) else GridSpec.from_dict(dict(spec))


def _city_from_incidents(category: str, spec: GridSpec, window_hours: int,
                         incidents: pd.DataFrame, boundary: dict | None,
                         mask: np.ndarray | None = None) -> CityData:
    starts = gridlib.window_starts(incidents["occurred_at"].min(), incidents["occurred_at"].max(),
                                   window_hours)
    counts = gridlib.count_tensor(spec, incidents["occurred_at"], incidents["latitude"],
                                  incidents["longitude"], starts[0], window_hours, len(starts))
    if mask is None:
        mask = gridlib.city_mask(spec, counts, boundary)
        if not mask.any():
            # Outlines that miss the grid (another city's file) must not blank the map.
            mask = gridlib.city_mask(spec, counts, None)
    return CityData(category=category, grid=spec, window_hours=int(window_hours), starts=starts,
                    counts=counts, mask=np.asarray(mask, dtype=bool), boundary=boundary)


def _incidents_or_raise(store: Any, category: str) -> pd.DataFrame:
    incidents = store.incidents(category)
    if incidents.empty:
        raise NotReady(f"there are no {category} incidents in this home yet; load a file on the "
                       f"Data page or with `python -m safety_models ingest FILE --category "
                       f"{category}`")
    return incidents


def prepare_city(store: Any, category: str, cell_size_m: float | None = None,
                 window_hours: int | None = None, grid: GridSpec | dict | None = None) -> CityData:
    """The category's incidents binned on its grid.

    cell_size_m: None -> the category's grid (see category_grid), or a new one of
        DEFAULT_CELL_SIZE_M when no model was trained yet; a size -> the grid of that size
        the category already uses (see known_grid), else a new grid fitted to the data.
    window_hours: None -> DEFAULT_WINDOW_HOURS[category].
    grid: use exactly this grid (e.g. a model's own); overrides cell_size_m.
    Raises NotReady when the category has no incidents.
    """
    category = check_category(category)
    hours = gridlib.check_window_hours(window_hours or DEFAULT_WINDOW_HOURS[category])
    incidents = _incidents_or_raise(store, category)
    if grid is not None:
        spec = _as_spec(grid)
    elif cell_size_m is None:
        spec = category_grid(store, category)
    else:
        spec = known_grid(store, category, float(cell_size_m))
    if spec is None:
        spec = gridlib.fit_grid(incidents["latitude"], incidents["longitude"],
                                float(cell_size_m or DEFAULT_CELL_SIZE_M))
    return _city_from_incidents(category, spec, hours, incidents, store.boundary(category))


def model_city(store: Any, category: str, checkpoint: dict,
                incidents: pd.DataFrame | None = None) -> CityData:
    """The category's data on a model's own grid, windows and city mask."""
    hours = _window_hours_of(checkpoint, category)
    incidents = _incidents_or_raise(store, category) if incidents is None else incidents
    mask = checkpoint.get("mask")
    if mask is not None:
        mask = np.asarray(mask.numpy() if hasattr(mask, "numpy") else mask, dtype=bool)
    return _city_from_incidents(category, GridSpec.from_dict(checkpoint["grid"]), hours,
                                incidents, store.boundary(category), mask=mask)


def _window_hours_of(checkpoint: dict, category: str) -> int:
    for key in ("feature_config", "train_config"):
        hours = (checkpoint.get(key) or {}).get("window_hours")
        if hours:
            return int(hours)
    return DEFAULT_WINDOW_HOURS[category]


# ---------------------------------------------------------------------------------------------
# Pretrained base


def ensure_pretrained(store: Any, on_progress: ProgressFn | None = None,
                      force: bool = False, seed: int = 0, should_stop: StopFn | None = None,
                      pretrain_options: dict | None = None) -> str:
    """The id of the active pretrained base model (see pretrained_base)."""
    return pretrained_base(store, on_progress, force, seed, should_stop, pretrain_options)[0]


def pretrained_base(store: Any, on_progress: ProgressFn | None = None,
                    force: bool = False, seed: int = 0, should_stop: StopFn | None = None,
                    pretrain_options: dict | None = None) -> tuple[str, dict]:
    """(id, checkpoint) of the active pretrained base model, pretraining one first when there
    is none, when its input planes are not this version's (base_layout_is_current), or when
    force. The checkpoint read to check the layout is the one returned: callers that train
    from the base do not read it again. Pretraining uses the simulated cities
    (training.synthetic_count_tensors) plus every category stored here on its own grid, so the
    base has seen this city's scale and rhythms. pretrain_options go to training.pretrain (e.g.
    time_budget_s, max_steps). Raises training.Cancelled when should_stop() turns true;
    nothing is saved then."""
    from safety_models.modeling import training

    existing = registry.active_model_id(store, registry.BASE_CATEGORY)
    if existing is not None and not force:
        checkpoint = registry.load_checkpoint(store, existing)
        if base_layout_is_current(checkpoint):
            return existing, checkpoint
    if on_progress is not None:
        on_progress({"stage": "pretrain-data", "fraction": 0.0})
    tensors = list(training.synthetic_count_tensors(seed=seed))
    for category in CATEGORIES:
        if store.time_range(category) is None:
            continue
        city = prepare_city(store, category)
        tensors.append((city.counts, city.starts, city.mask, city.window_hours))
    checkpoint = training.pretrain(tensors, on_progress=on_progress, seed=seed,
                                   should_stop=should_stop, **(pretrain_options or {}))
    base_id = registry.save_base(store, checkpoint)
    return base_id, registry.load_checkpoint(store, base_id)   # as saved (plain types, model_id)


def base_layout_is_current(checkpoint: dict) -> bool:
    """Whether a base checkpoint reads the input planes this version builds by default.

    Models fine-tuned from a base inherit its layout; after an upgrade that adds planes (for
    instance the log and exponentially weighted planes) an older base would hold new models
    back, so a new base is pretrained once. Older models keep working on their own layout."""
    from safety_models.features import FeatureConfig, channel_names

    saved = checkpoint.get("feature_config")
    if not saved:
        return False
    return channel_names(FeatureConfig.from_dict(saved)) == channel_names(FeatureConfig())


# ---------------------------------------------------------------------------------------------
# Training


def _base_state(store: Any, train_cfg: Any, city: CityData,
                on_progress: ProgressFn | None) -> tuple[dict | None, str | None, str | None]:
    """(base checkpoint for fit, base_model_id, parent model id) for train_cfg.base.

    'imagenet' and 'none' pass no checkpoint: fit builds those models itself (and raises
    WeightsMissing, with where to put the file, when the ImageNet weights are absent)."""
    base = str(train_cfg.base)
    if base in ("none", "imagenet"):
        return None, None, None
    if base == "pretrained":
        base_id, checkpoint = pretrained_base(store, on_progress=on_progress)
        return checkpoint, base_id, None
    checkpoint = registry.load_checkpoint(store, base)  # NotReady for an unknown id
    if checkpoint.get("category") == registry.BASE_CATEGORY:
        return checkpoint, base, None                   # a base model named by its id
    if checkpoint.get("category") != city.category:
        raise NotReady(f"{base} is a {checkpoint.get('category')} model; continue a "
                       f"{city.category} model or train from 'pretrained'")
    registry.check_grid(checkpoint, city.grid)
    return checkpoint, checkpoint.get("base_model_id"), base


def train_category(store: Any, train_cfg: Any, on_progress: ProgressFn | None = None,
                   should_stop: StopFn | None = None) -> str:
    """Fine-tune a model for train_cfg.category and save it as a new version; returns its id.

    train_cfg.base: 'pretrained' (pretraining first if needed), 'imagenet' (WeightsMissing
    when the weights file is absent), 'none' (from scratch) or a model id to continue from
    (same grid required: GridMismatch otherwise). The first model of a category becomes
    active; later ones are candidates. A model for a horizon (train_cfg.horizon_days, one of
    schema.HORIZONS) never becomes the active model: it becomes the category's model for that
    horizon (the newest one trained; see horizon_model_id). Nothing is saved when fit raises
    (Cancelled included).
    """
    from safety_models.modeling import training

    category = check_category(train_cfg.category)
    horizon = getattr(train_cfg, "horizon_days", None)
    if horizon:
        horizon_days(f"{int(horizon)}d")            # one of HORIZONS, else ValueError
    base = str(train_cfg.base)
    continuing = base not in ("pretrained", "imagenet", "none")
    grid = None
    if continuing:
        # Continue on the parent's grid unless another cell size was asked for explicitly.
        parent_grid = registry.model_info(store, base).get("grid")
        asked = getattr(train_cfg, "cell_size_m", None)
        if parent_grid and (asked is None
                            or math.isclose(float(asked), float(parent_grid["cell_size_m"]))):
            grid = parent_grid
    city = prepare_city(store, category, cell_size_m=getattr(train_cfg, "cell_size_m", None),
                        window_hours=getattr(train_cfg, "window_hours", None), grid=grid)
    base_checkpoint, base_model_id, parent = _base_state(store, train_cfg, city, on_progress)
    result = training.fit(city.counts, city.starts, city.mask, train_cfg,
                          base_state=base_checkpoint, on_progress=on_progress,
                          should_stop=should_stop, grid=city.grid)
    checkpoint = dict(result.checkpoint())
    checkpoint.update(grid=city.grid.to_dict(), mask=city.mask, parent=parent)
    model_id = registry.save_model(store, checkpoint, category, base_model_id=base_model_id,
                                   activate="never" if horizon else "if-first")
    if horizon:
        registry.set_horizon_model(store, category, int(horizon), model_id)
    if registry.active_model_id(store, category) == model_id or \
            store.get_meta(_grid_meta_key(category)) is None:
        store.set_meta(_grid_meta_key(category), json.dumps(city.grid.to_dict()))
    return model_id


# ---------------------------------------------------------------------------------------------
# Prediction


def risk_level_counts(n_cells: int) -> dict[str, int]:
    """How many of the top-ranked cells each level reaches: ceil(share * n_cells), and at
    least one more than the level above (so a small city still has one cell per level)."""
    reach: dict[str, int] = {}
    previous = 0
    for name, share in RISK_LEVELS:
        previous = min(n_cells, max(previous + 1, math.ceil(share * n_cells)))
        reach[name] = previous
    return reach


def risk_level(rank: np.ndarray, n_cells: int) -> np.ndarray:
    """Risk level names (object array) for ranks 1..n_cells; see RISK_LEVELS."""
    rank = np.asarray(rank)
    levels = np.full(rank.shape, LOWEST_RISK_LEVEL, dtype=object)
    for name, reach in reversed(risk_level_counts(n_cells).items()):
        levels[rank <= reach] = name
    return levels


def _window_index(city: CityData, at: Any) -> int:
    """Index of the window to predict: the next after the data (at=None) or the one that
    contains `at`. Windows 1..n_windows are allowed (window 0 has no history)."""
    if at is None:
        return city.n_windows
    at = pd.Timestamp(at)
    step = pd.Timedelta(hours=city.window_hours)
    t = int((at - city.starts[0]) // step)
    if not 1 <= t <= city.n_windows:
        first = city.starts[0] + step
        raise NotReady(
            f"{at:%Y-%m-%d %H:%M} is outside the {city.category} data: a prediction needs "
            f"the windows before it, so pick a time from {first:%Y-%m-%d %H:%M} to "
            f"{city.data_end + step - pd.Timedelta(seconds=1):%Y-%m-%d %H:%M} (the window "
            f"after the latest data)")
    return t


def _resolve_model_id(store: Any, category: str, model_id: str | None) -> str:
    if model_id is not None:
        return model_id
    model_id = registry.active_model_id(store, category)
    if model_id is None:
        raise NotReady(f"there is no {category} model yet; train one on the Models page or "
                       f"with `python -m safety_models train --category {category}`")
    return model_id


def available_horizons(store: Any, category: str) -> list[str]:
    """The horizons ("7d", "14d", "30d", "90d") the category has a model for, shortest first;
    for the dashboard's horizon choice (the next window, the active model's, is not listed)."""
    return registry.available_horizons(store, category)


def horizon_model_id(store: Any, category: str, horizon: str) -> str:
    """The category's model for a horizon (registry.horizon_model_id): NotReady when none."""
    return registry.horizon_model_id(store, category, horizon)


def predict_category(store: Any, category: str, at: Any = None,
                     model_id: str | None = None, horizon: str | None = None) -> pd.DataFrame:
    """A model's risk for one window (or horizon): one row per city cell, highest risk first.

    at: None -> the window right after the latest data; a date/time -> the window that
        contains it (from the second window of the data to the one after it; else NotReady).
        The forecast uses only the windows before that one.
    model_id: None -> the category's active model (NotReady when there is none).
    horizon: "7d", "14d", "30d" or "90d" -> the category's model for that horizon (unless
        model_id is given): probability of at least one event and expected events over the
        horizon's days from the window's start; window_end is the horizon's end.
    Columns: cell_id (row * n_cols + col), row, col, lat, lon (cell centre, degrees),
    probability (of at least one event), expected_count, events_last_30d (recorded in the 30
    days before window_start), rank (1 = highest probability; ties by expected count, then
    cell id), risk_level (RISK_LEVELS by rank share), model_id, window_start, window_end.
    """
    from safety_models.modeling import forecaster

    from safety_models.modeling.forecaster import horizon_windows_of

    category = check_category(category)
    if model_id is None and horizon is not None:
        model_id = horizon_model_id(store, category, horizon)
    model_id = _resolve_model_id(store, category, model_id)
    model, checkpoint = registry.load_model(store, model_id)
    incidents = _incidents_or_raise(store, category)
    city = model_city(store, category, checkpoint, incidents)
    t = _window_index(city, at)
    # the version's own forecaster: its validation-chosen blend, or the network alone
    forecast = forecaster.forecast_windows(model, checkpoint, city.counts, city.starts, city.grid,
                                           city.mask, [t])
    prob, expected = forecast.prob[0], forecast.expected[0]              # (rows, cols) each
    step = pd.Timedelta(hours=city.window_hours)
    window_start = city.starts[0] + t * step
    spec = city.grid

    rows, cols = np.nonzero(city.mask)                                  # (cells,) each
    cell_ids = rows * spec.n_cols + cols
    lat, lon = gridlib.cell_centres(spec)
    recent = incidents[(incidents["occurred_at"] >= window_start - pd.Timedelta(days=RECENT_DAYS))
                       & (incidents["occurred_at"] < window_start)]
    recent_ids = gridlib.latlon_to_cell(spec, recent["latitude"], recent["longitude"])
    recent_counts = np.bincount(recent_ids[recent_ids >= 0], minlength=spec.n_cells)

    df = pd.DataFrame({
        "cell_id": cell_ids.astype(np.int64),
        "row": rows.astype(np.int64),
        "col": cols.astype(np.int64),
        "lat": lat[cell_ids],
        "lon": lon[cell_ids],
        "probability": np.asarray(prob, dtype=np.float64)[rows, cols],
        "expected_count": np.asarray(expected, dtype=np.float64)[rows, cols],
        "events_last_30d": recent_counts[cell_ids].astype(np.int64),
    })
    df = df.sort_values(["probability", "expected_count", "cell_id"],
                        ascending=[False, False, True], kind="stable").reset_index(drop=True)
    df["rank"] = np.arange(1, len(df) + 1, dtype=np.int64)
    df["risk_level"] = pd.array(risk_level(df["rank"].to_numpy(), len(df)), dtype="str")
    df["model_id"] = model_id
    df["window_start"] = pd.Series(window_start, index=df.index, dtype="datetime64[ns]")
    df["window_end"] = pd.Series(window_start + horizon_windows_of(checkpoint) * step, index=df.index,
                                 dtype="datetime64[ns]")
    return df


def cell_history(store: Any, category: str, cell_id: int,
                 model_id: str | None = None) -> pd.DataFrame:
    """Events per window for one cell of the model's grid (the active model by default; the
    category grid when there is no model yet).

    Columns: window_start, window_end, events, probability (the model's chance of at least
    one event, for the last HISTORY_PREDICTED_WINDOWS windows; NaN before them and without
    a model). Raises ValueError for a cell id outside the grid.
    """
    category = check_category(category)
    if model_id is None:
        model_id = registry.active_model_id(store, category)
    if model_id is not None:
        model, checkpoint = registry.load_model(store, model_id)
        city = model_city(store, category, checkpoint)
    else:
        model = checkpoint = None
        city = prepare_city(store, category)
    spec = city.grid
    if not 0 <= int(cell_id) < spec.n_cells:
        raise ValueError(f"cell {cell_id} is not on this grid (ids 0..{spec.n_cells - 1})")
    row, col = divmod(int(cell_id), spec.n_cols)
    step = pd.Timedelta(hours=city.window_hours)
    probability = np.full(city.n_windows, np.nan)
    if model is not None:
        from safety_models.modeling import forecaster

        t_indices = np.arange(max(1, city.n_windows - HISTORY_PREDICTED_WINDOWS), city.n_windows)
        if len(t_indices):
            prob = forecaster.forecast_windows(model, checkpoint, city.counts, city.starts, city.grid,
                                               city.mask, t_indices).prob  # (N, rows, cols)
            probability[t_indices] = np.asarray(prob)[:, row, col]
    return pd.DataFrame({
        "window_start": city.starts,
        "window_end": city.starts + step,
        "events": city.counts[:, row, col].astype(np.int64),
        "probability": probability,
    })


# ---------------------------------------------------------------------------------------------
# First start and what needs attention


def categories_without_model(store: Any) -> list[str]:
    """Categories that have incidents but no active model, in CATEGORIES order."""
    counts = store.incident_counts()
    return [c for c in CATEGORIES
            if counts.get(c, 0) > 0 and registry.active_model_id(store, c) is None]


def bootstrap(store: Any, on_progress: ProgressFn | None = None,
              should_stop: StopFn | None = None, train_overrides: dict | None = None,
              pretrain_options: dict | None = None) -> list[str]:
    """Pretrain the base when missing, then train a first model for every category that has
    data and no model (from 'pretrained', default settings changed by train_overrides, a
    TrainConfig dict). Returns the new model ids.

    on_progress dicts carry "category" (None while pretraining) and "fraction" of the whole
    run, with the step's own fraction as "step_fraction".
    """
    from safety_models.modeling import training

    todo = categories_without_model(store)
    steps = len(todo) + 1
    done = 0

    def report(category: str | None) -> ProgressFn:
        def inner(info: dict) -> None:
            if on_progress is None:
                return
            fraction = float(info.get("fraction") or 0.0)
            on_progress({**info, "category": category, "step_fraction": fraction,
                         "fraction": (done + min(1.0, fraction)) / steps})
        return inner

    ensure_pretrained(store, on_progress=report(None), should_stop=should_stop,
                      pretrain_options=pretrain_options)
    done = 1
    model_ids = []
    for category in todo:
        if should_stop is not None and should_stop():
            raise training.Cancelled("cancelled before training " + category)
        cfg = training.TrainConfig.from_dict({"category": category, "base": "pretrained",
                                              **(train_overrides or {})})
        model_ids.append(train_category(store, cfg, on_progress=report(category),
                                        should_stop=should_stop))
        done += 1
    return model_ids


FIRST_START_KEY = "first_start"


def first_start(store: Any, load_demo: Callable[[Any], Any] | None = None) -> dict:
    """Once per home: on an empty store load the demo data, then start one background
    bootstrap job when some category has data but no model and no job is running.

    Records that it ran (meta ``first_start``), so removing the demo data later does not
    bring it back. load_demo: a function of the store; default ``demo.load_demo``.
    Returns {"demo_loaded": bool, "job_id": int | None}.
    """
    from safety_models.service import jobs

    jobs.recover_stale_jobs(store)
    if store.get_meta(FIRST_START_KEY) is not None:
        return {"demo_loaded": False, "job_id": None}
    demo_loaded = False
    if sum(store.incident_counts().values()) == 0:
        if load_demo is None:
            from safety_models.data.demo import load_demo
        load_demo(store)
        demo_loaded = True
    job_id = None
    if categories_without_model(store) and jobs.active_job(store) is None:
        try:
            job_id = jobs.start_job(store, "bootstrap", {})
        except UserError:
            job_id = None  # another session started one a moment ago
    store.set_meta(FIRST_START_KEY, json.dumps({"at": pd.Timestamp.now().isoformat(),
                                                "demo_loaded": demo_loaded, "job_id": job_id}))
    return {"demo_loaded": demo_loaded, "job_id": job_id}


def attention_items(store: Any) -> list[dict]:
    """What an operator should act on, most urgent first: dicts with "level" ('error',
    'warning' or 'info'), "category" (or None) and "message" (one sentence for people)."""
    from safety_models.service import jobs

    items: list[dict] = []
    recent = jobs.list_jobs(store, limit=50)        # newest first
    running = {job.get("category") for job in recent if job["status"] in jobs.ACTIVE_STATUSES}
    latest_by_category: dict[str | None, dict] = {}
    for job in recent:
        latest_by_category.setdefault(job.get("category"), job)
    for category, job in latest_by_category.items():
        if job["status"] == "failed":
            what = f"{category} training" if category else f"the {job['kind']} job"
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
