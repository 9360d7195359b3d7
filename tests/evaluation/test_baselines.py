"""Baselines: tiny grids whose scores are worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from safety_models.evaluation import baselines
from safety_models.grid import GridSpec

# 100 m cells: the default 400 m bandwidth is 4 cells.
SPEC = GridSpec("EPSG:32616", 447_000.0, 4_636_000.0, 100.0, 11, 11)


def daily(first: str, last: str) -> pd.DatetimeIndex:
    return pd.date_range(first, last, freq="D")


def test_registry_names_and_categories():
    assert list(baselines.BASELINES) == ["naive", "historical_average", "kde", "prospective_hotspot", "seasonal"]
    assert "seasonal" not in baselines.baselines_for("crime")
    assert "seasonal" not in baselines.baselines_for("traffic")
    assert list(baselines.baselines_for("health")) == list(baselines.BASELINES)
    with pytest.raises(ValueError):
        baselines.baselines_for("weather")


def test_naive_returns_the_last_window():
    starts = daily("2024-01-01", "2024-01-03")
    counts = np.zeros((3, 2, 2), dtype=np.float32)
    counts[1, 0, 0] = 5
    counts[2, 1, 1] = 2
    score = baselines.naive_last_window(counts, starts, pd.Timestamp("2024-01-04"), SPEC)
    np.testing.assert_array_equal(score, [[0, 0], [0, 2]])
    assert score.dtype == np.float64


def test_historical_average_by_hand():
    starts = daily("2024-01-01", "2024-01-03")
    counts = np.zeros((3, 1, 2), dtype=np.float32)
    counts[:, 0, 0] = [1, 0, 2]  # mean 1; last two windows: mean 1
    counts[:, 0, 1] = [3, 0, 0]  # mean 1; last two windows: 0
    target = pd.Timestamp("2024-01-04")
    np.testing.assert_allclose(baselines.historical_average(counts, starts, target, SPEC), [[1.0, 1.0]])
    np.testing.assert_allclose(baselines.historical_average(counts, starts, target, SPEC, last_n_windows=2), [[1.0, 0.0]])


def test_no_history_means_no_forecast():
    empty = np.zeros((0, 2, 2), dtype=np.float32)
    for fn in baselines.BASELINES.values():
        assert np.isnan(fn(empty, pd.DatetimeIndex([]), pd.Timestamp("2024-01-01"), SPEC)).all()


def test_quartic_kernel_by_hand():
    kernel = baselines.quartic_kernel(4.0)  # (9, 9), centre at [4, 4]
    assert kernel.shape == (9, 9)
    # (1 - (d/4)^2)^2: d 0 -> 1, 1 -> (15/16)^2, 2 -> (3/4)^2, 3 -> (7/16)^2, 4 -> 0.
    np.testing.assert_allclose(kernel[4, 4:], [1.0, (15 / 16) ** 2, 0.5625, (7 / 16) ** 2, 0.0])
    # Diagonal (2, 2): d^2 = 8 -> (1 - 8/16)^2 = 1/4.
    assert kernel[6, 6] == pytest.approx(0.25)


def test_kde_single_event_peaks_at_its_cell_symmetric_and_bounded():
    starts = daily("2024-01-01", "2024-01-10")
    counts = np.zeros((10, 11, 11), dtype=np.float32)
    counts[9, 5, 5] = 1
    score = baselines.kde_hotspot(counts, starts, pd.Timestamp("2024-01-11"), SPEC)
    assert score.shape == (11, 11)
    assert np.unravel_index(score.argmax(), score.shape) == (5, 5)
    assert score[5, 5] == pytest.approx(1.0)
    assert score[5, 6] == pytest.approx((15 / 16) ** 2)
    assert score[7, 7] == pytest.approx(0.25)
    # Symmetric under transpose and both flips.
    np.testing.assert_allclose(score, score.T)
    np.testing.assert_allclose(score, score[::-1, :])
    np.testing.assert_allclose(score, score[:, ::-1])
    # Zero at and beyond the bandwidth: 4 cells east, and (3, 3) away (d = 4.24).
    assert score[5, 9] == 0 and score[8, 8] == 0 and score[0, 0] == 0


def test_kde_forgets_events_older_than_the_lookback():
    starts = daily("2023-10-01", "2024-01-10")
    counts = np.zeros((len(starts), 11, 11), dtype=np.float32)
    target = pd.Timestamp("2024-01-11")
    counts[starts.get_loc(target - pd.Timedelta(days=61)), 2, 2] = 1  # outside 60 days
    counts[starts.get_loc(target - pd.Timedelta(days=59)), 8, 8] = 1  # inside
    score = baselines.kde_hotspot(counts, starts, target, SPEC)
    assert score[2, 2] == 0 and score[8, 8] == pytest.approx(1.0)


def test_bandwidth_never_below_one_and_a_half_cells():
    coarse = GridSpec("EPSG:32616", 447_000.0, 4_636_000.0, 500.0, 5, 5)
    starts = daily("2024-01-01", "2024-01-01")
    counts = np.zeros((1, 5, 5), dtype=np.float32)
    counts[0, 2, 2] = 1
    score = baselines.kde_hotspot(counts, starts, pd.Timestamp("2024-01-02"), coarse)
    # 400 m / 500 m = 0.8 cells -> raised to 1.5: neighbour (1 - (1/1.5)^2)^2 = (5/9)^2.
    assert score[2, 3] == pytest.approx((5 / 9) ** 2)


def test_prospective_weeks_ago():
    target = pd.Timestamp("2024-01-15")
    starts = pd.DatetimeIndex(["2024-01-14", "2024-01-08", "2024-01-07", "2024-01-01", "2023-11-19"])
    # Ages 1, 7, 8, 14, 57 days -> ceil(age / 7) - 1 = 0, 0, 1, 1, 8.
    np.testing.assert_array_equal(baselines.prospective_weeks_ago(starts, target), [0, 0, 1, 1, 8])


def test_prospective_hotspot_by_hand():
    spec = GridSpec("EPSG:32616", 447_000.0, 4_636_000.0, 100.0, 5, 5)
    starts = daily("2023-11-01", "2024-01-14")
    counts = np.zeros((len(starts), 5, 5), dtype=np.float32)
    target = pd.Timestamp("2024-01-15")

    def at(day: str) -> int:
        return starts.get_loc(pd.Timestamp(day))

    counts[at("2024-01-14"), 2, 2] = 1  # A: 0 weeks ago -> time weight 1
    counts[at("2024-01-07"), 2, 2] = 1  # B: 1 week ago  -> 1/2
    counts[at("2024-01-08"), 2, 3] = 1  # C: 0 weeks ago -> 1
    counts[at("2023-11-19"), 0, 0] = 1  # D: 8 weeks ago -> outside the 8-week bandwidth
    # Spatial bandwidth 1 cell: weight 1 in the cell, 1/2 next door, 0 diagonally.
    score = baselines.prospective_hotspot(counts, starts, target, spec, bandwidth_m=100.0, min_bandwidth_cells=1.0)
    # (2,2): A 1 + B 1/2 + C 1 * 1/2 = 2.   (2,3): A 1/2 + B 1/4 + C 1 = 1.75.
    # (2,4): C 1/2.   (1,2): A 1/2 + B 1/4.   (1,3): C 1/2 (A, B diagonal).   (0,0): D too old.
    assert score[2, 2] == pytest.approx(2.0)
    assert score[2, 3] == pytest.approx(1.75)
    assert score[2, 4] == pytest.approx(0.5)
    assert score[1, 2] == pytest.approx(0.75)
    assert score[1, 3] == pytest.approx(0.5)
    assert score[0, 0] == 0.0
    # Total: time weights (1 + 1/2 + 1) x kernel mass (1 + 4 neighbours x 1/2), all inside the grid.
    assert score.sum() == pytest.approx(2.5 * 3.0)


def test_seasonal_same_weeks_by_hand():
    target = pd.Timestamp("2024-06-03")  # a Monday
    starts = pd.date_range(end=target - pd.Timedelta(weeks=1), periods=60, freq="7D")  # ages 1..60 weeks
    counts = np.zeros((60, 1, 1), dtype=np.float32)

    def age(weeks: int) -> int:
        return starts.get_loc(target - pd.Timedelta(weeks=weeks))

    counts[age(51), 0, 0] = 0
    counts[age(52), 0, 0] = 3
    counts[age(53), 0, 0] = 6
    counts[age(1), 0, 0] = 100  # last week: not the same season
    # Mean of the weeks 51, 52, 53 ago: (0 + 3 + 6) / 3.
    score = baselines.seasonal_same_weeks(counts, starts, target, SPEC)
    assert score[0, 0] == pytest.approx(3.0)


def test_seasonal_falls_back_to_the_average_within_the_first_year():
    target = pd.Timestamp("2024-06-03")
    starts = pd.date_range(end=target - pd.Timedelta(weeks=1), periods=30, freq="7D")
    counts = np.arange(30, dtype=np.float32).reshape(30, 1, 1)
    score = baselines.seasonal_same_weeks(counts, starts, target, SPEC)
    assert score[0, 0] == pytest.approx(np.arange(30).mean())


@pytest.mark.parametrize("name", list(baselines.BASELINES))
def test_no_leakage_from_the_target_window_or_later(name):
    rng = np.random.default_rng(3)
    starts = pd.date_range("2022-01-03", periods=420, freq="D")
    counts = rng.poisson(0.3, size=(420, 6, 6)).astype(np.float32)
    t = 400
    fn = baselines.BASELINES[name]
    before = fn(counts[:t], starts[:t], starts[t], SPEC)
    changed = counts.copy()
    changed[t:] = rng.poisson(5.0, size=changed[t:].shape)
    np.testing.assert_array_equal(fn(changed[:t], starts[:t], starts[t], SPEC), before)
    np.testing.assert_array_equal(baselines.forecast_windows(name, changed, starts, [t], SPEC)[0], before)
    # History that reaches the target window is refused.
    with pytest.raises(ValueError):
        fn(counts[: t + 1], starts[: t + 1], starts[t], SPEC)


@pytest.mark.parametrize("name", ["historical_average", "kde"])
def test_forecast_windows_matches_one_call_per_window(name):
    rng = np.random.default_rng(4)
    starts = pd.date_range("2024-01-01", periods=40, freq="8h")
    counts = rng.poisson(0.5, size=(40, 5, 5)).astype(np.float32)
    targets = [0, 17, 1, 39, 17]  # any order, repeats allowed
    batch = baselines.forecast_windows(name, counts, starts, targets, SPEC)
    assert batch.shape == (5, 5, 5) and np.isnan(batch[0]).all()
    fn = baselines.BASELINES[name]
    for i, t in enumerate(targets[1:], start=1):
        np.testing.assert_allclose(batch[i], fn(counts[:t], starts[:t], starts[t], SPEC))
