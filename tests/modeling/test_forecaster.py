"""forecaster.py: the blend is chosen on validation only, ships in the checkpoint, and serves
predictions from earlier windows only."""

import io
import math

import numpy as np
import pytest
import torch

from safety_models.grid import GridSpec
from safety_models.modeling import forecaster
from safety_models.modeling.forecaster import (BASE_RATE, NETWORK, NETWORK_ONLY, Blend, Candidate, apply_blend,
                                               blend_of, choose_blend, choose_weights, fit_probability_map)


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _events(n_windows: int, n_cells: int, hot: list[list[int]]) -> np.ndarray:
    """(windows, cells): one event in each listed cell of each window."""
    out = np.zeros((n_windows, n_cells))
    for w, cells in enumerate(hot):
        out[w, cells] = 1.0
    return out


def test_a_forecaster_that_is_right_alone_is_chosen_alone():
    # 40 windows of 100 cells (5 % = 5 cells); events always in cells 0..4.
    # "good" ranks them first, "noise" is random: the blend of both can only be as good.
    rng = np.random.default_rng(0)
    observed = _events(40, 100, [[0, 1, 2, 3, 4]] * 40)
    good = np.tile(np.r_[np.full(5, 3.0), np.zeros(95)], (40, 1))
    noise = rng.normal(size=(40, 100))
    weights, table, reason = choose_weights({"good": good, "noise": noise}, observed)
    assert weights == {"good": 1.0}
    assert "alone" in reason
    chosen = [row for row in table if row["chosen"]]
    assert len(chosen) == 1 and chosen[0]["val_hit_rate_5"] == 1.0 and chosen[0]["val_pai_5"] == 20.0


def test_two_forecasters_that_each_see_half_the_events_are_blended():
    # Events in cells 0..4 on even windows and 5..9 on odd ones; "a" knows the first group
    # (score 2) and half-knows the second (1), "b" the other way round. Alone each catches
    # ~half the events in its top 5 cells; equal weights put all ten cells on top (the 5 %
    # flags five of them, a tie broken by cell index), and the test says so exactly.
    n = 60
    observed = _events(n, 100, [[0, 1, 2, 3, 4] if w % 2 == 0 else [5, 6, 7, 8, 9] for w in range(n)])
    a = np.zeros((n, 100)); a[:, :5] = 2.0; a[:, 5:10] = 1.0
    b = np.zeros((n, 100)); b[:, :5] = 1.0; b[:, 5:10] = 2.0
    rng = np.random.default_rng(1)
    a += rng.normal(0, 0.01, a.shape)
    b += rng.normal(0, 0.01, b.shape)
    weights, table, _ = choose_weights({"a": a, "b": b}, observed)
    singles = {row["forecaster"]: row["val_hit_rate_5"] for row in table if len(row["weights"]) == 1}
    assert singles["a"] == pytest.approx(0.5) and singles["b"] == pytest.approx(0.5)
    # any blend only reorders the same ten cells: no gain, so the simplest (single) wins
    assert len(weights) == 1


def test_a_blend_ships_when_it_beats_every_single_by_more_than_the_noise():
    # 20 cells, 5 % flags one. Every window: 2 events in cell 0, 1 in cell 1. "a" puts an
    # empty cell (2) above cell 0 on even windows, "b" another (3) on odd ones: alone each
    # catches 2 of 3 events on half the windows (1/3); half of each ranks cell 0 first
    # every window (2/3), far more than the noise between windows.
    n = 50
    observed = np.zeros((n, 20)); observed[:, 0] = 2.0; observed[:, 1] = 1.0
    a = np.zeros((n, 20)); b = np.zeros((n, 20))
    a[:, 0] = 1.0; a[::2, 2] = 1.5            # a: cell 0, but cell 2 on even windows
    b[:, 0] = 1.0; b[1::2, 3] = 1.5           # b: cell 0, but cell 3 on odd windows
    weights, table, reason = choose_weights({"a": a, "b": b}, observed, block_windows=5)
    # cell 0 tops both cells 2 (1.5 w_a) and 3 (1.5 w_b) when each weight is below 2/3
    assert set(weights) == {"a", "b"} and 1 / 3 < weights["b"] < 2 / 3
    assert sum(weights.values()) == pytest.approx(1.0)
    assert reason.startswith("blend")
    best = max(row["val_hit_rate_5"] for row in table)
    assert best == pytest.approx(2 / 3)       # the blend ranks cell 0 first in every window


