"""RiskNet: a torchvision ResNet backbone fine-tuned for per-cell risk maps.

    x (N, C, H, W) feature planes (features.py)
      -> adapter: 1x1 convs C -> 3 channels, so the stem's pretrained weights stay usable
      -> optional upsample (input_scale), pad to a multiple of 32
      -> resnet stem (conv1, bn1, relu, maxpool) -> layer1 .. layer4     (strides 4, 4, 8, 16, 32)
      -> U-Net/FPN-style decoder: top-down from layer4 with skips from layer1..layer3,
         back to stride 4, upsampled to the padded input, cropped, pooled back to cell resolution
      -> concat with a small full-resolution conv path on x
      -> two 1x1 heads: logit_any (P(>=1 event)) and log_rate (log expected count)
      + residual "base-rate" path: a 1x1 conv (a logistic/Poisson linear model) on x itself,
        initialised on the smoothed long-run rate, so the network learns a correction over a
        strong prior rather than the prior itself. The decoder heads start at zero.

Stages for freezing: STAGES = ("stem", "layer1", ..., "layer4"); "stem" includes the adapter
when asked (the adapter is only meaningful to freeze once it was trained, i.e. for the
'pretrained' base; with ImageNet weights the adapter is new and must stay trainable).

Backbone LINEAR ("none") is the base-rate path alone: the starting forecast as a model of its
own (training.fit_starting_forecast), a few dozen weights with no network to train, freeze or
continue. torchvision is imported only to build a ResNet, so such a model loads in a process
that never imports it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from safety_models.errors import WeightsMissing

STAGES: tuple[str, ...] = ("stem", "layer1", "layer2", "layer3", "layer4")
BACKBONES = ("resnet18", "resnet34", "resnet50")
LINEAR = "none"   # no backbone: the base-rate path alone (the starting forecast)
_WEIGHTS = {"resnet18": "ResNet18_Weights", "resnet34": "ResNet34_Weights", "resnet50": "ResNet50_Weights"}


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "resnet18"
    in_channels: int = 26
    decoder_width: int = 64
    full_res_width: int = 16        # channels of the full-resolution conv path on x
    input_scale: int = 1            # upsample x by this factor before the resnet (1 or 2)
    base_rate_path: bool = True     # residual linear model on x added to both heads
    prior_channel: int = -1         # channel the base-rate path starts from (-1: none)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**d)


class RiskNet(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.backbone not in (*BACKBONES, LINEAR):
            raise ValueError(f"backbone {cfg.backbone!r}; expected one of {', '.join(BACKBONES)} "
                             f"or {LINEAR!r}")
        self.cfg = cfg
        self._frozen_stages: tuple[str, ...] = ()
        self._frozen_modules: list[nn.Module] = []
        if cfg.backbone == LINEAR:
            if not cfg.base_rate_path:
                raise ValueError("a model without a backbone needs its base-rate path")
            self.head = None                 # no network: the output is the base-rate path
            self.base_path = nn.Conv2d(cfg.in_channels, 2, 1)
            self._init_base_path()
            return
        import torchvision   # only here: a linear model loads without it

        base = getattr(torchvision.models, cfg.backbone)(weights=None)
        self.adapter = nn.Sequential(nn.Conv2d(cfg.in_channels, 16, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(16, 3, 1))
        self.stem = nn.Sequential(base.conv1, base.bn1, base.relu, base.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = base.layer1, base.layer2, base.layer3, base.layer4
        widths = [m[-1].conv3.out_channels if hasattr(m[-1], "conv3") else m[-1].conv2.out_channels
                  for m in (self.layer1, self.layer2, self.layer3, self.layer4)]
        w = cfg.decoder_width
        self.lateral = nn.ModuleList([nn.Conv2d(c, w, 1) for c in widths])          # layer1..4 -> w
        self.smooth = nn.ModuleList([nn.Sequential(nn.Conv2d(w, w, 3, padding=1), nn.BatchNorm2d(w),
                                                   nn.ReLU(inplace=True)) for _ in range(3)])
        fw = cfg.full_res_width
        # cheap at full cell resolution: one 3x3 conv on x, 1x1 convs in the head
        self.full_res = nn.Sequential(nn.Conv2d(cfg.in_channels, fw, 3, padding=1), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Conv2d(w + fw, w // 2, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(w // 2, 2, 1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        self.base_path = nn.Conv2d(cfg.in_channels, 2, 1) if cfg.base_rate_path else None
        if self.base_path is not None:
            self._init_base_path()

    def _init_base_path(self) -> None:
        nn.init.zeros_(self.base_path.weight)
        nn.init.zeros_(self.base_path.bias)
        if self.cfg.prior_channel >= 0:
            with torch.no_grad():
                self.base_path.weight[:, self.cfg.prior_channel] = 1.0

    # -- encoder -------------------------------------------------------------------------------
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> adapter output upsampled and padded: (N, 3, H', W'), H' % 32 == 0."""
        a = self.adapter(x)
        s = self.cfg.input_scale
        if s > 1:
            a = F.interpolate(a, scale_factor=s, mode="nearest")
        h, w = a.shape[-2:]
        return F.pad(a, (0, (-w) % 32, 0, (-h) % 32))

    def encode(self, x: torch.Tensor, upto: str | None = None) -> dict[str, torch.Tensor]:
        """Stage outputs needed by the decoder, computed up to stage `upto` (None: all).

        Returns {"stem": ..., "layer1": (N, c1, H'/4, W'/4), ..., "layer4": (N, c4, H'/32, W'/32)};
        "stem" is only kept when upto == "stem" (the decoder does not use it as a skip).
        """
        last = STAGES.index(upto) if upto is not None else len(STAGES) - 1
        h = self.stem(self._prepare(x))
        out = {"stem": h} if last == 0 else {}
        for i, name in enumerate(STAGES[1:last + 1], start=1):
            h = getattr(self, name)(h)
            out[name] = h
        return out

    def encode_rest(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Complete `feats` (from encode(x, upto=k)) with the stages after k."""
        feats = dict(feats)
        done = [s for s in STAGES if s in feats]
        last = max(STAGES.index(s) for s in done)
        h = feats[STAGES[last]]
        for name in STAGES[last + 1:]:
            h = getattr(self, name)(h)
            feats[name] = h
        feats.pop("stem", None)
        return feats

    # -- decoder -------------------------------------------------------------------------------
    def decode(self, x: torch.Tensor, feats: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, C, H, W) and layer1..layer4 features -> (logit_any (N, H, W), log_rate (N, H, W))."""
        n, _, height, width = x.shape
        f = [feats[s] for s in STAGES[1:]]
        d = self.lateral[3](f[3])                                     # (N, w, H'/32, W'/32)
        for i in (2, 1, 0):                                           # to /16, /8, /4
            d = F.interpolate(d, size=f[i].shape[-2:], mode="nearest") + self.lateral[i](f[i])
            d = self.smooth[i](d)
        s = self.cfg.input_scale
        d = F.interpolate(d, scale_factor=4, mode="bilinear", align_corners=False)  # (N, w, H', W')
        d = d[..., : height * s, : width * s]
        if s > 1:
            d = F.avg_pool2d(d, s)                                    # back to cell resolution
        z = self.head(torch.cat([d, self.full_res(x)], dim=1))        # (N, 2, H, W)
        if self.base_path is not None:
            z = z + self.base_path(x)
        return z[:, 0], z[:, 1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, C, H, W) -> (logit_any (N, H, W), log_rate (N, H, W))."""
        if self.head is None:                                         # backbone LINEAR
            z = self.base_path(x)                                     # (N, 2, H, W)
            return z[:, 0], z[:, 1]
        return self.decode(x, self.encode(x))

    # -- freezing ------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "RiskNet":
        super().train(mode)
        for m in self._frozen_modules:       # frozen stages keep their BatchNorm statistics
            m.eval()
        return self


def create_model(cfg: ModelConfig) -> RiskNet:
    return RiskNet(cfg)


def _stage_modules(model: RiskNet, stage: str, include_adapter: bool) -> list[tuple[str, nn.Module]]:
    if stage == "none":
        return []
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r}; expected 'none' or one of {', '.join(STAGES)}")
    mods = [("adapter", model.adapter)] if include_adapter else []
    return mods + [(s, getattr(model, s)) for s in STAGES[: STAGES.index(stage) + 1]]


def freeze_up_to(model: RiskNet, stage: str, include_adapter: bool = True) -> list[str]:
    """Freeze the backbone up to and including `stage` ('none' or one of STAGES).

    Sets requires_grad=False on those parameters and keeps their BatchNorm layers in eval mode
    (running statistics untouched) even after model.train(). 'stem' and later include the
    adapter when include_adapter (use False when the adapter is new, e.g. an ImageNet base).
    Everything after `stage` is made trainable. Returns the frozen parameter names.
    """
    for p in model.parameters():
        p.requires_grad_(True)
    mods = _stage_modules(model, stage, include_adapter)
    frozen_names: list[str] = []
    for prefix, mod in mods:
        for name, p in mod.named_parameters():
            p.requires_grad_(False)
            frozen_names.append(f"{prefix}.{name}")
    model._frozen_stages = tuple(p for p, _ in mods)
    model._frozen_modules = [m for _, m in mods]
    model.train(model.training)
    return frozen_names


def frozen_stage(model: RiskNet) -> str:
    """The last frozen backbone stage ('none' if nothing is frozen)."""
    stages = [s for s in model._frozen_stages if s in STAGES]
    return stages[-1] if stages else "none"


def adapter_frozen(model: RiskNet) -> bool:
    return "adapter" in model._frozen_stages


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


# -- ImageNet weights (never downloaded) ---------------------------------------------------------
def imagenet_weights_file(backbone: str) -> Path:
    """Where torchvision's hub cache keeps the ImageNet-1k V1 weights of `backbone`."""
    import torchvision

    weights = getattr(torchvision.models, _WEIGHTS[backbone]).IMAGENET1K_V1
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def load_imagenet_backbone(model: RiskNet, path: str | Path | None = None) -> list[str]:
    """Load torchvision ImageNet weights into stem and layer1..4 (not fc, not the adapter).

    `path`: a .pth state_dict of a torchvision resnet of the model's backbone; default the
    torch hub cache file. Raises WeightsMissing (saying which file to put where) if absent.
    Returns the loaded parameter/buffer names.
    """
    import torchvision

    backbone = model.cfg.backbone
    file = Path(path) if path is not None else imagenet_weights_file(backbone)
    if not file.is_file():
        url = getattr(torchvision.models, _WEIGHTS[backbone]).IMAGENET1K_V1.url
        raise WeightsMissing(
            f"ImageNet weights for {backbone} not found at {file}. Nothing is downloaded: copy "
            f"the file {Path(url).name} (from {url}) to {imagenet_weights_file(backbone)}, "
            f"or pass --imagenet-weights PATH to a {backbone} state_dict.")
    state = torch.load(file, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    mapping = {"conv1.": "stem.0.", "bn1.": "stem.1."}
    mapping.update({f"layer{i}.": f"layer{i}." for i in range(1, 5)})
    own = model.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for src, dst in mapping.items():
            if key.startswith(src):
                target = dst + key[len(src):]
                if target in own and own[target].shape == value.shape:
                    loaded[target] = value
    expected = [k for k in own if k.startswith(("stem.", "layer"))]
    missing = [k for k in expected if k not in loaded]
    if missing:
        raise WeightsMissing(f"{file} is not a torchvision {backbone} state_dict: "
                             f"{len(missing)} backbone tensors missing (e.g. {missing[0]})")
    model.load_state_dict(loaded, strict=False)
    return sorted(loaded)


# -- checkpoints (plain types only: torch.load(weights_only=True) works) -------------------------
def model_to_state(model: RiskNet) -> dict:
    return {"model_config": model.cfg.to_dict(),
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}


def model_from_checkpoint(ckpt: dict) -> RiskNet:
    """Rebuild a RiskNet (eval mode) from a checkpoint dict with model_config + state_dict."""
    model = create_model(ModelConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()
