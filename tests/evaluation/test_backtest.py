"""Backtest protocol on tiny, hand-made cities: rolling origin, same windows and cells,
thresholds from validation only, and the CLI's JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from safety_models.evaluation import backtest as evaluation, metrics
from safety_models.errors import NotReady
from safety_models.grid import GridSpec

N_ROWS, N_COLS = 3, 4
SPEC = GridSpec("EPSG:32616", 440_000.0, 4_635_000.0, 500.0, N_ROWS, N_COLS)
REQUIRED_M_KEYS = ("accuracy", "always_no_event_accuracy", "balanced_accuracy", "roc_auc", "pr_auc",
                   "brier", "hit_rate", "pai", "pei")


@dataclass(frozen=True)
class City:
    """Stand-in for modeling.city.CityData (same attribute names)."""

    category: str
    grid: GridSpec
    window_hours: int
    starts: pd.DatetimeIndex
    counts: np.ndarray   # (windows, rows, cols)
    mask: np.ndarray     # (rows, cols) bool
    boundary: dict | None = None


def tiny_city(n_windows: int = 30, seed: int = 0) -> City:
    """30 days on a 3 x 4 grid; the corner cell (0, 3) lies outside the city."""
    rng = np.random.default_rng(seed)
    rate = np.linspace(0.1, 2.0, N_ROWS * N_COLS).reshape(N_ROWS, N_COLS)  # busier to the north-east
    counts = rng.poisson(rate, size=(n_windows, N_ROWS, N_COLS)).astype(np.float32)
    mask = np.ones((N_ROWS, N_COLS), dtype=bool)
    mask[0, 3] = False
    starts = pd.date_range("2024-01-01", periods=n_windows, freq="D")
    return City("crime", SPEC, 24, starts, counts, mask)


# Windows 0..19 train, 20..24 validate, 25..29 test.
DATA_WINDOW = {"start": "2024-01-01", "end": "2024-01-31", "train_end": "2024-01-21", "val_end": "2024-01-26"}
VAL_IDX, TEST_IDX = list(range(20, 25)), list(range(25, 30))


def checkpoint(**extra) -> dict:
    return {"model_id": "crime-test-1", "category": "crime", "data_window": DATA_WINDOW,
            "feature_config": {"window_hours": 24}, **extra}


class Recorder:
    """A forecaster that notes what it was given: (len(counts_before), last start seen, target)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, counts_before, starts_before, target_start, spec):
        self.calls.append((len(counts_before), starts_before[-1], pd.Timestamp(target_start)))
        return self.fn(counts_before, starts_before, target_start, spec)


def mean_so_far(counts_before, starts_before, target_start, spec):
    return counts_before.mean(axis=0)


def last_window(counts_before, starts_before, target_start, spec):
    return counts_before[-1]


@pytest.fixture
def model_seen(monkeypatch):
    """Replace the ML stack: the 'model' forecasts the mean of the 7 windows before t.

    Records the window indices it was asked to forecast.
    """
    seen: list[int] = []

    def fake_probabilities(model, ckpt, city, t_indices, on_batch=None):
        seen.extend(int(t) for t in t_indices)
        rate = np.stack([city.counts[max(0, t - 7):t].mean(axis=0) for t in t_indices])
        return 1.0 - np.exp(-rate.astype(np.float64))

    monkeypatch.setattr(evaluation, "model_probabilities", fake_probabilities)
    monkeypatch.setattr(evaluation, "_check_grid", lambda ckpt, city: None)
    return seen


def test_splits_follow_the_checkpoint_data_window():
    val_idx, test_idx = evaluation.split_indices(tiny_city().starts, DATA_WINDOW)
    assert val_idx.tolist() == VAL_IDX and test_idx.tolist() == TEST_IDX


def test_no_test_windows_is_a_clear_error():
    late = {**DATA_WINDOW, "val_end": "2024-03-01"}
    with pytest.raises(NotReady, match="no test windows"):
        evaluation.split_indices(tiny_city().starts, late)
    with pytest.raises(NotReady, match="no validation windows"):
        evaluation.split_indices(tiny_city().starts, {**DATA_WINDOW, "train_end": DATA_WINDOW["val_end"]})


