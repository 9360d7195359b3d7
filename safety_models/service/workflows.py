"""The steps the command line, the job runner and the dashboard share (no streamlit here).

    train_category            the category's city data + TrainConfig -> a new model version
    train_starting_forecast   the linear starting forecast as a model version, in seconds
    promote_if_better         make a new version active where it beats the active one
    predict_category          a model's risk for one window (or the next 7/14/30/60/90 days),
                              one row per city cell, ranked
    available_horizons        the horizons a category has a model for (the dashboard's choice)
    cell_history              events per window for one cell (the map's click-through)
    bootstrap                 first models for every category that has data: the starting
                              forecast of each at once, then the fine-tuned networks

The city data come from modeling.city (one grid per category, see there) and the pretrained
base from modeling.pretrained. Orchestrating the app around these steps (the first start,
what needs attention) is service.operations; running them in the background is service.jobs,
which calls the steps here: this module never imports either.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pandas as pd

from safety_models import grid as gridlib
from safety_models.errors import NotReady
from safety_models.modeling import registry
from safety_models.modeling.city import (CityData, model_city, prepare_city,
                                         record_grid, grid_meta_key)
from safety_models.modeling.pretrained import ensure_pretrained, pretrained_base
from safety_models.schema import CATEGORIES, check_category, horizon_days

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
        # A base pretrained on the way runs where the fine-tuning will.
        base_id, checkpoint = pretrained_base(
            store, on_progress=on_progress,
            pretrain_options={"device": getattr(train_cfg, "device", "auto")})
        return checkpoint, base_id, None
    checkpoint = registry.load_checkpoint(store, base)  # NotReady for an unknown id
    if forecaster_of(checkpoint) == STARTING_FORECASTER:
        raise NotReady(f"{base} is a starting forecast (a linear model, no network): there is "
                       "no network to continue; train from 'pretrained' instead")
    if checkpoint.get("category") == registry.BASE_CATEGORY:
        return checkpoint, base, None                   # a base model named by its id
    if checkpoint.get("category") != city.category:
        raise NotReady(f"{base} is a {checkpoint.get('category')} model; continue a "
                       f"{city.category} model or train from 'pretrained'")
    registry.check_grid(checkpoint, city.grid)
    return checkpoint, checkpoint.get("base_model_id"), base


def training_city(store: Any, train_cfg: Any) -> CityData:
    """The city data a training run of train_cfg fits on: the rule that keeps one grid per
    category, whoever starts the run (the dashboard, the CLI, a job, bootstrap).

    train_cfg.cell_size_m None (the default) -> the category's grid (modeling.city.
    category_grid: its active model's, else the recorded one; a new DEFAULT_CELL_SIZE_M grid
    for a first model). A size -> the grid of that size the category already uses, else a new
    one: only an explicit, different size changes the grid. Continuing from a model (base =
    a model id) -> that model's grid unless another cell size is asked for.
    """
    category = check_category(train_cfg.category)
    asked = getattr(train_cfg, "cell_size_m", None)
    base = str(train_cfg.base)
    grid = None
    if base not in ("pretrained", "imagenet", "none"):
        parent_grid = registry.model_info(store, base).get("grid")
        if parent_grid and (asked is None
                            or math.isclose(float(asked), float(parent_grid["cell_size_m"]))):
            grid = parent_grid
    return prepare_city(store, category, cell_size_m=asked,
                        window_hours=getattr(train_cfg, "window_hours", None), grid=grid)


def base_for_training(store: Any, train_cfg: Any, on_progress: ProgressFn | None = None) -> None:
    """Make sure the base a run of train_cfg starts from exists: the pretrained base is
    pretrained now when missing or outdated (torchrun's rank 0 does this before the others
    read it); other bases need nothing."""
    if str(train_cfg.base) == "pretrained":
        pretrained_base(store, on_progress=on_progress,
                        pretrain_options={"device": getattr(train_cfg, "device", "auto")})


def fit_as_worker_rank(store: Any, train_cfg: Any) -> None:
    """A torchrun rank other than 0: fit on the same city, grid and base as rank 0's
    train_category (its collectives pair with rank 0's, see modeling/distributed.py) and
    keep nothing; rank 0 alone records the job and saves the version. The base must exist
    already (base_for_training on rank 0, then a barrier). A cancel of rank 0's job stops
    this rank at the same step (training.Cancelled, caught here: rank 0 records it)."""
    from safety_models.modeling import training

    city = training_city(store, train_cfg)
    base_checkpoint, _, _ = _base_state(store, train_cfg, city, None)
    try:
        training.fit(city.counts, city.starts, city.mask, train_cfg, base_state=base_checkpoint,
                     grid=city.grid)
    except training.Cancelled:
        pass


def train_category(store: Any, train_cfg: Any, on_progress: ProgressFn | None = None,
                   should_stop: StopFn | None = None) -> str:
    """Fine-tune a model for train_cfg.category and save it as a new version; returns its id.

    The grid: see training_city (the category's own unless another cell size is asked for
    explicitly). train_cfg.base: 'pretrained' (pretraining first if needed), 'imagenet'
    (WeightsMissing when the weights file is absent), 'none' (from scratch) or a model id to
    continue from (same grid required: GridMismatch otherwise). The first model of a category
    becomes active and records its grid as the category's; later ones are candidates. A model
    for a horizon (train_cfg.horizon_days, one of schema.HORIZONS) never becomes the active
    model: it becomes the category's model for that horizon (the newest one trained; see
    horizon_model_id). Nothing is saved when fit raises (Cancelled included).
    """
    from safety_models.modeling import training

    category = check_category(train_cfg.category)
    horizon = getattr(train_cfg, "horizon_days", None)
    if horizon:
        horizon_days(f"{int(horizon)}d")            # one of HORIZONS, else ValueError
    city = training_city(store, train_cfg)
    base_checkpoint, base_model_id, parent = _base_state(store, train_cfg, city, on_progress)
    result = training.fit(city.counts, city.starts, city.mask, train_cfg,
                          base_state=base_checkpoint, on_progress=on_progress,
                          should_stop=should_stop, grid=city.grid)
    checkpoint = dict(result.checkpoint())
    checkpoint.update(grid=city.grid.to_dict(), mask=city.mask, parent=parent)
    return save_version(store, category, checkpoint, city, horizon, base_model_id=base_model_id)


def save_version(store: Any, category: str, checkpoint: dict, city: CityData,
                 horizon: int | None, base_model_id: str | None = None) -> str:
    """Register a trained checkpoint as a version of category; returns its id. A horizon
    model (horizon days) never becomes the active one: it becomes the category's model for
    that horizon. The category's grid is recorded from its active model (or the first one)."""
    model_id = registry.save_model(store, checkpoint, category, base_model_id=base_model_id,
                                   activate="never" if horizon else "if-first")
    if horizon:
        registry.set_horizon_model(store, category, int(horizon), model_id)
    if registry.active_model_id(store, category) == model_id or \
            store.get_meta(grid_meta_key(category)) is None:
        record_grid(store, category, city.grid)
    return model_id


