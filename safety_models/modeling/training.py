"""Fine-tuning RiskNet on one city's count tensor: TrainConfig, fit, predict, pretrain.

The recipe: start from a base (the synthetic+store 'pretrained' checkpoint, torchvision
ImageNet weights, another model version, or nothing), freeze the adapter + stem + layers up
to `freeze_up_to` (BatchNorm statistics included), and train the rest with a small learning
rate on a chronological split: train windows, then validation windows for early stopping,
then a final test period that is only evaluated. When the frozen part is deterministic, its
outputs are computed ONCE per sample and only the remaining layers run per step.

Steps of fit (base 'pretrained' | 'imagenet' | 'none'):
1. build the model from the base; attach a NEW head (the decoder's last 1x1 conv set to zero);
2. fit the residual base-rate path (a 1x1 conv over the feature planes = a logistic + Poisson
   GLM) by Newton's method on the city's training windows: the model starts as the best linear
   forecast from long-run, recent, seasonal and calendar planes;
3. freeze adapter + stem + layers up to freeze_up_to (BatchNorm in eval), cache their outputs,
   train the rest (AdamW or SGD momentum 0.9; the head/decoder at lr * head_lr_mult) with a
   masked BCE (any event) + Poisson NLL (counts) loss over city cells; on a grid larger than
   crop_cells square (small cells) each step trains on a random crop of it with the whole
   model, and nothing is cached (see crop_origins);
4. early stopping on validation (mean of ROC-AUC and hit rate at 5 % of the area, ranking by
   probability, from evaluation.metrics.ranking_scores: the definition the Evaluation page
   uses too); the best epoch's weights are kept, where the starting point (step 2's linear
   forecast under the zero head) counts as epoch 0;
5. choose what the version ships on the validation windows (forecaster.choose_blend): the
   network, its starting GLM alone, the stacked forecaster (stack.py, fitted here on the
   training windows), a baseline alone, or a blend of them, whichever catches
   the most validation events in 5 % of the area (a blend only when it beats every simpler
   choice by more than one standard error); TrainConfig.blend=False ships the network alone;
6. refit the base-rate GLM on train + validation windows under the trained network (the most
   recent history matters most for seasonal or drifting data), and the standalone GLM too
   when the blend uses it; validation metrics (of the shipped forecaster, with the network
   alone's under "network") are from before this refit, test metrics after.
Continuing a model version (base = <model id>) keeps its head and base-rate path (skips 1-2;
the blend then has no separate GLM candidate).

Pretraining (`pretrain`) trains every stage on simulated cities (synthetic.py) plus the
store's own count tensors minus their last 455 days, for at most ~150 s.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from safety_models.evaluation.metrics import SELECTION_COVERAGE, mean_and_se, pai, ranking_scores
from safety_models.features import FeatureConfig, SampleBuilder, channel_names, n_channels
from safety_models.grid import GridSpec
from safety_models.modeling import distributed, forecaster, stack
from safety_models.modeling.forecaster import BASE_RATE, NETWORK_ONLY, Blend
from safety_models.modeling.devices import autocast, device_of, resolve_device
from safety_models.modeling.models import (LINEAR, STAGES, ModelConfig, RiskNet, adapter_frozen, create_model, freeze_up_to, frozen_stage, load_imagenet_backbone, model_from_checkpoint, model_to_state)
from safety_models.schema import CHECKPOINT_FORMAT, DEFAULT_CELL_SIZE_M, DEFAULT_WINDOW_HOURS, check_category
from safety_models.errors import NotReady

ProgressFn = Callable[[dict], None] | None


class Cancelled(Exception):
    """Training stopped because should_stop() returned True."""


@dataclass(frozen=True)
class TrainConfig:
    category: str = "crime"
    base: str = "pretrained"          # 'pretrained' | 'imagenet' | 'none' | <model id>
    freeze_up_to: str = "layer2"      # 'none' or a stage of models.STAGES (see the study in docs)
    optimizer: str = "adamw"          # 'adamw' | 'sgd' (momentum 0.9)
    lr: float = 1e-3                  # backbone stages; the rest gets lr * head_lr_mult
    head_lr_mult: float = 3.0
    weight_decay: float = 1e-4
    epochs: int = 5
    batch_size: int = 16
    steps_per_epoch: int | None = 40  # random batches per epoch (None: one pass over train windows)
    patience: int = 2                 # epochs without validation improvement before stopping
    window_hours: int | None = None   # None: schema.DEFAULT_WINDOW_HOURS[category]
    cell_size_m: float | None = None  # None: keep the category's grid; a size asks for that grid
    history_days: int | None = None   # train windows from at most this many days before validation
    val_windows: int | None = None    # None: 90 days (daily) / 52 weeks (weekly), see split_windows
    test_windows: int | None = None   # None: the last 365 days
    backbone: str = "resnet18"        # for base 'none' / 'imagenet'
    imagenet_weights: str | None = None
    cache_frozen: bool = True         # compute frozen-stage outputs once per sample
    crop_cells: int | None = 128      # train on random crops this many cells square (a multiple of
                                      # 32) of a larger grid (small cells); None: whole grids
    refit_base_path: bool = True      # after early stopping, refit the base-rate GLM on train+val
    blend: bool = True                # ship the validation-chosen blend (forecaster.py), not the network alone
    stack: bool = True                # the stacked forecaster (stack.py) is one of the blend's candidates
    stack_fit_rows: int | None = None # city cell-windows the stack's fit samples; None: stack.FIT_ROWS
    horizon_days: int | None = None   # risk over the next N days (targets summed over them); None: one window
    seed: int = 0
    device: str = "auto"              # 'auto' (a CUDA GPU when there is one) | 'cpu' | 'cuda[:N]'

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**d)

    @property
    def hours(self) -> int:
        return int(self.window_hours or DEFAULT_WINDOW_HOURS[check_category(self.category)])

    def horizon_windows(self, fcfg: FeatureConfig) -> int:
        """Windows a target spans: horizon_days in windows (at least 1), 1 without a horizon."""
        return fcfg.windows(self.horizon_days) if self.horizon_days else 1


@dataclass
class TrainResult:
    model: RiskNet
    feature_config: FeatureConfig
    train_config: TrainConfig
    history: list[dict]
    metrics: dict                     # {"validation": {...}, "test": {...}}
    data_window: dict                 # start, end, train_end, val_end (ISO strings)
    train_seconds: float
    frozen: list[str] = field(default_factory=list)
    blend: Blend = NETWORK_ONLY       # what the version ships (forecaster.py)

    def checkpoint(self) -> dict:
        """Plain-types dict (torch.load(weights_only=True) works); the caller adds model_id,
        category, grid, mask, base_model_id and created_at. "horizon": the span of a forecast
        ({"days": None, "windows": 1} for the next window)."""
        state = model_to_state(self.model)
        return {"format": CHECKPOINT_FORMAT,
                "horizon": {"days": self.train_config.horizon_days,
                            "windows": self.train_config.horizon_windows(self.feature_config)},
                "category": self.train_config.category,
                "state_dict": state["state_dict"],
                "model_config": state["model_config"],
                "feature_config": self.feature_config.to_dict(),
                "train_config": self.train_config.to_dict(),
                "data_window": dict(self.data_window),
                "metrics": copy.deepcopy(self.metrics),
                "history": copy.deepcopy(self.history),
                "blend": self.blend.to_dict(),
                "train_seconds": float(self.train_seconds)}


# -- splits and model selection ------------------------------------------------------------------
MIN_TRAIN_WINDOWS = 4   # fewer cannot fill one batch pair nor say anything about a city


def split_windows(counts: np.ndarray, cfg: TrainConfig, fcfg: FeatureConfig) -> tuple[int, int, int, int]:
    """Chronological split -> (train_start, train_end, val_end, T) as window indices.

    train = [train_start, train_end), validation = [train_end, val_end), test = [val_end, T).
    Defaults: test = last 365 days; validation = 90 days before it for sub-week windows, 52
    windows for weekly ones; a validation period without any event is extended backwards by
    whole years (seasonal data such as mosquito surveillance) while a year of training remains.
    With a horizon of h windows (cfg.horizon_days) the default validation period is h - 1
    windows longer, so that it still holds as many forecasts whose h windows all lie in it
    (fit then forecasts from t in [train_start, train_end - h], and so on).
    """
    T = len(counts)
    weekly = fcfg.window_hours >= 168
    h = cfg.horizon_windows(fcfg)
    n_test = cfg.test_windows if cfg.test_windows is not None else fcfg.windows(365)
    n_val = cfg.val_windows if cfg.val_windows is not None else (fcfg.windows(365) if weekly else fcfg.windows(90))
    if T < n_test + n_val + fcfg.windows(365):
        # Less than a year left to train on (a month or two of a new city's data): keep the
        # same order, scaled down, so that training still gets most of the windows.
        if cfg.test_windows is None:
            n_test = min(n_test, max(1, T // 4))
        if cfg.val_windows is None:
            n_val = min(n_val, max(1, T // 6))
    if cfg.val_windows is None:
        n_val += h - 1
    n_test = min(n_test, max(0, T - 2))
    val_end = T - n_test
    n_val = min(n_val, max(1, val_end - 1))
    if cfg.val_windows is None:
        year = fcfg.windows(365)
        while counts[val_end - n_val:val_end].sum() == 0 and val_end - n_val - year >= year:
            n_val += year
    train_end = val_end - n_val
    first = min(fcfg.recent_windows, max(0, train_end - 1))
    if cfg.history_days is not None:
        first = max(first, train_end - fcfg.windows(cfg.history_days))
    if train_end - first - (h - 1) < MIN_TRAIN_WINDOWS:
        raise NotReady(
            f"not enough history to train: {T} windows of {fcfg.window_hours} h leave "
            f"{max(0, train_end - first - (h - 1))} forecasts for training after {n_val} windows for "
            f"validation and {n_test} for the test period (at least {MIN_TRAIN_WINDOWS} needed"
            f"{f', each over {h} windows' if h > 1 else ''}); load a longer period of incidents, "
            f"or choose shorter windows{' or a shorter horizon' if h > 1 else ''}")
    return first, train_end, val_end, T


def selection_score(metrics: dict) -> float:
    """What early stopping maximises: mean of ROC-AUC and hit rate at 5 % of the area (both
    from ranking_scores); -inf when neither is defined."""
    vals = [v for v in (metrics.get("roc_auc"), metrics.get("hit_rate_5")) if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("-inf")


# -- prediction ----------------------------------------------------------------------------------
def network_is_silent(model: RiskNet) -> bool:
    """Whether the model's output is exactly its base-rate path: no network (backbone 'none',
    the starting forecast), or a decoder whose last layer is all zero (a new head)."""
    if model.base_path is None:
        return False
    if model.head is None:
        return True
    last = model.head[-1]
    return not bool(last.weight.any() or last.bias.any())


@torch.inference_mode()
def _predict_inputs(model: RiskNet, x: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    device = device_of(model)                                        # where the model is
    planes = torch.from_numpy(x).to(device)                          # (N, C, H, W)
    with autocast(device, training=False):
        if network_is_silent(model):
            # the backbone's output is multiplied by zero: skip it (a ResNet pass per window)
            z = model.base_path(planes)                              # (N, 2, H, W)
            logit, log_rate = z[:, 0], z[:, 1]
        else:
            logit, log_rate = model(planes)                          # (N, H, W) each
    prob = torch.sigmoid(logit.float()).cpu().numpy()
    expected = torch.exp(log_rate.float().clamp(max=20)).cpu().numpy()
    if mask is not None:
        prob, expected = prob * mask, expected * mask
    return prob.astype(np.float32), expected.astype(np.float32)


def predict_window(model: RiskNet, counts: np.ndarray, starts, t: int, feature_cfg: FeatureConfig,
                   mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(prob (H, W) of >=1 event, expected count (H, W)) for window t, 0 <= t <= len(counts)
    (t == len(counts) forecasts the next window). Zero outside the mask."""
    model.eval()
    x = SampleBuilder.for_window(counts, starts, int(t), feature_cfg, mask).inputs([int(t)])
    prob, expected = _predict_inputs(model, x, mask)
    return prob[0], expected[0]


