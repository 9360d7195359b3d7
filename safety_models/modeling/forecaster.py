"""The forecaster a model version ships: the network alone, or a blend of the network, its
linear starting forecast (the base-rate path) and the baselines, chosen on validation windows.

Why: on a city whose risk map is mostly its long-run hot spots, the network learns little
beyond the historical average and can end up slightly behind it (an unseen city's vehicle
thefts: PAI@5 3.69 against 3.83), while elsewhere it is clearly ahead (seasonal West Nile
data). Letting the validation windows choose between (and mix) the network and the yardsticks
makes the shipped forecaster as good as the best of them where nothing more is to be had, and
better where their errors differ.

Candidates and their common scale (each (windows, rows, cols), for window t from counts[:t]):
    network       logit of the network's P(>= 1 event)
    base_rate     logit of the base-rate GLM alone (training's starting forecast; left out
                  when early stopping kept that starting point, then it IS the network)
    stack         the stacked forecaster's log expected events (stack.py: a Poisson GLM over
                  multi-bandwidth x multi-decay planes, fitted on the training windows; its
                  parameters {"model": StackModel.to_dict()} travel in the candidate's params)
    <baseline>    log(score + floor) of a baseline of evaluation.baselines with its default
                  parameters (saved), floor = 0.1 x its mean over validation city cell-windows
each standardised by its mean and sd over the validation city cell-windows, v = (g - mean) / sd.
A blend's score is z = sum_c w_c v_c (weights >= 0, summing to 1); its P(>= 1 event) is
sigmoid(a + b z) and its expected count exp(c + d z), both fitted on the validation windows
(a logistic and a Poisson fit of two numbers each). The network alone keeps its own
probability and expected count (nothing is refitted).

Choosing (choose_blend; validation windows only, never test):
1. every candidate alone: the one that catches the most validation events in 5 % of the area
   (metrics.hit_rate at SELECTION_COVERAGE; ROC-AUC breaks ties) is the best single;
2. forward selection by line search (in the spirit of Caruana et al. 2004, "ensemble
   selection"): from the best single, mix the blend so far with one candidate at share
   0.1 .. 0.9, keep the mix that raises the validation hit rate the most, at most
   MAX_ADDITIONS times; stop when none raises it;
3. the blend ships only if blending pays on windows it was not chosen on (held_out_gain):
   steps 1-2 are repeated on each half of the validation windows (alternate four-week blocks)
   and scored on the other half, and the held-out gain over the single must exceed one standard error
   (the one-standard-error rule: a tie goes to the simpler forecaster). Otherwise the best
   single ships: the network, its GLM, or a baseline where the network does not beat it.
   (Picking the best of a hundred mixes on the same windows would flatter it: on the shared
   West Nile data a 4 % share of the seasonal baseline "gained" +0.9 validation PAI and
   nothing on test.)
4. no worse than a baseline on ROC-AUC (auc_guard): when what steps 1-3 chose ranks the
   validation windows' cells worse (pooled ROC-AUC) than a baseline does, it is mixed with
   that baseline at the best share that restores the AUC without losing hit rate below
   every baseline's.

The checkpoint keeps the blend as plain types under "blend" (Blend.to_dict); checkpoints
without it are the network alone.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from safety_models.evaluation import baselines as baselines_mod
from safety_models.evaluation.metrics import SELECTION_COVERAGE, hit_rate, n_flagged, roc_auc
from safety_models.features import FeatureConfig, SampleBuilder, window_start_times
from safety_models.grid import GridSpec
from safety_models.modeling import stack as stack_mod
from safety_models.modeling.devices import autocast, device_of

NETWORK = "network"
BASE_RATE = "base_rate"
STACK = stack_mod.STACK
# candidates whose raw score is already on a log / logit scale (no floor, no log taken)
MODEL_CANDIDATES = (NETWORK, BASE_RATE, STACK)
MAX_ADDITIONS = 3                # forward selection adds at most this many mixing steps
MIX_SHARES = tuple(np.round(np.arange(1, 10) / 10, 1))   # share given to the newcomer: 0.1 .. 0.9
HOLD_OUT_BLOCK_DAYS = 28         # held_out_gain deals validation windows in blocks of 4 weeks
BASELINE_FLOOR_SHARE = 0.1       # log(score + 0.1 x mean score): an empty cell is not -inf
_LOGIT_CLIP = 1e-7
_MAX_CALIBRATION_ROWS = 200_000
PREDICT_BATCH_WINDOWS = 32


# ---------------------------------------------------------------------------------------------
# The saved blend


@dataclass(frozen=True)
class Candidate:
    """One forecaster in a blend and how its score is put on the common scale.

    name: NETWORK, BASE_RATE or a name of baselines.BASELINES; params: the baseline's
    keyword parameters (empty otherwise); floor: added before the log (baselines only);
    mean, sd: of the log-scale score over the validation city cell-windows."""

    name: str
    params: dict = field(default_factory=dict)
    floor: float = 0.0
    mean: float = 0.0
    sd: float = 1.0

    def to_dict(self) -> dict:
        return {"name": self.name, "params": dict(self.params), "floor": float(self.floor),
                "mean": float(self.mean), "sd": float(self.sd)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Candidate":
        return cls(name=str(d["name"]), params=dict(d.get("params") or {}), floor=float(d.get("floor", 0.0)),
                   mean=float(d.get("mean", 0.0)), sd=float(d.get("sd", 1.0)))

    def standardise(self, raw: np.ndarray) -> np.ndarray:
        """Raw scores (probability logits, or baseline scores) -> the common scale."""
        g = raw if self.name in MODEL_CANDIDATES else np.log(np.maximum(raw, 0.0) + self.floor)
        return ((g - self.mean) / self.sd).astype(np.float32)


@dataclass(frozen=True)
class Blend:
    """weights: {candidate name: weight > 0}, summing to 1; candidates: those names' scales;
    prob_map (a, b): P = sigmoid(a + b z); count_map (c, d): expected = exp(c + d z);
    base_rate_path: the standalone GLM ({"weight": (2, C) lists, "bias": [2]}) when used;
    selection: the validation table the choice was made on (for people); reason: one line."""

    weights: dict[str, float]
    candidates: tuple[Candidate, ...] = ()
    prob_map: tuple[float, float] = (0.0, 1.0)
    count_map: tuple[float, float] = (0.0, 1.0)
    base_rate_path: dict | None = None
    selection: tuple[dict, ...] = ()
    reason: str = ""

    @property
    def network_only(self) -> bool:
        return set(self.weights) == {NETWORK}

    def describe(self) -> str:
        """'network 0.6 + kde 0.4' for people."""
        return " + ".join(f"{name} {w:g}" for name, w in sorted(self.weights.items(), key=lambda kv: -kv[1]))

    def to_dict(self) -> dict:
        return {"weights": {k: float(v) for k, v in self.weights.items()},
                "candidates": [c.to_dict() for c in self.candidates],
                "prob_map": [float(v) for v in self.prob_map],
                "count_map": [float(v) for v in self.count_map],
                "base_rate_path": None if self.base_rate_path is None else {
                    "weight": [[float(v) for v in row] for row in self.base_rate_path["weight"]],
                    "bias": [float(v) for v in self.base_rate_path["bias"]]},
                "selection": [dict(row) for row in self.selection],
                "reason": self.reason, "description": self.describe()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Blend":
        path = d.get("base_rate_path")
        return cls(weights={str(k): float(v) for k, v in d["weights"].items()},
                   candidates=tuple(Candidate.from_dict(c) for c in d.get("candidates") or ()),
                   prob_map=tuple(float(v) for v in d.get("prob_map", (0.0, 1.0))),
                   count_map=tuple(float(v) for v in d.get("count_map", (0.0, 1.0))),
                   base_rate_path=None if path is None else {"weight": _as_list(path["weight"]),
                                                             "bias": _as_list(path["bias"])},
                   selection=tuple(dict(r) for r in d.get("selection") or ()),
                   reason=str(d.get("reason", "")))


def _as_list(value: Any) -> list:
    return value.tolist() if hasattr(value, "tolist") else list(value)


NETWORK_ONLY = Blend(weights={NETWORK: 1.0}, reason="the network alone")


def blend_of(checkpoint: Mapping[str, Any]) -> Blend:
    """The checkpoint's blend; the network alone for checkpoints saved before blends."""
    saved = checkpoint.get("blend")
    return NETWORK_ONLY if not saved else Blend.from_dict(saved)