# ---------------------------------------------------------------------------------------------
# The starting forecast: a map within the first minute

# What a model version's checkpoint says it forecasts with (checkpoint["forecaster"]):
# the linear starting forecast alone, or (no key: every version trained by fit) the network.
STARTING_FORECASTER = "linear"
NETWORK_FORECASTER = "network"
# The starting forecast's first evaluation scores the latest windows only (seconds, not
# minutes): four weeks of daily windows, a quarter of weekly ones.
STARTING_EVALUATION_DAYS = {"daily": 28, "weekly": 91}


def forecaster_of(checkpoint: Any) -> str:
    """STARTING_FORECASTER or NETWORK_FORECASTER, from a checkpoint (or its plain parts)."""
    return str((checkpoint or {}).get("forecaster") or NETWORK_FORECASTER)


def starting_evaluation_windows(window_hours: int) -> int:
    """How many of the latest test windows the starting forecast's first backtest scores."""
    days = STARTING_EVALUATION_DAYS["weekly" if window_hours >= 168 else "daily"]
    return max(1, int(round(days * 24 / window_hours)))


# The horizons (days) every category gets a starting forecast for at the first start.
STARTING_HORIZONS = (7, 30)
# The stack's fit sample for the first start's maps (city cell-windows): every category's map
# must show within its first minute, and stack.FIT_ROWS (1 M) made the demo's crime fit 15 s
# longer, the last map 66 s after the start (52 s with this). The map it gives is replaced
# where the network trained next (whose stack candidate reads FIT_ROWS) scores better.
FIRST_MAP_STACK_FIT_ROWS = 400_000


