"""The yardsticks a fine-tuned model must beat (pure).

Every baseline has the same signature so evaluation can run them side by side:

    fn(counts_before, starts_before, target_start, spec, **params) -> score (rows, cols) float64

counts_before: (windows, rows, cols) events in the windows strictly before the target window;
starts_before: their starts (DatetimeIndex, same length); target_start: the start of the
window to forecast; spec: the GridSpec (for cell size). A higher score means more risk; only
the ranking matters for hot-spot metrics (evaluation maps scores to probabilities itself).
A baseline refuses (ValueError) windows that start at or after target_start, so nothing from
the future can leak in. With no prior window at all every score is NaN (no forecast).

Names (BASELINES): naive, historical_average, kde, prospective_hotspot, seasonal.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage, signal

from safety_models.grid import GridSpec
from safety_models.schema import check_category

Baseline = Callable[..., np.ndarray]

DEFAULT_BANDWIDTH_M = 400.0
# A 400 m kernel on 500 m cells would not reach the neighbouring cells and the "hot spot" map
# would collapse to the raw counts; kernels therefore always span at least 1.5 cells.
MIN_BANDWIDTH_CELLS = 1.5
WEEK = pd.Timedelta(days=7)
# Kernels up to this many cells wide (bandwidth <= 15 cells) are convolved directly.
DIRECT_CONVOLUTION_MAX_WIDTH = 31


# ---------------------------------------------------------------------------------------------
# Helpers


def _check_history(counts_before: Any, starts_before: Any, target_start: Any) -> tuple[np.ndarray, pd.DatetimeIndex, pd.Timestamp]:
    counts = np.asarray(counts_before)
    if counts.ndim != 3:
        raise ValueError(f"counts_before must be (windows, rows, cols), got shape {counts.shape}")
    starts = pd.DatetimeIndex(starts_before)
    target = pd.Timestamp(target_start)
    if len(starts) != counts.shape[0]:
        raise ValueError(f"{counts.shape[0]} count windows but {len(starts)} window starts")
    if len(starts) and starts.max() >= target:
        raise ValueError(
            f"history reaches {starts.max()}, at or after the target window {target}: "
            "a baseline may only see windows before the one it forecasts"
        )
    return counts, starts, target


def _no_forecast(counts: np.ndarray) -> np.ndarray:
    return np.full(counts.shape[1:], np.nan)  # (rows, cols)


def _bandwidth_cells(spec: GridSpec, bandwidth_m: float, min_bandwidth_cells: float) -> float:
    if not bandwidth_m > 0:
        raise ValueError(f"bandwidth_m must be positive, got {bandwidth_m!r}")
    return max(bandwidth_m / spec.cell_size_m, min_bandwidth_cells)


def _distance_cells(radius_cells: float) -> np.ndarray:
    """(2r+1, 2r+1) distances in cells from the centre cell, r = floor(radius_cells)."""
    r = int(math.floor(radius_cells))
    offsets = np.arange(-r, r + 1, dtype=np.float64)
    return np.hypot(offsets[:, None], offsets[None, :])


def quartic_kernel(bandwidth_cells: float) -> np.ndarray:
    """Quartic (biweight) kernel on cell offsets: (1 - (d/h)^2)^2 for d < h, else 0.

    d is the distance between cell centres and h the bandwidth, both in cells; the peak (the
    centre cell) is 1. Unnormalised: only rankings matter.
    """
    d = _distance_cells(bandwidth_cells)
    return np.where(d < bandwidth_cells, (1.0 - (d / bandwidth_cells) ** 2) ** 2, 0.0)


def inverse_distance_kernel(bandwidth_cells: float) -> np.ndarray:
    """Bowers-Johnson spatial weights 1 / (1 + d) for d <= h cells, else 0 (centre 1)."""
    d = _distance_cells(bandwidth_cells)
    return np.where(d <= bandwidth_cells, 1.0 / (1.0 + d), 0.0)


def _weighted_sum(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum_w weights[w] * counts[w] as float64 (rows, cols), touching only weighted windows.

    Baselines look at the last few weeks of years of history: reading only the windows with
    a weight (a contiguous tail when starts are sorted) keeps one call well under a millisecond
    per week of history, where a full (windows,) x (windows, cells) product would read it all.
    """
    used = np.flatnonzero(weights)
    if used.size == 0:
        return np.zeros(counts.shape[1:])
    lo, hi = int(used[0]), int(used[-1]) + 1
    window_weights = weights[lo:hi, None, None]  # (used, 1, 1)
    return np.sum(window_weights * counts[lo:hi], axis=0, dtype=np.float64)


