"""Backtest: a trained model against the baselines on the windows after its training data.

The protocol (what an analyst can rely on when they read an evaluation):

* **Test period.** The windows from the checkpoint's ``data_window["val_end"]`` to the end of
  the city's data. The model was fitted on windows before ``train_end`` and stopped/tuned on
  the validation windows ``[train_end, val_end)``; it is not refitted during the test.
  When data were uploaded after training, the test period simply extends to the new end.
* **Rolling origin.** For every test window ``t`` the model and every baseline see only the
  windows before it (``counts[:t]``): nothing of window ``t`` or later reaches a forecast.
* **Same windows, same cells.** The model and every baseline of ``baselines_for(category)``
  are scored by one function (``metrics.score_windows``) on the same test windows and on the
  same city cells (``city.mask``).
* **Thresholds from validation only.** Accuracy, precision, recall and F1 need a yes/no
  threshold; it is chosen on the validation windows (``metrics.operating_threshold``), never
  on the test windows, for the model and for every baseline.
* **Baselines as probabilities.** A baseline gives a score (a smoothed count, a kernel
  density ...), not a probability. Each baseline's scores are mapped to a probability of "at
  least one event in the cell and window" by a logistic (Platt) fit on
  ``sign(s) * log1p(|s|)`` over the validation windows and city cells. The map is strictly
  increasing, so the ranking metrics (hit rate, PAI, PEI, ROC-AUC) are those of the raw
  scores, while Brier, calibration and the thresholded metrics become meaningful. The
  model's own probabilities are not recalibrated.
* **Uncertainty.** Every windowed metric comes with its standard error across windows (from
  ``score_windows``); for the model versus each baseline, the paired per-window differences
  of hit rate and PAI at 5 % of the area get a moving-block bootstrap 95 % interval (blocks
  keep the weekly rhythm and the serial dependence of consecutive windows).

Results are saved as JSON under ``paths.sub_dir("evaluations")/<model_id>.json`` so that the
dashboard reads them without recomputing.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from safety_models.evaluation import metrics
from safety_models import paths, units
from safety_models.errors import NotReady
from safety_models.files import to_jsonable, write_json_atomic

ProgressFn = Callable[[dict], None]

# Share-of-area grid of the curves saved for the dashboard (0, 0.5 %, ..., 100 %).
CURVE_AREA_SHARES: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 201), 4).tolist())
# Thresholds of the saved ROC curves (quantiles of the scores).
ROC_CURVE_POINTS = 201
BOOTSTRAP_RESAMPLES = 2000
# Forecasts are made in chunks of this many windows (bounded memory, regular progress).
PREDICT_BATCH_WINDOWS = 64


# ---------------------------------------------------------------------------------------------
# Result


@dataclass(frozen=True)
class BacktestResult:
    """One model's backtest and its baselines'.

    test_start / test_end: ISO local datetimes; test_end is the end (exclusive) of the last
    test window. results: {"model": M, "baselines": {name: M}} where M is
    ``metrics.score_windows`` output plus ``"curves"`` (hit rate / PAI against the share of
    area, ROC points) and, for baselines, ``"probability_map"`` (the Platt fit), for the model
    ``"vs_baselines"`` (paired per-window differences with bootstrap intervals).
    horizon_windows: how many windows each forecast covers (1: the next window; 7 for a
    7-day horizon of daily windows): then a "window" of n_windows is a forecast made at a
    window start, scored against the events of its horizon, and test_end is the end of the
    last forecast's horizon.
    """

    category: str
    model_id: str
    test_start: str
    test_end: str
    window_hours: int
    cell_size_m: float
    n_windows: int
    n_test_events: int
    results: dict[str, Any] = field(default_factory=dict)
    horizon_windows: int = 1

    def to_dict(self) -> dict[str, Any]:
        """The JSON of the CLI contract (plain types; NaN/inf become null)."""
        return to_jsonable({
            "category": self.category,
            "model_id": self.model_id,
            "test_start": self.test_start,
            "test_end": self.test_end,
            "window_hours": int(self.window_hours),
            "cell_size_m": float(self.cell_size_m),
            "n_windows": int(self.n_windows),
            "n_test_events": int(self.n_test_events),
            "horizon_windows": int(self.horizon_windows),
            "results": self.results,
        })

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BacktestResult:
        return cls(
            category=str(d["category"]),
            model_id=str(d["model_id"]),
            test_start=str(d["test_start"]),
            test_end=str(d["test_end"]),
            window_hours=int(d["window_hours"]),
            cell_size_m=float(d["cell_size_m"]),
            n_windows=int(d["n_windows"]),
            n_test_events=int(d["n_test_events"]),
            results=dict(d["results"]),
            horizon_windows=int(d.get("horizon_windows") or 1),
        )

    def table(self) -> pd.DataFrame:
        """One row per forecaster (model first, then baselines): the headline metrics."""
        return summary_table(self.to_dict())


SUMMARY_COLUMNS: tuple[str, ...] = (
    "hit_rate_5", "pai_5", "pei_5", "hit_rate_10", "pai_10", "roc_auc", "pr_auc", "brier",
    "accuracy", "always_no_event_accuracy", "balanced_accuracy", "precision", "recall", "f1",
)


def summary_table(evaluation: Mapping[str, Any], extra: bool = False) -> pd.DataFrame:
    """Headline metrics of a saved evaluation (``BacktestResult.to_dict()``) as a table.

    Index: "model", then the baselines' names; with extra, also "network" (the network alone,
    when the model is a blend) and "oracle" (the hindsight ranking) where the evaluation has
    them. Columns: SUMMARY_COLUMNS; "<metric>_<pct>" reads ``M[metric][pct]`` (e.g. pai_5 =
    PAI in the top 5 % of the area). Missing -> NaN.
    """
    results = evaluation["results"]
    forecasters = {"model": results["model"], **results.get("baselines", {})}
    if extra:
        forecasters.update({k: results[k] for k in ("network", "oracle") if k in results})
    rows = {name: {col: _headline(m, col) for col in SUMMARY_COLUMNS} for name, m in forecasters.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("forecaster")


def _headline(m: Mapping[str, Any], column: str) -> float:
    name, _, pct = column.rpartition("_")
    if name in ("hit_rate", "pai", "pei") and pct.isdigit():
        value = (m.get(name) or {}).get(pct)
    else:
        value = m.get(column)
    return float("nan") if value is None else float(value)


# ---------------------------------------------------------------------------------------------
# Splits


def split_indices(starts: pd.DatetimeIndex, data_window: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(validation, test) window indices into ``starts`` from a checkpoint's data_window.

    validation: starts in [train_end, val_end); test: starts >= val_end (to the end of data).
    Raises NotReady when either is empty.
    """
    starts = pd.DatetimeIndex(starts)
    train_end = pd.Timestamp(data_window["train_end"])
    val_end = pd.Timestamp(data_window["val_end"])
    val_idx = np.flatnonzero((starts >= train_end) & (starts < val_end))
    test_idx = np.flatnonzero(starts >= val_end)
    if len(test_idx) == 0:
        raise NotReady(
            f"no test windows: the model was validated up to {val_end:%Y-%m-%d %H:%M} and the data "
            f"end with the window starting {starts[-1]:%Y-%m-%d %H:%M}; upload later incidents or "
            "retrain with a test period"
        )
    if len(val_idx) == 0:
        raise NotReady(
            f"no validation windows between {train_end:%Y-%m-%d} and {val_end:%Y-%m-%d}: the yes/no "
            "threshold is chosen on validation windows; retrain with a validation period"
        )
    return val_idx, test_idx