def train_starting_forecast(store: Any, category: str, on_progress: ProgressFn | None = None,
                            evaluate: bool = True, horizon: int | None = None,
                            stack_fit_rows: int | None = None) -> str:
    """The linear starting forecast (training.fit_starting_forecast: the base-rate GLM that
    fit starts from) as a model version of its own, evaluated at once; returns its id.

    Same grid rule and split as train_category with the default TrainConfig, so a network
    trained next is validated on the same windows and compared with it there
    (promote_if_better). Like any version it becomes active when it is the category's first.
    evaluate: run evaluate_starting_forecast now (bootstrap runs it once every category has
    its map). horizon: days (one of schema.HORIZONS): the starting forecast of the events over
    the next so many days, saved as the category's model for that horizon (never the active
    one), as train_category saves a horizon model. stack_fit_rows: the stack's fit sample
    (TrainConfig.stack_fit_rows; the first start's maps use FIRST_MAP_STACK_FIT_ROWS).
    """
    from safety_models.modeling import training

    category = check_category(category)
    if horizon:
        horizon_days(f"{int(horizon)}d")            # one of HORIZONS, else ValueError
    cfg = training.TrainConfig(category=category, base="none", horizon_days=int(horizon) if horizon else None,
                               stack_fit_rows=stack_fit_rows)
    city = training_city(store, cfg)
    result = training.fit_starting_forecast(city.counts, city.starts, city.mask, cfg,
                                            on_progress=on_progress, grid=city.grid)
    checkpoint = dict(result.checkpoint())
    checkpoint.update(grid=city.grid.to_dict(), mask=city.mask, parent=None,
                      forecaster=STARTING_FORECASTER)
    model_id = save_version(store, category, checkpoint, city, horizon)
    if evaluate:
        evaluate_starting_forecast(store, model_id)
    return model_id


def evaluate_starting_forecast(store: Any, model_id: str,
                               on_progress: ProgressFn | None = None) -> None:
    """The starting forecast's first backtest, saved for the dashboard: the latest
    starting_evaluation_windows test windows only (seconds; the Evaluation page says so). A
    city too short to have test windows stays unevaluated."""
    from safety_models.evaluation import backtest

    info = registry.model_info(store, model_id)
    try:
        backtest.evaluate_category(
            store, info["category"], model_id, on_progress=on_progress,
            last_windows=starting_evaluation_windows(int(info.get("window_hours") or 24)))
    except NotReady:
        pass   # no test windows yet: the Evaluation page says so


def promote_if_better(store: Any, model_id: str) -> tuple[bool, str]:
    """Make model_id its category's active model when its validation scores beat the active
    one's (registry.should_promote); (promoted?, the reason for people). A category without
    an active model takes it. Versions on one grid and split are validated on the same
    windows, so this compares like with like. A promotion is written to the audit trail as
    the system's, with the reason."""
    from safety_models.service import audit
    from safety_models.service.access import SYSTEM

    info = registry.model_info(store, model_id)
    category = info["category"]
    active = registry.active_model_id(store, category)
    if active == model_id:
        return True, "it is the active model"
    if active is None:
        better, reason = True, "there was no active model"
    else:
        better, reason = registry.should_promote(
            info["val_metrics"], registry.model_info(store, active)["val_metrics"])
    if better:
        registry.promote(store, model_id)
        audit.record(store, SYSTEM, "model.promote", f"model {model_id}",
                     detail=f"{category}: {reason}; in use before: {active or 'none'}")
    return better, reason


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
    """The horizons ("7d", "14d", "30d", "60d", "90d") the category has a model for, shortest first;
    for the dashboard's horizon choice (the next window, the active model's, is not listed)."""
    return registry.available_horizons(store, category)


def horizon_model_id(store: Any, category: str, horizon: str) -> str:
    """The category's model for a horizon (registry.horizon_model_id): NotReady when none."""
    return registry.horizon_model_id(store, category, horizon)


