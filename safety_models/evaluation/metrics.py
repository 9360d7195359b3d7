"""Scores against what happened, on arrays (pure).

Two families, as the field uses them:

* Hot-spot metrics (crime mapping): flag the top share of city cells by score and ask how many
  events fell in them -- hit rate, PAI (hit rate per unit of area share), PEI (PAI relative to
  the best possible choice of as many cells); traffic papers add recall@K and MAP@K with K the
  number of cells that had an event.
* Classification of "at least one event in a cell-window": confusion, accuracy (and the
  accuracy of always answering "no event", which is what a high accuracy must beat), balanced
  accuracy, precision/recall/F1, ROC AUC (and the ROC curve's points), PR AUC, Brier score,
  calibration.

Shapes: ``scores`` and ``counts`` are (cells,) for one window or (windows, cells) -- a
(windows, rows, cols) array is flattened to (windows, rows * cols). ``mask`` is a boolean
(cells,) or (rows, cols) array of city cells; only those count, for events and for area.
Per-window functions return a float for one window and a (windows,) float64 array otherwise.
Undefined values (no events, one class only) are NaN, never a sentinel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from safety_models.files import to_jsonable
from safety_models.units import parse_area

DEFAULT_COVERAGES: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2)


# ---------------------------------------------------------------------------------------------
# Shapes and helpers


def _windows_by_cells(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        return array[None, :]  # (1, cells)
    if array.ndim == 2:
        return array  # (windows, cells)
    if array.ndim == 3:
        return array.reshape(array.shape[0], -1)  # (windows, rows * cols)
    raise ValueError(f"{name} must be (cells,), (windows, cells) or (windows, rows, cols); got shape {array.shape}")


def _prepare(scores: Any, counts: Any, mask: Any | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """-> (scores (windows, city_cells), counts (windows, city_cells), one_window)."""
    one_window = np.ndim(scores) == 1
    score_2d = _windows_by_cells(scores, "scores")
    count_2d = _windows_by_cells(counts, "counts")
    if score_2d.shape != count_2d.shape:
        raise ValueError(f"scores {np.shape(scores)} and counts {np.shape(counts)} differ in shape")
    if mask is not None:
        city = np.asarray(mask, dtype=bool).ravel()
        if city.size != score_2d.shape[1]:
            raise ValueError(f"mask has {city.size} cells, scores have {score_2d.shape[1]}")
        score_2d, count_2d = score_2d[:, city], count_2d[:, city]
    return score_2d, count_2d, one_window


def _per_window(values: np.ndarray, one_window: bool) -> float | np.ndarray:
    return float(values[0]) if one_window else values


def n_flagged(coverage: float, n_city_cells: int) -> int:
    """How many cells a coverage flags: ceil(coverage * n_city_cells), at least 1 when any.

    coverage is a share of the city's cells in (0, 1]; the product is rounded to 9 decimals
    first so that 0.07 * 100 flags 7 cells, not 8.
    """
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1], got {coverage!r}")
    return min(n_city_cells, math.ceil(round(coverage * n_city_cells, 9)))


def _rank_by_score(scores_2d: np.ndarray) -> np.ndarray:
    """(windows, cells) cell order by descending score; ties keep the lower cell index first.

    A stable sort of -score is deterministic; NaN scores sort last (never flagged first).
    """
    return np.argsort(-scores_2d, axis=1, kind="stable")


def _captured_counts(scores_2d: np.ndarray, counts_2d: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """(windows, cells) events in the top 1, 2, ... cells by score (cumulative).

    order: _rank_by_score(scores_2d) when the caller already has it (sorting dominates).
    """
    if order is None:
        order = _rank_by_score(scores_2d)
    return np.cumsum(np.take_along_axis(counts_2d, order, axis=1), axis=1)


def _best_captured_counts(counts_2d: np.ndarray) -> np.ndarray:
    """(windows, cells) events in the top 1, 2, ... cells chosen with hindsight."""
    return np.cumsum(-np.sort(-counts_2d, axis=1), axis=1)


def _share(captured: np.ndarray, total: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, captured / np.where(total > 0, total, 1.0), np.nan)


def _hit_rates(scores_2d: np.ndarray, counts_2d: np.ndarray, coverage: float) -> tuple[np.ndarray, int]:
    n_city = counts_2d.shape[1]
    k = n_flagged(coverage, n_city)
    if k == 0:
        return np.full(counts_2d.shape[0], np.nan), 0
    captured = _captured_counts(scores_2d, counts_2d)[:, k - 1]
    return _share(captured, counts_2d.sum(axis=1)), k


def mean_and_se(values: Any) -> tuple[float, float]:
    """Mean over windows and its standard error (sample sd / sqrt(n)), ignoring NaN windows.

    (NaN, NaN) when no window is defined; the SE is NaN with a single defined window.
    """
    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[~np.isnan(array)]
    if array.size == 0:
        return math.nan, math.nan
    se = float(array.std(ddof=1) / math.sqrt(array.size)) if array.size > 1 else math.nan
    return float(array.mean()), se


# ---------------------------------------------------------------------------------------------
# Hot-spot metrics


def hit_rate(scores: Any, counts: Any, coverage: float, mask: Any | None = None) -> float | np.ndarray:
    """Share of a window's events in the top ceil(coverage * n_city_cells) cells by score.

    Ties are broken by cell index (lower first), so the answer is deterministic.
    NaN for a window without events in the city.
    """
    score_2d, count_2d, one_window = _prepare(scores, counts, mask)
    rates, _ = _hit_rates(score_2d, count_2d, coverage)
    return _per_window(rates, one_window)


def pai(scores: Any, counts: Any, coverage: float, mask: Any | None = None) -> float | np.ndarray:
    """Predictive accuracy index: hit rate / share of city cells flagged.

    1 is no better than chance; NaN for a window without events.
    """
    score_2d, count_2d, one_window = _prepare(scores, counts, mask)
    rates, k = _hit_rates(score_2d, count_2d, coverage)
    area_share = k / count_2d.shape[1] if k else math.nan
    return _per_window(rates / area_share, one_window)


def perfect_hit_rate(counts: Any, coverage: float, mask: Any | None = None) -> float | np.ndarray:
    """The hit rate of the best possible choice of as many cells (chosen in hindsight).

    NaN for a window without events.
    """
    _, count_2d, one_window = _prepare(counts, counts, mask)
    k = n_flagged(coverage, count_2d.shape[1])
    if k == 0:
        return _per_window(np.full(count_2d.shape[0], np.nan), one_window)
    best = _best_captured_counts(count_2d)[:, k - 1]
    return _per_window(_share(best, count_2d.sum(axis=1)), one_window)


def pei(scores: Any, counts: Any, coverage: float, mask: Any | None = None) -> float | np.ndarray:
    """Predictive efficiency index: PAI / PAI of the best choice of as many cells.

    The area shares cancel, so it is hit rate / perfect hit rate, in [0, 1]; NaN without events.
    """
    score_2d, count_2d, one_window = _prepare(scores, counts, mask)
    rates, k = _hit_rates(score_2d, count_2d, coverage)
    if k == 0:
        return _per_window(rates, one_window)
    best = _share(_best_captured_counts(count_2d)[:, k - 1], count_2d.sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return _per_window(rates / best, one_window)


def hit_rate_curve(
    scores: Any, counts: Any, coverages: Sequence[float] | None = None, mask: Any | None = None
) -> pd.DataFrame:
    """Hit rate against area share, for the dashboard's curves (means over windows).

    coverages default to 1 %, 2 %, ..., 100 %. Columns: coverage, cells_flagged, hit_rate,
    hit_rate_se, perfect_hit_rate, pai, pei (NaN windows ignored; all NaN when no events).
    """
    if coverages is None:
        coverages = np.arange(1, 101) / 100.0
    score_2d, count_2d, _ = _prepare(scores, counts, mask)
    n_city = count_2d.shape[1]
    total = count_2d.sum(axis=1)
    captured = _captured_counts(score_2d, count_2d)
    best = _best_captured_counts(count_2d)
    rows = []
    for coverage in coverages:
        k = n_flagged(float(coverage), n_city)
        rates = _share(captured[:, k - 1], total) if k else np.full(len(total), np.nan)
        perfect = _share(best[:, k - 1], total) if k else np.full(len(total), np.nan)
        mean_rate, se_rate = mean_and_se(rates)
        mean_perfect, _ = mean_and_se(perfect)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_pei, _ = mean_and_se(rates / perfect)
        rows.append(
            {
                "coverage": float(coverage),
                "cells_flagged": k,
                "hit_rate": mean_rate,
                "hit_rate_se": se_rate,
                "perfect_hit_rate": mean_perfect,
                "pai": mean_rate / (k / n_city) if k else math.nan,
                "pei": mean_pei,
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# A flagged area in km² or square miles (what a patrol plan is given), instead of a share

# The area strings are read by units.parse_area.


def n_flagged_for_area(area_km2: float, cell_size_m: float, n_city_cells: int) -> int:
    """How many cells an area flags, as an analyst fills it: whole cells until the area is
    used, floor(area / cell area), at least 1 and at most every city cell (0 for no cells).

    The ratio is rounded to 9 decimals first, so 0.75 km² of 500 m cells (0.25 km²) is 3 cells.
    """
    if not area_km2 > 0 or not cell_size_m > 0:
        raise ValueError(f"area ({area_km2!r} km²) and cell size ({cell_size_m!r} m) must be positive")
    if n_city_cells <= 0:
        return 0
    cell_km2 = (cell_size_m / 1000.0) ** 2
    return int(min(n_city_cells, max(1, math.floor(round(area_km2 / cell_km2, 9)))))


def _rates_at_k(score_2d: np.ndarray, count_2d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(hit rate, perfect hit rate) per window of the top k cells; NaN without events or k = 0."""
    if k == 0:
        nan = np.full(count_2d.shape[0], np.nan)
        return nan, nan
    total = count_2d.sum(axis=1)
    return (_share(_captured_counts(score_2d, count_2d)[:, k - 1], total),
            _share(_best_captured_counts(count_2d)[:, k - 1], total))


