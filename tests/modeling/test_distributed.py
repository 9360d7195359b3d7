"""distributed.py: torchrun's environment, and fit in 2 CPU processes (gloo) against 1.

The 2-process run is started with torch.multiprocessing.spawn on a free localhost port, as
torchrun would start it (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), and runs the same
fit as the single process: the whole model from scratch, and a pretrained base with its
frozen stages cached (the path where DDP must wrap decode, not forward).
"""

import os
import time

import numpy as np
import pytest
import torch

from safety_models.errors import UserError
from safety_models.modeling import distributed
from safety_models.modeling.synthetic import simulate_city
from safety_models.modeling.training import TrainConfig, fit, pretrain, selection_score

pytestmark = pytest.mark.usefixtures("one_thread")

# A 2-process fit averages the gradients of two half batches, each with its own BatchNorm
# statistics, so it is not bit-equal to one process; on this city each epoch's validation
# score (mean of ROC-AUC and hit rate at 5 %) moved by less than 0.0001. The tolerance leaves room
# for float order without letting a broken split (each rank on its own data, no gradient
# averaging: the ranks then end with different weights) pass.
SCORE_TOLERANCE = 0.02
CONFIGS = {
    "scratch": dict(base="none", freeze_up_to="none"),
    "cached": dict(base="pretrained", freeze_up_to="layer2"),
}


def _city():
    return simulate_city(3, rows=16, cols=16, n_windows=160, window_hours=24,
                         events_per_window=6.0)


def _cfg(name: str) -> TrainConfig:
    return TrainConfig(category="crime", epochs=2, steps_per_epoch=3, batch_size=8, patience=2,
                       val_windows=10, test_windows=10, blend=False, device="cpu",
                       **CONFIGS[name])


def _fit(name: str, base_state):
    counts, starts, mask = _city()
    return fit(counts, starts, mask, _cfg(name),
               base_state=base_state if name == "cached" else None)


