"""Count tensors -> model inputs and labels for one time window (pure numpy/torch, no I/O).

A sample for window t is built from counts[:t] ONLY (strictly before window t); its labels are
counts[t]. The channel layout is the same for every category, city and window length (fixed C),
so that one pretrained backbone serves all of them. Rates are NORMALISED by the city-wide mean
rate per cell-window over the history available at t (then log1p), so a backbone pretrained on
one city / category sees comparable numbers on another.

Channels (see `channel_names`), all (rows, cols) planes:
    recent_0..K-1      log1p(count in window t-1-k / base)           last K windows
    recent_sum_s1      log1p(sum of last K windows / K / base), Gaussian-smoothed sigma=smoothing[0]
    rate_<d>d          log1p(mean rate over the last d days / base)  for d in long_days
    rate_<d>d_s<s>     the same, Gaussian-smoothed with sigma=s cells, for s in smoothing
    rate_all, rate_all_s<s>  mean rate over all history before t (all_history=True)
    lograte_all, lograte_all_s1   log(rate_all / base + LOG_FLOOR) and its smoothed copy
                                  (log_all_history=True)
    ewma_<h>d, ewma_<h>d_s1       log(exponentially weighted mean rate / base + LOG_FLOOR),
                                  half-life h days, for h in ewma_half_life_days
    season_ly          log1p(mean rate around the same time last year / base)
    season_ly_s1       the same, smoothed sigma=smoothing[0]
    dow_sin, dow_cos   day of week of window t (zero for windows of a week or longer)
    doy_sin, doy_cos   day of year of window t (all four zero when calendar=False)
    mask               1 inside the city, 0 outside
    log_base           log10(base) / 3: absolute event level, so probabilities can be calibrated
    history_frac       min(1, history available at t / 1 year)
where base = (events in counts[:t] inside the mask) / (t * cells in mask), floored at 1e-4.
Every plane is multiplied by the mask except `mask` itself.

Why the log planes: log1p(rate / base) is nearly linear for quiet cells and compresses the
busy ones, so a linear model of the planes (the base-rate path) cannot reproduce a ranking by
log rate, which is what a Poisson model of a stable hot spot needs. On the shared Chicago
assaults, Barcelona accidents and Chicago West Nile data, the linear path alone ranked the test
year better than the historical average only once log planes of the long-run mean and of a
one-year-half-life average (recent years weigh more, older ones still count) were added.
Configurations saved without these fields (older checkpoints) keep their own layout.

Building uses cumulative sums over time, so all samples of a city cost one pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

HOURS_PER_YEAR = 365.25 * 24
MIN_BASE_RATE = 1e-4
LOG_FLOOR = 0.1          # log planes: log(rate / base + LOG_FLOOR); an empty cell reads log(0.1)
# Defaults for configurations saved before a field existed (their checkpoints' channel layout).
_LEGACY_DEFAULTS = {"log_all_history": False, "ewma_half_life_days": ()}


@dataclass(frozen=True)
class FeatureConfig:
    window_hours: int = 24
    recent_windows: int = 7                 # K: last K windows as separate planes
    long_days: tuple[int, ...] = (28, 91, 365)   # long-run mean rates over these horizons (days)
    smoothing: tuple[float, ...] = (1.0, 3.0)    # Gaussian sigmas in cells for the long rates
    season_half_days: int = 14              # same-season-last-year: +-this many days around t-1y
    all_history: bool = True                # also the mean rate over all history before t
    log_all_history: bool = True            # + log planes of that mean (needs all_history)
    ewma_half_life_days: tuple[int, ...] = (365,)   # log planes of exponentially weighted means
    calendar: bool = True

    def to_dict(self) -> dict:
        d = asdict(self)
        d["long_days"] = list(self.long_days)
        d["smoothing"] = list(self.smoothing)
        d["ewma_half_life_days"] = list(self.ewma_half_life_days)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        d = {**_LEGACY_DEFAULTS, **dict(d)}
        d["long_days"] = tuple(int(v) for v in d.get("long_days", cls.long_days))
        d["smoothing"] = tuple(float(v) for v in d.get("smoothing", cls.smoothing))
        d["ewma_half_life_days"] = tuple(int(v) for v in d["ewma_half_life_days"])
        return cls(**d)

    def windows(self, days: float) -> int:
        """Number of windows in `days` days (at least 1)."""
        return max(1, int(round(days * 24 / self.window_hours)))


def channel_names(cfg: FeatureConfig) -> list[str]:
    names = [f"recent_{k}" for k in range(cfg.recent_windows)]
    names.append("recent_sum_s1")
    for d in cfg.long_days:
        names.append(f"rate_{d}d")
        names += [f"rate_{d}d_s{s:g}" for s in cfg.smoothing]
    if cfg.all_history:
        names.append("rate_all")
        names += [f"rate_all_s{s:g}" for s in cfg.smoothing]
        if cfg.log_all_history:
            names += ["lograte_all", f"lograte_all_s{cfg.smoothing[0]:g}"]
    for h in cfg.ewma_half_life_days:
        names += [f"ewma_{h}d", f"ewma_{h}d_s{cfg.smoothing[0]:g}"]
    names += ["season_ly", "season_ly_s1", "dow_sin", "dow_cos", "doy_sin", "doy_cos",
              "mask", "log_base", "history_frac"]
    return names


def n_channels(cfg: FeatureConfig) -> int:
    return len(channel_names(cfg))


def window_start_times(starts, n: int, window_hours: int) -> np.ndarray:
    """Start times of windows 0..n-1 as datetime64[ns], extrapolating past the given starts."""
    s = pd.DatetimeIndex(pd.to_datetime(np.asarray(starts))).as_unit("ns").to_numpy()
    if n <= len(s):
        return s[:n]
    step = np.timedelta64(int(window_hours) * 3600, "s").astype("timedelta64[ns]")
    last = s[-1] if len(s) else np.datetime64("1970-01-01", "ns")
    extra = last + step * np.arange(1, n - len(s) + 1)
    return np.concatenate([s, extra])


def lookback_windows(cfg: FeatureConfig) -> int:
    """How many windows before t the inputs for t look at (besides the city-wide total)."""
    return max(cfg.recent_windows, max(cfg.windows(d) for d in cfg.long_days),
               cfg.windows(365) + cfg.windows(cfg.season_half_days) + 1)


def ewma_decay(cfg: FeatureConfig, half_life_days: float) -> float:
    """Per-window decay of an exponentially weighted mean with this half-life."""
    return 0.5 ** (1.0 / cfg.windows(half_life_days))


def running_sums(counts: np.ndarray, dtype=np.float32) -> np.ndarray:
    """(T+1, ...) cum with cum[i] = sum of counts[:i] (cum[0] = 0), in dtype.

    Window by window: numpy's cumsum along the first axis walks that axis innermost and took
    15 times as long on a (380, 276, 197) year of a 150 m city (66 ms against 4 ms)."""
    counts = np.asarray(counts)
    cum = np.zeros((len(counts) + 1, *counts.shape[1:]), dtype)
    for i in range(len(counts)):
        np.add(cum[i], counts[i], out=cum[i + 1])
    return cum


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def smooth(planes: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (zero padding) of (..., rows, cols) planes; sigma in cells.

    scipy's 1-D correlations, not torch's conv2d: a one-channel convolution is its slow case
    (ten times slower on 16 x 276 x 197 planes, the batch of a 150 m grid of Chicago), and
    inputs are built on the CPU anyway."""
    if sigma <= 0:
        return planes
    x = np.ascontiguousarray(planes, dtype=np.float32)
    k = _gaussian_kernel(sigma).numpy()
    x = ndimage.correlate1d(x, k, axis=-2, mode="constant", cval=0.0)   # along rows
    return ndimage.correlate1d(x, k, axis=-1, mode="constant", cval=0.0)   # along cols