def horizon_windows_of(checkpoint: Mapping[str, Any]) -> int:
    """Windows a checkpoint's forecast covers (training.TrainResult.checkpoint's "horizon"):
    a forecast from window t is about windows t .. t + n - 1; 1 for checkpoints without one."""
    return max(1, int((checkpoint.get("horizon") or {}).get("windows") or 1))


def baseline_parameters(name: str) -> dict:
    """The keyword parameters (with their defaults) of a baseline of baselines.BASELINES."""
    sig = inspect.signature(baselines_mod.BASELINES[name])
    return {p.name: p.default for p in list(sig.parameters.values())[4:]
            if p.default is not inspect.Parameter.empty}


def glm_state(base_path: torch.nn.Conv2d) -> dict:
    """A base-rate path (1x1 conv, 2 outputs) as plain lists: {"weight": (2, C), "bias": (2,)}."""
    return {"weight": base_path.weight.detach().reshape(2, -1).tolist(),
            "bias": base_path.bias.detach().tolist()}


# ---------------------------------------------------------------------------------------------
# Raw scores of the candidates


@torch.inference_mode()
def network_outputs(model: Any, builder: SampleBuilder, t_indices: Sequence[int], glm: dict | None = None,
                    batch_size: int = PREDICT_BATCH_WINDOWS) -> dict[str, np.ndarray]:
    """The network's logit and log rate (and the standalone GLM's, when given) for windows
    t_indices of builder's city: {"network": (N, H, W) logits, "network_log_rate",
    "base_rate", "base_rate_log_rate"}; float32, zero outside the mask."""
    model.eval()
    t_indices = np.asarray(t_indices, dtype=np.int64)
    shape = (len(t_indices), builder.H, builder.W)
    out = {NETWORK: np.zeros(shape, np.float32), "network_log_rate": np.zeros(shape, np.float32)}
    if glm is not None:
        w = torch.tensor(glm["weight"], dtype=torch.float32)             # (2, C)
        b = torch.tensor(glm["bias"], dtype=torch.float32)               # (2,)
        out[BASE_RATE] = np.zeros(shape, np.float32)
        out["base_rate_log_rate"] = np.zeros(shape, np.float32)
    device = device_of(model)                 # the network runs where it is; the GLM on the CPU
    for lo in range(0, len(t_indices), batch_size):
        x = torch.from_numpy(builder.inputs(t_indices[lo:lo + batch_size]))   # (B, C, H, W)
        with autocast(device, training=False):
            logit, log_rate = model(x.to(device))                              # (B, H, W) each
        out[NETWORK][lo:lo + len(x)] = logit.float().cpu().numpy()
        out["network_log_rate"][lo:lo + len(x)] = log_rate.float().clamp(max=20).cpu().numpy()
        if glm is not None:
            z = torch.einsum("bchw,kc->bkhw", x, w) + b[None, :, None, None]   # (B, 2, H, W)
            out[BASE_RATE][lo:lo + len(x)] = z[:, 0].numpy()
            out["base_rate_log_rate"][lo:lo + len(x)] = z[:, 1].clamp(max=20).numpy()
    m = builder.maskf
    return {k: v * m for k, v in out.items()}


