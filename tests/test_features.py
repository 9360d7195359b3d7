"""features.py: shapes, no leakage, normalisation and fixed channel layout."""

import numpy as np
import pandas as pd
import pytest

from safety_models.features import (FeatureConfig, SampleBuilder, build_inputs, channel_names,
                                    make_samples, n_channels)


def _city(T=60, H=16, W=16, seed=0, rate=0.3):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rate, size=(T, H, W)).astype(np.float32)
    starts = pd.date_range("2020-01-06", periods=T, freq="24h")
    mask = np.ones((H, W), bool)
    mask[:2] = False
    counts[:, :2] = 0
    return counts, starts, mask


def test_shapes_and_labels():
    counts, starts, mask = _city()
    cfg = FeatureConfig(window_hours=24)
    x, y_any, y_count = make_samples(counts, starts, [10, 20, 59], cfg, mask)
    assert x.shape == (3, n_channels(cfg), 16, 16) and x.dtype == np.float32
    assert y_any.shape == y_count.shape == (3, 16, 16)
    np.testing.assert_array_equal(y_count[1], counts[20])
    np.testing.assert_array_equal(y_any[1], (counts[20] > 0).astype(np.float32))
    assert set(np.unique(y_any)) <= {0.0, 1.0}
    assert build_inputs(counts, starts, 60, cfg, mask).shape == (n_channels(cfg), 16, 16)  # next window


def test_no_leakage_future_counts_never_change_inputs():
    counts, starts, mask = _city()
    cfg = FeatureConfig(window_hours=24)
    for t in (0, 1, 7, 30, 59):
        before = build_inputs(counts, starts, t, cfg, mask)
        changed = counts.copy()
        changed[t:] = np.random.default_rng(t).poisson(3.0, size=changed[t:].shape)
        np.testing.assert_array_equal(before, build_inputs(changed, starts, t, cfg, mask))
        # the batched builder agrees with the single-window path and is leak-free too
        np.testing.assert_array_equal(before, SampleBuilder(changed, starts, cfg, mask).inputs([t])[0])


def test_recent_plane_and_mask():
    counts, starts, mask = _city()
    cfg = FeatureConfig(window_hours=24)
    names = channel_names(cfg)
    b = SampleBuilder(counts, starts, cfg, mask)
    x = b.inputs([30])[0]
    base = b.base_rate(np.array([30]))[0]
    np.testing.assert_allclose(x[names.index("recent_0")], np.log1p(counts[29] / base) * mask, rtol=1e-6)
    np.testing.assert_array_equal(x[names.index("mask")], mask.astype(np.float32))
    assert np.all(x[:, ~mask][[i for i, n in enumerate(names) if n != "mask"]] == 0)


def test_normalisation_makes_cities_comparable():
    """A city with 10x the events everywhere gets the same rate planes (up to log_base)."""
    counts, starts, mask = _city(T=40)
    cfg = FeatureConfig(window_hours=24)
    names = channel_names(cfg)
    a = build_inputs(counts, starts, 40, cfg, mask)
    b = build_inputs(counts * 10, starts, 40, cfg, mask)
    for i, n in enumerate(names):
        if n.startswith(("rate_", "season", "lograte_", "ewma_")):
            np.testing.assert_allclose(a[i], b[i], rtol=1e-5, atol=1e-6)
    assert b[names.index("log_base")].max() > a[names.index("log_base")].max()


def test_weekly_layout_is_identical():
    daily, weekly = FeatureConfig(window_hours=24), FeatureConfig(window_hours=168)
    assert channel_names(daily) == channel_names(weekly)
    counts, _, mask = _city(T=120)
    starts = pd.date_range("2020-01-06", periods=120, freq="168h")
    x = build_inputs(counts, starts, 100, weekly, mask)
    names = channel_names(weekly)
    assert np.all(x[names.index("dow_sin")] == 0)          # no day-of-week for weekly windows
    assert x[names.index("season_ly")].any()               # a year back exists at t=100


def test_long_history_prediction_matches_training_builder():
    """for_window (prediction) starts after years of history: the all-history and EWMA planes
    carry the windows before its offset and equal the full builder's."""
    counts, starts, mask = _city(T=900, H=8, W=8, rate=0.2)
    cfg = FeatureConfig(window_hours=24)
    full = SampleBuilder(counts, starts, cfg, mask)
    for t in (850, 899):
        np.testing.assert_allclose(build_inputs(counts, starts, t, cfg, mask), full.inputs([t])[0],
                                   rtol=1e-4, atol=1e-5)


def test_ewma_plane_by_hand():
    """One cell, daily windows, half-life 1 day (decay 0.5), counts 1, 0, 0: at t=3 the
    weighted mean is (0.25 * 1) / (0.25 + 0.5 + 1) = 1/7 and the base rate 1/3 per window,
    so the plane reads log(3/7 + 0.1)."""
    cfg = FeatureConfig(window_hours=24, ewma_half_life_days=(1,))
    counts = np.array([1, 0, 0], np.float32).reshape(3, 1, 1)
    starts = pd.date_range("2020-01-06", periods=3, freq="24h")
    x = SampleBuilder(counts, starts, cfg).inputs([3])[0]
    assert x[channel_names(cfg).index("ewma_1d"), 0, 0] == pytest.approx(np.log(3 / 7 + 0.1), rel=1e-6)
    # the long-run mean's log plane: 1 event in 3 windows over a base of 1/3 -> log(1 + 0.1)
    assert x[channel_names(cfg).index("lograte_all"), 0, 0] == pytest.approx(np.log(1.1), rel=1e-6)


def test_config_saved_before_log_planes_keeps_its_layout():
    """A checkpoint's feature config from before the log/EWMA planes rebuilds its own 29 planes."""
    old = {k: v for k, v in FeatureConfig().to_dict().items()
           if k not in ("log_all_history", "ewma_half_life_days")}
    names = channel_names(FeatureConfig.from_dict(old))
    assert len(names) == 29 and not any(n.startswith(("lograte", "ewma")) for n in names)
    assert len(channel_names(FeatureConfig())) == 33


def test_config_round_trip():
    cfg = FeatureConfig(window_hours=168, long_days=(28, 365), smoothing=(2.0,))
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg


def test_bad_t_raises():
    counts, starts, mask = _city(T=10)
    with pytest.raises(ValueError):
        SampleBuilder(counts, starts, FeatureConfig(), mask).inputs([11])


def test_horizon_labels_sum_the_next_windows():
    # one cell, counts 1, 0, 2, 0, 3 in windows 0..4; a 3-window horizon from t = 1 sums
    # windows 1..3 (0 + 2 + 0 = 2), from t = 2 windows 2..4 (5); t = 3 would run past the data
    counts = np.array([1, 0, 2, 0, 3], np.float32).reshape(5, 1, 1)
    starts = pd.date_range("2024-01-01", periods=5, freq="D")
    b = SampleBuilder(counts, starts, FeatureConfig(), horizon_windows=3)
    y_any, y_count = b.labels([1, 2])
    assert y_count[:, 0, 0].tolist() == [2.0, 5.0] and y_any[:, 0, 0].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="horizon of 3 windows"):
        b.labels([3])
    assert SampleBuilder(counts, starts, FeatureConfig()).labels([3])[1][0, 0, 0] == 0.0
