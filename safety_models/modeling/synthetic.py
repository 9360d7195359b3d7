"""Simulated cities for pretraining: count tensors with the structure real incident data has.

Each city (fixed seed) has
- an irregular city mask (a noisy blob) on a grid of 20-70 x 20-70 cells;
- a spatial risk surface: a log-Gaussian random field (smoothed Gaussian noise, exponentiated)
  plus a few sharp point hotspots, drifting slowly from one surface to another over the years;
- near-repeat self-excitation (discrete Hawkes): each event raises the rate of its cell and
  neighbours for the next windows, decaying geometrically;
- a weekly cycle (daily windows) and a seasonal cycle (strong for weekly 'health' cities,
  sometimes with an off-season without events);
- different city-wide rates (from sparse to busy) and window lengths (24 h and 168 h).
`corpus(seed)` returns the list the pretraining uses: [(counts, starts, mask), ...].
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter


def _blob_mask(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    yy, xx = np.mgrid[0:rows, 0:cols]
    cy, cx = rows / 2, cols / 2
    r = ((yy - cy) / (rows / 2)) ** 2 + ((xx - cx) / (cols / 2)) ** 2
    noise = gaussian_filter(rng.normal(size=(rows, cols)), 3) * 4
    return (r + noise) < 0.9


def _surface(rng: np.random.Generator, rows: int, cols: int, mask: np.ndarray) -> np.ndarray:
    field = gaussian_filter(rng.normal(size=(rows, cols)), rng.uniform(1.5, 4.0))
    field = field / (field.std() + 1e-9) * rng.uniform(0.8, 1.6)
    surf = np.exp(field)
    for _ in range(rng.integers(3, 12)):                      # sharp hotspots (a mall, a bar street)
        r, c = rng.integers(0, rows), rng.integers(0, cols)
        surf[r, c] += surf.mean() * rng.uniform(5, 30)
    surf = surf * mask
    return surf / surf.sum()


def simulate_city(seed: int, rows: int | None = None, cols: int | None = None, n_windows: int | None = None,
                  window_hours: int = 24, events_per_window: float | None = None,
                  start: str = "2015-01-05") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One simulated city -> (counts (T, rows, cols) float32, starts datetime64[ns] (T,), mask (rows, cols) bool)."""
    rng = np.random.default_rng(seed)
    rows = rows or int(rng.integers(20, 70))
    cols = cols or int(rng.integers(20, 70))
    weekly = window_hours >= 168
    n_windows = n_windows or (int(rng.integers(150, 300)) if weekly else int(rng.integers(700, 1300)))
    mask = _blob_mask(rng, rows, cols)
    if mask.sum() < 20:
        mask[rows // 4: 3 * rows // 4, cols // 4: 3 * cols // 4] = True
    a, b = _surface(rng, rows, cols, mask), _surface(rng, rows, cols, mask)
    total = events_per_window or float(np.exp(rng.uniform(np.log(2), np.log(80))))
    starts = pd.date_range(start, periods=n_windows, freq=f"{window_hours}h").to_numpy()
    doy = pd.DatetimeIndex(starts).day_of_year.to_numpy()
    dow = pd.DatetimeIndex(starts).day_of_week.to_numpy()
    season_amp = rng.uniform(0.5, 1.0) if weekly else rng.uniform(0.0, 0.4)
    season = 1 + season_amp * np.cos(2 * np.pi * (doy - rng.uniform(150, 230)) / 365.25)
    if weekly and rng.random() < 0.5:
        season = np.where(np.cos(2 * np.pi * (doy - 200) / 365.25) < -0.2, 0.0, season)  # off-season
    week = 1 + (0 if weekly else rng.uniform(0, 0.3)) * np.cos(2 * np.pi * (dow - rng.integers(0, 7)) / 7)
    alpha = rng.uniform(0.0, 0.4)                             # events triggered per event
    decay = rng.uniform(0.3, 0.8) if not weekly else rng.uniform(0.2, 0.6)
    spread = rng.uniform(0.5, 1.5)
    counts = np.zeros((n_windows, rows, cols), np.float32)
    excite = np.zeros((rows, cols))
    for t in range(n_windows):
        w = t / max(1, n_windows - 1)
        mu = total * (1 - alpha) * season[t] * week[t] * ((1 - w) * a + w * b)
        lam = mu + excite * mask
        counts[t] = rng.poisson(lam)
        # each event triggers alpha events in total over the next windows, spread over neighbours
        excite = decay * excite + alpha * (1 - decay) * gaussian_filter(counts[t].astype(np.float64), spread)
    return counts, starts, mask


def corpus(seed: int = 0, n_daily: int = 8, n_weekly: int = 4) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The fixed pretraining corpus: n_daily daily and n_weekly weekly simulated cities."""
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 2**31 - 1, size=n_daily + n_weekly)
    return ([simulate_city(int(s), window_hours=24) for s in seeds[:n_daily]]
            + [simulate_city(int(s), window_hours=168) for s in seeds[n_daily:]])