def baseline_raw_scores(name: str, params: Mapping[str, Any], counts: np.ndarray, starts: Any,
                        window_hours: int, grid: GridSpec, t_indices: Sequence[int]) -> np.ndarray:
    """(N, H, W) float32 scores of one baseline; window t from counts[:t] only (t may be
    len(counts): the window after the data). No history -> 0."""
    t_indices = np.asarray(t_indices, dtype=np.int64)
    if len(t_indices) == 0:
        return np.zeros((0, *counts.shape[1:]), np.float32)
    all_starts = pd.DatetimeIndex(window_start_times(starts, int(t_indices.max()) + 1, window_hours))
    scores = baselines_mod.forecast_windows(name, counts, all_starts, t_indices, grid, **dict(params))
    return np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def stack_scores(params: Mapping[str, Any], counts: np.ndarray, mask: np.ndarray, grid: GridSpec,
                 t_indices: Sequence[int]) -> np.ndarray:
    """(N, H, W) float32 log expected events of the stacked forecaster saved in params
    ({"model": StackModel.to_dict()}); window t from counts[:t] only."""
    model = stack_mod.StackModel.from_dict(params["model"])
    return model.score(counts, t_indices, mask, grid.cell_size_m)


def raw_scores(names: Sequence[str], model: Any, builder: SampleBuilder, counts: np.ndarray, starts: Any,
               grid: GridSpec, t_indices: Sequence[int], glm: dict | None = None,
               params: Mapping[str, dict] | None = None) -> dict[str, np.ndarray]:
    """{name: (N, H, W) raw score} for the candidates `names` (plus "network_log_rate" and
    "base_rate_log_rate" when the network / GLM is among them)."""
    params = params or {}
    out: dict[str, np.ndarray] = {}
    if NETWORK in names or BASE_RATE in names:
        out.update(network_outputs(model, builder, t_indices, glm if BASE_RATE in names else None))
    for name in names:
        if name == STACK:
            out[name] = stack_scores(params[STACK], counts, builder.mask, grid, t_indices)
        elif name not in (NETWORK, BASE_RATE):
            out[name] = baseline_raw_scores(name, params.get(name, baseline_parameters(name)), counts, starts,
                                            builder.cfg.window_hours, grid, t_indices)
    return out


