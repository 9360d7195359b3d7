"""stack.py: the stacked forecaster's planes are exact decayed / seasonal averages of earlier
windows only, its fit learns which scale predicts, and it ships through the blend."""

import io
import math

import numpy as np
import pytest
import torch

from safety_models.grid import GridSpec
from safety_models.modeling import forecaster, stack
from safety_models.modeling.stack import StackConfig, StackModel, decayed_sums, season_rates


def test_decayed_sums_by_hand():
    # one cell, windows with 1, 2, 4 events; decay 0.5
    counts = np.array([1.0, 2.0, 4.0]).reshape(3, 1, 1)
    sums, weights = decayed_sums(counts, [3, 0, 1, 2], 0.5)
    # t=3: 4 + 0.5 * 2 + 0.25 * 1 = 5.25 over weights 1 + 0.5 + 0.25 = 1.75 (a mean rate of 3)
    assert sums[0, 0, 0] == pytest.approx(5.25) and weights[0] == pytest.approx(1.75)
    assert sums[1, 0, 0] == 0 and weights[1] == 0                          # t=0: no history
    assert sums[2, 0, 0] == pytest.approx(1.0) and weights[2] == pytest.approx(1.0)
    assert sums[3, 0, 0] == pytest.approx(2.5) and weights[3] == pytest.approx(1.5)   # 2 + 0.5 * 1
    # decay 1: plain sums over all history
    plain, n = decayed_sums(counts, [3], 1.0)
    assert plain[0, 0, 0] == 7 and n[0] == 3
    with pytest.raises(ValueError):
        decayed_sums(counts, [4], 0.5)


def test_season_rates_average_the_same_weeks_of_earlier_years():
    # weekly windows, 3 years of 52.18 weeks; one cell with an event only in week 10 of each year
    year = 365.25 / 7
    counts = np.zeros((160, 1, 1))
    for k in range(3):
        counts[int(round(10 + k * year)), 0, 0] = 1.0
    t = int(round(10 + 2 * year))                                           # week 10 of year 3
    # +- 7 days = +- 1 window around t - 1 y and t - 2 y: 2 events over 6 windows
    got = season_rates(counts, [t], 168, half_days=7)
    assert got[0, 0, 0] == pytest.approx(2 / 6)
    # before a year of history: the all-history mean; none at all: 0
    assert season_rates(counts, [20], 168, 7)[0, 0, 0] == pytest.approx(1 / 20)
    assert season_rates(counts, [0], 168, 7)[0, 0, 0] == 0
    # many targets (running sums) and one at a time (slices) agree
    ts = list(range(0, 160, 10))
    many = season_rates(counts, ts, 168, 7)
    np.testing.assert_allclose(many, np.concatenate([season_rates(counts, [t], 168, 7) for t in ts]))


def test_weekday_rates_by_hand():
    # daily windows 0..20 holding 0..20 events; with no decay the same weekday's mean:
    # t=14 sees windows 0 and 7 (3.5), t=15 windows 1 and 8 (4.5), t=3 nothing yet (0)
    counts = np.arange(21, dtype=float).reshape(21, 1, 1)
    got = stack.weekday_rates(counts, [14, 15, 3], 24, half_life_days=1e12)[:, 0, 0]
    np.testing.assert_allclose(got, [3.5, 4.5, 0.0], atol=1e-6)
    # a one-week half-life: t=14 weighs window 7 fully and window 0 by half: (7 + 0) / 1.5
    assert stack.weekday_rates(counts, [14], 24, 7.0)[0, 0, 0] == pytest.approx(7 / 1.5)


def test_features_use_only_earlier_windows():
    rng = np.random.default_rng(0)
    counts = rng.poisson(0.3, size=(400, 6, 5)).astype(np.float32)
    mask = np.ones((6, 5), bool)
    mask[0, 0] = False
    cfg = StackConfig(window_hours=24, half_lives_days=(7.0, 91.0), bandwidths_m=(0.0, 500.0))
    x = stack.features(counts, [380], mask, cfg, 250.0)
    later = counts.copy()
    later[380:] = 9.0
    assert x.shape == (1, len(cfg.feature_names()), 6, 5)
    np.testing.assert_array_equal(x, stack.features(later, [380], mask, cfg, 250.0))
    assert np.all(x[:, :, 0, 0] == 0)                                       # outside the city


def _hot_city(seed: int = 1):
    """500 daily windows of 12 x 12 cells: a fixed hot spot (cells 0..3 of row 2), and a
    spot that moves every 100 windows (recent history says where it is; the long run does not)."""
    rng = np.random.default_rng(seed)
    rate = np.full((500, 12, 12), 0.02)
    rate[:, 2, 0:4] = 0.3
    for k in range(5):
        r, c = 5 + k, 2 + 2 * k
        rate[k * 100:(k + 1) * 100, r, c] = 2.0
    return rng.poisson(rate).astype(np.float32)


