"""The stacked forecaster: a per-city Poisson GLM over what the baselines know.

Why: on crime and traffic the network barely moves its linear starting forecast, and that
forecast sees one spatial scale and two time scales of history. The baselines that are hard
to beat are each one point of a wider family: kernel density at one bandwidth, a prospective
(near-repeat) decay of a few weeks, the long-run average. This forecaster gives a linear model
the whole family at once and lets each city's training windows weigh them:

    planes (each (rows, cols), for window t from counts[:t] only):
      source  ewma_<h>d   exponentially weighted mean rate, half-life h days (near-repeat at
                          a week, recent drift at months, stable hot spots at years)
              all         the mean rate over all history (the historical average)
              season      the mean rate of the same weeks (+- season_half_days) of every
                          earlier year (seasonal data; the all-history rate before a year)
      x bandwidth b m     Gaussian smoothing, sigma = b / cell_size_m cells (0: the cell alone)
      feature = log(plane / base + LOG_FLOOR), base = the city's mean rate per cell-window
                before t, so a feature reads the same in a quiet and a busy city.

    score = w . features (+ bias): the log of the expected events of the forecast's horizon,
    fitted by Poisson regression on city cell-windows of the training windows, with the
    city-wide base rate x horizon as exposure (so the weights learn the map, not the season).

It ranks cells like a kernel-density or decayed-average baseline would when that is what the
city's history supports, and mixes scales when the mix predicts better. Whether it ships is
decided on validation windows by forecaster.choose_blend, with the network, its GLM and the
baselines as the other candidates.

StackConfig is the plane layout; StackModel (config + weights) is saved in the blend's
candidate parameters (plain types) and rebuilds the forecaster from a city's counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from safety_models.features import LOG_FLOOR, MIN_BASE_RATE, running_sums, smooth

STACK = "stack"
DEFAULT_HALF_LIVES_DAYS = (7.0, 28.0, 91.0, 365.0, 1095.0)
DEFAULT_BANDWIDTHS_M = (0.0, 250.0, 500.0, 1000.0, 2000.0)
# city cell-windows the Poisson fit samples from training: 1 M reads every other day of two
# years on Chicago's 2,655 cells at 500 m (400 k read one day in five, and validation PAI@5
# rose 5.73 -> 5.76 next day, 5.66 -> 5.67 at 7 days with the larger sample); small cities
# read every window anyway
FIT_ROWS = 1_000_000
FIT_HISTORY_DAYS = 730             # ... from training windows at most this many days before validation
SCORE_BATCH = 64                   # windows scored at once (bounds the planes in memory)
FIT_L2 = 1e-3                      # ridge penalty on standardised features (sklearn's alpha)


@dataclass(frozen=True)
class StackConfig:
    """The planes of the stack. window_hours: the city's window length (a half-life of h days
    is h * 24 / window_hours windows); half_lives_days: the decayed averages; all_history:
    also the plain mean over all history; season: also the same-season-of-earlier-years mean
    (+- season_half_days); bandwidths_m: the Gaussian smoothings, 0 = none."""

    window_hours: int = 24
    half_lives_days: tuple[float, ...] = DEFAULT_HALF_LIVES_DAYS
    all_history: bool = True
    season: bool = True
    season_half_days: int = 14
    bandwidths_m: tuple[float, ...] = DEFAULT_BANDWIDTHS_M
    weekday_half_life_days: float = 0.0     # > 0 (daily windows): also the decayed mean of the same weekday

    def to_dict(self) -> dict:
        return {"window_hours": int(self.window_hours), "half_lives_days": [float(v) for v in self.half_lives_days],
                "all_history": bool(self.all_history), "season": bool(self.season),
                "season_half_days": int(self.season_half_days), "bandwidths_m": [float(v) for v in self.bandwidths_m],
                "weekday_half_life_days": float(self.weekday_half_life_days)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "StackConfig":
        return cls(window_hours=int(d["window_hours"]),
                   half_lives_days=tuple(float(v) for v in d["half_lives_days"]),
                   all_history=bool(d["all_history"]), season=bool(d["season"]),
                   season_half_days=int(d["season_half_days"]),
                   bandwidths_m=tuple(float(v) for v in d["bandwidths_m"]),
                   weekday_half_life_days=float(d.get("weekday_half_life_days", 0.0)))

    def windows(self, days: float) -> float:
        return max(1.0, days * 24.0 / self.window_hours)

    @property
    def sources(self) -> list[str]:
        names = [f"ewma_{h:g}d" for h in self.half_lives_days]
        names += (["all"] if self.all_history else []) + (["season"] if self.season else [])
        return names + ([f"weekday_{self.weekday_half_life_days:g}d"] if self.weekday_half_life_days > 0 else [])

    def feature_names(self) -> list[str]:
        return [f"{s}_b{b:g}m" for s in self.sources for b in self.bandwidths_m]


def decayed_sums(counts: np.ndarray, t_indices: Sequence[int], decay: float) -> tuple[np.ndarray, np.ndarray]:
    """(sums (N, rows, cols), weights (N,)) with sums[i] = sum_{s < t} decay^(t-1-s) counts[s]
    and weights[i] = sum_{s < t} decay^(t-1-s), t = t_indices[i] (0 <= t <= len(counts)).

    decay 1 gives plain sums over all history. One pass over counts whatever the targets:
    they are visited in time order and the sum is carried from one to the next. float64."""
    counts = np.asarray(counts)
    t_indices = np.asarray(t_indices, dtype=np.int64)
    if len(t_indices) and (t_indices.min() < 0 or t_indices.max() > len(counts)):
        raise ValueError(f"t must lie in 0..{len(counts)}, got {t_indices.min()}..{t_indices.max()}")
    sums = np.zeros((len(t_indices), *counts.shape[1:]), np.float64)
    weights = np.zeros(len(t_indices), np.float64)
    carried = np.zeros(counts.shape[1:], np.float64)
    carried_w, at = 0.0, 0
    for i in np.argsort(t_indices, kind="stable"):
        t = int(t_indices[i])
        if t > at:
            # weights in the counts' own type: a float64 vector would copy float32 counts
            w = (decay ** np.arange(t - at - 1, -1, -1, dtype=np.float64)).astype(counts.dtype)  # (t - at,)
            carried = carried * decay ** (t - at) + np.tensordot(w, counts[at:t], axes=1)
            carried_w = carried_w * decay ** (t - at) + float(w.sum())
            at = t
        sums[i], weights[i] = carried, carried_w
    return sums, weights


def _few_decayed_sums(counts: np.ndarray, t: int, decays: Sequence[float]) -> list[tuple[np.ndarray, float]]:
    """decayed_sums for one target t and several decays: [(sums (rows, cols), weight)], one
    float32 matrix product reading the history once."""
    ages = np.arange(t - 1, -1, -1, dtype=np.float64)                             # (t,)
    w = np.stack([d ** ages for d in decays]).astype(np.float32)                  # (D, t)
    flat = np.asarray(counts[:t], dtype=np.float32).reshape(t, -1)                # (t, cells)
    sums = (w @ flat).astype(np.float64).reshape(len(decays), *np.asarray(counts).shape[1:])
    return [(sums[k], float(w[k].astype(np.float64).sum())) for k in range(len(decays))]


def season_rates(counts: np.ndarray, t_indices: Sequence[int], window_hours: int,
                 half_days: int) -> np.ndarray:
    """(N, rows, cols) mean events per window of the windows within +- half_days of t - k
    years, k = 1, 2, ... (only windows before t); the all-history mean where there is no
    earlier year yet, 0 without history. float64."""
    counts = np.asarray(counts)
    if len(t_indices) > 8:
        cum = running_sums(counts, np.float64)                                   # (T+1, rows, cols)
        span = lambda lo, hi: cum[hi] - cum[lo]
    else:
        # a few targets (a prediction): sum the few windows asked for, not the whole history
        span = lambda lo, hi: counts[lo:hi].sum(axis=0, dtype=np.float64)
    year = 365.25 * 24.0 / window_hours
    half = int(round(half_days * 24.0 / window_hours))
    out = np.zeros((len(t_indices), *counts.shape[1:]), np.float64)
    for i, t in enumerate(np.asarray(t_indices, dtype=np.int64)):
        total, n = 0.0, 0
        k = 1
        while int(round(t - k * year)) + half >= 0:
            centre = int(round(t - k * year))
            lo, hi = max(0, centre - half), min(int(t), centre + half + 1)
            if hi > lo:
                total = total + span(lo, hi)
                n += hi - lo
            k += 1
        out[i] = total / n if n else (span(0, t) / t if t > 0 else 0.0)
    return out


def weekday_rates(counts: np.ndarray, t_indices: Sequence[int], window_hours: int,
                  half_life_days: float) -> np.ndarray:
    """(N, rows, cols) exponentially weighted mean events per window of the windows one week,
    two weeks, ... before t (the same weekday for daily windows), half-life in days; float64.
    Windows must be shorter than a week and divide it (24 h: every 7th window)."""
    period = int(round(168 / window_hours))
    t_indices = np.asarray(t_indices, dtype=np.int64)
    out = np.zeros((len(t_indices), *np.asarray(counts).shape[1:]), np.float64)
    decay = 0.5 ** (7.0 / max(half_life_days, 7.0))          # per week
    for r in range(period):
        pick = np.flatnonzero(t_indices % period == r)
        if len(pick) == 0:
            continue
        sub = np.asarray(counts)[r::period]                   # windows r, r + period, ...
        sums, weights = decayed_sums(sub, (t_indices[pick] - r) // period, decay)
        out[pick] = sums / np.maximum(weights, 1e-12)[:, None, None]
    return out


def features(counts: np.ndarray, t_indices: Sequence[int], mask: np.ndarray, cfg: StackConfig,
             cell_size_m: float) -> np.ndarray:
    """(N, F, rows, cols) float32 features of windows t_indices (see the module doc), each
    from counts[:t] only; F = len(cfg.feature_names())."""
    counts = np.asarray(counts, dtype=np.float32)
    t_indices = np.asarray(t_indices, dtype=np.int64)
    maskf = np.asarray(mask, dtype=np.float32)
    n_mask = max(1.0, float(maskf.sum()))
    decays = [0.5 ** (1.0 / cfg.windows(h)) for h in cfg.half_lives_days]
    if len(t_indices) <= 8:
        # a few targets (a prediction): every decay in one matrix product over the history
        sums = [_few_decayed_sums(counts, int(t), decays + [1.0]) for t in t_indices]
        decayed = [(np.stack([s[k][0] for s in sums]), np.array([s[k][1] for s in sums]))
                   for k in range(len(decays) + 1)]
    else:
        decayed = [decayed_sums(counts, t_indices, d) for d in decays + [1.0]]
    total = decayed[-1][0]                                                          # (N, rows, cols)
    base = np.maximum((total * maskf).sum(axis=(1, 2)) / (np.maximum(t_indices, 1) * n_mask),
                      MIN_BASE_RATE)                                                  # (N,)
    rates = []
    for s, w in decayed[:-1]:
        rates.append(s / np.maximum(w, 1e-12)[:, None, None])
    if cfg.all_history:
        rates.append(total / np.maximum(t_indices, 1)[:, None, None])
    if cfg.season:
        rates.append(season_rates(counts, t_indices, cfg.window_hours, cfg.season_half_days))
    if cfg.weekday_half_life_days > 0:
        rates.append(weekday_rates(counts, t_indices, cfg.window_hours, cfg.weekday_half_life_days))
    out = np.empty((len(t_indices), len(rates) * len(cfg.bandwidths_m), *counts.shape[1:]), np.float32)
    c = 0
    for rate in rates:
        rate = rate.astype(np.float32)
        for b in cfg.bandwidths_m:
            plane = smooth(rate, b / cell_size_m) if b > 0 else rate
            out[:, c] = np.log(np.maximum(plane, 0.0) / base[:, None, None] + LOG_FLOOR) * maskf
            c += 1
    return out


@dataclass(frozen=True)
class StackModel:
    """A fitted stack: its plane layout and the Poisson GLM over standardised features
    (score = sum_f weight_f (x_f - mean_f) / sd_f + bias)."""

    config: StackConfig
    weights: tuple[float, ...]
    means: tuple[float, ...]
    sds: tuple[float, ...]
    bias: float = 0.0
    horizon_windows: int = 1
    n_fit_rows: int = 0

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "weights": [float(v) for v in self.weights],
                "means": [float(v) for v in self.means], "sds": [float(v) for v in self.sds],
                "bias": float(self.bias), "horizon_windows": int(self.horizon_windows),
                "n_fit_rows": int(self.n_fit_rows)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "StackModel":
        return cls(config=StackConfig.from_dict(d["config"]), weights=tuple(float(v) for v in d["weights"]),
                   means=tuple(float(v) for v in d["means"]), sds=tuple(float(v) for v in d["sds"]),
                   bias=float(d.get("bias", 0.0)), horizon_windows=int(d.get("horizon_windows", 1)),
                   n_fit_rows=int(d.get("n_fit_rows", 0)))

    def score(self, counts: np.ndarray, t_indices: Sequence[int], mask: np.ndarray,
              cell_size_m: float) -> np.ndarray:
        """(N, rows, cols) float32 log expected events of each forecast (0 outside the mask).
        Windows are scored SCORE_BATCH at a time, so the planes of a small-cell city's
        validation period never sit in memory at once."""
        t_indices = np.asarray(t_indices, dtype=np.int64)
        w = np.asarray(self.weights, np.float32) / np.asarray(self.sds, np.float32)
        shift = float(np.dot(w, np.asarray(self.means, np.float32)))
        maskf = np.asarray(mask, np.float32)
        out = np.zeros((len(t_indices), *maskf.shape), np.float32)
        for lo in range(0, len(t_indices), SCORE_BATCH):
            x = features(counts, t_indices[lo:lo + SCORE_BATCH], mask, self.config, cell_size_m)   # (B, F, rows, cols)
            out[lo:lo + len(x)] = (np.einsum("nfhw,f->nhw", x, w) + (self.bias - shift)) * maskf
        return out


def fit_windows(t_train: Sequence[int], cfg: StackConfig, n_city_cells: int, max_rows: int = FIT_ROWS,
                history_days: float = FIT_HISTORY_DAYS) -> np.ndarray:
    """The training windows the fit reads: the latest history_days of t_train, thinned evenly
    to at most max_rows city cell-windows (the map drifts; recent windows say most about it)."""
    t_train = np.asarray(t_train, dtype=np.int64)
    if len(t_train) == 0:
        return t_train
    recent = t_train[t_train >= t_train.max() - cfg.windows(history_days)]
    n = int(min(len(recent), max(1, max_rows // max(1, n_city_cells))))
    return recent[np.unique(np.round(np.linspace(0, len(recent) - 1, n)).astype(np.int64))]


def fit(counts: np.ndarray, t_train: Sequence[int], mask: np.ndarray, cell_size_m: float,
        cfg: StackConfig, horizon_windows: int = 1, l2: float = FIT_L2,
        max_rows: int = FIT_ROWS, history_days: float = FIT_HISTORY_DAYS,
        top_weight: float = 1.0, top_share: float = 0.2) -> StackModel | None:
    """Fit the stack on training forecasts t_train (each about windows t .. t + horizon - 1,
    which must lie before the validation period). None when those windows hold no event."""
    from sklearn.linear_model import PoissonRegressor

    counts = np.asarray(counts, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    h = max(1, int(horizon_windows))
    ts = fit_windows(t_train, cfg, int(mask.sum()), max_rows, history_days)
    if len(ts) == 0:
        return None
    x = features(counts, ts, mask, cfg, cell_size_m)[:, :, mask]                  # (N, F, cells)
    cum = running_sums(counts, np.float64)                                        # (T+1, rows, cols)
    y = (cum[ts + h] - cum[ts])[:, mask]                                           # (N, cells)
    if y.sum() <= 0:
        return None
    # exposure: the city's mean events per cell over the horizon, from history before t
    base = np.maximum(cum[ts][:, mask].sum(axis=1) / (np.maximum(ts, 1) * mask.sum()), MIN_BASE_RATE) * h
    rows_x = x.transpose(0, 2, 1).reshape(-1, x.shape[1]).astype(np.float64)      # (rows, F)
    exposure = np.repeat(base, mask.sum())
    means, sds = rows_x.mean(axis=0), rows_x.std(axis=0)
    sds = np.where(sds > 1e-9, sds, 1.0)
    z = (rows_x - means) / sds
    weight = exposure
    if top_weight != 1.0:
        # the top of the ranking decides: rows among each window's top_share of cells by the
        # long-run average (the last source's first plane before the weekday) weigh more
        ref = x[:, cfg.sources.index("all") * len(cfg.bandwidths_m) if cfg.all_history else 0]   # (N, cells)
        cut = np.quantile(ref, 1.0 - top_share, axis=1, keepdims=True)
        weight = exposure * np.where((ref >= cut).reshape(-1), top_weight, 1.0)
    # Poisson with an offset log(exposure): fit y / exposure with weights = exposure
    reg = PoissonRegressor(alpha=l2, max_iter=1000).fit(z, y.reshape(-1) / exposure, sample_weight=weight)
    weights = reg.coef_
    if not np.all(np.isfinite(weights)):
        return None
    # the bias makes exp(score) the expected count at the fit's mean exposure
    bias = float(reg.intercept_) + math.log(float(base.mean()))
    return StackModel(config=cfg, weights=tuple(weights), means=tuple(means), sds=tuple(sds), bias=bias,
                      horizon_windows=h, n_fit_rows=len(rows_x))


def default_config(window_hours: int) -> StackConfig:
    """The stack's layout for a city's windows: the defaults (weekly data gets no week-long
    half-life: one window already is a week)."""
    if window_hours >= 168:
        return StackConfig(window_hours=window_hours, half_lives_days=(28.0, 91.0, 365.0, 1095.0))
    return StackConfig(window_hours=window_hours)