def _smooth(grid_2d: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """(rows, cols) convolved with a symmetric kernel; zero outside the grid."""
    if kernel.shape[0] <= DIRECT_CONVOLUTION_MAX_WIDTH:
        # Exact: a cell beyond every event's bandwidth stays exactly 0.
        return ndimage.convolve(grid_2d, kernel, mode="constant", cval=0.0)
    # Wide kernels: FFT, whose ~1e-16 round-off would light up far cells, so it is cut off.
    smoothed = signal.fftconvolve(grid_2d, kernel, mode="same")
    return np.where(smoothed > 1e-9 * max(float(smoothed.max()), 1e-300), smoothed, 0.0)


# ---------------------------------------------------------------------------------------------
# Baselines


def naive_last_window(counts_before: Any, starts_before: Any, target_start: Any, spec: GridSpec) -> np.ndarray:
    """Tomorrow looks like today: the counts of the last window before the target."""
    counts, _, _ = _check_history(counts_before, starts_before, target_start)
    if counts.shape[0] == 0:
        return _no_forecast(counts)
    return counts[-1].astype(np.float64)


def historical_average(
    counts_before: Any,
    starts_before: Any,
    target_start: Any,
    spec: GridSpec,
    last_n_windows: int | None = None,
) -> np.ndarray:
    """Mean events per window and cell over all prior windows (or the last_n_windows)."""
    counts, _, _ = _check_history(counts_before, starts_before, target_start)
    if last_n_windows is not None:
        if last_n_windows < 1:
            raise ValueError(f"last_n_windows must be >= 1, got {last_n_windows}")
        counts = counts[-last_n_windows:]
    if counts.shape[0] == 0:
        return _no_forecast(counts)
    return counts.mean(axis=0, dtype=np.float64)


def kde_hotspot(
    counts_before: Any,
    starts_before: Any,
    target_start: Any,
    spec: GridSpec,
    bandwidth_m: float = DEFAULT_BANDWIDTH_M,
    lookback_days: float = 60.0,
    min_bandwidth_cells: float = MIN_BANDWIDTH_CELLS,
) -> np.ndarray:
    """Retrospective hot spots: a quartic-kernel density of the last lookback_days of events.

    Events are placed at their cell centres; the kernel's bandwidth is bandwidth_m in cells
    (at least min_bandwidth_cells). Windows starting within lookback_days before the target
    count. Zero beyond the bandwidth of every event; all zero when the lookback is quiet.
    """
    counts, starts, target = _check_history(counts_before, starts_before, target_start)
    if counts.shape[0] == 0:
        return _no_forecast(counts)
    recent = np.asarray(starts >= target - pd.Timedelta(days=lookback_days))
    summed = _weighted_sum(counts, recent.astype(np.float64))  # (rows, cols)
    return _smooth(summed, quartic_kernel(_bandwidth_cells(spec, bandwidth_m, min_bandwidth_cells)))


def prospective_weeks_ago(starts_before: Any, target_start: Any) -> np.ndarray:
    """Whole weeks between each prior window and the target: 0 for windows starting in the
    last 7 days before it (so the week just past weighs fully), 1 for the week before, ...

    weeks_ago = ceil((target_start - window_start) / 7 days) - 1.
    """
    starts = pd.DatetimeIndex(starts_before)
    age_weeks = (pd.Timestamp(target_start) - starts) / WEEK  # float weeks, > 0
    return np.ceil(np.asarray(age_weeks, dtype=np.float64)).astype(np.int64) - 1


def prospective_hotspot(
    counts_before: Any,
    starts_before: Any,
    target_start: Any,
    spec: GridSpec,
    bandwidth_m: float = DEFAULT_BANDWIDTH_M,
    bandwidth_weeks: int = 8,
    min_bandwidth_cells: float = MIN_BANDWIDTH_CELLS,
) -> np.ndarray:
    """Prospective hot-spotting (Bowers, Johnson & Pease 2004): risk spreads from recent events.

    Each past event adds 1/(1 + d_cells) * 1/(1 + weeks_ago) to every cell within the spatial
    bandwidth (bandwidth_m in cells, at least min_bandwidth_cells; d between cell centres) and
    only while weeks_ago < bandwidth_weeks (see prospective_weeks_ago). The weights factor into
    space x time, so this is one time-weighted sum of windows and one convolution.
    """
    counts, starts, target = _check_history(counts_before, starts_before, target_start)
    if counts.shape[0] == 0:
        return _no_forecast(counts)
    weeks_ago = prospective_weeks_ago(starts, target)
    time_weight = np.where(weeks_ago < bandwidth_weeks, 1.0 / (1.0 + weeks_ago), 0.0)  # (windows,)
    weighted = _weighted_sum(counts, time_weight)  # (rows, cols)
    return _smooth(weighted, inverse_distance_kernel(_bandwidth_cells(spec, bandwidth_m, min_bandwidth_cells)))


def seasonal_same_weeks(
    counts_before: Any,
    starts_before: Any,
    target_start: Any,
    spec: GridSpec,
    weeks_either_side: int = 1,
) -> np.ndarray:
    """Public-health seasonality: the mean of the same weeks (+-1) in previous years.

    For every earlier year y, windows starting within weeks_either_side weeks of
    target_start - 52 * y weeks (52 weeks keeps the weekday) count; the score is their mean
    events per window. Falls back to historical_average when there is no earlier year yet.
    """
    counts, starts, target = _check_history(counts_before, starts_before, target_start)
    if counts.shape[0] == 0:
        return _no_forecast(counts)
    age_weeks = np.asarray((target - starts) / WEEK, dtype=np.float64)  # (windows,) > 0
    # Distance (in weeks) from the same week 1, 2, ... years earlier: age_weeks - 52 * y.
    nearest_year = np.maximum(np.round(age_weeks / 52.0), 1.0)
    same_weeks = np.abs(age_weeks - 52.0 * nearest_year) <= weeks_either_side
    if not same_weeks.any():
        return historical_average(counts, starts, target, spec)
    return counts[same_weeks].mean(axis=0, dtype=np.float64)


BASELINES: dict[str, Baseline] = {
    "naive": naive_last_window,
    "historical_average": historical_average,
    "kde": kde_hotspot,
    "prospective_hotspot": prospective_hotspot,
    "seasonal": seasonal_same_weeks,
}


def baselines_for(category: str) -> dict[str, Baseline]:
    """The baselines reported for a category: all of them for health, all but seasonal else."""
    check_category(category)
    return {name: fn for name, fn in BASELINES.items() if name != "seasonal" or category == "health"}


def forecast_windows(
    fn: Baseline | str,
    counts: Any,
    starts: Any,
    target_indices: Any,
    spec: GridSpec,
    **params: Any,
) -> np.ndarray:
    """(targets, rows, cols) scores of one baseline for several target windows.

    Window t is forecast from counts[:t] and starts[:t] only. fn is a baseline or its name in
    BASELINES. The historical average over all windows uses running sums (one pass instead of
    one pass per target); every other baseline is called once per target.
    """
    fn = BASELINES[fn] if isinstance(fn, str) else fn
    counts = np.asarray(counts)
    starts = pd.DatetimeIndex(starts)
    targets = np.asarray(target_indices, dtype=np.int64)
    out = np.empty((len(targets), *counts.shape[1:]), dtype=np.float64)  # (targets, rows, cols)
    if fn is historical_average and params.get("last_n_windows") is None:
        # Targets in time order; running = sum of counts[:t], topped up window by window, so
        # the history is read once per call instead of once per target.
        running = np.zeros(counts.shape[1:], dtype=np.float64)  # (rows, cols)
        summed_up_to = 0
        for i in np.argsort(targets, kind="stable"):
            t = int(targets[i])
            if not 0 <= t < len(starts):
                raise IndexError(f"target window {t} outside 0..{len(starts) - 1}")
            running += counts[summed_up_to:t].sum(axis=0, dtype=np.float64)
            summed_up_to = max(summed_up_to, t)
            out[i] = running / t if t > 0 else np.nan
        return out
    for i, t in enumerate(targets):
        out[i] = fn(counts[:t], starts[:t], starts[t], spec, **params)
    return out