def _rank_main(rank: int, world_size: int, port: int, base_path: str, out_dir: str) -> None:
    """One rank: what torchrun's environment and cli.cmd_train's process group give it."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    info = distributed.from_environment()
    base_state = torch.load(base_path, weights_only=True)
    with distributed.process_group(info, torch.device("cpu")):
        out = {}
        for name in CONFIGS:
            result = _fit(name, base_state)
            out[name] = {"validation": result.metrics["validation"],
                         "test": result.metrics.get("test", {}),
                         "state": result.model.state_dict(),
                         "history": result.history,
                         "best_epoch": result.metrics["validation"]["best_epoch"]}
    torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{"one": {config: result}, "rank0": ..., "rank1": ...} of the same fits (one thread, as
    each rank has; the session's thread count is put back after, so later tests' sums are
    taken as the cached tiny home's were)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield _runs(tmp_path_factory)
    finally:
        torch.set_num_threads(before)


def _runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    counts, starts, mask = _city()
    base_state = pretrain([(counts, starts, mask)], max_steps=2, time_budget_s=60, batch_size=2,
                          device="cpu")
    torch.save(base_state, tmp / "base.pt")
    one = {}
    for name in CONFIGS:
        result = _fit(name, base_state)
        one[name] = {"validation": result.metrics["validation"], "test": result.metrics["test"],
                     "history": result.history, "state": result.model.state_dict()}
    torch.multiprocessing.spawn(_rank_main, nprocs=2, join=True,
                                args=(2, distributed.free_port(), str(tmp / "base.pt"), str(tmp)))
    ranks = [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(2)]
    return {"one": one, "rank0": ranks[0], "rank1": ranks[1]}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_two_processes_keep_one_model(runs, name):
    """DDP's gradient averaging and rank 0's early-stopping decision leave every rank with
    the same weights."""
    a, b = runs["rank0"][name], runs["rank1"][name]
    assert a["best_epoch"] == b["best_epoch"]
    for key, value in a["state"].items():
        assert torch.allclose(value.float(), b["state"][key].float(), atol=1e-6), key


@pytest.mark.parametrize("name", list(CONFIGS))
def test_two_processes_reach_the_quality_of_one(runs, name):
    one, two = runs["one"][name], runs["rank0"][name]
    # every epoch's network, kept or not (early stopping may keep the starting point)
    one_epochs = [h["val_score"] for h in one["history"]]
    two_epochs = [h["val_score"] for h in two["history"]]
    assert len(one_epochs) == len(two_epochs) >= 1
    assert np.allclose(two_epochs, one_epochs, rtol=0, atol=SCORE_TOLERANCE), (two_epochs, one_epochs)
    for period in ("validation", "test"):
        assert abs(selection_score(two[period]) - selection_score(one[period])) <= SCORE_TOLERANCE, \
            (period, selection_score(two[period]), selection_score(one[period]))
    # the batch was split: each rank's loss is over its half, so the losses are not the
    # single process's (without the split every rank would repeat the whole batch)
    assert [h["loss"] for h in two["history"]] != [h["loss"] for h in one["history"]]


def test_from_environment_reads_torchrun():
    assert distributed.from_environment({}) is None
    assert distributed.from_environment({"WORLD_SIZE": "1", "RANK": "0"}) is None
    info = distributed.from_environment({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"})
    assert (info.rank, info.world_size, info.local_rank, info.is_main) == (2, 4, 0, False)
    with pytest.raises(UserError, match="RANK"):
        distributed.from_environment({"WORLD_SIZE": "2"})
    with pytest.raises(UserError, match="outside"):
        distributed.from_environment({"WORLD_SIZE": "2", "RANK": "2"})


def test_plain_run_hooks_do_nothing():
    idx = np.arange(5)
    assert distributed.shard(idx) is idx
    assert distributed.from_main({"a": 1}) == {"a": 1}
    assert distributed.wrap_for_training(torch.nn.Linear(2, 2)) is None
    assert distributed.backend_for(torch.device("cpu")) == "gloo"
    assert distributed.backend_for(torch.device("cuda", 0)) == "nccl"


@pytest.mark.slow
def test_torchrun_train_saves_one_model(tmp_path):
    """`torchrun --nproc_per_node 2 -m safety_models train`: both ranks train, rank 0 alone
    records the job and saves the version."""
    import json
    import subprocess
    import sys

    from conftest import synthetic_incidents_csv

    env = {**os.environ, "SAFETY_MODELS_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    env.pop("SAFETY_MODELS_DB_URL", None)
    csv = tmp_path / "crime.csv"
    csv.write_bytes(synthetic_incidents_csv("crime"))
    run = lambda *args: subprocess.run([sys.executable, *args], env=env, capture_output=True,
                                       text=True, timeout=600)
    assert run("-m", "safety_models", "ingest", str(csv), "--category", "crime").returncode == 0
    models = lambda: json.loads(run("-m", "safety_models", "models", "--json").stdout)
    jobs = lambda: [j for j in json.loads(run("-m", "safety_models", "jobs", "--json").stdout)
                    if j["kind"] == "train"]
    models_before, jobs_before = models(), jobs()
    done = run("-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_port", str(distributed.free_port()), "-m", "safety_models", "train",
               "--category", "crime", "--base", "none", "--freeze-up-to", "none",
               "--epochs", "1", "--cell-size-m", "1000", "--device", "cpu", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    printed = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1                               # rank 0 alone reports
    after = models()
    assert len(after) == len(models_before) + 1            # one version saved, by rank 0
    assert printed[0]["model_id"] in [m["model_id"] for m in after]
    new_jobs = [j for j in jobs() if j["job_id"] not in {b["job_id"] for b in jobs_before}]
    assert len(new_jobs) == 1 and new_jobs[0]["status"] == "succeeded"


def _cancel_rank_main(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """One rank of a fit cancelled from rank 0: only rank 0 has should_stop (as only rank 0
    runs the job and polls its cancel flag); it says stop at its 2nd check."""
    from safety_models.modeling.training import Cancelled

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    checks, steps = [], []
    should_stop = (lambda: checks.append(1) or len(checks) >= 2) if rank == 0 else None
    outcome = "finished"
    with distributed.process_group(distributed.from_environment(), torch.device("cpu")):
        counts, starts, mask = _city()
        try:
            fit(counts, starts, mask, _cfg("scratch"), should_stop=should_stop,
                on_progress=lambda d: steps.append(d["batch"]) if d.get("stage") == "train" else None)
        except Cancelled:
            outcome = "cancelled"
    torch.save({"outcome": outcome, "steps": len(steps)}, os.path.join(out_dir, f"cancel{rank}.pt"))


def test_a_cancel_on_rank_0_stops_every_rank_at_the_same_step(tmp_path):
    """Cancel reaches the ranks that do not poll the job: both stop after step 2 of 6 (before,
    rank 1 went on alone and waited in its next all-reduce until torch's timeout)."""
    before = torch.get_num_threads()
    context = torch.multiprocessing.spawn(_cancel_rank_main, nprocs=2, join=False,
                                          args=(2, distributed.free_port(), str(tmp_path)))
    try:
        # a rank left waiting would hang until torch's 30-minute timeout: fail sooner
        # (join returns False while a process is left, each time one ends)
        deadline = time.monotonic() + 300
        while not context.join(timeout=max(1.0, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                pytest.fail("a rank was still running 300 s after the cancel")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
        torch.set_num_threads(before)
    ranks = [torch.load(tmp_path / f"cancel{r}.pt", weights_only=True) for r in range(2)]
    assert ranks == [{"outcome": "cancelled", "steps": 2}] * 2