def test_rolling_origin_every_forecaster_sees_only_earlier_windows(model_seen):
    city = tiny_city()
    recorder = Recorder(mean_so_far)
    result = evaluation.backtest(object(), checkpoint(), city, baselines={"mean": recorder})
    # Model and baseline were asked for exactly the validation + test windows ...
    assert model_seen == VAL_IDX + TEST_IDX
    assert [target for _, _, target in recorder.calls] == list(city.starts[VAL_IDX + TEST_IDX])
    # ... and each forecast of window t saw counts[:t]: t windows, the last one t - 1.
    for (n_seen, last_seen, target), t in zip(recorder.calls, VAL_IDX + TEST_IDX):
        assert n_seen == t and last_seen == city.starts[t - 1] and target == city.starts[t]
    assert result.n_windows == len(TEST_IDX)
    assert result.test_start == "2024-01-26T00:00:00" and result.test_end == "2024-01-31T00:00:00"


def test_forecasts_do_not_change_when_the_future_changes():
    """Scramble everything from window 27 on: the forecasts of windows 25..27 must not move."""
    city = tiny_city()
    future = city.counts.copy()
    future[27:] = np.random.default_rng(9).poisson(5.0, size=future[27:].shape)
    altered = City(**{**city.__dict__, "counts": future})
    before, after = (evaluation.baseline_scores(mean_so_far, c, TEST_IDX) for c in (city, altered))
    np.testing.assert_array_equal(before[:3], after[:3])
    assert not np.array_equal(before[3:], after[3:])


@pytest.mark.parametrize("name", ["naive", "historical_average", "kde", "prospective_hotspot", "seasonal"])
def test_real_baselines_do_not_see_the_future(name):
    """Each shipped baseline, through the evaluation's own call path, on 400 days."""
    from safety_models.evaluation.baselines import BASELINES

    city = tiny_city(n_windows=400, seed=3)
    targets = [380, 390, 395, 399]
    future = city.counts.copy()
    future[390:] = np.random.default_rng(4).poisson(3.0, size=future[390:].shape)
    altered = City(**{**city.__dict__, "counts": future})
    before, after = (evaluation.baseline_scores(BASELINES[name], c, targets) for c in (city, altered))
    np.testing.assert_array_equal(before[:2], after[:2])  # windows 380 and 390 saw nothing altered
    if name != "seasonal":  # which looks a year back, so the last days never reach it
        assert not np.array_equal(before[2:], after[2:])  # later ones did: the test has teeth


def test_model_and_baselines_are_scored_on_the_same_windows_and_cells(model_seen):
    city = tiny_city()
    result = evaluation.backtest(object(), checkpoint(), city,
                                 baselines={"mean": mean_so_far, "last": last_window}).to_dict()
    every = [result["results"]["model"], *result["results"]["baselines"].values()]
    n_city_cells = int(city.mask.sum())
    events = float(city.counts[TEST_IDX][:, city.mask].sum())
    for m in every:
        assert m["n_windows"] == len(TEST_IDX) and m["n_city_cells"] == n_city_cells
        assert m["n_events"] == events
        assert [w["start"] for w in m["per_window"]] == [s.isoformat() for s in city.starts[TEST_IDX]]
    assert result["n_test_events"] == events  # the masked-out corner's events do not count
    assert events < city.counts[TEST_IDX].sum()


def test_threshold_is_chosen_on_validation_not_on_test(monkeypatch):
    """Validation events sit at p = 0.3, test events at p = 0.6 among non-events at 0.4.

    On validation F1 is best at 0.3; on test it would be 0.6. The report must use 0.3, so the
    test's non-events at 0.4 are (wrongly, but honestly) flagged too.
    """
    city = tiny_city()
    y = city.counts > 0
    prob = np.where(y, 0.3, 0.1)
    prob[TEST_IDX] = np.where(y[TEST_IDX], 0.6, 0.4)
    monkeypatch.setattr(evaluation, "model_probabilities",
                        lambda model, ckpt, c, t_indices, on_batch=None: prob[np.asarray(t_indices)])
    monkeypatch.setattr(evaluation, "_check_grid", lambda ckpt, c: None)
    m = evaluation.backtest(object(), checkpoint(), city, baselines={}).to_dict()["results"]["model"]
    in_city = city.mask
    val_threshold = metrics.operating_threshold(prob[VAL_IDX][:, in_city], y[VAL_IDX][:, in_city])
    test_threshold = metrics.operating_threshold(prob[TEST_IDX][:, in_city], y[TEST_IDX][:, in_city])
    assert val_threshold == pytest.approx(0.3) and test_threshold == pytest.approx(0.6)
    assert m["threshold"] == pytest.approx(0.3) and m["threshold_source"] == "validation windows"
    assert m["precision"] == pytest.approx(float(y[TEST_IDX][:, in_city].mean()))  # every cell flagged
    assert m["recall"] == 1.0


