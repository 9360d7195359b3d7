"""Metrics: tiny examples worked out by hand in the comments."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from safety_models import units
from safety_models.evaluation import metrics

# The running example: 4 cells.
SCORES = np.array([0.9, 0.1, 0.5, 0.3])
COUNTS = np.array([2.0, 0.0, 0.0, 1.0])


def test_hit_rate_pai_pei_at_one_cell():
    # coverage 0.25 of 4 cells -> ceil(1) = 1 cell: cell 0 (score 0.9) with 2 of 3 events.
    assert metrics.hit_rate(SCORES, COUNTS, 0.25) == pytest.approx(2 / 3)
    # PAI = (2/3) / (1/4) = 8/3.
    assert metrics.pai(SCORES, COUNTS, 0.25) == pytest.approx(8 / 3)
    # The best single cell is cell 0 too -> perfect hit rate 2/3, PEI 1.
    assert metrics.perfect_hit_rate(COUNTS, 0.25) == pytest.approx(2 / 3)
    assert metrics.pei(SCORES, COUNTS, 0.25) == pytest.approx(1.0)


def test_hit_rate_pai_pei_at_two_cells():
    # coverage 0.5 -> 2 cells: cells 0 and 2 (0.9, 0.5) hold 2 of 3 events.
    assert metrics.hit_rate(SCORES, COUNTS, 0.5) == pytest.approx(2 / 3)
    assert metrics.pai(SCORES, COUNTS, 0.5) == pytest.approx((2 / 3) / (1 / 2))
    # Hindsight picks cells 0 and 3: 3 of 3 -> PEI = (2/3) / 1.
    assert metrics.perfect_hit_rate(COUNTS, 0.5) == pytest.approx(1.0)
    assert metrics.pei(SCORES, COUNTS, 0.5) == pytest.approx(2 / 3)


def test_coverage_rounds_up_to_whole_cells():
    # 0.3 of 4 cells = 1.2 -> 2 cells; 0.07 of 100 cells = 7 cells, not 8 from float error.
    assert metrics.n_flagged(0.3, 4) == 2
    assert metrics.n_flagged(0.07, 100) == 7
    assert metrics.n_flagged(0.001, 10) == 1
    assert metrics.n_flagged(1.0, 10) == 10
    with pytest.raises(ValueError):
        metrics.n_flagged(0.0, 10)


def test_five_percent_of_fifty_cells_is_three_cells():
    # 0.05 * 50 = 2.5 cells: the top 3 (ceil) are flagged, where round() would flag 2.
    # Scores fall with the cell index; events: 1 in cell 0, 1 in cell 2, 2 in cell 10.
    scores = np.arange(50.0)[::-1]
    counts = np.zeros(50)
    counts[[0, 2, 10]] = [1.0, 1.0, 2.0]
    assert metrics.n_flagged(0.05, 50) == 3 and round(0.05 * 50) == 2
    # Cells 0, 1, 2 hold 2 of the 4 events; PAI divides by the share flagged, 3/50, not 0.05.
    assert metrics.hit_rate(scores, counts, 0.05) == pytest.approx(0.5)
    assert metrics.pai(scores, counts, 0.05) == pytest.approx(0.5 / (3 / 50))  # 25/3
    scores_5 = metrics.ranking_scores(scores, counts)
    assert scores_5["cells_flagged_5"] == 3 and scores_5["n_windows"] == 1
    assert scores_5["hit_rate_5"] == pytest.approx(0.5)
    assert scores_5["pai_5"] == pytest.approx(25 / 3)
    # AUC over 3 event cells x 47 without: cell 0 outranks all 47, cell 2 all but cell 1 (46),
    # cell 10 the 39 cells 11..49 -> 132 / 141.
    assert scores_5["roc_auc"] == pytest.approx(132 / 141)


def test_ranking_scores_are_score_windows_own():
    # Two windows of the running example on 4 cells (5 % -> 1 cell), the second without events.
    prob = np.stack([SCORES, SCORES[::-1]])
    counts = np.stack([COUNTS, [0.0, 0.0, 0.0, 1.0]])
    mask = np.array([True, True, True, False])
    report = metrics.score_windows(prob, counts, mask, threshold=0.5)
    scores_5 = metrics.ranking_scores(prob, counts, mask)
    assert scores_5["hit_rate_5"] == report["hit_rate"]["5"]
    assert scores_5["pai_5"] == report["pai"]["5"]
    assert scores_5["roc_auc"] == report["roc_auc"]
    assert scores_5["cells_flagged_5"] == 1 and scores_5["n_windows"] == report["n_windows"] == 2


def test_ties_are_broken_by_cell_index():
    # All scores equal: the lowest cell index is flagged first, so cell 0 (no events).
    assert metrics.hit_rate([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 0], 0.25) == 0.0
    assert metrics.hit_rate([0.5, 0.5, 0.5, 0.5], [1, 0, 0, 0], 0.25) == 1.0


def test_nan_scores_rank_last():
    assert metrics.hit_rate([np.nan, 0.1, 0.0], [1, 0, 1], 0.34) == pytest.approx(0.5)  # flags cells 1, 2


def test_mask_limits_events_and_area():
    # City = cells 1..3: scores [0.1, 0.5, 0.3], counts [0, 0, 1]; cell 0's 2 events do not count.
    mask = np.array([False, True, True, True])
    # 0.34 of 3 city cells -> ceil(1.02) = 2 cells: cells 2 and 3 -> 1 of 1 event.
    assert metrics.hit_rate(SCORES, COUNTS, 0.34, mask) == pytest.approx(1.0)
    # PAI = 1 / (2/3) = 1.5.
    assert metrics.pai(SCORES, COUNTS, 0.34, mask) == pytest.approx(1.5)
    # A (rows, cols) mask for a (windows, rows, cols) tensor works the same.
    assert metrics.hit_rate(SCORES.reshape(1, 2, 2), COUNTS.reshape(1, 2, 2), 0.34, mask.reshape(2, 2)).tolist() == [1.0]


def test_no_events_is_nan_not_zero():
    assert math.isnan(metrics.hit_rate(SCORES, np.zeros(4), 0.25))
    assert math.isnan(metrics.pai(SCORES, np.zeros(4), 0.25))
    assert math.isnan(metrics.pei(SCORES, np.zeros(4), 0.25))
    assert math.isnan(metrics.perfect_hit_rate(np.zeros(4), 0.25))


def test_per_window_arrays_and_mean_and_se():
    scores = np.stack([SCORES, SCORES, SCORES])
    counts = np.stack([COUNTS, np.zeros(4), [0.0, 1.0, 0.0, 0.0]])
    # Window 0: 2/3; window 1: no events (NaN); window 2: cell 0 has no event -> 0.
    rates = metrics.hit_rate(scores, counts, 0.25)
    assert rates.shape == (3,)
    np.testing.assert_allclose(rates, [2 / 3, np.nan, 0.0])
    # Mean of {2/3, 0} = 1/3; sd (ddof=1) = sqrt(2) * 1/3; se = sd / sqrt(2) = 1/3.
    mean, se = metrics.mean_and_se(rates)
    assert mean == pytest.approx(1 / 3) and se == pytest.approx(1 / 3)
    assert metrics.mean_and_se([np.nan]) == (pytest.approx(math.nan, nan_ok=True), pytest.approx(math.nan, nan_ok=True))
    one_mean, one_se = metrics.mean_and_se([0.5])
    assert one_mean == 0.5 and math.isnan(one_se)


def test_hit_rate_curve():
    curve = metrics.hit_rate_curve(SCORES, COUNTS, [0.25, 0.5, 1.0])
    assert list(curve["cells_flagged"]) == [1, 2, 4]
    # Top 1: 2/3; top 2 (cells 0, 2): 2/3; all: 1.
    np.testing.assert_allclose(curve["hit_rate"], [2 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(curve["perfect_hit_rate"], [2 / 3, 1.0, 1.0])
    np.testing.assert_allclose(curve["pai"], [8 / 3, 4 / 3, 1.0])
    assert len(metrics.hit_rate_curve(SCORES, COUNTS)) == 100


def test_recall_and_map_at_k():
    # Event cells: 0 and 3 -> K = 2. Top 2 by score: cells 0, 2 -> recall@K = 1/2.
    assert metrics.recall_at_k(SCORES, COUNTS) == pytest.approx(0.5)
    # Ranks: 1 = cell 0 (event, precision 1/1), 2 = cell 2 (no event) -> AP@2 = (1 + 0) / 2.
    assert metrics.map_at_k(SCORES, COUNTS) == pytest.approx(0.5)
    # Scores [0.1, 0.9, 0.8, 0.2]: ranks cell 1 (no), cell 2 (no) -> recall 0, AP 0.
    assert metrics.recall_at_k([0.1, 0.9, 0.8, 0.2], COUNTS) == 0.0
    # Scores [0.5, 0.9, 0.1, 0.8]: ranks cell 1 (no), cell 3 (yes, precision 1/2) within K=2
    # -> recall 1/2; AP = (0 + 1/2) / 2 = 1/4.
    assert metrics.recall_at_k([0.5, 0.9, 0.1, 0.8], COUNTS) == pytest.approx(0.5)
    assert metrics.map_at_k([0.5, 0.9, 0.1, 0.8], COUNTS) == pytest.approx(0.25)
    # Per window, NaN without events.
    both = metrics.map_at_k(np.stack([SCORES, SCORES]), np.stack([COUNTS, np.zeros(4)]))
    np.testing.assert_allclose(both, [0.5, np.nan])


# Classification example: prob [0.9, 0.6, 0.4, 0.1], y [1, 0, 1, 0], threshold 0.5
# -> predicted [1, 1, 0, 0]: tp = 1 (0.9), fp = 1 (0.6), fn = 1 (0.4), tn = 1 (0.1).
PROB = np.array([0.9, 0.6, 0.4, 0.1])
Y = np.array([1, 0, 1, 0])


def test_confusion_and_threshold_metrics():
    assert metrics.confusion(PROB, Y, 0.5) == {"tp": 1, "fp": 1, "tn": 1, "fn": 1}
    assert metrics.accuracy(PROB, Y, 0.5) == 0.5
    assert metrics.always_no_event_accuracy(Y) == 0.5
    assert metrics.always_no_event_accuracy([0, 0, 0, 1]) == 0.75
    # Sensitivity 1/2, specificity 1/2.
    assert metrics.balanced_accuracy(PROB, Y, 0.5) == 0.5
    assert metrics.precision_recall_f1(PROB, Y, 0.5) == (0.5, 0.5, 0.5)
    # Threshold 0.4 -> predicted [1, 1, 1, 0]: tp 2, fp 1, fn 0 -> P 2/3, R 1, F1 4/5.
    p, r, f = metrics.precision_recall_f1(PROB, Y, 0.4)
    assert (p, r, f) == (pytest.approx(2 / 3), 1.0, pytest.approx(0.8))
    # Balanced accuracy: sensitivity 1, specificity 1/2 -> 3/4.
    assert metrics.balanced_accuracy(PROB, Y, 0.4) == pytest.approx(0.75)


def test_roc_points_by_hand():
    # Thresholds 0.8, 0.4, 0.35, 0.1 flag 1, 2, 3, 4 of the values: (FPR, TPR) by hand.
    r = metrics.roc_points(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]), n_points=101)
    points = sorted(set(zip(r["fpr"], r["tpr"])))
    assert points == [(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)]
    assert metrics.roc_points(np.array([0.1, 0.2]), np.array([0, 0]), 101) is None


def test_undefined_precision_recall_are_nan():
    p, r, f = metrics.precision_recall_f1([0.1, 0.2], [0, 0], 0.5)
    assert math.isnan(p) and math.isnan(r) and math.isnan(f)
    p, r, f = metrics.precision_recall_f1([0.1, 0.2], [1, 0], 0.5)
    assert math.isnan(p) and r == 0.0 and f == 0.0


def test_auc_brier_by_hand():
    # Positive/negative pairs: (0.9 > 0.6), (0.9 > 0.1), (0.4 < 0.6), (0.4 > 0.1) -> 3/4.
    assert metrics.roc_auc(PROB, Y) == pytest.approx(0.75)
    # Ranked: 0.9 (event: P 1, R 1/2), 0.6 (no), 0.4 (event: P 2/3, R 1)
    # -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    assert metrics.pr_auc(PROB, Y) == pytest.approx(5 / 6)
    # (0.1^2 + 0.6^2 + 0.6^2 + 0.1^2) / 4 = 0.74 / 4.
    assert metrics.brier(PROB, Y) == pytest.approx(0.185)
    assert math.isnan(metrics.roc_auc([0.1, 0.2], [0, 0]))
    assert math.isnan(metrics.pr_auc([0.1, 0.2], [1, 1]))


def test_roc_auc_per_window_matches_sklearn_with_ties():
    rng = np.random.default_rng(1)
    prob = rng.integers(0, 5, size=(6, 40)) / 4.0  # many ties
    y = rng.random((6, 40)) < 0.3
    y[5] = False  # one class only -> NaN
    per_window = metrics.roc_auc_per_window(prob, y)
    for w in range(5):
        assert per_window[w] == pytest.approx(metrics.roc_auc(prob[w], y[w]))
    assert math.isnan(per_window[5])
    # By hand, as test_auc_brier_by_hand: 3/4.
    assert metrics.roc_auc_per_window(PROB[None, :], Y[None, :]).tolist() == [0.75]


def test_calibration_table_by_hand():
    table = metrics.calibration_table([0.05, 0.15, 0.12, 0.95, 0.3], [0, 1, 0, 1, 1], n_bins=10)
    assert list(table.columns) == ["bin_lo", "bin_hi", "mean_predicted", "observed_rate", "count"]
    assert len(table) == 10 and table["count"].sum() == 5
    # Bin [0.1, 0.2): 0.15 and 0.12 -> mean 0.135, one event of two.
    assert table.loc[1, "count"] == 2
    assert table.loc[1, "mean_predicted"] == pytest.approx(0.135)
    assert table.loc[1, "observed_rate"] == 0.5
    # 0.3 sits in [0.3, 0.4), not in [0.2, 0.3) by float error; 0.95 in the last bin.
    assert table.loc[3, "count"] == 1 and table.loc[9, "observed_rate"] == 1.0
    assert table.loc[5, "count"] == 0 and math.isnan(table.loc[5, "mean_predicted"])


def test_operating_threshold_maximises_f1():
    # Thresholds and F1: 0.9 -> 2/3, 0.6 -> 1/2, 0.4 -> 4/5, 0.1 -> 2/3. Best: 0.4.
    assert metrics.operating_threshold(PROB, Y) == pytest.approx(0.4)
    # Ties go to the higher threshold: [0.8, 0.2] with y [1, 0]: 0.8 -> F1 1.
    assert metrics.operating_threshold([0.8, 0.2], [1, 0]) == pytest.approx(0.8)
    assert metrics.operating_threshold([0.3, 0.2], [0, 0]) == 0.5


def test_coverage_keys():
    assert [metrics.coverage_key(c) for c in (0.01, 0.05, 0.1, 0.2, 0.025)] == ["1", "5", "10", "20", "2.5"]


def test_score_windows_report_is_json_and_consistent():
    # Two windows of the running example; the second has no events at all.
    prob = np.stack([SCORES, SCORES]).reshape(2, 2, 2)
    counts = np.stack([COUNTS, np.zeros(4)]).reshape(2, 2, 2)
    report = metrics.score_windows(prob, counts, mask=None, coverages=(0.25, 0.5), threshold=0.5)
    text = json.dumps(report, allow_nan=False)  # no numpy types, no NaN
    assert json.loads(text) == report
    assert report["hit_rate"] == {"25": pytest.approx(2 / 3), "50": pytest.approx(2 / 3)}
    assert report["pai"]["25"] == pytest.approx(8 / 3)
    assert report["pei"] == {"25": pytest.approx(1.0), "50": pytest.approx(2 / 3)}
    assert report["perfect_hit_rate"]["50"] == pytest.approx(1.0)
    assert report["hit_rate_se"]["25"] is None  # one window with events -> no SE
    # Classification over 8 cell-windows: y = [1, 0, 0, 1, 0, 0, 0, 0]; prob >= 0.5 flags
    # 0.9 and 0.5 twice each: tp 1 (0.9 in window 0), fp 3, fn 1 (0.3), tn 3.
    assert report["confusion"] == {"tp": 1, "fp": 3, "tn": 3, "fn": 1}
    assert report["accuracy"] == 0.5
    assert report["always_no_event_accuracy"] == 0.75
    assert report["threshold"] == 0.5
    assert report["recall_at_k"] == {"mean": 0.5, "se": None}
    assert report["map_at_k"]["mean"] == 0.5
    assert [w["n_events"] for w in report["per_window"]] == [3.0, 0.0]
    # 5 % of 4 cells -> 1 cell: the same as 25 %.
    assert report["per_window"][0]["hit_rate_5"] == pytest.approx(2 / 3)
    assert report["per_window"][0]["pai_5"] == pytest.approx(8 / 3)
    # Window 0 AUC: events at cells 0 (0.9) and 3 (0.3) vs 1 (0.1), 2 (0.5) -> 3 of 4 pairs.
    assert report["per_window"][0]["auc"] == pytest.approx(0.75)
    assert report["per_window"][1]["hit_rate_5"] is None and report["per_window"][1]["auc"] is None
    assert len(report["calibration"]) == 10


def test_score_windows_chooses_threshold_when_not_given():
    report = metrics.score_windows(PROB[None, :], Y[None, :].astype(float))
    assert report["threshold"] == pytest.approx(0.4)
    assert report["f1"] == pytest.approx(0.8)


def test_metrics_import_nothing_of_modeling():
    """training imports the one definition; the definition must not import training back."""
    import subprocess
    import sys

    code = ("import sys, safety_models.evaluation.metrics; "
            "print([m for m in sys.modules if m.startswith('safety_models.modeling') or m == 'torch'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# Flagged areas in km² / square miles


@pytest.mark.parametrize("text, km2", [
    ("2km2", 2.0), ("2 km2", 2.0), ("1.5 km²", 1.5), ("3 sq km", 3.0), ("2KM2", 2.0),
    ("0.75sqmi", 0.75 * 2.589988110336), ("0.75 sq mi", 0.75 * 2.589988110336), ("1mi2", 2.589988110336),
    ("50ha", 0.5), ("250000m2", 0.25), (".5 mi²", 0.5 * 2.589988110336),
])
def test_parse_area_reads_number_and_unit(text, km2):
    assert units.parse_area(text) == pytest.approx(km2, rel=1e-12)


@pytest.mark.parametrize("text", ["", "2", "km2", "2 acres", "-1km2", "two km2", "0km2"])
def test_parse_area_refuses_what_it_cannot_read(text):
    with pytest.raises(ValueError, match="area"):
        units.parse_area(text)


def test_cells_for_an_area_fill_whole_cells_at_least_one():
    # 500 m cells are 0.25 km²: 0.75 km² is exactly 3 cells (not 2 by float error);
    # 0.75 sq mi = 1.942... km² = 7.77 cells -> 7; a tiny area still flags one; a huge one all.
    assert metrics.n_flagged_for_area(0.75, 500.0, 100) == 3
    assert metrics.n_flagged_for_area(units.parse_area("0.75sqmi"), 500.0, 100) == 7
    assert metrics.n_flagged_for_area(0.01, 500.0, 100) == 1
    assert metrics.n_flagged_for_area(1000.0, 500.0, 20) == 20
    assert metrics.n_flagged_for_area(2.0, 1000.0, 100) == 2
    assert metrics.n_flagged_for_area(2.0, 1000.0, 0) == 0


def test_area_metrics_by_hand():
    # 10 city cells of 500 m ranked 0..9 by score; 6 events: 2 in cell 1, 1 in cell 2, 3 in cell 5.
    # 0.75 km² = 3 cells (0, 1, 2): 3 of 6 events -> hit rate 0.5, PAI 0.5 / (3/10) = 5/3; the
    # best 3 cells (5, 1, 2) hold all 6 -> PEI 0.5. 0.75 sq mi = 7 cells (0..6): all 6 events,
    # PAI 1 / (7/10) = 10/7, PEI 1.
    scores = np.arange(10, 0, -1, dtype=float)
    counts = np.array([0, 2, 1, 0, 0, 3, 0, 0, 0, 0], dtype=float)
    assert metrics.hit_rate_area(scores, counts, 0.75, 500.0) == pytest.approx(0.5)
    assert metrics.pai_area(scores, counts, 0.75, 500.0) == pytest.approx(5 / 3)
    assert metrics.pei_area(scores, counts, 0.75, 500.0) == pytest.approx(0.5)
    sqmi = units.parse_area("0.75sqmi")
    assert metrics.pai_area(scores, counts, sqmi, 500.0) == pytest.approx(10 / 7)
    assert metrics.pei_area(scores, counts, sqmi, 500.0) == pytest.approx(1.0)
    # two windows, the second without events: NaN there, and score_areas averages the rest
    both = metrics.hit_rate_area(np.stack([scores, scores]), np.stack([counts, 0 * counts]), 0.75, 500.0)
    assert both[0] == pytest.approx(0.5) and np.isnan(both[1])
    report = metrics.score_areas(np.stack([scores, scores]), np.stack([counts, 0 * counts]),
                                 ["0.75km2", "0.75sqmi"], 500.0)
    assert report["hit_rate_area"] == pytest.approx({"0.75km2": 0.5, "0.75sqmi": 1.0})
    assert report["pai_area"] == pytest.approx({"0.75km2": 5 / 3, "0.75sqmi": 10 / 7})
    assert report["pei_area"] == pytest.approx({"0.75km2": 0.5, "0.75sqmi": 1.0})
    assert report["cells_flagged_area"] == {"0.75km2": 3, "0.75sqmi": 7}
    assert report["area_km2"]["0.75sqmi"] == pytest.approx(1.942491082752)


def test_area_metrics_count_city_cells_only():
    # a 2 x 3 grid whose last column is outside the city: 4 city cells of 1 km; 2 km² = 2 cells
    scores = np.array([[[5.0, 4.0, 9.0], [3.0, 2.0, 9.0]]])      # (1 window, 2 rows, 3 cols)
    counts = np.array([[[1.0, 0.0, 7.0], [1.0, 2.0, 0.0]]])
    mask = np.array([[True, True, False], [True, True, False]])
    # city cells by score: (0,0)=5, (0,1)=4, (1,0)=3, (1,1)=2; top 2 hold 1 of 4 city events
    assert metrics.hit_rate_area(scores, counts, 2.0, 1000.0, mask) == pytest.approx([0.25])
    assert metrics.pai_area(scores, counts, 2.0, 1000.0, mask) == pytest.approx([0.25 / (2 / 4)])


def test_parse_length_m_reads_units_by_hand():
    assert units.parse_length_m("600ft") == pytest.approx(600 * 0.3048)      # 182.88 m
    assert units.parse_length_m("150") == 150.0                              # metres when no unit
    assert units.parse_length_m("0.1 mi") == pytest.approx(160.9344)
    assert units.parse_length_m("250 Feet") == pytest.approx(76.2)
    for bad in ("0m", "ten metres", "5 furlongs", ""):
        with pytest.raises(ValueError, match="length"):
            units.parse_length_m(bad)