def hit_rate_area(scores: Any, counts: Any, area_km2: float, cell_size_m: float,
                  mask: Any | None = None) -> float | np.ndarray:
    """Share of a window's events in the top n_flagged_for_area cells by score (ties by cell
    index, as hit_rate). NaN for a window without events."""
    score_2d, count_2d, one_window = _prepare(scores, counts, mask)
    k = n_flagged_for_area(area_km2, cell_size_m, count_2d.shape[1])
    return _per_window(_rates_at_k(score_2d, count_2d, k)[0], one_window)


def pai_area(scores: Any, counts: Any, area_km2: float, cell_size_m: float,
             mask: Any | None = None) -> float | np.ndarray:
    """hit_rate_area / (k / n_city_cells), k the cells flagged: PAI with the share of city cells
    the area actually flags (as pai divides by k / n). NaN for a window without events."""
    score_2d, count_2d, one_window = _prepare(scores, counts, mask)
    n_city = count_2d.shape[1]
    k = n_flagged_for_area(area_km2, cell_size_m, n_city)
    rates = _rates_at_k(score_2d, count_2d, k)[0]
    return _per_window(rates / (k / n_city) if k else rates, one_window)


def pei_area(scores: Any, counts: Any, area_km2: float, cell_size_m: float,
             mask: Any | None = None) -> float | np.ndarray:
    """hit_rate_area / the best hit rate of as many cells chosen in hindsight, in [0, 1].
    NaN for a window without events."""
    score_2d, count_2d, one_window = _prepare(scores, counts, mask)
    k = n_flagged_for_area(area_km2, cell_size_m, count_2d.shape[1])
    rates, best = _rates_at_k(score_2d, count_2d, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _per_window(rates / best, one_window)


def score_areas(scores: Any, counts: Any, areas: Sequence[str], cell_size_m: float,
                mask: Any | None = None) -> dict[str, Any]:
    """Hit rate, PAI and PEI for flagged areas, keyed by the area strings given (units.parse_area).

    Keys: hit_rate_area, pai_area, pei_area ({area: mean over windows with events}), their
    _se twins, cells_flagged_area ({area: k}) and area_km2 ({area: km²}). NaN -> None.
    Raises ValueError for an area string units.parse_area does not understand.
    """
    score_2d, count_2d, _ = _prepare(scores, counts, mask)
    n_city = count_2d.shape[1]
    order = _rank_by_score(score_2d)
    captured = _captured_counts(score_2d, count_2d, order)
    best = _best_captured_counts(count_2d)
    total = count_2d.sum(axis=1)
    report: dict[str, Any] = {name: {} for name in ("hit_rate_area", "pai_area", "pei_area", "hit_rate_area_se",
                                                    "pai_area_se", "pei_area_se", "cells_flagged_area", "area_km2")}
    for text in areas:
        area_km2 = parse_area(text)
        k = n_flagged_for_area(area_km2, cell_size_m, n_city)
        rates = _share(captured[:, k - 1], total) if k else np.full(len(total), np.nan)
        perfect = _share(best[:, k - 1], total) if k else np.full(len(total), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            values = {"hit_rate_area": rates, "pai_area": rates / (k / n_city) if k else rates,
                      "pei_area": rates / perfect}
        for name, v in values.items():
            report[name][text], report[f"{name}_se"][text] = mean_and_se(v)
        report["cells_flagged_area"][text] = int(k)
        report["area_km2"][text] = area_km2
    return to_jsonable(report)


def _event_cells_by_rank(scores_2d: np.ndarray, counts_2d: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """(windows, cells) bool: did the cell at rank i (by descending score) have an event?"""
    if order is None:
        order = _rank_by_score(scores_2d)
    return np.take_along_axis(counts_2d > 0, order, axis=1)


def _recall_at_k(relevant: np.ndarray) -> np.ndarray:
    k = relevant.sum(axis=1)  # (windows,) event cells == K
    found = np.cumsum(relevant, axis=1)
    found_at_k = np.where(k > 0, np.take_along_axis(found, np.maximum(k - 1, 0)[:, None], axis=1)[:, 0], 0)
    return _share(found_at_k.astype(np.float64), k.astype(np.float64))


def _average_precision_at_k(relevant: np.ndarray) -> np.ndarray:
    k = relevant.sum(axis=1)
    ranks = np.arange(1, relevant.shape[1] + 1)
    precision_at_rank = np.cumsum(relevant, axis=1) / ranks  # (windows, cells)
    within_k = ranks[None, :] <= k[:, None]
    summed = np.sum(precision_at_rank * (relevant & within_k), axis=1)
    return _share(summed, k.astype(np.float64))


def recall_at_k(scores: Any, counts: Any, mask: Any | None = None) -> float | np.ndarray:
    """Share of a window's event cells found among its top K cells, K = number of event cells.

    (Traffic-accident literature.) Ties as in hit_rate. NaN for a window without events.
    """
    score_2d, count_2d, one_window = _prepare(scores, counts, mask)
    return _per_window(_recall_at_k(_event_cells_by_rank(score_2d, count_2d, None)), one_window)


def map_at_k(scores: Any, counts: Any, mask: Any | None = None) -> float | np.ndarray:
    """Average precision at K per window, K = number of event cells (its mean is MAP@K).

    AP@K = (1/K) * sum over ranks i <= K of precision@i * [cell at rank i had an event].
    NaN for a window without events.
    """
    score_2d, count_2d, one_window = _prepare(scores, counts, mask)
    return _per_window(_average_precision_at_k(_event_cells_by_rank(score_2d, count_2d, None)), one_window)


# ---------------------------------------------------------------------------------------------
# Classification of "at least one event in the cell-window"


def _flat(prob: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    prob_flat = np.asarray(prob, dtype=np.float64).ravel()
    y_flat = np.asarray(y).ravel().astype(bool)
    if prob_flat.shape != y_flat.shape:
        raise ValueError(f"prob has {prob_flat.size} values, y has {y_flat.size}")
    return prob_flat, y_flat


def confusion(prob: Any, y: Any, threshold: float) -> dict[str, int]:
    """Counts {tp, fp, tn, fn}; a cell-window is predicted positive when prob >= threshold."""
    prob_flat, y_flat = _flat(prob, y)
    predicted = prob_flat >= threshold
    return {
        "tp": int(np.count_nonzero(predicted & y_flat)),
        "fp": int(np.count_nonzero(predicted & ~y_flat)),
        "tn": int(np.count_nonzero(~predicted & ~y_flat)),
        "fn": int(np.count_nonzero(~predicted & y_flat)),
    }


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def accuracy(prob: Any, y: Any, threshold: float = 0.5) -> float:
    """Share of cell-windows classified right; NaN for no data."""
    c = confusion(prob, y, threshold)
    return _ratio(c["tp"] + c["tn"], sum(c.values()))


def always_no_event_accuracy(y: Any) -> float:
    """Accuracy of answering "no event" everywhere: the share of cell-windows without one.

    With rare events this is high (often > 0.95), and it is what accuracy must beat.
    """
    y_flat = np.asarray(y).ravel().astype(bool)
    return _ratio(float(np.count_nonzero(~y_flat)), y_flat.size)


def balanced_accuracy(prob: Any, y: Any, threshold: float = 0.5) -> float:
    """Mean of sensitivity and specificity; with one class present, that class's rate alone."""
    c = confusion(prob, y, threshold)
    rates = [_ratio(c["tp"], c["tp"] + c["fn"]), _ratio(c["tn"], c["tn"] + c["fp"])]
    defined = [r for r in rates if not math.isnan(r)]
    return float(np.mean(defined)) if defined else math.nan


def precision_recall_f1(prob: Any, y: Any, threshold: float = 0.5) -> tuple[float, float, float]:
    """(precision, recall, F1) of "prob >= threshold" as a prediction of an event.

    Precision is NaN when nothing is flagged, recall NaN when there are no events, F1
    (= 2tp / (2tp + fp + fn)) NaN only when there is neither.
    """
    c = confusion(prob, y, threshold)
    precision = _ratio(c["tp"], c["tp"] + c["fp"])
    recall = _ratio(c["tp"], c["tp"] + c["fn"])
    f1 = _ratio(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"])
    return precision, recall, f1


def roc_auc(prob: Any, y: Any) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    prob_flat, y_flat = _flat(prob, y)
    if y_flat.all() or not y_flat.any():
        return math.nan
    from sklearn.metrics import roc_auc_score   # here: reading saved scores needs no sklearn

    return float(roc_auc_score(y_flat, prob_flat))


def roc_auc_per_window(prob: Any, y: Any) -> np.ndarray:
    """ROC AUC of each window, (windows,) float64; NaN for a window with one class only.

    prob, y: (windows, cells). The Mann-Whitney form with average ranks for ties, which
    equals roc_auc_score, vectorised over windows (one sklearn call per window is ~100x slower).
    """
    prob_2d = _windows_by_cells(prob, "prob")
    y_2d = _windows_by_cells(y, "y") > 0
    from scipy.stats import rankdata

    ranks = rankdata(prob_2d, axis=1)  # (windows, cells), ties share their mean rank
    n_pos = y_2d.sum(axis=1).astype(np.float64)
    n_neg = y_2d.shape[1] - n_pos
    rank_sum = np.sum(ranks * y_2d, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def roc_points(scores: Any, events: Any, n_points: int) -> dict[str, list] | None:
    """ROC curve for a chart: exact (FPR, TPR) at n_points thresholds, the quantiles of the
    scores (evenly spaced in the share of cell-windows flagged), plus (0, 0) and (1, 1).

    scores, events: 1-D, one value per cell-window. One binary search per value instead of
    sklearn's full sort: a year of daily windows on 5,000 cells is 2 million values. None
    when only one class is present (ROC undefined).
    """
    scores = np.asarray(scores, dtype=np.float64)
    events = np.asarray(events, dtype=bool)
    n_pos = int(events.sum())
    n_neg = events.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    thresholds = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, n_points)))  # ascending
    # bin[i] = number of thresholds <= score i: the value is flagged by thresholds[:bin[i]].
    bins = np.searchsorted(thresholds, scores, side="right")
    pos_at = np.bincount(bins[events], minlength=len(thresholds) + 1)    # (thresholds + 1,)
    neg_at = np.bincount(bins[~events], minlength=len(thresholds) + 1)
    # Flagged at threshold j (score >= thresholds[j]) = values with bin > j.
    tpr = pos_at[::-1].cumsum()[::-1][1:] / n_pos                        # (thresholds,) descending in j
    fpr = neg_at[::-1].cumsum()[::-1][1:] / n_neg
    fpr = np.concatenate([[0.0], fpr[::-1], [1.0]])
    tpr = np.concatenate([[0.0], tpr[::-1], [1.0]])
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist()}


def pr_auc(prob: Any, y: Any) -> float:
    """Area under the precision-recall curve (average precision); NaN when one class only.

    Its chance level is the event rate, not 0.5.
    """
    prob_flat, y_flat = _flat(prob, y)
    if y_flat.all() or not y_flat.any():
        return math.nan
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y_flat, prob_flat))