def test_baseline_probabilities_keep_its_ranking_and_come_from_validation():
    scores_val = np.array([0.0, 0.0, 1.0, 1.0, 3.0, 3.0, 10.0, 10.0])
    events_val = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    fit = evaluation.fit_probability_map(scores_val, events_val)
    assert fit.slope > 0
    p = fit(np.array([0.0, 0.5, 1.0, 3.0, 10.0, 50.0]))
    assert np.all(np.diff(p) > 0)  # strictly increasing: hit rate / PAI / AUC unchanged
    # No events in validation: the base rate (floored) with the ranking still intact.
    flat = evaluation.fit_probability_map(scores_val, np.zeros(8))
    p_flat = flat(np.array([0.0, 1.0, 10.0]))
    assert np.all(np.diff(p_flat) > 0) and p_flat.max() < 1e-5


def test_baseline_ranking_metrics_equal_those_of_raw_scores(model_seen):
    city = tiny_city()
    m = evaluation.backtest(object(), checkpoint(), city, baselines={"mean": mean_so_far}).to_dict()
    mean_m = m["results"]["baselines"]["mean"]
    raw = evaluation.baseline_scores(mean_so_far, city, TEST_IDX)
    direct = metrics.score_windows(raw, city.counts[TEST_IDX], city.mask)
    for key in ("hit_rate", "pai", "pei"):
        assert mean_m[key] == pytest.approx(direct[key], nan_ok=True)
    assert mean_m["roc_auc"] == pytest.approx(direct["roc_auc"])
    assert 0.0 < mean_m["brier"] < 1.0 and mean_m["probability_map"]["slope"] > 0


def test_json_matches_the_cli_contract(model_seen, tmp_path, monkeypatch):
    monkeypatch.setenv("SAFETY_MODELS_HOME", str(tmp_path))
    city = tiny_city()
    result = evaluation.backtest(object(), checkpoint(), city,
                                 baselines={"naive": last_window, "historical_average": mean_so_far})
    d = result.to_dict()
    assert list(d) == ["category", "model_id", "test_start", "test_end", "window_hours", "cell_size_m",
                       "n_windows", "n_test_events", "horizon_windows", "results"]
    # a checkpoint without a blend is the network alone: no separate "network" entry
    assert set(d["results"]) == {"model", "baselines", "oracle"}
    assert set(d["results"]["baselines"]) == {"naive", "historical_average"}
    for m in [d["results"]["model"], *d["results"]["baselines"].values()]:
        for key in REQUIRED_M_KEYS:
            assert key in m
        for key in ("hit_rate", "pai", "pei"):
            assert set(m[key]) == {"1", "5", "10", "20"}
        curves = m["curves"]
        assert curves["area_share"][0] == 0.0 and curves["area_share"][-1] == 1.0
        assert len(curves["hit_rate"]) == len(curves["pai"]) == len(curves["area_share"])
        assert curves["hit_rate"][-1] == pytest.approx(1.0)  # the whole city catches every event
        assert len(curves["roc"]["fpr"]) == len(curves["roc"]["tpr"])
        assert len(m["calibration"]) == 10 and len(m["per_window"]) == len(TEST_IDX)
    vs = d["results"]["model"]["vs_baselines"]["naive"]["pai_5"]
    assert set(vs) >= {"mean_difference", "ci95", "share_model_better", "n_windows"}
    text = json.dumps(d, allow_nan=False)  # strict JSON: NaN became null
    assert d["category"] == "crime" and d["window_hours"] == 24 and d["cell_size_m"] == 500.0

    path = evaluation.save_evaluation(result)
    assert path == tmp_path / "evaluations" / "crime-test-1.json"
    assert evaluation.load_evaluation("crime-test-1") == json.loads(text)
    assert evaluation.load_evaluation("crime-never") is None
    assert list(evaluation.summary_table(d).index) == ["model", "naive", "historical_average"]


