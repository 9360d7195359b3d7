"""Where tensors live: the `--device auto|cpu|cuda` choice, and mixed precision where safe.

`resolve_device("auto")` is the first CUDA GPU when torch sees one, else the CPU; an explicit
"cuda" (or "cuda:N") on a machine without one is a UserError that says so, rather than
torch's own error halfway through a job. `autocast(device, training)` is the mixed-precision
context for a forward pass:

  cuda, bfloat16 supported (Ampere and later)   bf16 for training and inference
  cuda, no bfloat16                              fp16 for inference only (training in fp32:
                                                 fp16 gradients would need loss scaling)
  cpu                                            none (fp32: what the tests and every
                                                 figure in the README ran with)

Losses and the base-rate GLM (Newton steps, on the CPU) are computed in float32 in any case.
"""

from __future__ import annotations

import contextlib

import torch

from safety_models.errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """torch.device for 'auto' (cuda when available, else cpu), 'cpu', 'cuda' or 'cuda:N'.

    UserError for cuda without a usable GPU, or a name that is none of these."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UserError(
                f"--device {name}: torch sees no CUDA GPU on this machine (torch "
                f"{torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use "
                "--device cpu, or --device auto to take a GPU only where there is one")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} "
                            f"CUDA GPU(s), numbered from 0")
        return device
    raise UserError(f"--device {name!r}: expected one of {', '.join(DEVICE_CHOICES)} "
                    "(or cuda:N)")


def device_of(model: torch.nn.Module) -> torch.device:
    """The device of a model's parameters (cpu for a model without any)."""
    return next(model.parameters(), torch.empty(0)).device


def autocast(device: torch.device, training: bool) -> contextlib.AbstractContextManager:
    """Mixed precision for a forward pass on `device` where it is safe (see the module doc);
    a no-op context elsewhere."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    if torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if not training:
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()
