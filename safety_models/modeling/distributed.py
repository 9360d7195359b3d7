"""Training in more than one process: torchrun and DistributedDataParallel.

    torchrun --nproc_per_node 2 -m safety_models train --category crime ...

torchrun starts N copies of the command and tells each its place through the environment
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). `from_environment` reads that
place (None for a plain run), `process_group` joins the group (gloo on the CPU, nccl on
CUDA GPUs, one GPU per local rank) and leaves it at the end.

How `training.fit` splits the work (its hooks are `wrap_for_training`, `shard` and
`from_main`, each a no-op in a plain run):
- every rank has the same data, seed, starting weights (DDP broadcasts rank 0's at the
  start) and the same random order of training windows; TrainConfig.batch_size stays the
  GLOBAL batch, and each rank trains on its share of it (`shard`: rank r takes the windows
  r, r + N, ...), the job of a DistributedSampler in a DataLoader;
- DistributedDataParallel averages the gradients over the ranks after each backward pass,
  so one step equals one step on the whole batch (BatchNorm statistics of the trainable
  stages are each rank's own: the source of the small differences from a single process);
- validation scores and the early-stopping decision are rank 0's (`from_main`), so every
  rank stops at the same epoch and keeps the same weights;
- only rank 0 writes anything (the job row, the model version, the registry); the other
  ranks fit and discard their result (service/workflows.fit_as_worker_rank);
- a cancel (rank 0's job flag) stops every rank at the same step (`any_rank_stops`, checked
  where fit checks should_stop): all raise training.Cancelled.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist

from safety_models.errors import UserError


@dataclass(frozen=True)
class RankInfo:
    """One process's place in a torchrun group: rank (0..world_size - 1 over all machines),
    world_size, local_rank (its number on this machine: the GPU it takes)."""
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that reports progress and writes the model and registry."""
        return self.rank == 0


def from_environment(environ: dict | None = None) -> RankInfo | None:
    """The RankInfo torchrun put in the environment; None when not started by torchrun or
    with a single process (WORLD_SIZE unset or 1). UserError for inconsistent values."""
    env = os.environ if environ is None else environ
    if int(env.get("WORLD_SIZE", "1") or 1) <= 1:
        return None
    try:
        info = RankInfo(int(env["RANK"]), int(env["WORLD_SIZE"]),
                        int(env.get("LOCAL_RANK", env["RANK"])))
    except (KeyError, ValueError) as err:
        raise UserError(f"WORLD_SIZE={env.get('WORLD_SIZE')} asks for a distributed run, but "
                        f"RANK/LOCAL_RANK are missing or not numbers ({err}); start it with "
                        "torchrun --nproc_per_node N -m safety_models train ...") from err
    if not 0 <= info.rank < info.world_size:
        raise UserError(f"RANK={info.rank} is outside 0..{info.world_size - 1} (WORLD_SIZE)")
    return info


def backend_for(device: torch.device) -> str:
    """nccl for CUDA devices, gloo for the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(info: RankInfo, device: torch.device) -> torch.device:
    """The device of one rank: its own GPU (cuda:LOCAL_RANK) on CUDA, else the CPU."""
    if device.type != "cuda":
        return torch.device("cpu")
    if info.local_rank >= torch.cuda.device_count():
        raise UserError(f"LOCAL_RANK {info.local_rank} has no GPU of its own: this machine has "
                        f"{torch.cuda.device_count()}; use --nproc_per_node "
                        f"{torch.cuda.device_count()} or fewer, or --device cpu")
    return torch.device("cuda", info.local_rank)


@contextlib.contextmanager
def process_group(info: RankInfo, device: torch.device) -> Iterator[torch.device]:
    """Join the group for the duration of the block (MASTER_ADDR/PORT from the environment);
    yields this rank's device. Leaves the group however the block ends."""
    own = rank_device(info, device)
    if own.type == "cuda":
        torch.cuda.set_device(own)
    dist.init_process_group(backend_for(own), rank=info.rank, world_size=info.world_size)
    try:
        yield own
    finally:
        dist.destroy_process_group()


def active() -> bool:
    """Whether this process is in a group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait until every rank got here (nothing in a plain run)."""
    if active():
        dist.barrier()


class _TrainingForward(torch.nn.Module):
    """What one training step runs, as a forward() that DDP can wrap: the whole model, or
    the stages after the cached frozen ones (training.train_step). DDP's gradient averaging
    is armed by its forward, so the cached path must go through it too."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, cached: dict[str, torch.Tensor] | None):
        if cached is None:
            return self.model(x)                                        # (B, H, W) each
        return self.model.decode(x, self.model.encode_rest(cached))


def wrap_for_training(model: torch.nn.Module) -> torch.nn.Module | None:
    """The model under DistributedDataParallel, as the forward a training step calls
    (x, cached) -> (logit, log_rate); None in a plain run. Call after freezing (DDP averages
    the gradients of the parameters that require them) and on the model's device; it copies
    rank 0's weights and buffers to every rank."""
    if not active():
        return None
    device = next(model.parameters()).device
    return torch.nn.parallel.DistributedDataParallel(
        _TrainingForward(model), device_ids=[device.index] if device.type == "cuda" else None)


def shard(indices: np.ndarray) -> np.ndarray:
    """This rank's share of a global batch: every world_size-th index from its rank (all of
    them in a plain run). Ranks get sizes that differ by at most one."""
    if not active():
        return indices
    return indices[dist.get_rank()::dist.get_world_size()]


def from_main(value: Any) -> Any:
    """Rank 0's value on every rank (a picklable object); the value itself in a plain run.
    Decisions taken from it (early stopping) are then the same on every rank."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank_stops(stop: bool) -> bool:
    """Whether this rank or any other asks to stop, on every rank (each rank calls it at
    the same point of its loop: it is a collective); `stop` itself in a plain run.

    How a cancel reaches every rank: only rank 0 runs the job and polls its cancel flag, and
    a rank that stopped alone would leave the others waiting in their next all-reduce until
    torch's timeout. One int all-reduced (MAX) per check costs a few microseconds beside a
    training step."""
    if not active():
        return bool(stop)
    device = (torch.device("cuda", torch.cuda.current_device())
              if dist.get_backend() == "nccl" else torch.device("cpu"))
    flag = torch.tensor([1 if stop else 0], dtype=torch.int32, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def free_port() -> int:
    """A free TCP port on localhost (for MASTER_PORT when starting ranks by hand)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