def brier(prob: Any, y: Any) -> float:
    """Mean squared difference between probability and outcome (0 best); NaN for no data."""
    prob_flat, y_flat = _flat(prob, y)
    return float(np.mean((prob_flat - y_flat) ** 2)) if prob_flat.size else math.nan


def calibration_table(prob: Any, y: Any, n_bins: int = 10) -> pd.DataFrame:
    """Reliability table over n_bins equal-width probability bins on [0, 1].

    Columns: bin_lo, bin_hi, mean_predicted, observed_rate, count. Every bin is listed; an
    empty bin has count 0 and NaN means. Bins are [lo, hi), the last one [lo, 1].
    """
    prob_flat, y_flat = _flat(prob, y)
    # floor(p * n) rather than searching linspace edges, whose float error misplaces 0.3 etc.
    bins = np.clip(np.floor(prob_flat * n_bins).astype(np.int64), 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    summed_prob = np.bincount(bins, weights=prob_flat, minlength=n_bins)
    summed_y = np.bincount(bins, weights=y_flat.astype(np.float64), minlength=n_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_predicted = np.where(count > 0, summed_prob / count, np.nan)
        observed_rate = np.where(count > 0, summed_y / count, np.nan)
    edges = np.arange(n_bins + 1) / n_bins
    return pd.DataFrame(
        {
            "bin_lo": edges[:-1],
            "bin_hi": edges[1:],
            "mean_predicted": mean_predicted,
            "observed_rate": observed_rate,
            "count": count.astype(np.int64),
        }
    )


def operating_threshold(prob_val: Any, y_val: Any) -> float:
    """The probability threshold that maximises F1 on validation data.

    Choose it on validation windows and pass it on to the test windows; choosing it on test
    data would flatter the model. Candidates are the observed probabilities (prob >= t is a
    positive); among equal F1 the highest threshold wins (fewer false alarms). When y_val has
    no event, F1 is 0 or undefined for every threshold and 0.5 is returned.
    """
    prob_flat, y_flat = _flat(prob_val, y_val)
    if not y_flat.any():
        return 0.5
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y_flat, prob_flat)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    best = np.flatnonzero(np.isclose(f1, f1.max(), rtol=0.0, atol=1e-12))[-1]
    return float(thresholds[best])


# ---------------------------------------------------------------------------------------------
# Everything at once, for evaluation reports and checkpoints


def coverage_key(coverage: float) -> str:
    """0.05 -> "5", 0.025 -> "2.5": the percent key used in reports and the CLI's JSON."""
    return f"{round(coverage * 100, 6):g}"


# The share of area that early stopping, promotion advice and the Models page quote.
SELECTION_COVERAGE = 0.05


def ranking_scores(prob: Any, counts: Any, mask: Any | None = None) -> dict[str, float | int]:
    """The scores that choose between models: what validation, early stopping and a model's
    stored metrics use, so the Models page and the Evaluation page agree.

    prob, counts, mask: as in score_windows (prob also ranks the cells).
    Keys: hit_rate_5 and pai_5 (hit_rate and pai at SELECTION_COVERAGE, i.e. n_flagged(0.05,
    n_city_cells) cells, means over windows with events, as score_windows' "5"), roc_auc
    (pooled over every city cell-window), cells_flagged_5 (how many cells 5 % flags, which
    also tells these scores from ones computed before this definition), n_windows.
    NaN where undefined (no events, one class only).
    """
    score_2d, count_2d, _ = _prepare(prob, counts, mask)  # (windows, city_cells)
    rates, k = _hit_rates(score_2d, count_2d, SELECTION_COVERAGE)
    area_share = k / count_2d.shape[1] if k else math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        pai_5, _ = mean_and_se(rates / area_share)
    return {
        "hit_rate_5": mean_and_se(rates)[0],
        "pai_5": pai_5,
        "roc_auc": roc_auc(score_2d, count_2d > 0),
        "cells_flagged_5": int(k),
        "n_windows": int(score_2d.shape[0]),
    }


def score_windows(
    prob: Any,
    counts: Any,
    mask: Any | None = None,
    coverages: Sequence[float] = DEFAULT_COVERAGES,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Every metric above over a stretch of windows, as a JSON-serialisable dict.

    prob:   (windows, cells) or (windows, rows, cols) predicted P(>= 1 event); also the score
            that ranks cells for the hot-spot metrics
    counts: events, same shape; y = counts > 0
    mask:   city cells, (cells,) or (rows, cols); None = every cell
    threshold: for the classification metrics; None chooses operating_threshold on these
            windows (do that on validation data and pass the result for test data)

    Keys: n_windows, n_city_cells, n_events, event_rate, threshold, confusion {tp, fp, tn, fn},
    accuracy, always_no_event_accuracy, balanced_accuracy, precision, recall, f1, roc_auc,
    pr_auc, brier, calibration (list of row dicts); hit_rate, pai, pei, perfect_hit_rate as
    {"1": mean, "5": mean, ...} keyed by coverage percent, with hit_rate_se, pai_se, pei_se,
    perfect_hit_rate_se twins; recall_at_k and map_at_k as {mean, se}; per_window: list of
    {window, n_events, hit_rate_5, pai_5, auc}. Means ignore windows without events; NaN -> None.
    """
    score_2d, count_2d, _ = _prepare(prob, counts, mask)  # (windows, city_cells)
    y_2d = count_2d > 0
    if threshold is None:
        threshold = operating_threshold(score_2d, y_2d)
    precision, recall, f1 = precision_recall_f1(score_2d, y_2d, threshold)
    report: dict[str, Any] = {
        "n_windows": int(score_2d.shape[0]),
        "n_city_cells": int(score_2d.shape[1]),
        "n_events": float(count_2d.sum()),
        "event_rate": float(y_2d.mean()) if y_2d.size else math.nan,
        "threshold": float(threshold),
        "confusion": confusion(score_2d, y_2d, threshold),
        "accuracy": accuracy(score_2d, y_2d, threshold),
        "always_no_event_accuracy": always_no_event_accuracy(y_2d),
        "balanced_accuracy": balanced_accuracy(score_2d, y_2d, threshold),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc(score_2d, y_2d),
        "pr_auc": pr_auc(score_2d, y_2d),
        "brier": brier(score_2d, y_2d),
        "calibration": calibration_table(score_2d, y_2d).to_dict(orient="records"),
    }

    # Hot-spot metrics from one ranking per window.
    n_city = count_2d.shape[1]
    total = count_2d.sum(axis=1)  # (windows,)
    order = _rank_by_score(score_2d)  # (windows, city_cells); sorted once, used four times
    captured = _captured_counts(score_2d, count_2d, order)  # (windows, city_cells)
    best = _best_captured_counts(count_2d)

    def at(coverage: float) -> tuple[np.ndarray, np.ndarray, float]:
        k = n_flagged(coverage, n_city)
        if k == 0:
            nan = np.full(len(total), np.nan)
            return nan, nan, math.nan
        return _share(captured[:, k - 1], total), _share(best[:, k - 1], total), k / n_city

    for name in ("hit_rate", "pai", "pei", "perfect_hit_rate"):
        report[name], report[f"{name}_se"] = {}, {}
    for coverage in coverages:
        key = coverage_key(coverage)
        rates, perfect, area_share = at(coverage)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_metric = {
                "hit_rate": rates,
                "pai": rates / area_share,
                "pei": rates / perfect,
                "perfect_hit_rate": perfect,
            }
        for name, values in per_metric.items():
            report[name][key], report[f"{name}_se"][key] = mean_and_se(values)

    relevant = _event_cells_by_rank(score_2d, count_2d, order)
    for name, fn in (("recall_at_k", _recall_at_k), ("map_at_k", _average_precision_at_k)):
        mean, se = mean_and_se(fn(relevant))
        report[name] = {"mean": mean, "se": se}

    rates_5, _, area_5 = at(0.05)
    auc_per_window = roc_auc_per_window(score_2d, y_2d)
    report["per_window"] = [
        {
            "window": w,
            "n_events": float(total[w]),
            "hit_rate_5": float(rates_5[w]),
            "pai_5": float(rates_5[w] / area_5),
            "auc": float(auc_per_window[w]),
        }
        for w in range(score_2d.shape[0])
    ]
    return to_jsonable(report)