def predict_category(store: Any, category: str, at: Any = None,
                     model_id: str | None = None, device: str = "auto",
                     horizon: str | None = None) -> pd.DataFrame:
    """A model's risk for one window (or horizon): one row per city cell, highest risk first.

    at: None -> the window right after the latest data; a date/time -> the window that
        contains it (from the second window of the data to the one after it; else NotReady).
        The forecast uses only the windows before that one.
    model_id: None -> the category's active model (NotReady when there is none).
    horizon: "7d", "14d", "30d", "60d" or "90d" -> the category's model for that horizon (unless
        model_id is given): probability of at least one event and expected events over the
        horizon's days from the window's start; window_end is the horizon's end.
    Columns: cell_id (row * n_cols + col), row, col, lat, lon (cell centre, degrees),
    probability (of at least one event), expected_count, events_last_30d (recorded in the 30
    days before window_start), rank (1 = highest probability; ties by expected count, then
    cell id), risk_level (RISK_LEVELS by rank share), model_id, window_start, window_end.
    device: where the model runs ('auto' | 'cpu' | 'cuda[:N]'; UserError for cuda without
    a GPU).
    """
    from safety_models.modeling import forecaster
    from safety_models.modeling.devices import resolve_device

    category = check_category(category)
    if model_id is None and horizon is not None:
        model_id = horizon_model_id(store, category, horizon)
    model_id = _resolve_model_id(store, category, model_id)
    model, checkpoint = registry.load_model(store, model_id)
    model.to(resolve_device(device))
    city = model_city(store, category, checkpoint)     # the kept counts, when there are some
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
    # only the RECENT_DAYS before the window (an index range), not every incident
    recent = store.incidents(category, window_start - pd.Timedelta(days=RECENT_DAYS), window_start)
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
    df["window_end"] = pd.Series(window_start + forecaster.horizon_windows_of(checkpoint) * step, index=df.index,
                                 dtype="datetime64[ns]")
    return df


def history_window_indices(n_windows: int) -> np.ndarray:
    """The windows cell_history gives the model's probability for: the last
    HISTORY_PREDICTED_WINDOWS, each with at least one window before it."""
    return np.arange(max(1, n_windows - HISTORY_PREDICTED_WINDOWS), n_windows)


def history_probabilities(model: Any, checkpoint: Any, city: CityData) -> np.ndarray:
    """(windows, rows, cols): the model's chance of at least one event in each of the
    history_window_indices windows of city, each from the windows before it only (what
    cell_history shows for a cell; service.forecasts saves them with a model's forecasts)."""
    from safety_models.modeling import forecaster

    t_indices = history_window_indices(city.n_windows)
    if not len(t_indices):
        return np.zeros((0, *city.mask.shape))
    return np.asarray(forecaster.forecast_windows(model, checkpoint, city.counts, city.starts,
                                                  city.grid, city.mask, t_indices).prob)