def test_paired_difference_by_hand():
    model = np.array([0.5, 0.5, 0.5, 0.5, np.nan])
    base = np.array([0.25, 0.25, 0.75, 0.25, 0.1])
    d = evaluation.paired_difference(model, base, window_hours=24, resamples=500)
    assert d["n_windows"] == 4
    assert d["mean_difference"] == pytest.approx(0.125)
    assert d["share_model_better"] == 0.75 and d["share_model_worse"] == 0.25
    lo, hi = d["ci95"]
    assert -0.25 <= lo <= 0.125 <= hi <= 0.25


def test_progress_reports_rise_to_one(model_seen):
    reports: list[dict] = []
    evaluation.backtest(object(), checkpoint(), tiny_city(), on_progress=reports.append,
                        baselines={"mean": mean_so_far})
    fractions = [r["fraction"] for r in reports]
    assert all(r["stage"] == "evaluate" for r in reports)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_unsafe_model_ids_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFETY_MODELS_HOME", str(tmp_path))
    with pytest.raises(ValueError):
        evaluation.evaluation_path("../escape")


def test_precomputed_baselines_are_reused_only_on_the_same_windows(model_seen):
    city = tiny_city()
    scored = evaluation.score_baselines(city, DATA_WINDOW, {"mean": mean_so_far})
    reused = evaluation.backtest(object(), checkpoint(), city, baseline_results=scored).to_dict()
    fresh = evaluation.backtest(object(), checkpoint(), city, baselines={"mean": mean_so_far}).to_dict()
    assert reused == fresh
    shorter = {**DATA_WINDOW, "val_end": "2024-01-27"}
    with pytest.raises(ValueError, match="other windows"):
        evaluation.backtest(object(), checkpoint(data_window=shorter), city, baseline_results=scored)


# ---------------------------------------------------------------------------------------------
# End to end: a tiny trained model in a tiny home (conftest's session fixture, 1 epoch)


def test_evaluate_category_end_to_end(tiny_home_with_models):
    from conftest import use_home

    from safety_models.modeling import registry
    from safety_models.evaluation.baselines import baselines_for
    from safety_models.data.store import Store

    with use_home(tiny_home_with_models):
        store = Store()
        model_id = registry.active_model_id(store, "crime")
        saved = evaluation.load_evaluation(model_id)  # written by the fixture's evaluate_category
        assert saved is not None and saved["model_id"] == model_id and saved["category"] == "crime"
        assert set(saved["results"]["baselines"]) == set(baselines_for("crime"))
        _, checkpoint = registry.load_model(store, model_id)
        assert pd.Timestamp(saved["test_start"]) >= pd.Timestamp(checkpoint["data_window"]["val_end"])
        assert saved["n_windows"] == saved["results"]["model"]["n_windows"] > 0
        from conftest import TINY_FLAG_AREA

        # the active model by default (the fixture scored its flagged area too)
        again = evaluation.evaluate_category(store, "crime", flag_areas=(TINY_FLAG_AREA,)).to_dict()
        assert again == saved  # deterministic, and the saved file is exactly to_dict()
        store.close()


def test_real_model_forecasts_do_not_see_the_future(tiny_home_with_models):
    """Alter every window from the third test window on: the model's forecasts of the first
    three test windows stay the same, later ones move."""
    from conftest import use_home

    from safety_models.modeling import registry
    from safety_models.modeling.city import model_city
    from safety_models.data.store import Store

    with use_home(tiny_home_with_models):
        store = Store()
        model, checkpoint = registry.load_model(store, registry.active_model_id(store, "traffic"))
        city = model_city(store, "traffic", checkpoint)
        store.close()
    _, test_idx = evaluation.split_indices(city.starts, checkpoint["data_window"])
    targets = test_idx[:6]
    future = city.counts.copy()
    future[targets[2]:] = np.random.default_rng(5).poisson(2.0, size=future[targets[2]:].shape)
    altered = dataclasses_replace(city, counts=future)
    before = evaluation.model_probabilities(model, checkpoint, city, targets)
    after = evaluation.model_probabilities(model, checkpoint, altered, targets)
    np.testing.assert_allclose(before[:3], after[:3], rtol=1e-6, atol=1e-9)
    assert not np.allclose(before[3:], after[3:])