def predict_windows(model: RiskNet, counts: np.ndarray, starts, t_indices, feature_cfg: FeatureConfig,
                    mask: np.ndarray | None = None, batch_size: int = 32,
                    builder: SampleBuilder | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Batched predict_window for backtests: (prob (N, H, W), expected (N, H, W))."""
    model.eval()
    builder = builder or SampleBuilder(counts, starts, feature_cfg, mask)
    t_indices = np.asarray(t_indices, dtype=np.int64)
    outs = [_predict_inputs(model, builder.inputs(t_indices[i:i + batch_size]), mask)
            for i in range(0, len(t_indices), batch_size)]
    if not outs:
        shape = (0,) + builder.mask.shape
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])


# -- training ------------------------------------------------------------------------------------
def masked_loss(logit: torch.Tensor, log_rate: torch.Tensor, y_any: torch.Tensor, y_count: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
    """BCE on any-event + Poisson NLL on counts, averaged over city cells. All (N, H, W)."""
    m = mask.expand_as(y_any)
    bce = F.binary_cross_entropy_with_logits(logit[m], y_any[m])
    pois = F.poisson_nll_loss(log_rate[m], y_count[m], log_input=True, full=False)
    return bce + pois


def train_step(model: RiskNet, optimizer: torch.optim.Optimizer, builder: SampleBuilder, t_batch: np.ndarray,
               mask: torch.Tensor, cached: dict[str, torch.Tensor] | None = None,
               crop: tuple[int, int, int] | None = None,
               forward: torch.nn.Module | None = None) -> float:
    """One optimiser step on windows t_batch of builder's city; returns the batch loss.

    cached: the frozen stages' outputs for these windows (encode_frozen), so only the stages
    after them run; None runs the whole model. crop: (row, col, size) of a square of cells
    (crop_origins) that the step trains on instead of the whole grid (not with cached).
    Runs where the model is (mask and cached there too); the loss is float32 under mixed
    precision. forward: the model under DistributedDataParallel
    (distributed.wrap_for_training), called as forward(x, cached)."""
    device = device_of(model)
    x = torch.from_numpy(builder.inputs(t_batch)).to(device)           # (B, C, H, W)
    y_any, y_count = (torch.from_numpy(a).to(device) for a in builder.labels(t_batch))
    if crop is not None:
        if cached is not None:
            raise ValueError("train_step: a crop runs the whole model; pass cached=None")
        r, c, size = crop
        x = x[..., r:r + size, c:c + size]                             # (B, C, <=size, <=size)
        y_any, y_count = y_any[..., r:r + size, c:c + size], y_count[..., r:r + size, c:c + size]
        mask = mask[r:r + size, c:c + size]
    with autocast(device, training=True):
        if forward is not None:
            logit, log_rate = forward(x, cached)
        elif cached is not None:
            logit, log_rate = model.decode(x, model.encode_rest(cached))
        else:
            logit, log_rate = model(x)
    loss = masked_loss(logit.float(), log_rate.float(), y_any, y_count, mask)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def crop_origins(mask: np.ndarray, size: int | None) -> list[tuple[int, int, int]] | None:
    """The crops a step may train on: (row, col, size) squares at multiples of 32 cells (the
    network's coarsest stride, so a crop's stages line up with the whole grid's) that hold at
    least one city cell and together cover the grid; a crop at the edge may be cut short.
    None when the grid fits in one crop (or size is None): train on the whole grid.

    Why: at 150 m a city like Chicago is ~280 x 200 cells, eleven times the 500 m grid; a step
    on the whole grid costs eleven times as much, while a 128-cell crop (19 km) still holds
    every pattern the network can see (its receptive field)."""
    mask = np.asarray(mask, bool)
    rows, cols = mask.shape
    if size is None or (rows <= size and cols <= size):
        return None
    if size <= 0 or size % 32:
        raise ValueError(f"crop_cells must be a positive multiple of 32, got {size}")

    def starts(n: int) -> range:
        padded = -(-n // 32) * 32                                       # the network pads to 32
        return range(0, max(padded - size, 0) + 1, 32)

    return [(r, c, size) for r in starts(rows) for c in starts(cols) if mask[r:r + size, c:c + size].any()]


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def _make_optimizer(model: RiskNet, cfg: TrainConfig) -> torch.optim.Optimizer:
    backbone, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (backbone if name.split(".")[0] in STAGES else rest).append(p)
    groups = [g for g in ({"params": backbone, "lr": cfg.lr},
                          {"params": rest, "lr": cfg.lr * cfg.head_lr_mult}) if g["params"]]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        # fused: one pass over each tensor instead of a dozen (half the CPU time of a step over
        # layer3-4 and the decoder, ~10 M parameters)
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    raise ValueError(f"optimizer {cfg.optimizer!r}; expected 'adamw' or 'sgd'")


def fit_base_path(model: RiskNet, builder: SampleBuilder, t_train: np.ndarray, max_rows: int = 2_000_000,
                  seed: int = 0, chunk_windows: int = 32) -> None:
    """Fit the residual base-rate path (a 1x1 conv = a logistic + Poisson GLM on the feature
    planes) on city cells of up to max_rows cell-windows of the training windows, exactly, by
    Newton's method (fit_glm; the objective L-BFGS minimised here before, in a few steps
    instead of a hundred, which took half of a default fine-tune at 500 m).

    With the decoder's last layer at zero this is the whole model at the start of training, so
    the network only has to learn corrections over the best linear forecast from the inputs.
    Under a trained network the rest of its output is a fixed offset and the GLM is refitted
    under it, starting from the current path.
    Rows are many (2 million: some 750 days of a 2,600-cell city) because the fit on a few
    hundred thousand moved the test hit rate at 5 % of the area by +-0.03 with the days drawn.
    Planes are built chunk by chunk and only city cells are kept (float32, rows x channels).
    The path is left as it was when the fit does not come out finite.
    """
    if model.base_path is None or len(t_train) == 0:
        return
    rng = np.random.default_rng(seed)
    per_window = max(1, int(builder.mask.sum()))
    n_windows = int(min(len(t_train), max(1, max_rows // per_window)))
    ts = np.sort(rng.choice(t_train, size=n_windows, replace=False))
    under_network = not network_is_silent(model)
    device = device_of(model)                 # the network's offsets are computed there
    mask_t = torch.from_numpy(builder.mask).to(device)
    xs, offsets = [], []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(ts), chunk_windows):
            planes = torch.from_numpy(builder.inputs(ts[i:i + chunk_windows]))                # (B, C, H, W)
            xs.append(planes[:, :, builder.mask].permute(0, 2, 1).reshape(-1, planes.shape[1]))  # (B*cells, C)
            if under_network:
                # the rest of the network's output is a fixed offset: the GLM refits under it
                on_device = planes.to(device)
                logit, log_rate = model(on_device)
                off = torch.stack([logit, log_rate], 1) - model.base_path(on_device)   # (B, 2, H, W)
                offsets.append(off[:, :, mask_t].permute(0, 2, 1).reshape(-1, 2).float().cpu())
    model.train(was_training)
    x = torch.cat(xs).numpy()                                             # (rows, C)
    offset = torch.cat(offsets).numpy() if under_network else None       # (rows, 2)
    _, y = builder.labels(ts)
    y = np.ascontiguousarray(y[:, builder.mask].reshape(-1))              # (rows,)
    start = None
    if under_network:                          # start from the current path
        start = (model.base_path.weight.detach().cpu().reshape(2, -1).double().numpy(),
                 model.base_path.bias.detach().cpu().double().numpy())
    weight, bias = fit_glm(x, y, start=start, offset=offset)
    if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        return                                                            # keep the previous path
    set_base_path(model, weight, bias)


def new_head(model: RiskNet) -> None:
    """Zero the decoder's last layer: the forecast starts as the base-rate path alone."""
    with torch.no_grad():
        model.head[-1].weight.zero_()
        model.head[-1].bias.zero_()


def cacheable_stage(model: RiskNet) -> str | None:
    """The last frozen stage whose outputs can be cached (adapter frozen too), else None."""
    stage = frozen_stage(model)
    return stage if stage != "none" and adapter_frozen(model) else None


@torch.no_grad()
def encode_frozen(model: RiskNet, builder: SampleBuilder, t_indices: np.ndarray, stage: str,
                  batch_size: int = 32) -> dict[str, torch.Tensor]:
    """Frozen-stage outputs for every sample: {"layer1": (N, c1, h1, w1), ...} (eval mode)."""
    was_training = model.training
    model.eval()
    device = device_of(model)                 # the cache stays there (bf16 under autocast)
    parts: list[dict[str, torch.Tensor]] = []
    for i in range(0, len(t_indices), batch_size):
        x = torch.from_numpy(builder.inputs(t_indices[i:i + batch_size])).to(device)
        with autocast(device, training=False):
            parts.append(model.encode(x, upto=stage))
    model.train(was_training)
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def build_model(train_cfg: TrainConfig, fcfg: FeatureConfig, base_state: dict | None) -> RiskNet:
    """The starting model for fit: base_state's weights, ImageNet weights, or fresh."""
    if base_state is not None:
        model = model_from_checkpoint(base_state)
        if model.cfg.in_channels != n_channels(fcfg):
            raise ValueError(f"base model expects {model.cfg.in_channels} channels, features give {n_channels(fcfg)}")
        return model
    if train_cfg.base not in ("none", "imagenet"):
        raise ValueError(f"base {train_cfg.base!r} needs its checkpoint passed as base_state")
    names = channel_names(fcfg)
    mcfg = ModelConfig(backbone=train_cfg.backbone, in_channels=len(names),
                       prior_channel=names.index(f"rate_{max(fcfg.long_days)}d_s{fcfg.smoothing[0]:g}"))
    model = create_model(mcfg)
    if train_cfg.base == "imagenet":
        load_imagenet_backbone(model, train_cfg.imagenet_weights)
    return model


def fit(counts: np.ndarray, starts, mask: np.ndarray | None, train_cfg: TrainConfig,
        base_state: dict | None = None, on_progress: ProgressFn = None,
        should_stop: Callable[[], bool] | None = None, grid: GridSpec | None = None) -> TrainResult:
    """Fine-tune (or train from scratch) on one city's counts (T, H, W); see the module doc.

    base_state: a checkpoint dict (pretrained base or another model version); None with
    base 'none' (scratch) or 'imagenet'. The feature layout comes from base_state when given.
    base 'none' trains everything (freeze_up_to is ignored: random layers are not worth keeping).
    Runs on train_cfg.device (UserError for cuda without a GPU); the result's model is on
    the CPU, so its checkpoint loads anywhere.
    grid: the city's grid (the baselines of the blend need its cell size); None builds one of
    train_cfg.cell_size_m. Raises Cancelled when should_stop() returns True (checked after
    every batch). Under torchrun every rank calls fit alike: each trains on its share of
    every batch under DistributedDataParallel and takes rank 0's validation scores
    (modeling/distributed.py); a plain run is unchanged.
    """
    t_start = time.perf_counter()
    device = resolve_device(train_cfg.device)
    set_seed(train_cfg.seed)
    counts = np.asarray(counts, dtype=np.float32)
    mask = np.ones(counts.shape[1:], bool) if mask is None else np.asarray(mask, bool)
    if base_state is not None and "feature_config" in base_state:
        fcfg = FeatureConfig.from_dict({**base_state["feature_config"], "window_hours": train_cfg.hours})
    else:
        fcfg = FeatureConfig(window_hours=train_cfg.hours)
    first, train_end, val_end, T = split_windows(counts, train_cfg, fcfg)
    # a forecast from window t covers windows t .. t + h - 1: all of them in its own period
    h = train_cfg.horizon_windows(fcfg)
    t_train = np.arange(first, train_end - h + 1)
    t_val = np.arange(train_end, val_end - h + 1)
    t_test = np.arange(val_end, T - h + 1)
    builder = SampleBuilder(counts, starts, fcfg, mask, horizon_windows=h)

    model = build_model(train_cfg, fcfg, base_state).to(device)
    continuing = train_cfg.base not in ("pretrained", "imagenet", "none")
    if not continuing:
        # a new head over the (pre)trained body, starting from this city's best linear forecast
        report_fn = on_progress or (lambda d: None)
        report_fn({"stage": "base_rate", "fraction": 0.0})
        new_head(model)
        fit_base_path(model, builder, t_train, seed=train_cfg.seed)
    # the starting forecast alone (a blend candidate): the GLM just fitted under a zero head
    start_glm = forecaster.glm_state(model.base_path) if not continuing and model.base_path is not None else None
    stage = "none" if train_cfg.base == "none" else train_cfg.freeze_up_to
    # a new adapter (ImageNet or scratch) must learn; a pretrained one is frozen with the stem
    frozen = freeze_up_to(model, stage, include_adapter=base_state is not None)
    model.train()
    optimizer = _make_optimizer(model, train_cfg)

    def report(d: dict) -> None:
        if on_progress is not None:
            on_progress(d)

    def check_stop() -> None:
        # under torchrun only rank 0 has should_stop; every rank stops when it says so
        if distributed.any_rank_stops(should_stop is not None and should_stop()):
            raise Cancelled("training cancelled")

    # a large grid trains on crops (the whole model runs on each: caching a whole-grid pass
    # per training window would cost more than the crops); a small one on whole grids
    crops = crop_origins(mask, train_cfg.crop_cells)
    crop_rng = np.random.default_rng(train_cfg.seed + 1)
    cache_stage = cacheable_stage(model) if train_cfg.cache_frozen and crops is None else None
    cache = None
    if cache_stage is not None:
        report({"stage": "cache", "fraction": 0.0, "samples": len(t_train)})
        cache = encode_frozen(model, builder, t_train, cache_stage)
        check_stop()

    maskt = torch.from_numpy(mask).to(device)
    ddp_forward = distributed.wrap_for_training(model)       # None unless under torchrun
    rng = np.random.default_rng(train_cfg.seed)
    n_batches = math.ceil(len(t_train) / train_cfg.batch_size)
    if train_cfg.steps_per_epoch:
        n_batches = min(n_batches, train_cfg.steps_per_epoch)
    total_steps = max(1, n_batches * train_cfg.epochs)
    history: list[dict] = []
    # The starting point (the base-rate GLM under a zero head, or the continued version) is a
    # candidate too: training that does not improve validation is not kept (best_epoch 0).
    start_val = distributed.from_main(_evaluate(model, builder, t_val, counts, mask))
    best = (selection_score(start_val), copy.deepcopy(model.state_dict()), start_val, 0)
    step = 0
    stale = 0
    for epoch in range(1, train_cfg.epochs + 1):
        model.train()
        order = rng.permutation(len(t_train))
        losses = []
        for b in range(n_batches):
            idx = order[b * train_cfg.batch_size:(b + 1) * train_cfg.batch_size]
            if len(idx) < 2 and len(order) >= 2:
                # BatchNorm cannot train on a batch of one: take the last one with its neighbour.
                idx = order[-2:]
            idx = distributed.shard(idx)                     # this rank's share of the batch
            cached = None if cache is None else {k: v[idx] for k, v in cache.items()}
            crop = None if crops is None else crops[int(crop_rng.integers(len(crops)))]
            losses.append(train_step(model, optimizer, builder, t_train[idx], maskt, cached,
                                     crop=crop, forward=ddp_forward))
            step += 1
            elapsed = time.perf_counter() - t_start
            report({"stage": "train", "epoch": epoch, "epochs": train_cfg.epochs, "batch": b + 1,
                    "batches": n_batches, "loss": losses[-1],
                    "val_score": history[-1]["val_score"] if history else None,
                    "fraction": step / total_steps, "elapsed_s": elapsed,
                    "eta_s": elapsed / step * (total_steps - step)})
            check_stop()
        val = distributed.from_main(_evaluate(model, builder, t_val, counts, mask))
        score = selection_score(val)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_score": score, **val})
        if score > best[0]:
            best = (score, copy.deepcopy(model.state_dict()), val, epoch)
            stale = 0
        else:
            stale += 1
            if stale >= train_cfg.patience:
                break
    model.load_state_dict(best[1])
    model.eval()
    grid = grid or GridSpec("", 0.0, 0.0, float(train_cfg.cell_size_m or DEFAULT_CELL_SIZE_M),
                            counts.shape[1], counts.shape[2])
    # the blend is chosen on the validation windows, with every candidate fitted on the
    # training windows only (before the refit below)
    blend, val_scores = NETWORK_ONLY, dict(best[2])
    observed_val = builder.labels(t_val)[1]                               # (N, H, W) events per target
    if train_cfg.blend and len(t_val) and observed_val[:, mask].sum() > 0:
        report({"stage": "blend", "fraction": 1.0})
        # when early stopping kept the starting point, the network IS the base-rate GLM
        names = forecaster.candidate_names(train_cfg.category,
                                           include_base_rate=start_glm is not None and best[3] != 0)
        params = fit_stack(counts, t_train, mask, grid, train_cfg, fcfg) if train_cfg.stack else {}
        names += list(params)
        raw_val = forecaster.raw_scores(names, model, builder, counts, starts, grid, t_val, start_glm, params)
        blend = forecaster.choose_blend(raw_val, observed_val, mask, fcfg.window_hours, params=params,
                                        glm=start_glm, seed=train_cfg.seed)
        val_scores = _scores(*forecaster.apply_blend(blend, raw_val, mask), observed_val, mask)
        check_stop()
    metrics = {"validation": {**val_scores, "best_epoch": best[3], "val_score": best[0], "network": dict(best[2])}}
    if train_cfg.horizon_days:
        # the registry keeps horizon models apart from the next-window model by this key
        metrics["validation"]["horizon_days"] = int(train_cfg.horizon_days)
    if train_cfg.refit_base_path and len(t_val):
        # the latest history is the most informative: the linear base-rate path (a few dozen
        # weights, no choice made on validation) is refitted on train + validation windows,
        # under the trained network as an offset, and so is the standalone GLM when the blend
        # uses it. Validation metrics above are from before.
        report({"stage": "base_rate", "fraction": 1.0})
        t_fit = np.concatenate([t_train, t_val])
        fit_base_path(model, builder, t_fit, seed=train_cfg.seed)
        model.eval()
        if BASE_RATE in blend.weights:
            blend = forecaster.with_glm(blend, refit_glm(model, builder, t_fit, seed=train_cfg.seed))
    if len(t_test):
        names = sorted(set(blend.weights) | {forecaster.NETWORK})
        raw_test = forecaster.raw_scores(names, model, builder, counts, starts, grid, t_test,
                                         blend.base_rate_path, {c.name: c.params for c in blend.candidates})
        observed_test = builder.labels(t_test)[1]
        network_test = _scores(*forecaster.apply_blend(NETWORK_ONLY, raw_test, mask), observed_test, mask)
        metrics["test"] = (network_test if blend.network_only else
                           {**_scores(*forecaster.apply_blend(blend, raw_test, mask), observed_test, mask),
                            "network": network_test})
    model.cpu()
    times = pd.DatetimeIndex(builder.times)
    iso = lambda i: pd.Timestamp(times[min(i, len(times) - 1)]).isoformat()
    data_window = {"start": iso(first), "end": iso(T), "train_end": iso(train_end), "val_end": iso(val_end)}
    report({"stage": "done", "fraction": 1.0, "elapsed_s": time.perf_counter() - t_start})
    return TrainResult(model=model, feature_config=fcfg, train_config=train_cfg, history=history,
                       metrics=metrics, data_window=data_window,
                       train_seconds=time.perf_counter() - t_start, frozen=frozen, blend=blend)


def fit_stack(counts: np.ndarray, t_train: np.ndarray, mask: np.ndarray, grid: GridSpec, train_cfg: TrainConfig,
              fcfg: FeatureConfig) -> dict[str, dict]:
    """{stack.STACK: {"model": StackModel.to_dict()}}: the stacked forecaster fitted on the
    training forecasts t_train (their horizon's events), as blend candidate parameters; {}
    when the training windows hold no event. It is not refitted on validation windows: what
    ships is what validation chose."""
    model = stack.fit(counts, t_train, mask, grid.cell_size_m, stack.default_config(fcfg.window_hours),
                      horizon_windows=train_cfg.horizon_windows(fcfg),
                      max_rows=train_cfg.stack_fit_rows or stack.FIT_ROWS)
    return {} if model is None else {stack.STACK: {"model": model.to_dict()}}


def refit_glm(model: RiskNet, builder: SampleBuilder, t_fit: np.ndarray, seed: int = 0) -> dict | None:
    """The standalone base-rate GLM fitted afresh on windows t_fit (forecaster.glm_state form);
    None when the model has no base-rate path."""
    if model.base_path is None:
        return None
    alone = copy.deepcopy(model)
    new_head(alone)              # a zero head: fit_base_path fits the GLM by itself
    fit_base_path(alone, builder, t_fit, seed=seed)
    return forecaster.glm_state(alone.base_path)


# -- the starting forecast as a model of its own -------------------------------------------------
# What its GLM is fitted on: at most this many cell-windows from at most this many windows
# (fit_base_path takes up to 2 million). A GLM of some 30 numbers needs far fewer rows; the
# cost is in building the windows' planes, so small cities are capped by windows.
STARTING_FORECAST_ROWS = 150_000
STARTING_FORECAST_WINDOWS = 90
GLM_L2 = 1e-4                      # fit_base_path's penalty on the weights (not the intercepts)


def city_rows(builder: SampleBuilder, t_indices: np.ndarray, chunk_windows: int = 32) -> np.ndarray:
    """The feature planes of windows t_indices at the city cells, one row per cell-window:
    (len(t_indices) * city cells, C) float32, window by window in the mask's row-major order."""
    parts = []
    for i in range(0, len(t_indices), chunk_windows):
        planes = builder.inputs(t_indices[i:i + chunk_windows])            # (B, C, H, W)
        parts.append(planes[:, :, builder.mask].transpose(0, 2, 1).reshape(-1, planes.shape[1]))
    return np.concatenate(parts) if parts else np.zeros((0, n_channels(builder.cfg)), np.float32)


def _newton_glm(x: torch.Tensor, y: torch.Tensor, poisson: bool, start: np.ndarray | None,
                l2: float, max_iter: int = 30, tol: float = 1e-10,
                offset: torch.Tensor | None = None) -> np.ndarray:
    """Minimise mean(loss) + l2 * |w|^2 over (w, intercept) by Newton's method with step halving.

    x (rows, C + 1) float32 with a last column of ones; y (rows,) float32, 0/1 (logistic) or
    counts (Poisson, log link); offset (rows,) float32 added to the linear predictor (a
    network's output the GLM is fitted under), None for none; returns (C + 1,) float64, the
    intercept last. Convex, so a few
    steps converge: it stops when the Newton decrement (the predicted decrease) is below tol.
    Rows stay float32 (sums in float64); torch rather than numpy, whose BLAS threads would
    oversubscribe a small machine beside torch's."""
    n, c1 = x.shape
    penalty = torch.full((c1,), 2.0 * l2, dtype=torch.float64)
    penalty[-1] = 0.0                                                       # intercept free
    w = torch.zeros(c1, dtype=torch.float64)
    if start is not None:
        w = torch.as_tensor(np.asarray(start, np.float64)).clone()
    else:
        mean = float(y.double().mean())
        w[-1] = math.log(mean + 1e-6) if poisson else math.log((mean + 1e-6) / (1 - mean + 1e-6))

    def loss(z: torch.Tensor, w: torch.Tensor) -> float:                    # z (rows,) float32
        data = torch.exp(z.clamp(max=30.0)) - y * z if poisson else F.softplus(z) - y * z
        return float(data.sum(dtype=torch.float64) / n + l2 * w[:-1].square().sum())

    shift = offset if offset is not None else 0.0
    z = x @ w.float() + shift
    current = loss(z, w)
    for _ in range(max_iter):
        if poisson:
            mu = torch.exp(z.clamp(max=30.0))
            residual, curvature = mu - y, mu
        else:
            p = torch.sigmoid(z)
            residual, curvature = p - y, p * (1.0 - p)
        grad = (x.T @ residual).double() / n + penalty * w                  # (C + 1,)
        hess = (x.T @ (x * curvature[:, None])).double() / n                # (C + 1, C + 1)
        hess += torch.diag(penalty + 1e-9)
        step = torch.linalg.solve(hess, grad)
        decrease = float(grad @ step)
        if decrease < tol:
            break
        size = 1.0
        while size > 1e-4:
            trial_w = w - size * step
            trial_z = x @ trial_w.float() + shift
            trial = loss(trial_z, trial_w)
            if trial <= current - 1e-4 * size * decrease:
                break
            size /= 2
        else:
            break                                                           # no descent left
        w, z, current = trial_w, trial_z, trial
    return w.numpy()


def fit_glm(x: np.ndarray, y: np.ndarray, start: tuple[np.ndarray, np.ndarray] | None = None,
            l2: float = GLM_L2, offset: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The base-rate path's GLM, as fit_base_path defines it (mean BCE of "any event" + mean
    Poisson NLL of the count + l2 |w|^2), solved exactly by Newton's method instead of L-BFGS.
    x (rows, C), y (rows,) counts; start: (weight (2, C), bias (2,)) to continue from;
    offset: (rows, 2) fixed additions to the logit and the log rate (None: none).
    Returns (weight (2, C), bias (2,)): row 0 the logit of P(>= 1 event), row 1 the log rate."""
    xa = torch.ones((len(x), x.shape[1] + 1), dtype=torch.float32)         # (rows, C + 1)
    xa[:, :-1] = torch.from_numpy(np.asarray(x, np.float32))
    y = torch.from_numpy(np.asarray(y, dtype=np.float32))
    out = []
    for row, (target, poisson) in enumerate((((y > 0).float(), False), (y, True))):
        begin = None if start is None else np.append(start[0][row], start[1][row])
        shift = None if offset is None else torch.from_numpy(np.ascontiguousarray(offset[:, row], np.float32))
        out.append(_newton_glm(xa, target, poisson, begin, l2, offset=shift))
    weight = np.stack([w[:-1] for w in out])                                # (2, C)
    return weight, np.array([w[-1] for w in out])


def set_base_path(model: RiskNet, weight: np.ndarray, bias: np.ndarray) -> None:
    """Write a GLM (weight (2, C), bias (2,)) into the model's base-rate path (a 1x1 conv)."""
    with torch.no_grad():
        model.base_path.weight.copy_(torch.from_numpy(np.asarray(weight, np.float32))
                                     .reshape_as(model.base_path.weight))
        model.base_path.bias.copy_(torch.from_numpy(np.asarray(bias, np.float32)))


def fit_starting_forecast(counts: np.ndarray, starts, mask: np.ndarray | None, train_cfg: TrainConfig,
                          max_rows: int = STARTING_FORECAST_ROWS,
                          max_windows: int = STARTING_FORECAST_WINDOWS,
                          on_progress: ProgressFn = None, grid: GridSpec | None = None) -> TrainResult:
    """The linear starting forecast on its own, as a model: what fit starts from (a zero head
    over the base-rate GLM), fitted on the training windows and scored on the validation
    windows of fit's split for the same train_cfg, then refitted on train + validation as fit
    refits it (train_cfg.refit_base_path). No network training: seconds, not minutes. It is
    the forecast to show while the network trains, and the yardstick that network must beat
    on the same validation windows. With train_cfg.horizon_days it forecasts the events over
    that horizon, on fit's horizon split (a horizon's starting forecast).

    The model has no backbone (models.LINEAR): a few dozen weights, saved and loaded in a
    blink, never continued by fit (train from 'pretrained' instead). The GLM is fit_glm on up to max_rows cell-windows of at most max_windows training windows
    (drawn at random, as fit_base_path draws them). Metrics: {"validation": {...}} only; the backtest scores the
    test period. Returns a TrainResult with history [] (best epoch 0).
    With the city's grid given (and train_cfg.blend), what ships is chosen on the validation
    windows as fit chooses it (forecaster.choose_blend): this GLM (the "network" of the
    version), the stacked forecaster (train_cfg.stack) or a baseline, alone or blended.
    """
    t_start = time.perf_counter()
    report = on_progress or (lambda d: None)
    set_seed(train_cfg.seed)
    counts = np.asarray(counts, dtype=np.float32)
    mask = np.ones(counts.shape[1:], bool) if mask is None else np.asarray(mask, bool)
    fcfg = FeatureConfig(window_hours=train_cfg.hours)
    first, train_end, val_end, T = split_windows(counts, train_cfg, fcfg)
    # as fit: a forecast from window t covers windows t .. t + h - 1, all in its own period
    h = train_cfg.horizon_windows(fcfg)
    t_train, t_val = np.arange(first, train_end - h + 1), np.arange(train_end, val_end - h + 1)
    builder = SampleBuilder(counts, starts, fcfg, mask, horizon_windows=h)
    names = channel_names(fcfg)
    model = create_model(ModelConfig(backbone=LINEAR, in_channels=len(names),
                                     prior_channel=names.index(f"rate_{max(fcfg.long_days)}d_s{fcfg.smoothing[0]:g}")))
    model.eval()

    report({"stage": "base_rate", "fraction": 0.0})
    rng = np.random.default_rng(train_cfg.seed)
    per_window = max(1, int(mask.sum()))
    n_windows = int(min(len(t_train), max_windows, max(1, max_rows // per_window)))
    ts = np.sort(rng.choice(t_train, size=n_windows, replace=False))
    x_train = city_rows(builder, ts)                                        # (rows, C)
    y_train = builder.labels(ts)[1][:, mask].reshape(-1)                    # (rows,) over the horizon
    report({"stage": "base_rate", "fraction": 0.4})
    glm = fit_glm(x_train, y_train)
    x_val = city_rows(builder, t_val)                                       # (val rows, C)
    z = (torch.from_numpy(x_val) @ torch.from_numpy(glm[0].T.astype(np.float32))
         + torch.from_numpy(glm[1].astype(np.float32))).numpy()             # (val rows, 2)
    prob = np.zeros((len(t_val),) + mask.shape, np.float32)                 # (N, H, W)
    expected = np.zeros_like(prob)
    prob[:, mask] = (1.0 / (1.0 + np.exp(-z[:, 0]))).reshape(len(t_val), -1)
    expected[:, mask] = np.exp(np.minimum(z[:, 1], 20.0)).reshape(len(t_val), -1)
    observed = builder.labels(t_val)[1]                                     # (N, H, W) over the horizon
    pai_expected, _ = mean_and_se(pai(expected, observed, SELECTION_COVERAGE, mask))
    validation = {**ranking_scores(prob, observed, mask), "pai_5_expected": pai_expected,
                  "events": float(observed[:, mask].sum())} if len(t_val) else {}
    blend = NETWORK_ONLY
    if grid is not None and train_cfg.blend and len(t_val) and observed[:, mask].sum() > 0:
        report({"stage": "blend", "fraction": 0.6})
        set_base_path(model, *glm)               # the GLM fitted on training windows only
        params = fit_stack(counts, t_train, mask, grid, train_cfg, fcfg) if train_cfg.stack else {}
        names = forecaster.candidate_names(train_cfg.category, include_base_rate=False) + list(params)
        raw_val = forecaster.raw_scores(names, model, builder, counts, starts, grid, t_val, params=params)
        blend = forecaster.choose_blend(raw_val, observed, mask, fcfg.window_hours, params=params,
                                        seed=train_cfg.seed)
        if not blend.network_only:
            validation = {**_scores(*forecaster.apply_blend(blend, raw_val, mask), observed, mask),
                          "network": validation}
    metrics = {"validation": {**validation, "best_epoch": 0, "val_score": selection_score(validation)}}
    if train_cfg.horizon_days:
        # the registry keeps horizon models apart from the next-window model by this key
        metrics["validation"]["horizon_days"] = int(train_cfg.horizon_days)
    if train_cfg.refit_base_path and len(t_val):
        report({"stage": "base_rate", "fraction": 0.8})
        x_all = np.concatenate([x_train, x_val])
        y_all = np.concatenate([y_train, observed[:, mask].reshape(-1)])
        glm = fit_glm(x_all, y_all, start=glm)
    set_base_path(model, *glm)
    times = pd.DatetimeIndex(builder.times)
    iso = lambda i: pd.Timestamp(times[min(i, len(times) - 1)]).isoformat()
    report({"stage": "done", "fraction": 1.0, "elapsed_s": time.perf_counter() - t_start})
    return TrainResult(model=model, feature_config=fcfg, train_config=train_cfg, history=[], metrics=metrics,
                       data_window={"start": iso(first), "end": iso(T), "train_end": iso(train_end),
                                    "val_end": iso(val_end)},
                       train_seconds=time.perf_counter() - t_start, blend=blend)


def _evaluate(model: RiskNet, builder: SampleBuilder, t_indices: np.ndarray, counts: np.ndarray,
              mask: np.ndarray) -> dict:
    """The model's scores on windows t_indices, as validation and the checkpoint keep them:
    ranking_scores of the probability (what the risk map ranks by and the Evaluation page
    scores), plus pai_5_expected (cells ranked by expected count) and events (in city cells).
    {} without windows."""
    if len(t_indices) == 0:
        return {}
    prob, expected = predict_windows(model, counts, None, t_indices, builder.cfg, mask, builder=builder)
    return _scores(prob, expected, builder.labels(t_indices)[1], mask)


def _scores(prob: np.ndarray, expected: np.ndarray, observed: np.ndarray, mask: np.ndarray) -> dict:
    """ranking_scores of prob (N, H, W) against observed (N, H, W) events, plus pai_5_expected
    (cells ranked by the expected count) and events (in city cells)."""
    pai_expected, _ = mean_and_se(pai(expected, observed, SELECTION_COVERAGE, mask))
    return {**ranking_scores(prob, observed, mask), "pai_5_expected": pai_expected,
            "events": float(observed[:, mask].sum())}


# -- pretraining ---------------------------------------------------------------------------------
def synthetic_count_tensors(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """The fixed simulated-city corpus (synthetic.corpus) as (counts, starts, mask, window_hours)."""
    from safety_models.modeling import synthetic

    out = []
    for counts, starts, mask in synthetic.corpus(seed):
        hours = int(round((starts[1] - starts[0]) / np.timedelta64(1, "h"))) if len(starts) > 1 else 24
        out.append((counts, starts, mask, hours))
    return out


def _window_hours_of(starts) -> int:
    s = pd.DatetimeIndex(pd.to_datetime(np.asarray(starts)))
    return int(round((s[1] - s[0]) / pd.Timedelta(hours=1))) if len(s) > 1 else 24


def pretrain(count_tensors: list, model_cfg: ModelConfig | None = None, on_progress: ProgressFn = None,
             seed: int = 0, time_budget_s: float = 150.0, max_steps: int | None = None,
             batch_size: int = 8, lr: float = 1e-3, holdout_days: int = 455,
             should_stop: Callable[[], bool] | None = None, device: str = "auto",
             crop_cells: int | None = 128) -> dict:
    """Train the 'pretrained' base on many cities: every stage trainable, one shared layout.

    count_tensors: [(counts (T, H, W), starts, mask) or (counts, starts, mask, window_hours)]
    (simulated cities from synthetic_count_tensors plus every category of the store; the
    window length is read from starts when not given). The last `holdout_days` of each tensor
    (a year of test plus 90 days of validation, fit's default split) are left out, so later
    backtests of fine-tuned models are not evaluated on windows the base has seen.
    Runs on `device` ('auto' | 'cpu' | 'cuda[:N]', see devices.resolve_device). A city
    larger than crop_cells square trains on crops of it (crop_origins), as fit does.
    Stops after time_budget_s seconds (or max_steps); returns a plain-types checkpoint dict
    (format, category '*', state_dict, model_config, feature_config, train_config, data_window,
    metrics, train_seconds) that fit takes as base_state.
    """
    t_start = time.perf_counter()
    torch_device = resolve_device(device)
    set_seed(seed)
    fcfg = FeatureConfig()
    names = channel_names(fcfg)
    model_cfg = model_cfg or ModelConfig(in_channels=len(names),
                                         prior_channel=names.index(f"rate_{max(fcfg.long_days)}d_s{fcfg.smoothing[0]:g}"))
    model = create_model(model_cfg).to(torch_device)
    sources = []  # (builder, t_indices, mask tensor, crops or None)
    for item in count_tensors:
        counts, starts, mask = item[0], item[1], item[2]
        hours = int(item[3]) if len(item) > 3 else _window_hours_of(starts)
        fc = FeatureConfig.from_dict({**fcfg.to_dict(), "window_hours": hours})
        counts = np.asarray(counts, dtype=np.float32)
        end = len(counts) - fc.windows(holdout_days)
        if end - fc.recent_windows < 20:          # short history: keep its first half
            end = len(counts) // 2
        t_idx = np.arange(min(fc.recent_windows, max(0, end - 1)), max(1, end))
        if len(t_idx) == 0 or counts[:end].sum() == 0:
            continue
        b = SampleBuilder(counts, starts, fc, mask)
        sources.append((b, t_idx, torch.from_numpy(b.mask).to(torch_device), crop_origins(b.mask, crop_cells)))
    if not sources:
        raise ValueError("pretrain needs at least one count tensor with events")
    # the base path starts at the corpus' typical event level
    with torch.no_grad():
        p_any = np.mean([float((b.counts[t][:, b.mask] > 0).mean()) for b, t, *_ in sources]) + 1e-6
        rate = np.mean([float(b.counts[t][:, b.mask].mean()) for b, t, *_ in sources]) + 1e-6
        if model.base_path is not None:
            model.base_path.bias[0] = math.log(p_any / (1 - p_any))
            model.base_path.bias[1] = math.log(rate)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4, fused=True)
    rng = np.random.default_rng(seed)
    crop_rng = np.random.default_rng(seed + 1)
    weights = np.array([len(t) for _, t, *_ in sources], np.float64) ** 0.5
    weights /= weights.sum()
    step, losses = 0, []
    while True:
        elapsed = time.perf_counter() - t_start
        if elapsed >= time_budget_s or (max_steps is not None and step >= max_steps):
            break
        b, t_idx, maskt, crops = sources[rng.choice(len(sources), p=weights)]
        t_batch = rng.choice(t_idx, size=min(batch_size, len(t_idx)), replace=False)
        crop = None if crops is None else crops[int(crop_rng.integers(len(crops)))]
        losses.append(train_step(model, optimizer, b, t_batch, maskt, crop=crop))
        step += 1
        elapsed = time.perf_counter() - t_start
        frac = min(1.0, max(elapsed / time_budget_s, step / max_steps if max_steps else 0.0))
        if on_progress is not None:
            on_progress({"stage": "pretrain", "fraction": frac, "step": step, "loss": losses[-1],
                         "cities": len(sources), "elapsed_s": elapsed,
                         "eta_s": max(0.0, elapsed / frac - elapsed) if frac > 0 else None})
        if should_stop is not None and should_stop():
            raise Cancelled("pretraining cancelled")
    model.eval().cpu()                        # a checkpoint that loads anywhere
    state = model_to_state(model)
    seconds = time.perf_counter() - t_start
    return {"format": CHECKPOINT_FORMAT, "category": "*",
            "state_dict": state["state_dict"], "model_config": state["model_config"],
            "feature_config": fcfg.to_dict(),
            "train_config": {"kind": "pretrain", "seed": seed, "time_budget_s": time_budget_s,
                             "max_steps": max_steps, "batch_size": batch_size, "lr": lr,
                             "holdout_days": holdout_days, "n_tensors": len(sources),
                             "device": str(torch_device)},
            "data_window": {}, "history": [{"steps": step,
                                            "loss_first": float(np.mean(losses[:20])) if losses else None,
                                            "loss_last": float(np.mean(losses[-20:])) if losses else None}],
            "metrics": {}, "train_seconds": seconds}