def latest_windows(val_idx: np.ndarray, test_idx: np.ndarray,
                   last_windows: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The latest last_windows test windows and as many validation windows (the last ones
    before the test period); both unchanged for None. A quick first evaluation scores fewer
    windows; the protocol is the same."""
    if last_windows is None:
        return val_idx, test_idx
    n = max(1, int(last_windows))
    return val_idx[-n:], test_idx[-n:]


def horizon_splits(starts: pd.DatetimeIndex, data_window: Mapping[str, Any],
                   horizon_windows: int) -> tuple[np.ndarray, np.ndarray]:
    """split_indices for forecasts over horizon_windows windows: the forecasts whose whole
    horizon lies in the validation (test) period. NotReady when the test period is shorter."""
    val_idx, test_idx = split_indices(starts, data_window)
    h = max(1, int(horizon_windows))
    if len(test_idx) < h or len(val_idx) < h:
        raise NotReady(f"the validation or test period ({len(val_idx)} and {len(test_idx)} windows) is shorter "
                       f"than the forecast's horizon of {h} windows; upload later incidents")
    return val_idx[:len(val_idx) - h + 1], test_idx[:len(test_idx) - h + 1]


def horizon_counts(counts: np.ndarray, t_indices: Sequence[int], horizon_windows: int) -> np.ndarray:
    """(forecasts, rows, cols) events of windows t .. t + horizon - 1 for each t (float64)."""
    counts = np.asarray(counts, dtype=np.float64)
    t_indices = np.asarray(t_indices, dtype=np.int64)
    h = max(1, int(horizon_windows))
    if h == 1:
        return counts[t_indices]
    cum = np.concatenate([np.zeros((1, *counts.shape[1:])), np.cumsum(counts, axis=0)])   # (T+1, rows, cols)
    return cum[t_indices + h] - cum[t_indices]


# ---------------------------------------------------------------------------------------------
# Forecasts (rolling origin)


def model_probabilities(model: Any, checkpoint: Mapping[str, Any], city: Any, t_indices: Sequence[int],
                        on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """(windows, rows, cols) float64 probability of >= 1 event, window t forecast from counts[:t].

    The model version's own forecaster (``forecaster.forecast_windows``: its
    validation-chosen blend of the network, base-rate path and baselines, or the network
    alone), so the backtest scores what ``predict`` and the risk map serve; the probability
    is what the risk map ranks cells by. Inputs are built from running sums that stop before
    each window (features.SampleBuilder); one builder serves every batch, and batches bound
    the memory. on_batch(n_done) after each batch.
    """
    return _forecast_probabilities(model, checkpoint, city, t_indices, on_batch)


def network_probabilities(model: Any, checkpoint: Mapping[str, Any], city: Any, t_indices: Sequence[int],
                          on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """model_probabilities of the network alone (without the version's blend)."""
    return _forecast_probabilities(model, {**checkpoint, "blend": None}, city, t_indices, on_batch)


def _forecast_probabilities(model: Any, checkpoint: Mapping[str, Any], city: Any, t_indices: Sequence[int],
                            on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    from safety_models import features
    from safety_models.modeling import forecaster

    feature_cfg = checkpoint["feature_config"]
    if isinstance(feature_cfg, Mapping):
        feature_cfg = features.FeatureConfig.from_dict(feature_cfg)
    mask = np.asarray(city.mask, dtype=bool)
    builder = features.SampleBuilder(city.counts, city.starts, feature_cfg, mask)
    t_indices = np.asarray(t_indices, dtype=np.int64)
    out = np.empty((len(t_indices), *city.counts.shape[1:]), dtype=np.float64)  # (windows, rows, cols)
    for lo in range(0, len(t_indices), PREDICT_BATCH_WINDOWS):
        batch = t_indices[lo:lo + PREDICT_BATCH_WINDOWS]
        out[lo:lo + len(batch)] = forecaster.forecast_windows(model, checkpoint, city.counts, city.starts,
                                                              city.grid, mask, batch, builder=builder).prob
        if on_batch is not None:
            on_batch(lo + len(batch))
    return out


def baseline_scores(fn: Callable, city: Any, t_indices: Sequence[int],
                    on_window: Callable[[int], None] | None = None) -> np.ndarray:
    """(windows, rows, cols) float64 scores of one baseline; window t from counts[:t] only.

    ``baselines.forecast_windows`` calls fn(counts[:t], starts[:t], starts[t], grid) (or runs
    the all-history average as running sums): the slices end before the target window, and
    the baselines refuse any window at or after it. NaN scores (no history) become 0.
    on_window(n_done) after each chunk of windows.
    """
    from safety_models.evaluation.baselines import forecast_windows

    t_indices = np.asarray(t_indices, dtype=np.int64)
    out = np.empty((len(t_indices), *city.counts.shape[1:]), dtype=np.float64)  # (windows, rows, cols)
    for lo in range(0, len(t_indices), PREDICT_BATCH_WINDOWS):
        chunk = t_indices[lo:lo + PREDICT_BATCH_WINDOWS]
        out[lo:lo + len(chunk)] = forecast_windows(fn, city.counts, city.starts, chunk, city.grid)
        if on_window is not None:
            on_window(lo + len(chunk))
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


# ---------------------------------------------------------------------------------------------
# Baseline scores -> probabilities


@dataclass(frozen=True)
class ProbabilityMap:
    """p = sigmoid(intercept + slope * sign(s) * log1p(|s|)); slope > 0 keeps the ranking."""

    intercept: float
    slope: float
    n_fit: int

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        z = self.intercept + self.slope * _signed_log1p(scores)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))

    def to_dict(self) -> dict[str, Any]:
        return {"method": "logistic on sign(s)*log1p(|s|), fitted on validation windows",
                "intercept": self.intercept, "slope": self.slope, "n_fit": self.n_fit}