def dataclasses_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_models_page_and_evaluate_report_the_same_test_pai(crime_store):
    """One definition of PAI: the test scores a model is saved with (the Models page's "test
    PAI 5 %", the CLI's test_pai_5) equal evaluate's on the same model and windows, for a city
    of 50 cells, where 5 % is 2.5 cells: ceil -> 3, while round() would have flagged 2."""
    from safety_models.modeling import registry
    from safety_models.modeling.synthetic import simulate_city
    from safety_models.modeling.training import TrainConfig, fit

    counts, starts, _ = simulate_city(5, rows=10, cols=10, n_windows=120, events_per_window=8.0)
    mask = np.zeros((10, 10), dtype=bool)
    mask[:5] = True                                        # the top half: 50 city cells
    assert metrics.n_flagged(0.05, int(mask.sum())) == 3 and round(0.05 * mask.sum()) == 2
    # refit_base_path=False keeps the validated model, so validation scores match too.
    cfg = TrainConfig(category="crime", base="none", epochs=1, steps_per_epoch=2, batch_size=4,
                      val_windows=10, test_windows=15, refit_base_path=False)
    spec = GridSpec("EPSG:32616", 440_000.0, 4_635_000.0, 500.0, 10, 10)
    checkpoint = {**fit(counts, starts, mask, cfg).checkpoint(), "grid": spec.to_dict(), "mask": mask}
    model_id = registry.save_model(crime_store, checkpoint, "crime")
    saved = registry.list_models(crime_store, "crime").set_index("model_id").loc[model_id]
    model, loaded = registry.load_model(crime_store, model_id)

    city = City("crime", spec, 24, pd.DatetimeIndex(starts), counts, mask)
    evaluated = evaluation.backtest(model, loaded, city, baselines={}).to_dict()["results"]["model"]
    assert evaluated["n_windows"] == saved["test_metrics"]["n_windows"] == 15
    assert saved["test_metrics"]["cells_flagged_5"] == 3
    assert saved["test_metrics"]["pai_5"] == pytest.approx(evaluated["pai"]["5"], rel=1e-6)
    assert saved["test_metrics"]["hit_rate_5"] == pytest.approx(evaluated["hit_rate"]["5"], rel=1e-6)
    assert saved["test_metrics"]["roc_auc"] == pytest.approx(evaluated["roc_auc"], rel=1e-6)
    # ... and promotion advice reads the scores the study reads as val_pai_5.
    for key in ("hit_rate_5", "pai_5", "roc_auc"):
        assert saved["val_metrics"][key] == pytest.approx(evaluated["validation"][key], rel=1e-6)


def test_a_quick_first_evaluation_scores_only_the_latest_windows(model_seen):
    city = tiny_city()
    result = evaluation.backtest(object(), checkpoint(), city,
                                 baselines={"mean": Recorder(mean_so_far)}, last_windows=2)
    # The last two validation windows choose the thresholds, the last two test windows count.
    assert model_seen == VAL_IDX[-2:] + TEST_IDX[-2:]
    assert result.n_windows == 2 and result.test_start == "2024-01-29T00:00:00"
    assert evaluation.latest_windows(np.arange(5), np.arange(5, 9), None)[1].tolist() == [5, 6, 7, 8]


def test_the_oracle_ranks_by_the_test_periods_own_counts():
    # 20 cells (5 % flags one). Window 0: 2 events in cell 0, 1 in cell 2; window 1: 3 in
    # cell 2, 1 in cell 3. Over the period cell 2 has most (4): the oracle flags it in both
    # windows, catching 1 of 3 and 3 of 4 events.
    counts = np.zeros((2, 4, 5))
    counts[0, 0, 0], counts[0, 0, 2] = 2, 1
    counts[1, 0, 2], counts[1, 0, 3] = 3, 1
    oracle = evaluation.oracle_result(counts, np.ones((4, 5), bool))
    assert oracle["hit_rate"]["5"] == pytest.approx((1 / 3 + 3 / 4) / 2)
    assert oracle["pai"]["5"] == pytest.approx((1 / 3 + 3 / 4) / 2 * 20)
    assert [w["hit_rate_5"] for w in oracle["per_window"]] == pytest.approx([1 / 3, 3 / 4])