# ---------------------------------------------------------------------------------------------
# Applying a blend


@dataclass(frozen=True)
class Forecast:
    """prob (N, H, W) of >= 1 event and expected (N, H, W) events; zero outside the city."""

    prob: np.ndarray
    expected: np.ndarray


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))


def blend_score(blend: Blend, raw: Mapping[str, np.ndarray]) -> np.ndarray:
    """z = sum_c w_c v_c, (N, H, W) float32, from raw_scores output."""
    z = None
    for cand in blend.candidates:
        v = blend.weights[cand.name] * cand.standardise(raw[cand.name])
        z = v if z is None else z + v
    return z


def apply_blend(blend: Blend, raw: Mapping[str, np.ndarray], mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prob, expected), each (N, H, W) float32 and zero outside mask."""
    maskf = np.asarray(mask, dtype=np.float32)
    if blend.network_only:
        prob = _sigmoid(raw[NETWORK].astype(np.float64))
        expected = np.exp(raw["network_log_rate"].astype(np.float64))
    else:
        z = blend_score(blend, raw).astype(np.float64)
        a, b = blend.prob_map
        c, d = blend.count_map
        prob = _sigmoid(a + b * z)
        expected = np.exp(np.clip(c + d * z, -50.0, 20.0))
    return (prob * maskf).astype(np.float32), (expected * maskf).astype(np.float32)


def forecast_windows(model: Any, checkpoint: Mapping[str, Any], counts: np.ndarray, starts: Any,
                     grid: GridSpec, mask: np.ndarray, t_indices: Sequence[int],
                     builder: SampleBuilder | None = None) -> Forecast:
    """The shipped forecast (the checkpoint's blend, or its network alone) for windows
    t_indices (0 < t <= len(counts)), each from counts[:t] only. builder: a SampleBuilder of
    this city for the checkpoint's feature config (built when None: one pass over counts)."""
    fcfg = checkpoint["feature_config"]
    fcfg = fcfg if isinstance(fcfg, FeatureConfig) else FeatureConfig.from_dict(fcfg)
    mask = np.asarray(mask, dtype=bool)
    counts = np.asarray(counts, dtype=np.float32)
    t_indices = np.asarray(t_indices, dtype=np.int64)
    blend = blend_of(checkpoint)
    if builder is None:
        builder = (SampleBuilder.for_window(counts, starts, int(t_indices[0]), fcfg, mask)
                   if len(t_indices) == 1 else SampleBuilder(counts, starts, fcfg, mask))
    params = {c.name: c.params for c in blend.candidates}
    raw = raw_scores(list(blend.weights), model, builder, counts, starts, grid, t_indices, blend.base_rate_path,
                     params)
    return Forecast(*apply_blend(blend, raw, mask))


# ---------------------------------------------------------------------------------------------
# Choosing a blend on validation windows


def make_candidate(name: str, raw_val: np.ndarray, mask: np.ndarray, params: Mapping[str, Any] | None = None) -> Candidate:
    """A candidate's scale from its validation scores raw_val (N, H, W) on city cells."""
    city = raw_val[:, mask].astype(np.float64)
    floor = 0.0
    if name not in MODEL_CANDIDATES:
        mean_score = float(np.mean(np.maximum(city, 0.0))) if city.size else 0.0
        floor = BASELINE_FLOOR_SHARE * mean_score if mean_score > 0 else 1e-6
        g = np.log(np.maximum(city, 0.0) + floor)
    else:
        g = city
    mean = float(g.mean()) if g.size else 0.0
    sd = float(g.std()) if g.size else 0.0
    return Candidate(name=name, params=dict(params or {}), floor=floor, mean=mean,
                     sd=sd if sd > 1e-12 else 1.0)


@dataclass
class _Scored:
    weights: dict[str, float]
    hit_rates: np.ndarray        # (N,) per validation window, NaN without events
    hit_rate: float              # mean over windows with events
    auc: float | None = None     # pooled ROC-AUC, computed when needed (ties, the table)

    @property
    def n_candidates(self) -> int:
        return len(self.weights)


def _finite_or(value: float | None, default: float) -> float:
    return value if value is not None and math.isfinite(value) else default


class _Search:
    """The candidates alone and the forward line search, on some of the validation windows."""

    def __init__(self, values: Mapping[str, np.ndarray], observed: np.ndarray, windows: np.ndarray):
        self.values = {n: v[windows] for n, v in values.items()}      # (n, cells) each
        self.observed = observed[windows]
        self.names = list(values)

    def blend_values(self, weights: Mapping[str, float]) -> np.ndarray:
        return sum(w * self.values[n] for n, w in weights.items())

    def score(self, weights: Mapping[str, float]) -> _Scored:
        rates = np.asarray(hit_rate(self.blend_values(weights), self.observed, SELECTION_COVERAGE),
                           np.float64).reshape(-1)
        mean = float(np.nanmean(rates)) if np.isfinite(rates).any() else math.nan
        return _Scored(dict(weights), rates, mean)

    def auc(self, s: _Scored) -> float:
        if s.auc is None:
            s.auc = roc_auc(self.blend_values(s.weights), self.observed > 0)
        return s.auc

    def best_of(self, scored: Sequence[_Scored]) -> _Scored:
        """Highest hit rate; ROC-AUC decides between equal hit rates (then the first)."""
        top = max(_finite_or(s.hit_rate, -math.inf) for s in scored)
        tied = [s for s in scored if _finite_or(s.hit_rate, -math.inf) >= top - 1e-12]
        return tied[0] if len(tied) == 1 else max(tied, key=lambda s: _finite_or(self.auc(s), -math.inf))

    def run(self, max_additions: int) -> tuple[list[_Scored], list[_Scored]]:
        """(every candidate alone, the path of the line search: best single first)."""
        singles = [self.score({n: 1.0}) for n in self.names]
        if not any(math.isfinite(s.hit_rate) for s in singles):
            return singles, []
        current = self.best_of(singles)
        path = [current]
        for _ in range(max_additions):
            trials = []
            for n in self.names:
                for alpha in MIX_SHARES:
                    weights = {k: (1 - alpha) * v for k, v in current.weights.items()}
                    weights[n] = weights.get(n, 0.0) + alpha
                    trials.append(self.score({k: round(v, 6) for k, v in weights.items()}))
            trial = self.best_of(trials)
            if not _finite_or(trial.hit_rate, -math.inf) > current.hit_rate + 1e-12:
                break
            current = trial
            path.append(current)
        return singles, path


def choose_weights(values: Mapping[str, np.ndarray], observed: np.ndarray, block_windows: int = 1,
                   max_additions: int = MAX_ADDITIONS) -> tuple[dict[str, float], list[dict], str]:
    """Weights chosen on validation (see the module doc): (weights, table, reason).

    values: {name: (N, cells) standardised scores of the city cells}; observed: (N, cells)
    events; block_windows: consecutive windows kept together by held_out_gain. The table
    lists every forecaster considered (each candidate alone, then each
    step of the line search on all validation windows) with its validation hit rate and PAI
    at 5 % of the area and ROC-AUC. Without any validation event: the network alone (or the
    first candidate), because nothing can be compared.
    """
    names = list(values)
    observed = np.asarray(observed, dtype=np.float64)
    n_windows, n_cells = observed.shape
    area_share = n_flagged(SELECTION_COVERAGE, n_cells) / n_cells if n_cells else math.nan
    full = _Search(values, observed, np.arange(n_windows))
    singles, path = full.run(max_additions)
    if not path:
        fallback = NETWORK if NETWORK in names else names[0]
        for s in singles:
            full.auc(s)
        return {fallback: 1.0}, _table(singles, area_share, None), "no validation window had an event: nothing to choose on"
    best_single, best_blend = path[0], path[-1]
    chosen, reason = best_single, (f"{_describe(best_single.weights)} alone: the best validation hit rate at 5 % "
                                   f"({best_single.hit_rate:.3f}) of the candidates alone")
    if len(path) > 1:
        gain, se = held_out_gain(values, observed, block_windows, max_additions)
        if not math.isfinite(gain):
            reason += (f"; a blend ({_describe(best_blend.weights)}) scored {best_blend.hit_rate:.3f}, but it could "
                       f"not be checked on held-out windows (too few validation windows with events)")
        elif gain > se:
            chosen = best_blend
            reason = (f"blend {_describe(best_blend.weights)}: validation hit rate at 5 % {best_blend.hit_rate:.3f} "
                      f"against {best_single.hit_rate:.3f} for {_describe(best_single.weights)} alone; the same "
                      f"search on one half of the validation windows gained {gain:+.3f} (SE {se:.3f}) on the other")
        else:
            reason += (f"; a blend ({_describe(best_blend.weights)}) scored {best_blend.hit_rate:.3f}, but the same "
                       f"search on one half of the validation windows gained {gain:+.3f} (SE {se:.3f}) on the other: "
                       f"not more than one standard error")
    guarded, note = auc_guard(full, chosen, singles)
    if guarded is not chosen:
        chosen = guarded
        path = path + [guarded]
    reason += note
    pool: list[_Scored] = []
    for s in singles + path:
        if all(s.weights != p.weights for p in pool):
            full.auc(s)
            pool.append(s)
    return chosen.weights, _table(pool, area_share, chosen), reason


def auc_guard(search: "_Search", chosen: _Scored, singles: Sequence[_Scored]) -> tuple[_Scored, str]:
    """The choice, made no worse than any baseline on validation ROC-AUC where that costs no
    hit rate below the best baseline's: (forecaster, a note for the reason; "" when unchanged).

    Why: the product promises a forecaster at least as good as the best baseline on both
    measures, and the hit rate at 5 % that chooses says nothing about the rest of the
    ranking (a crash map whose stack caught more events at 5 % ranked the whole city 0.002
    worse than kernel density). When the choice's pooled AUC is below the best baseline's
    (baselines: the candidates that are not models), the choice is mixed with that baseline
    at share 0.1 .. 0.9; of the mixes whose AUC reaches it and whose hit rate is at least every
    baseline's alone, the best hit rate ships (then the higher AUC). None: unchanged.
    """
    base = [s for s in singles if next(iter(s.weights)) not in MODEL_CANDIDATES and math.isfinite(s.hit_rate)]
    if not base:
        return chosen, ""
    top = max(base, key=lambda s: _finite_or(search.auc(s), -math.inf))
    target = _finite_or(search.auc(top), -math.inf)
    if _finite_or(search.auc(chosen), -math.inf) >= target or chosen.weights == top.weights:
        return chosen, ""
    name = next(iter(top.weights))
    floor = max(s.hit_rate for s in base)
    trials = []
    for alpha in MIX_SHARES:
        weights = {k: (1 - alpha) * v for k, v in chosen.weights.items()}
        weights[name] = weights.get(name, 0.0) + alpha
        trial = search.score({k: round(v, 6) for k, v in weights.items()})
        if _finite_or(search.auc(trial), -math.inf) >= target and _finite_or(trial.hit_rate, -math.inf) >= floor - 1e-12:
            trials.append(trial)
    if not trials:
        return chosen, (f"; its validation ROC-AUC {search.auc(chosen):.5f} is below {name}'s {target:.5f} and no "
                        f"mix with {name} reached it without losing hit rate")
    best = max(trials, key=lambda s: (s.hit_rate, _finite_or(search.auc(s), -math.inf)))
    return best, (f"; its validation ROC-AUC {search.auc(chosen):.5f} was below {name}'s {target:.5f}, so "
                  f"{_describe(best.weights)} ships (ROC-AUC {search.auc(best):.4f}, hit rate at 5 % "
                  f"{best.hit_rate:.3f})")


def held_out_gain(values: Mapping[str, np.ndarray], observed: np.ndarray, block_windows: int,
                  max_additions: int = MAX_ADDITIONS) -> tuple[float, float]:
    """What blending gains on windows it was not chosen on: (mean, standard error).

    The validation windows are cut into blocks of block_windows consecutive windows (28 days,
    see HOLD_OUT_BLOCK_DAYS) dealt alternately into two halves, so that both halves see every
    part of the validation period (a season's events included); on each half the best single
    candidate and the line-search blend are chosen afresh and both are scored on the other
    half. The per-window differences (blend - single) of the two held-out halves
    together (each window held out once) give the mean and its standard error; (NaN, NaN)
    when a half has no event. Choosing the best of many mixes flatters it on the windows it
    was chosen on; this does not.
    """
    n = observed.shape[0]
    block = (np.arange(n) // max(1, int(block_windows))) % 2
    halves = (np.flatnonzero(block == 0), np.flatnonzero(block == 1))
    diffs = []
    for fit_on, held_out in (halves, halves[::-1]):
        if len(fit_on) == 0 or len(held_out) == 0:
            return math.nan, math.nan
        _, path = _Search(values, observed, fit_on).run(max_additions)
        if not path:
            return math.nan, math.nan
        other = _Search(values, observed, held_out)
        diffs.append(other.score(path[-1].weights).hit_rates - other.score(path[0].weights).hit_rates)
    d = np.concatenate(diffs)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return math.nan, math.nan
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


def _describe(weights: Mapping[str, float]) -> str:
    if len(weights) == 1:
        return next(iter(weights))
    return " + ".join(f"{n} {w:g}" for n, w in sorted(weights.items(), key=lambda kv: -kv[1]))


def _table(scored: Sequence[_Scored], area_share: float, chosen: _Scored | None) -> list[dict]:
    return [{"forecaster": _describe(s.weights), "weights": {k: float(v) for k, v in s.weights.items()},
             "val_hit_rate_5": s.hit_rate, "val_pai_5": s.hit_rate / area_share if area_share else math.nan,
             "val_roc_auc": s.auc, "chosen": chosen is not None and s.weights == chosen.weights}
            for s in scored]


def fit_probability_map(z: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """(a, b) of P = sigmoid(a + b z) by logistic regression on 1-D z and y (0/1); a flat
    map at the base rate (b tiny and positive) when one class only or b <= 0."""
    from sklearn.linear_model import LogisticRegression

    z, y = _subsample(np.asarray(z, np.float64).ravel(), np.asarray(y).ravel() > 0, seed)
    rate = float(np.clip(y.mean() if len(y) else 0.0, 1e-6, 1 - 1e-6))
    flat = (math.log(rate / (1 - rate)), 1e-6)
    if y.all() or not y.any() or np.ptp(z) == 0:
        return flat
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(z[:, None], y)
    slope = float(fit.coef_[0, 0])
    return (float(fit.intercept_[0]), slope) if slope > 0 else flat


def fit_count_map(z: np.ndarray, counts: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """(c, d) of expected = exp(c + d z) by Poisson regression on 1-D z and counts; the mean
    count everywhere (d = 0) when the fit fails or there are no events."""
    from sklearn.linear_model import PoissonRegressor

    z, counts = _subsample(np.asarray(z, np.float64).ravel(), np.asarray(counts, np.float64).ravel(), seed)
    mean = float(counts.mean()) if len(counts) else 0.0
    flat = (math.log(max(mean, 1e-9)), 0.0)
    if mean <= 0 or np.ptp(z) == 0:
        return flat
    fit = PoissonRegressor(alpha=0.0, max_iter=300).fit(z[:, None], counts)
    c, d = float(fit.intercept_), float(fit.coef_[0])
    return (c, d) if math.isfinite(c) and math.isfinite(d) else flat


def _subsample(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= _MAX_CALIBRATION_ROWS:
        return x, y
    keep = np.random.default_rng(seed).choice(len(x), _MAX_CALIBRATION_ROWS, replace=False)
    return x[keep], y[keep]


def choose_blend(raw_val: Mapping[str, np.ndarray], observed_val: np.ndarray, mask: np.ndarray,
                 window_hours: int, params: Mapping[str, dict] | None = None, glm: dict | None = None,
                 max_additions: int = MAX_ADDITIONS, seed: int = 0) -> Blend:
    """The blend for a model version, from its candidates' validation scores.

    raw_val: {name: (N, H, W) raw scores of the validation windows} (raw_scores output; keys
    ending in "_log_rate" are ignored); observed_val: (N, H, W) events of those windows;
    mask: (H, W) city cells; window_hours: their length (for held_out_gain's blocks); params: the baselines' parameters (defaults when absent); glm:
    the standalone base-rate path, kept in the blend when it is chosen.
    """
    mask = np.asarray(mask, dtype=bool)
    params = dict(params or {})
    names = [n for n in raw_val if not n.endswith("_log_rate")]
    candidates = {n: make_candidate(n, raw_val[n], mask, params.get(n, baseline_parameters(n)
                                                                      if n not in MODEL_CANDIDATES else {}))
                  for n in names}
    values = {n: candidates[n].standardise(raw_val[n][:, mask]) for n in names}   # (N, cells)
    observed = np.asarray(observed_val, dtype=np.float64)[:, mask]
    block = max(1, round(HOLD_OUT_BLOCK_DAYS * 24 / int(window_hours)))
    weights, table, reason = choose_weights(values, observed, block, max_additions)
    chosen = tuple(candidates[n] for n in names if n in weights)
    blend = Blend(weights=weights, candidates=chosen, selection=tuple(table), reason=reason,
                  base_rate_path=glm if BASE_RATE in weights else None)
    if blend.network_only:
        return blend
    z = sum(weights[c.name] * values[c.name] for c in chosen)                   # (N, cells)
    return Blend(weights=weights, candidates=chosen, selection=tuple(table), reason=reason,
                 base_rate_path=blend.base_rate_path,
                 prob_map=fit_probability_map(z, observed > 0, seed),
                 count_map=fit_count_map(z, observed, seed))


def candidate_names(category: str, include_base_rate: bool = True) -> list[str]:
    """The candidates of a category's blend: the network, its base-rate path, and the
    baselines reported for the category (baselines.baselines_for)."""
    names = [NETWORK] + ([BASE_RATE] if include_base_rate else [])
    return names + list(baselines_mod.baselines_for(category))


def with_glm(blend: Blend, glm: dict | None) -> Blend:
    """The blend with another standalone GLM (after its refit on train + validation)."""
    if BASE_RATE not in blend.weights or glm is None:
        return blend
    return Blend(weights=blend.weights, candidates=blend.candidates, prob_map=blend.prob_map,
                 count_map=blend.count_map, base_rate_path=glm, selection=blend.selection, reason=blend.reason)

