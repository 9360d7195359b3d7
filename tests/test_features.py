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
        if n.startswith(("rate_", "season")):
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


def test_config_round_trip():
    cfg = FeatureConfig(window_hours=168, long_days=(28, 365), smoothing=(2.0,))
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg


def test_bad_t_raises():
    counts, starts, mask = _city(T=10)
    with pytest.raises(ValueError):
        SampleBuilder(counts, starts, FeatureConfig(), mask).inputs([11])