def test_oracle_gap_is_the_share_of_the_way_from_baseline_to_oracle():
    model = {"pai": {"5": 6.0}, "roc_auc": 0.85}
    baselines = {"a": {"pai": {"5": 4.0}, "roc_auc": 0.80}, "b": {"pai": {"5": 5.0}, "roc_auc": 0.70}}
    oracle = {"pai": {"5": 8.0}, "roc_auc": 0.90}
    gap = evaluation.oracle_gap(model, baselines, oracle)
    assert gap["by_baseline"]["a"] == pytest.approx({"pai_5": 0.5, "roc_auc": 0.5})
    assert gap["by_baseline"]["b"]["pai_5"] == pytest.approx(1 / 3)
    assert gap["best_baseline"] == "b" and gap["pai_5_share"] == pytest.approx(1 / 3)
    assert gap["roc_auc_share"] == pytest.approx(0.75)
    # a baseline at or above the oracle leaves no gap to close
    assert np.isnan(evaluation.oracle_gap(model, {"c": {"pai": {"5": 8.0}}}, oracle)["by_baseline"]["c"]["pai_5"])


def test_backtest_reports_the_oracle_and_the_gap(model_seen):
    d = evaluation.backtest(object(), checkpoint(), tiny_city(),
                            baselines={"naive": last_window, "historical_average": mean_so_far}).to_dict()
    oracle = d["results"]["oracle"]
    assert oracle["pai"]["5"] >= max(m["pai"]["5"] for m in d["results"]["baselines"].values())
    gap = d["results"]["model"]["oracle_gap"]
    assert set(gap["by_baseline"]) == {"naive", "historical_average"} and gap["best_baseline"] in gap["by_baseline"]
    assert {"hit_rate_5", "pai_5", "auc"} <= set(d["results"]["model"]["vs_baselines"]["naive"])
    table = evaluation.summary_table(d, extra=True)
    assert list(table.index) == ["model", "naive", "historical_average", "oracle"]


def test_flagged_areas_are_scored_for_every_forecaster_keyed_as_given(model_seen):
    # 500 m cells, 11 city cells: "0.5km2" flags 2 cells, "0.3sqmi" (0.777 km²) flags 3
    d = evaluation.backtest(object(), checkpoint(), tiny_city(),
                            baselines={"naive": last_window, "historical_average": mean_so_far},
                            flag_areas=["0.5km2", "0.3sqmi"]).to_dict()
    results = d["results"]
    for m in [results["model"], results["oracle"], *results["baselines"].values()]:
        for key in ("pai_area", "hit_rate_area", "pei_area"):
            assert set(m[key]) == {"0.5km2", "0.3sqmi"}
        assert m["cells_flagged_area"] == {"0.5km2": 2, "0.3sqmi": 3}
    city = tiny_city()
    counts = city.counts[TEST_IDX]
    expected = metrics.score_areas(np.broadcast_to(counts.sum(axis=0), counts.shape), counts, ["0.5km2"], 500.0,
                                   city.mask)
    assert results["oracle"]["pai_area"]["0.5km2"] == pytest.approx(expected["pai_area"]["0.5km2"])


def test_an_unreadable_flag_area_is_a_user_error(model_seen):
    from safety_models.errors import UserError

    with pytest.raises(UserError, match="2 acres"):
        evaluation.backtest(object(), checkpoint(), tiny_city(), baselines={"naive": last_window},
                            flag_areas=["2 acres"])


def test_a_horizon_model_is_scored_on_the_events_of_its_horizon(model_seen):
    # 3-window forecasts: validation 20..24 keeps 20..22, test 25..29 keeps 25..27
    d = evaluation.backtest(object(), checkpoint(horizon={"days": 3, "windows": 3}), tiny_city(),
                            baselines={"naive": last_window}).to_dict()
    assert model_seen == [20, 21, 22, 25, 26, 27]
    assert d["horizon_windows"] == 3 and d["n_windows"] == 3
    assert d["test_end"] == "2024-01-31T00:00:00"                      # the last horizon's end
    city = tiny_city()
    sums = [city.counts[t:t + 3][:, city.mask].sum() for t in (25, 26, 27)]
    assert [w["n_events"] for w in d["results"]["model"]["per_window"]] == sums
    assert [w["n_events"] for w in d["results"]["baselines"]["naive"]["per_window"]] == sums
    assert d["n_test_events"] == int(city.counts[25:30][:, city.mask].sum())
    with pytest.raises(NotReady, match="horizon"):
        evaluation.backtest(object(), checkpoint(horizon={"days": 6, "windows": 6}), tiny_city(),
                            baselines={"naive": last_window})