def test_a_choice_that_ranks_worse_than_a_baseline_is_mixed_with_it_until_it_does_not():
    # 20 cells, 5 % flags one. Every window: 2 events in cell 0, 1 in each of cells 1..9.
    # "stack" flags cell 0 (2 of 11 events) but ranks the empty cells 10..19 above 1..9
    # (ROC-AUC 0.1); "kde" flags cell 1 (1 of 11) and ranks every cell with events above the
    # empty ones (AUC 1). Mixed at kde share a: cell 0 stays on top for a < 0.95, and the
    # empty cells (2 - 2a) fall below cells 2..9 (1 + a) once a > 1/3: the smallest share on
    # the grid with AUC 1, a = 0.4, ships (every share from 0.4 on ties on both measures).
    n = 10
    observed = np.zeros((n, 20)); observed[:, 0] = 2.0; observed[:, 1:10] = 1.0
    stack_v = np.zeros((n, 20)); stack_v[:, 0] = 3.0; stack_v[:, 10:] = 2.0; stack_v[:, 1:10] = 1.0
    kde = np.zeros((n, 20)); kde[:, 1] = 3.0; kde[:, 0] = 2.9; kde[:, 2:10] = 2.0
    weights, table, reason = choose_weights({"stack": stack_v, "kde": kde}, observed)
    assert weights == {"stack": 0.6, "kde": 0.4}
    chosen = next(row for row in table if row["chosen"])
    assert chosen["val_hit_rate_5"] == pytest.approx(2 / 11) and chosen["val_roc_auc"] == pytest.approx(1.0)
    assert "below kde's" in reason


def test_no_validation_event_means_the_network_alone():
    weights, _, reason = choose_weights({NETWORK: np.ones((3, 10)), "kde": np.ones((3, 10))}, np.zeros((3, 10)))
    assert weights == {NETWORK: 1.0} and "no validation window" in reason


def test_probability_map_is_calibrated_on_average():
    rng = np.random.default_rng(2)
    z = rng.normal(size=5000)
    y = rng.random(5000) < 1 / (1 + np.exp(-(-2 + 1.5 * z)))
    a, b = fit_probability_map(z, y)
    assert a == pytest.approx(-2, abs=0.15) and b == pytest.approx(1.5, abs=0.15)
    p = 1 / (1 + np.exp(-(a + b * z)))
    assert p.mean() == pytest.approx(y.mean(), abs=1e-3)   # logistic fits match the base rate


def test_blend_round_trips_through_a_weights_only_checkpoint():
    blend = Blend(weights={NETWORK: 0.6, "kde": 0.4},
                  candidates=(Candidate(NETWORK, mean=-3.0, sd=1.2),
                              Candidate("kde", params={"bandwidth_m": 400.0, "lookback_days": 60.0},
                                        floor=0.01, mean=-2.0, sd=0.5)),
                  prob_map=(-3.0, 1.1), count_map=(-2.9, 1.0), selection=({"forecaster": "x", "chosen": True},),
                  reason="because")
    buf = io.BytesIO()
    torch.save({"blend": blend.to_dict()}, buf)
    buf.seek(0)
    loaded = blend_of(torch.load(buf, weights_only=True))
    assert loaded == blend
    assert blend_of({}) == NETWORK_ONLY and blend_of({}).network_only


def test_apply_blend_of_one_candidate_keeps_its_ranking_and_the_mask():
    raw = {"historical_average": np.array([[[0.0, 0.5], [2.0, 1.0]]], np.float32)}
    mask = np.array([[True, True], [True, False]])
    cand = forecaster.make_candidate("historical_average", raw["historical_average"], mask)
    blend = Blend(weights={"historical_average": 1.0}, candidates=(cand,), prob_map=(0.0, 1.0), count_map=(0.0, 1.0))
    prob, expected = apply_blend(blend, raw, mask)
    assert prob[0, 1, 1] == 0 and expected[0, 1, 1] == 0               # outside the city
    assert prob[0, 1, 0] > prob[0, 0, 1] > prob[0, 0, 0] > 0           # 2.0 > 0.5 > 0.0


def _city(seed: int = 3):
    from safety_models.modeling.synthetic import simulate_city

    return simulate_city(seed, rows=16, cols=16, n_windows=160, window_hours=24, events_per_window=6.0)