# Slope used when the validation data cannot order the cells (no events, or a score that
# does not rise with risk): tiny, so the map is ~ the base rate but ties are not created.
_MIN_SLOPE = 1e-6
_MAX_FIT_SAMPLES = 100_000


def _signed_log1p(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    return np.sign(scores) * np.log1p(np.abs(scores))


def fit_probability_map(scores_val: np.ndarray, events_val: np.ndarray, seed: int = 0) -> ProbabilityMap:
    """Platt fit of P(event) on a baseline's validation scores (1-D arrays of equal length).

    More than _MAX_FIT_SAMPLES pairs are subsampled (fixed seed). Without both classes, or
    with a non-positive fitted slope, returns the base rate (clipped to [1e-6, 1 - 1e-6])
    with a tiny positive slope, which keeps the ranking and says the scores carry no signal.
    """
    from sklearn.linear_model import LogisticRegression

    x = _signed_log1p(np.asarray(scores_val).ravel())
    y = np.asarray(events_val).ravel() > 0
    base_rate = float(np.clip(y.mean() if len(y) else 0.0, 1e-6, 1 - 1e-6))
    flat = ProbabilityMap(intercept=math.log(base_rate / (1 - base_rate)), slope=_MIN_SLOPE, n_fit=len(y))
    if y.all() or not y.any() or np.ptp(x) == 0:
        return flat
    if len(x) > _MAX_FIT_SAMPLES:
        keep = np.random.default_rng(seed).choice(len(x), _MAX_FIT_SAMPLES, replace=False)
        x, y = x[keep], y[keep]
    # Unpenalised in effect (C large): two parameters fitted on up to _MAX_FIT_SAMPLES points.
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(x[:, None], y)
    slope = float(fit.coef_[0, 0])
    if not slope > 0:
        return flat
    return ProbabilityMap(intercept=float(fit.intercept_[0]), slope=slope, n_fit=len(y))


# ---------------------------------------------------------------------------------------------
# Scoring


def _threshold_on_validation(prob_val: np.ndarray, counts_val: np.ndarray, mask: np.ndarray) -> float:
    # (windows, rows, cols) -> the city's cells of every validation window, pooled.
    return float(metrics.operating_threshold(prob_val[:, mask], counts_val[:, mask] > 0))


def _score(prob: np.ndarray, counts: np.ndarray, mask: np.ndarray, threshold: float,
           window_starts: pd.DatetimeIndex, flag_areas: Sequence[str] = (),
           cell_size_m: float | None = None) -> dict[str, Any]:
    """score_windows on the test windows + curves; per-window rows get their start time;
    plus metrics.score_areas for each flagged area (hit_rate_area, pai_area, pei_area, ...)."""
    result = dict(metrics.score_windows(prob, counts, mask, threshold=threshold))
    result["threshold_source"] = "validation windows"
    for row in result["per_window"]:
        row["start"] = window_starts[row["window"]].isoformat()
    result["curves"] = _curves(prob, counts, mask)
    if flag_areas:
        result.update(metrics.score_areas(prob, counts, flag_areas, float(cell_size_m), mask))
    return result


def check_flag_areas(flag_areas: Sequence[str]) -> tuple[str, ...]:
    """The area strings as given, after checking that units.parse_area reads each one;
    UserError (for people: what was given and what is accepted) otherwise."""
    from safety_models.errors import UserError

    for text in flag_areas:
        try:
            units.parse_area(text)
        except ValueError as err:
            raise UserError(str(err)) from None
    return tuple(flag_areas)


def _curves(prob: np.ndarray, counts: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """Hit rate, PAI and the perfect hit rate against the share of area, and ROC points.

    Curve values are means over the windows (metrics.hit_rate_curve); the first point is
    (0, 0) for the hit rate and undefined (None) for PAI.
    """
    curve = metrics.hit_rate_curve(prob, counts, CURVE_AREA_SHARES[1:], mask=mask)
    curves: dict[str, Any] = {
        "area_share": list(CURVE_AREA_SHARES),
        "hit_rate": [0.0, *curve["hit_rate"].tolist()],
        "pai": [None, *curve["pai"].tolist()],
        "perfect_hit_rate": [0.0, *curve["perfect_hit_rate"].tolist()],
    }
    curves["roc"] = metrics.roc_points(prob[:, mask].ravel(), (counts[:, mask] > 0).ravel(), ROC_CURVE_POINTS)
    return curves


def _per_window_values(result: Mapping[str, Any], key: str) -> np.ndarray:
    """(windows,) one per-window metric of a score_windows result; None -> NaN."""
    return np.asarray([np.nan if w[key] is None else w[key] for w in result["per_window"]], dtype=np.float64)


def paired_difference(model_values: np.ndarray, baseline_values: np.ndarray, window_hours: int,
                      resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0, min_block: int = 1) -> dict[str, Any]:
    """Mean of model - baseline over windows where both are defined, with a 95 % interval.

    Moving-block bootstrap over consecutive windows (block = one week of windows for daily
    or finer windows, else ~n**(1/3)), so serial dependence does not make the interval too
    narrow. Also the share of windows where the model is better / worse.
    """
    diff = np.asarray(model_values, dtype=np.float64) - np.asarray(baseline_values, dtype=np.float64)
    diff = diff[np.isfinite(diff)]
    n = len(diff)
    out: dict[str, Any] = {"n_windows": n, "mean_difference": float("nan"), "ci95": [float("nan")] * 2,
                           "share_model_better": float("nan"), "share_model_worse": float("nan")}
    if n == 0:
        return out
    block = max(1, min(n, max(int(min_block), 168 // window_hours if window_hours <= 24 else round(n ** (1 / 3)))))
    rng = np.random.default_rng(seed)
    n_blocks = math.ceil(n / block)
    first = rng.integers(0, n - block + 1, size=(resamples, n_blocks))            # (resamples, blocks)
    idx = (first[:, :, None] + np.arange(block)[None, None, :]).reshape(resamples, -1)[:, :n]
    means = diff[idx].mean(axis=1)                                               # (resamples,)
    out.update(
        mean_difference=float(diff.mean()),
        ci95=[float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))],
        share_model_better=float(np.mean(diff > 0)),
        share_model_worse=float(np.mean(diff < 0)),
    )
    return out


# ---------------------------------------------------------------------------------------------
# Backtest


def _report(on_progress: ProgressFn | None, fraction: float, **extra: Any) -> None:
    if on_progress is not None:
        on_progress({"stage": "evaluate", "fraction": float(min(1.0, max(0.0, fraction))), **extra})


def _check_grid(checkpoint: Mapping[str, Any], city: Any) -> None:
    """GridMismatch (from registry.check_grid) when the model was trained on another grid."""
    if checkpoint.get("grid") is not None:
        from safety_models.modeling.registry import check_grid

        check_grid(dict(checkpoint), city.grid)


def score_baselines(city: Any, data_window: Mapping[str, Any],
                    baselines: Mapping[str, Callable] | None = None,
                    on_progress: ProgressFn | None = None,
                    flag_areas: Sequence[str] = (), horizon_windows: int = 1,
                    last_windows: int | None = None) -> dict[str, dict[str, Any]]:
    """{name: M} for every baseline on the test windows of data_window (see the module doc).

    Each baseline forecasts the validation and test windows by rolling origin; its scores are
    mapped to probabilities by a Platt fit on the validation windows (``M["probability_map"]``)
    and its yes/no threshold is chosen there too. baselines: {name: fn}; default
    ``baselines.baselines_for(city.category)``. flag_areas: area strings (units.parse_area)
    to score besides the shares of the city. horizon_windows: score forecasts of the events
    over that many windows (a horizon model's; the baselines' maps rank the same cells).
    on_progress: {"stage": "evaluate", "fraction", "step": name}. last_windows: see latest_windows.
    """
    if baselines is None:
        from safety_models.evaluation.baselines import baselines_for

        baselines = baselines_for(city.category)
    starts = pd.DatetimeIndex(city.starts)
    counts = np.asarray(city.counts)
    mask = np.asarray(city.mask, dtype=bool)
    val_idx, test_idx = latest_windows(*horizon_splits(starts, data_window, horizon_windows),
                                       last_windows)
    targets = np.concatenate([val_idx, test_idx])   # one pass forecasts validation and test
    n_val = len(val_idx)
    counts_val = horizon_counts(counts, val_idx, horizon_windows)      # (windows, rows, cols)
    counts_test = horizon_counts(counts, test_idx, horizon_windows)
    total_steps = max(1, len(targets) * len(baselines))
    results: dict[str, dict[str, Any]] = {}
    for b, (name, fn) in enumerate(dict(baselines).items()):
        done_before = len(targets) * b
        scores = baseline_scores(
            fn, city, targets,
            on_window=lambda i, d=done_before, n=name: _report(on_progress, (d + i) / total_steps, step=n),
        )
        to_prob = fit_probability_map(scores[:n_val][:, mask], counts_val[:, mask])
        prob = to_prob(scores)
        threshold = _threshold_on_validation(prob[:n_val], counts_val, mask)
        results[name] = _score(prob[n_val:], counts_test, mask, threshold, starts[test_idx], flag_areas,
                               city.grid.cell_size_m)
        results[name]["probability_map"] = to_prob.to_dict()
    return results


def backtest(model: Any, checkpoint: Mapping[str, Any], city: Any,
             on_progress: ProgressFn | None = None,
             baselines: Mapping[str, Callable] | None = None,
             baseline_results: Mapping[str, dict[str, Any]] | None = None,
             flag_areas: Sequence[str] = (),
             last_windows: int | None = None) -> BacktestResult:
    """Score a trained model and every baseline of its category on the test windows.

    model, checkpoint: as ``registry.load_model`` returns them (the checkpoint's data_window
    gives the splits, its feature_config the inputs). city: ``modeling.city.CityData`` on the
    model's grid. baselines: {name: fn} to compare with; default
    ``baselines.baselines_for(category)``. baseline_results: already computed by
    ``score_baselines`` for this city and data_window (the study reuses them across runs);
    they must cover exactly this backtest's test windows (and flag_areas, if any).
    flag_areas: flagged areas such as "0.75sqmi" or "2km2" (units.parse_area); every
    forecaster's result then has hit_rate_area, pai_area and pei_area keyed by them.
    See the module docstring for the protocol. on_progress receives
    {"stage": "evaluate", "fraction", "step"}. last_windows: score only the latest test windows
    (see latest_windows; a quick first evaluation). Raises NotReady without test or validation
    windows, GridMismatch when the model was trained on another grid.
    """
    _check_grid(checkpoint, city)
    flag_areas = check_flag_areas(flag_areas)
    cell_size_m = float(city.grid.cell_size_m)
    category = str(checkpoint.get("category") or city.category)
    starts = pd.DatetimeIndex(city.starts)
    counts = np.asarray(city.counts)
    mask = np.asarray(city.mask, dtype=bool)
    from safety_models.modeling.forecaster import horizon_windows_of

    h = horizon_windows_of(checkpoint)
    val_idx, test_idx = latest_windows(*horizon_splits(starts, checkpoint["data_window"], h),
                                       last_windows)
    targets = np.concatenate([val_idx, test_idx])   # one pass forecasts validation and test
    n_val = len(val_idx)
    counts_val = horizon_counts(counts, val_idx, h)                    # (windows, rows, cols)
    counts_test = horizon_counts(counts, test_idx, h)
    test_starts = starts[test_idx]
    if baseline_results is None and baselines is None:
        from safety_models.evaluation.baselines import baselines_for

        baselines = baselines_for(category)
    # Progress: the model's batched passes take roughly as long as one baseline's pass.
    model_share = 1.0 / (1 + (0 if baseline_results is not None else len(baselines)))

    _report(on_progress, 0.0, step="model")
    blend = checkpoint.get("blend")
    with_network = bool(blend) and set(blend.get("weights") or {}) != {"network"}
    prob = model_probabilities(
        model, checkpoint, city, targets,
        on_batch=lambda done: _report(on_progress, model_share * done / len(targets), step="model"),
    )
    network_prob = network_probabilities(model, checkpoint, city, targets) if with_network else None
    threshold = _threshold_on_validation(prob[:n_val], counts_val, mask)
    model_result = _score(prob[n_val:], counts_test, mask, threshold, test_starts, flag_areas, cell_size_m)
    model_result["validation"] = _validation_scores(prob[:n_val], counts_val, mask)
    if blend:
        model_result["blend"] = {k: blend.get(k) for k in ("weights", "description", "reason", "selection")}
    extra: dict[str, Any] = {}
    if network_prob is not None:
        # the network alone, scored the same way: what the blend adds to it
        network_result = _score(network_prob[n_val:], counts_test, mask,
                                _threshold_on_validation(network_prob[:n_val], counts_val, mask), test_starts,
                                flag_areas, cell_size_m)
        network_result["validation"] = _validation_scores(network_prob[:n_val], counts_val, mask)
        extra["network"] = network_result
    extra["oracle"] = oracle_result(counts_test, mask, flag_areas, cell_size_m)

    if baseline_results is None:
        baseline_results = score_baselines(
            city, checkpoint["data_window"], baselines,
            on_progress=lambda r: _report(on_progress, model_share + (1 - model_share) * r["fraction"],
                                          step=r.get("step")),
            flag_areas=flag_areas, horizon_windows=h, last_windows=last_windows,
        )
    else:
        expected = [s.isoformat() for s in test_starts]
        for name, result in baseline_results.items():
            if [w["start"] for w in result["per_window"]] != expected:
                raise ValueError(f"baseline {name!r} was scored on other windows than this backtest's")
    baseline_results = {name: dict(result) for name, result in baseline_results.items()}
    model_result["vs_baselines"] = {
        name: compare_per_window(model_result, result, int(city.window_hours), h)
        for name, result in baseline_results.items()
    }
    if "network" in extra:
        extra["network"]["vs_baselines"] = {
            name: compare_per_window(extra["network"], result, int(city.window_hours), h)
            for name, result in baseline_results.items()
        }
        model_result["vs_network"] = compare_per_window(model_result, extra["network"], int(city.window_hours), h)
    model_result["oracle_gap"] = oracle_gap(model_result, baseline_results, extra["oracle"])
    _report(on_progress, 1.0, step="done")

    step = pd.Timedelta(hours=int(city.window_hours))
    return BacktestResult(
        category=category,
        model_id=str(checkpoint.get("model_id", "")),
        test_start=test_starts[0].isoformat(),
        test_end=(test_starts[-1] + h * step).isoformat(),
        window_hours=int(city.window_hours),
        cell_size_m=float(city.grid.cell_size_m),
        n_windows=len(test_idx),
        n_test_events=int(round(float(counts[test_idx[0]:test_idx[-1] + h][:, mask].sum()))),
        results={"model": model_result, "baselines": baseline_results, **extra},
        horizon_windows=h,
    )


def _validation_scores(prob_val: np.ndarray, counts_val: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """The model's ranking scores on the validation windows (for choosing between models):
    metrics.ranking_scores, the scores training keeps for the validation windows too."""
    return metrics.ranking_scores(prob_val, counts_val, mask)


def compare_per_window(model_result: Mapping[str, Any], baseline_result: Mapping[str, Any],
                       window_hours: int, horizon_windows: int = 1) -> dict[str, Any]:
    """Paired model - baseline differences of hit rate and PAI at 5 % of the area and of the
    per-window ROC-AUC ("auc": the mean of each window's AUC, not the pooled roc_auc).

    Both results must come from score_windows on the same windows. See paired_difference;
    forecasts over a horizon of h windows overlap, so blocks are at least h long.
    """
    return {
        key: paired_difference(_per_window_values(model_result, key),
                               _per_window_values(baseline_result, key), window_hours,
                               min_block=horizon_windows)
        for key in ("hit_rate_5", "pai_5", "auc")
    }


# ---------------------------------------------------------------------------------------------
# The oracle: how far from the best a static map could do


ORACLE_KEYS: tuple[str, ...] = ("hit_rate", "hit_rate_se", "pai", "pai_se", "pei", "pei_se", "roc_auc",
                                "n_windows", "n_city_cells", "n_events")


def oracle_result(counts_test: np.ndarray, mask: np.ndarray, flag_areas: Sequence[str] = (),
                  cell_size_m: float | None = None) -> dict[str, Any]:
    """The hindsight ranking: every test window ranks the cells by their events over the
    whole test period (counts_test (windows, rows, cols) summed), scored like a forecaster.

    No forecaster made from earlier windows can be expected to beat it (it knows where the
    test period's events fell, not when), so it bounds what a better model could add; the
    per-window perfect choice (score_windows' perfect_hit_rate, PEI's denominator) is
    higher still. Ranking scores only (hit rate, PAI, PEI, ROC-AUC and per_window rows; the
    area scores of metrics.score_areas for flag_areas).
    """
    counts_test = np.asarray(counts_test, dtype=np.float64)
    total = counts_test.sum(axis=0)                                   # (rows, cols)
    scores = np.broadcast_to(total / max(1.0, float(total.max())), counts_test.shape)
    full = metrics.score_windows(scores, counts_test, mask, threshold=0.5)
    out = {k: full[k] for k in ORACLE_KEYS}
    out["per_window"] = full["per_window"]
    if flag_areas:
        out.update(metrics.score_areas(scores, counts_test, flag_areas, float(cell_size_m), mask))
    out["definition"] = "cells ranked by their events over the whole test period (hindsight)"
    return out


def oracle_gap(model_result: Mapping[str, Any], baseline_results: Mapping[str, Mapping[str, Any]],
               oracle: Mapping[str, Any]) -> dict[str, Any]:
    """The share of the gap between each baseline and the oracle that the model closes:
    (model - baseline) / (oracle - baseline), for PAI at 5 % and ROC-AUC. 1 = as good as the
    hindsight map, 0 = no better than the baseline, < 0 = worse. NaN when the oracle is not
    above the baseline. "best_baseline": the baseline with the highest test PAI at 5 % (ROC-AUC
    breaks ties; chosen on test, which flatters the baselines, not the model)."""
    def value(m: Mapping[str, Any], key: str) -> float:
        v = (m.get("pai") or {}).get("5") if key == "pai_5" else m.get(key)
        return float("nan") if v is None else float(v)

    def share(key: str, baseline: Mapping[str, Any]) -> float:
        gap = value(oracle, key) - value(baseline, key)
        return (value(model_result, key) - value(baseline, key)) / gap if gap > 0 else float("nan")

    out: dict[str, Any] = {"by_baseline": {name: {key: share(key, b) for key in ("pai_5", "roc_auc")}
                                           for name, b in baseline_results.items()}}
    if baseline_results:
        def rank(item: tuple[str, Mapping[str, Any]]) -> tuple[float, float]:
            return tuple(-math.inf if math.isnan(value(item[1], k)) else value(item[1], k)
                         for k in ("pai_5", "roc_auc"))

        best = max(baseline_results.items(), key=rank)[0]
        out.update(best_baseline=best, **{f"{key}_share": out["by_baseline"][best][key] for key in ("pai_5", "roc_auc")})
    return out


# ---------------------------------------------------------------------------------------------
# Store-level entry points and persistence


def evaluate_category(store: Any, category: str, model_id: str | None = None,
                      on_progress: ProgressFn | None = None, device: str = "auto",
                      flag_areas: Sequence[str] = (), horizon: str | None = None,
                      last_windows: int | None = None) -> BacktestResult:
    """Backtest a category's model (the active one by default) and save it for the dashboard.

    flag_areas: areas to score besides the shares of the city (see backtest); checked
    before anything is computed (UserError for one units.parse_area cannot read).
    horizon: "7d", "14d", "30d", "60d" or "90d" -> the category's model for that horizon
    (registry.horizon_model_id) unless model_id is given; None: the next-window model.

    Saves ``BacktestResult.to_dict()`` to ``evaluations/<model_id>.json`` under the home
    folder (atomic replace). Raises NotReady without a model or without test windows.
    device: where the model runs ('auto' | 'cpu' | 'cuda[:N]'; UserError for cuda without
    a GPU). last_windows: only the latest test windows (see latest_windows).
    """
    from safety_models.modeling import registry
    from safety_models.modeling.city import model_city
    from safety_models.modeling.devices import resolve_device

    flag_areas = check_flag_areas(flag_areas)
    if model_id is None and horizon is not None:
        model_id = registry.horizon_model_id(store, category, horizon)
    if model_id is None:
        model_id = registry.active_model_id(store, category)
        if model_id is None:
            raise NotReady(f"there is no {category} model yet; train one before evaluating")
    model, checkpoint = registry.load_model(store, model_id)
    model.to(resolve_device(device))
    city = model_city(store, category, checkpoint)
    result = backtest(model, {**checkpoint, "model_id": model_id}, city, on_progress=on_progress,
                      flag_areas=flag_areas, last_windows=last_windows)
    save_evaluation(result)
    return result


def evaluation_path(model_id: str) -> Path:
    """Where a model's evaluation lives: evaluations/<model_id>.json under the home folder."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", model_id) or model_id in (".", ".."):
        raise ValueError(f"model id {model_id!r} is not a safe file name")
    return paths.sub_dir("evaluations") / f"{model_id}.json"


def save_evaluation(result: BacktestResult) -> Path:
    """Write the result's JSON atomically (temporary file + rename); returns the path."""
    path = evaluation_path(result.model_id)
    write_json_atomic(path, result.to_dict())
    return path


def load_evaluation(model_id: str) -> dict[str, Any] | None:
    """The saved evaluation of a model (``BacktestResult.to_dict()``), or None if never run."""
    path = evaluation_path(model_id)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