class SampleBuilder:
    """Holds the cumulative sums of one city's counts; builds inputs for any t in 0..T.

    counts: (T, rows, cols) event counts per window; starts: T window start times;
    mask: (rows, cols) bool city cells (None = all cells).
    """

    def __init__(self, counts: np.ndarray, starts, cfg: FeatureConfig, mask: np.ndarray | None = None,
                 offset: int = 0, events_before: float = 0.0, cells_before: np.ndarray | None = None,
                 ewma_before: dict | None = None, horizon_windows: int = 1):
        # offset/events_before: counts are windows offset.. of a longer history whose first
        # `offset` windows held `events_before` city events, per cell `cells_before`, and whose
        # exponentially weighted sums at `offset` are ewma_before[h] = (sums (H, W), weight)
        # (used by `for_window`); horizon_windows: labels count the events of windows
        # t .. t + horizon_windows - 1 (a model trained for the next 7, 30 ... days)
        counts = np.asarray(counts, dtype=np.float32)
        if counts.ndim != 3:
            raise ValueError(f"counts must be (windows, rows, cols), got shape {counts.shape}")
        self.cfg = cfg
        self.horizon = max(1, int(horizon_windows))
        self.counts = counts                                           # (T, H, W)
        self.T, self.H, self.W = counts.shape
        self.mask = (np.ones((self.H, self.W), bool) if mask is None else np.asarray(mask, bool))
        if self.mask.shape != (self.H, self.W):
            raise ValueError(f"mask shape {self.mask.shape} != grid {(self.H, self.W)}")
        self.maskf = self.mask.astype(np.float32)
        # cum[i] = sum of counts[:i]; sequential cumsum so cum[:t+1] depends on counts[:t] only
        self.cum = running_sums(counts)                                  # (T+1, H, W)
        city = (counts * self.maskf).sum(axis=(1, 2), dtype=np.float64)
        self.city_cum = events_before + np.concatenate([[0.0], np.cumsum(city)])   # (T+1,)
        self.n_mask = max(1, int(self.mask.sum()))
        self.offset = int(offset)
        self.cells_before = (np.zeros((self.H, self.W), np.float32) if cells_before is None
                             else np.asarray(cells_before, np.float32))              # (H, W)
        self.times = window_start_times(starts, self.offset + self.T + 1, cfg.window_hours)[self.offset:]
        # ewma[h][i] = exponentially weighted mean rate over counts[:i] (global offset + i)
        self.ewma = {h: self._ewma_rates(h, (ewma_before or {}).get(h)) for h in cfg.ewma_half_life_days}

    def _ewma_rates(self, half_life_days: int, before: tuple[np.ndarray, float] | None) -> np.ndarray:
        """(T+1, H, W): at i, sum_s decay^(i-1-s) counts[s] / sum_s decay^(i-1-s), s < i."""
        decay = ewma_decay(self.cfg, half_life_days)
        sums = np.zeros((self.T + 1, self.H, self.W), np.float32)       # (T+1, H, W)
        weights = np.zeros(self.T + 1, np.float64)
        if before is not None:
            sums[0], weights[0] = before[0], float(before[1])
        for i in range(self.T):                                          # sequential: no leakage
            np.multiply(sums[i], decay, out=sums[i + 1])
            sums[i + 1] += self.counts[i]
            weights[i + 1] = weights[i] * decay + 1.0
        sums /= np.maximum(weights, 1e-12).astype(np.float32)[:, None, None]
        return sums

    @classmethod
    def for_window(cls, counts: np.ndarray, starts, t: int, cfg: FeatureConfig,
                   mask: np.ndarray | None = None) -> "SampleBuilder":
        """A builder over only the windows that inputs for window t look at (fast prediction)."""
        counts = np.asarray(counts)
        lo = max(0, int(t) - lookback_windows(cfg))
        m = np.ones(counts.shape[1:], bool) if mask is None else np.asarray(mask, bool)
        # One matrix product reads the history once for the all-history sums and every decayed
        # sum, in float32 (a float64 weight vector made numpy copy 4 years of a 150 m city's
        # counts to float64 first: most of a prediction's time)
        ages = np.arange(lo - 1, -1, -1, dtype=np.float64)                           # (lo,)
        decays = [ewma_decay(cfg, h) for h in cfg.ewma_half_life_days]
        w = np.stack([np.ones(lo)] + [d ** ages for d in decays]).astype(np.float32)  # (1 + D, lo)
        if lo:
            flat = np.asarray(counts[:lo], dtype=np.float32).reshape(lo, -1)       # (lo, cells)
            sums = (w @ flat).astype(np.float64).reshape(len(w), *counts.shape[1:])
        else:
            sums = np.zeros((len(w), *counts.shape[1:]))
        cells = sums[0]
        ewma_before = {h: (sums[1 + k], float(w[1 + k].astype(np.float64).sum()))
                       for k, h in enumerate(cfg.ewma_half_life_days)}
        return cls(counts[lo:t], window_start_times(starts, t + 1, cfg.window_hours), cfg, mask,
                   offset=lo, events_before=float(cells[m].sum()), cells_before=cells,
                   ewma_before=ewma_before)

    def _window_sum(self, t: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Sum of counts[t-length:t] (clipped at 0) and the number of windows summed."""
        lo = np.maximum(t - length, 0)
        return self.cum[t] - self.cum[lo], (t - lo).astype(np.float32)

    def base_rate(self, t: np.ndarray) -> np.ndarray:
        """City-wide mean events per cell-window in counts[:t] (t global); (N,)."""
        t = np.asarray(t)
        rate = self.city_cum[t - self.offset] / (np.maximum(t, 1) * self.n_mask)
        return np.maximum(rate, MIN_BASE_RATE).astype(np.float32)

    def inputs(self, t_indices) -> np.ndarray:
        """(N, C, rows, cols) float32 inputs for windows t_indices, each from counts[:t] only."""
        cfg = self.cfg
        t_global = np.asarray(t_indices, dtype=np.int64).reshape(-1)
        t = t_global - self.offset                                     # index into this builder
        if len(t) and (t.min() < 0 or t.max() > self.T):
            raise ValueError(f"t must lie in {self.offset}..{self.offset + self.T}, "
                             f"got {t_global.min()}..{t_global.max()}")
        n = len(t)
        base = self.base_rate(t_global)[:, None, None]                 # (N, 1, 1)
        planes: list[np.ndarray] = []

        def norm(rate: np.ndarray) -> np.ndarray:                      # (N, H, W) -> (N, H, W)
            return np.log1p(np.maximum(rate, 0.0) / base)

        def lognorm(rate: np.ndarray) -> np.ndarray:                   # (N, H, W) -> (N, H, W)
            return np.log(np.maximum(rate, 0.0) / base + LOG_FLOOR)

        k_recent = cfg.recent_windows
        for k in range(k_recent):
            idx = np.maximum(t - 1 - k, 0)                              # window t-1-k, or none
            win = self.cum[np.maximum(t - k, 0)] - self.cum[idx]
            planes.append(norm(win))
        s, m = self._window_sum(t, k_recent)
        planes.append(norm(smooth(s / np.maximum(m, 1)[:, None, None], cfg.smoothing[0])))
        for d in cfg.long_days:
            s, m = self._window_sum(t, cfg.windows(d))
            rate = s / np.maximum(m, 1)[:, None, None]
            planes.append(norm(rate))
            planes += [norm(smooth(rate, sg)) for sg in cfg.smoothing]
        if cfg.all_history:
            # cum[t] - cum[0] over the builder's windows, plus the windows before its offset
            # (for_window builders): their per-cell sums are kept in self.cells_before
            rate = (self.cum[t] + self.cells_before) / np.maximum(t_global, 1)[:, None, None]
            planes.append(norm(rate))
            planes += [norm(smooth(rate, sg)) for sg in cfg.smoothing]
            if cfg.log_all_history:
                planes += [lognorm(rate), lognorm(smooth(rate, cfg.smoothing[0]))]
        for h in cfg.ewma_half_life_days:
            rate = self.ewma[h][t]
            planes += [lognorm(rate), lognorm(smooth(rate, cfg.smoothing[0]))]
        # same season last year: windows around t - 1 year, only where that history exists
        year = cfg.windows(365)
        half = max(0, cfg.windows(cfg.season_half_days)) if cfg.season_half_days > 0 else 0
        hi = np.clip(t - year + half + 1, 0, t)
        lo = np.clip(t - year - half, 0, t)
        s = self.cum[hi] - self.cum[lo]
        m = np.maximum(hi - lo, 1).astype(np.float32)[:, None, None]
        season = s / m
        planes.append(norm(season))
        planes.append(norm(smooth(season, cfg.smoothing[0])))
        # calendar of window t's start
        when = pd.DatetimeIndex(self.times[t])
        ones = np.ones((n, self.H, self.W), np.float32)
        if cfg.calendar:
            dow = (2 * np.pi * when.day_of_week.to_numpy() / 7.0) if cfg.window_hours < 168 else None
            doy = 2 * np.pi * (when.day_of_year.to_numpy() - 1) / 365.25
            for v in ((np.sin(dow), np.cos(dow)) if dow is not None else (np.zeros(n), np.zeros(n))):
                planes.append(ones * v.astype(np.float32)[:, None, None])
            planes += [ones * np.sin(doy).astype(np.float32)[:, None, None],
                       ones * np.cos(doy).astype(np.float32)[:, None, None]]
        else:
            planes += [ones * 0.0] * 4
        planes.append(None)  # mask placeholder (not multiplied by itself)
        planes.append(ones * (np.log10(base) / 3.0))
        hist = np.minimum(1.0, t_global * cfg.window_hours / HOURS_PER_YEAR).astype(np.float32)
        planes.append(ones * hist[:, None, None])

        x = np.empty((n, len(planes), self.H, self.W), np.float32)    # (N, C, H, W)
        for c, p in enumerate(planes):
            x[:, c] = self.maskf if p is None else p * self.maskf
        return x

    def labels(self, t_indices) -> tuple[np.ndarray, np.ndarray]:
        """y_any (N, H, W) in {0,1} and y_count (N, H, W): the events of windows t .. t +
        horizon - 1 (window t alone for the default horizon of one window); t + horizon <= T."""
        t = np.asarray(t_indices, dtype=np.int64).reshape(-1) - self.offset
        h = self.horizon
        if len(t) and (t.max() + h > self.T or t.min() < 0):
            raise ValueError(f"labels need {self.offset} <= t <= {self.offset + self.T - h} "
                             f"(horizon of {h} windows)")
        # cum holds exact integers in float32 up to 2**24 events per cell
        y_count = (self.counts[t] if h == 1 else self.cum[t + h] - self.cum[t]).astype(np.float32)
        return (y_count > 0).astype(np.float32), y_count


def build_inputs(counts: np.ndarray, starts, t: int, cfg: FeatureConfig,
                 mask: np.ndarray | None = None) -> np.ndarray:
    """(C, rows, cols) float32 inputs for window t (0 <= t <= len(counts)) from counts[:t] only."""
    # only counts[:t] are sliced in: the no-leakage property is structural
    t = int(t)
    return SampleBuilder.for_window(counts, starts, t, cfg, mask).inputs([t])[0]


def make_samples(counts: np.ndarray, starts, t_indices, cfg: FeatureConfig,
                 mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (N, C, rows, cols), y_any (N, rows, cols) in {0,1}, y_count (N, rows, cols); t < len(counts)."""
    b = SampleBuilder(counts, starts, cfg, mask)
    y_any, y_count = b.labels(t_indices)
    return b.inputs(t_indices), y_any, y_count