def cell_history(store: Any, category: str, cell_id: int, model_id: str | None = None,
                 predicted: np.ndarray | None = None) -> pd.DataFrame:
    """Events per window for one cell of the model's grid (the active model by default; the
    category grid when there is no model yet).

    Columns: window_start, window_end, events, probability (the model's chance of at least
    one event, for the last HISTORY_PREDICTED_WINDOWS windows; NaN before them and without
    a model). predicted: the cell's column of history_probabilities for this model and the
    data now, when the caller has them saved (service.forecasts.cell_history): the model is
    then not run; ignored when its length is not the number of those windows. Raises
    ValueError for a cell id outside the grid.
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
        t_indices = history_window_indices(city.n_windows)
        if predicted is None or len(predicted) != len(t_indices):
            predicted = history_probabilities(model, checkpoint, city)[:, row, col]
        probability[t_indices] = predicted
    return pd.DataFrame({
        "window_start": city.starts,
        "window_end": city.starts + step,
        "events": city.counts[:, row, col].astype(np.int64),
        "probability": probability,
    })


# ---------------------------------------------------------------------------------------------
# Bootstrap: first models for every category


def categories_without_model(store: Any) -> list[str]:
    """Categories that have incidents but no active model, in CATEGORIES order."""
    counts = store.incident_counts()
    return [c for c in CATEGORIES
            if counts.get(c, 0) > 0 and registry.active_model_id(store, c) is None]


ModelFn = Callable[[str, str], None]


def bootstrap(store: Any, on_progress: ProgressFn | None = None,
              should_stop: StopFn | None = None, train_overrides: dict | None = None,
              pretrain_options: dict | None = None, on_model: ModelFn | None = None) -> list[str]:
    """First models for every category that has data and no model, quickest first:

    1. the starting forecast of each (train_starting_forecast: seconds each, active at once,
       so every category has a risk map within the first minute), then its starting
       forecasts of the next STARTING_HORIZONS days (the map's horizon choice);
    2. the pretrained base, when missing or outdated (minutes);
    3. the fine-tuned network of each (from 'pretrained', default settings changed by
       train_overrides, a TrainConfig dict), made active only where it scores better on the
       validation windows than the starting forecast (promote_if_better).
    Categories that get data while this runs (an upload) are taken in turn. Returns the new
    model ids. on_model(category, model_id) after a model becomes a category's active one
    (the jobs precompute its maps then).

    on_progress dicts carry "category" (None while pretraining), "step" ('starting
    forecast', 'pretrain', 'network') and "fraction" of the whole run, with the step's own
    fraction as "step_fraction".
    """
    from safety_models.modeling import training

    model_ids: list[str] = []
    done = 0.0
    todo = categories_without_model(store)
    # Weights of the steps in the run's fraction: a starting forecast is quick, pretraining
    # and each network take minutes.
    weights = {"starting forecast": 0.2, "pretrain": 4.0, "network": 3.0}
    total = max(1.0, len(todo) * (weights["starting forecast"] + weights["network"])
                + weights["pretrain"])

    def report(category: str | None, step: str) -> ProgressFn:
        def inner(info: dict) -> None:
            if on_progress is None:
                return
            fraction = min(1.0, float(info.get("fraction") or 0.0))
            on_progress({**info, "category": category, "step": step, "step_fraction": fraction,
                         "fraction": min(1.0, (done + weights[step] * fraction) / total)})
        return inner

    def check_stop(what: str) -> None:
        if should_stop is not None and should_stop():
            raise training.Cancelled("cancelled before " + what)

    while todo:
        # Every category's map first, then their first evaluations.
        starting = {}
        for category in todo:
            check_stop(f"the {category} starting forecast")
            model_id = train_starting_forecast(store, category, evaluate=False,
                                               on_progress=report(category, "starting forecast"),
                                               stack_fit_rows=FIRST_MAP_STACK_FIT_ROWS)
            model_ids.append(model_id)
            starting[category] = model_id
            if on_model is not None and registry.active_model_id(store, category) == model_id:
                on_model(category, model_id)
            done += weights["starting forecast"] / 2
        for category, model_id in starting.items():
            check_stop(f"evaluating the {category} starting forecast")
            report(category, "starting forecast")({"stage": "evaluate", "fraction": 0.5})
            evaluate_starting_forecast(store, model_id)
            done += weights["starting forecast"] / 2
        # The periods plans are made for, from the first minute too: each category's
        # starting forecast of the next STARTING_HORIZONS days (seconds each). A history too
        # short for a horizon's split goes without it.
        for category in starting:
            for days in STARTING_HORIZONS:
                check_stop(f"the {category} starting forecast of {days} days")
                try:
                    model_id = train_starting_forecast(store, category, horizon=days)
                except NotReady:
                    continue
                model_ids.append(model_id)
                if on_model is not None:
                    on_model(category, model_id)
        ensure_pretrained(store, on_progress=report(None, "pretrain"), should_stop=should_stop,
                          pretrain_options=pretrain_options)
        done += weights["pretrain"]
        weights["pretrain"] = 0.0          # pretrained once; a later round reuses it
        for category in todo:
            check_stop("training " + category)
            cfg = training.TrainConfig.from_dict({"category": category, "base": "pretrained",
                                                  **(train_overrides or {})})
            model_id = train_category(store, cfg, on_progress=report(category, "network"),
                                      should_stop=should_stop)
            model_ids.append(model_id)
            promoted, _ = promote_if_better(store, model_id)
            if promoted and on_model is not None:
                on_model(category, model_id)
            done += weights["network"]
        todo = categories_without_model(store)   # data that arrived meanwhile
        total += len(todo) * (weights["starting forecast"] + weights["network"])
    return model_ids