def test_fit_learns_a_recent_moving_hot_spot_and_round_trips():
    counts = _hot_city()
    mask = np.ones((12, 12), bool)
    cfg = StackConfig(window_hours=24, half_lives_days=(7.0, 365.0), season=False, bandwidths_m=(0.0,))
    model = stack.fit(counts, np.arange(20, 430), mask, 500.0, cfg)
    assert model is not None and len(model.weights) == len(cfg.feature_names())
    z = model.score(counts, [450], mask, 500.0)[0]
    # window 450 lies in the fifth spot's period: it ranks first, then the fixed hot spot
    assert np.unravel_index(np.argmax(z), z.shape) == (9, 10)
    assert z[2, 0:4].min() > np.median(z)
    # the short half-life carries weight: it is what finds the moving spot
    assert model.weights[0] > 0
    # a weights-only checkpoint rebuilds the same scores
    buf = io.BytesIO()
    torch.save({"stack": model.to_dict()}, buf)
    buf.seek(0)
    again = StackModel.from_dict(torch.load(buf, weights_only=True)["stack"])
    np.testing.assert_allclose(again.score(counts, [450], mask, 500.0), z[None], rtol=1e-6)
    # no event in the training windows: nothing to fit
    assert stack.fit(np.zeros_like(counts), np.arange(20, 430), mask, 500.0, cfg) is None


def test_fit_windows_are_the_latest_and_thinned():
    cfg = StackConfig(window_hours=24)
    ts = stack.fit_windows(np.arange(0, 1000), cfg, n_city_cells=100, max_rows=5000, history_days=365)
    assert len(ts) == 50 and ts.max() == 999 and ts.min() >= 999 - 365


def test_the_stack_ships_through_the_blend_and_reads_earlier_windows_only():
    counts = _hot_city(2)
    mask = np.ones((12, 12), bool)
    grid = GridSpec("", 0.0, 0.0, 500.0, 12, 12)
    cfg = StackConfig(window_hours=24, half_lives_days=(7.0, 365.0), season=False, bandwidths_m=(0.0, 500.0))
    model = stack.fit(counts, np.arange(20, 400), mask, 500.0, cfg)
    params = {stack.STACK: {"model": model.to_dict()}}
    t_val = np.arange(400, 460)
    raw = forecaster.raw_scores(["historical_average", stack.STACK], None, _Builder(mask, 24), counts,
                                _starts(len(counts)),
                                grid, t_val, params=params)
    blend = forecaster.choose_blend(raw, counts[t_val], mask, 24, params=params)
    # the moving spot is worth more than the long-run map: the stack is chosen (alone, or
    # mixed with the average where the average ranks the rest of the city better), and on
    # validation it is at least as good as the baseline on both measures
    assert stack.STACK in blend.weights
    rows = {r["forecaster"]: r for r in blend.selection}
    chosen = next(r for r in blend.selection if r["chosen"])
    assert chosen["val_hit_rate_5"] >= rows["historical_average"]["val_hit_rate_5"]
    assert chosen["val_roc_auc"] >= rows["historical_average"]["val_roc_auc"]
    ck = {"blend": blend.to_dict(), "feature_config": {"window_hours": 24}}
    f1 = forecaster.forecast_windows(None, ck, counts, _starts(len(counts)), grid, mask, [470],
                                     builder=_Builder(mask, 24))
    later = counts.copy()
    later[470:] = 7.0
    f2 = forecaster.forecast_windows(None, ck, later, _starts(len(counts)), grid, mask, [470],
                                     builder=_Builder(mask, 24))
    np.testing.assert_array_equal(f1.prob, f2.prob)
    assert math.isfinite(float(f1.expected.sum()))


class _Builder:
    """The two attributes raw_scores reads of a SampleBuilder when no network is asked for."""

    def __init__(self, mask, window_hours):
        self.mask = mask
        self.cfg = type("cfg", (), {"window_hours": window_hours})()


def _starts(n):
    import pandas as pd

    return pd.date_range("2020-01-01", periods=n, freq="D")


@pytest.mark.parametrize("seed", range(5))
def test_the_choice_is_never_worse_on_validation_than_the_best_candidate_alone(seed):
    # random candidates of mixed quality over 60 windows of 200 cells: whatever is chosen
    # (a single or a blend), its validation hit rate at 5 % is at least the best single's
    rng = np.random.default_rng(seed)
    truth = rng.gamma(0.5, 1.0, size=200)
    observed = rng.poisson(truth * 0.2, size=(60, 200)).astype(float)
    values = {f"c{k}": np.log(truth + 0.1)[None, :] * q + rng.normal(0, 1, size=(60, 200))
              for k, q in enumerate((0.0, 0.5, 1.0, 2.0))}
    weights, table, _ = forecaster.choose_weights(values, observed, block_windows=7)
    chosen = next(r for r in table if r["chosen"])
    singles = [r for r in table if len(r["weights"]) == 1]
    assert chosen["weights"] == weights
    assert chosen["val_hit_rate_5"] >= max(r["val_hit_rate_5"] for r in singles) - 1e-12