def test_fit_chooses_on_validation_only_and_the_checkpoint_serves_the_blend():
    from safety_models.modeling.training import TrainConfig, fit

    counts, starts, mask = _city()
    cfg = TrainConfig(category="crime", base="none", epochs=1, steps_per_epoch=2, batch_size=4,
                      val_windows=30, test_windows=10)
    res = fit(counts, starts, mask, cfg)
    changed = counts.copy()
    changed[-10:] = changed[-10:][:, ::-1]      # another test period: the choice must not move
    res2 = fit(changed, starts, mask, cfg)
    assert res.blend.weights == res2.blend.weights
    assert res.blend.selection and sum(row["chosen"] for row in res.blend.selection) == 1
    ck = res.checkpoint()
    assert ck["blend"]["weights"] == res.blend.weights
    assert {"hit_rate_5", "pai_5", "roc_auc", "network"} <= set(ck["metrics"]["validation"])
    # the forecast for window t depends on counts[:t] only (network inputs and baselines)
    grid = GridSpec("", 0.0, 0.0, 500.0, 16, 16)
    t = 140
    f1 = forecaster.forecast_windows(res.model, ck, counts, starts, grid, mask, [t])
    later = counts.copy()
    later[t:] = 5.0
    f2 = forecaster.forecast_windows(res.model, ck, later, starts, grid, mask, [t])
    np.testing.assert_array_equal(f1.prob, f2.prob)
    np.testing.assert_array_equal(f1.expected, f2.expected)
    assert np.all((f1.prob >= 0) & (f1.prob <= 1)) and np.all(f1.prob[:, ~mask] == 0)
    # the window after the data can be forecast too
    nxt = forecaster.forecast_windows(res.model, ck, counts, starts, grid, mask, [len(counts)])
    assert nxt.prob.shape == (1, 16, 16) and math.isfinite(float(nxt.prob.sum()))


def test_a_checkpoint_without_a_blend_is_the_network_alone():
    from safety_models.modeling.training import TrainConfig, fit, predict_windows

    counts, starts, mask = _city(4)
    res = fit(counts, starts, mask, TrainConfig(category="crime", base="none", epochs=1, steps_per_epoch=1,
                                                batch_size=4, val_windows=10, test_windows=10, blend=False))
    ck = res.checkpoint()
    assert ck["blend"]["weights"] == {NETWORK: 1.0}
    legacy = {k: v for k, v in ck.items() if k != "blend"}
    grid = GridSpec("", 0.0, 0.0, 500.0, 16, 16)
    f = forecaster.forecast_windows(res.model, legacy, counts, starts, grid, mask, [120, 121])
    prob, expected = predict_windows(res.model, counts, starts, [120, 121], res.feature_config, mask)
    np.testing.assert_allclose(f.prob, prob, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(f.expected, expected, rtol=1e-5, atol=1e-7)


def test_the_base_rate_candidate_is_the_glm_alone():
    from safety_models.features import FeatureConfig, SampleBuilder, n_channels
    from safety_models.modeling import training
    from safety_models.modeling.models import ModelConfig, create_model

    counts, starts, mask = _city(5)
    fcfg = FeatureConfig()
    builder = SampleBuilder(counts, starts, fcfg, mask)
    model = create_model(ModelConfig(in_channels=n_channels(fcfg), decoder_width=16, full_res_width=8)).eval()
    training.new_head(model)
    training.fit_base_path(model, builder, np.arange(10, 120), max_rows=5000)
    glm = forecaster.glm_state(model.base_path)
    out = forecaster.network_outputs(model, builder, [130, 131], glm)
    # under a zero head the network is exactly its base-rate path
    np.testing.assert_allclose(out[BASE_RATE], out[NETWORK], rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        model.head[-1].weight.normal_(0, 0.1)
    out = forecaster.network_outputs(model, builder, [130], glm)
    assert not np.allclose(out[BASE_RATE], out[NETWORK])


def test_choose_blend_fits_maps_and_keeps_the_glm_only_when_used():
    rng = np.random.default_rng(6)
    n, h, w = 30, 6, 6
    mask = np.ones((h, w), bool)
    rate = np.linspace(0.01, 0.6, h * w).reshape(h, w)
    observed = rng.poisson(rate, size=(n, h, w)).astype(np.float32)
    raw = {NETWORK: np.log(rate / (1 - rate))[None].repeat(n, 0).astype(np.float32) + rng.normal(0, 2, (n, h, w)).astype(np.float32),
           "historical_average": np.broadcast_to(rate, (n, h, w)).astype(np.float32)}
    blend = choose_blend(raw, observed, mask, 24, glm={"weight": [[0.0]], "bias": [0.0, 0.0]})
    assert "historical_average" in blend.weights
    assert blend.base_rate_path is None                 # base_rate is not among the weights
    assert blend.prob_map[1] > 0 and blend.count_map[1] > 0
    prob, expected = apply_blend(blend, raw, mask)
    assert prob.mean() == pytest.approx((observed > 0).mean(), abs=0.02)
    assert expected.mean() == pytest.approx(observed.mean(), rel=0.1)
