"""The product's default fine-tune, end to end at a cell size, and the time to predict a city;
each figure printed beside a floor measured in the same run, and the ratio.

    python benchmarks/bench_training.py --shared-data /work/shared/data              # 500 m
    python benchmarks/bench_training.py --shared-data /work/shared/data --cell-size 150
    python benchmarks/bench_training.py                                               # a simulated city

On Chicago's aggravated assaults (the last --years years, daily windows) it times:
grid + aggregation (floor: np.bincount of the same flat cell-window ids), a default
`training.fit` (TrainConfig(category="crime"), from a base pretrained for --pretrain-steps
steps: enough for timing, not for scores) split by stage as fit reports them (floor: the
same number of bare forward/backward passes of the same network on one batch of the same
size; fit's training steps run only the unfrozen stages, so they can be faster than this
floor), predicting the next window (features + forward; floor: one bare forward pass of
the same network on ready-made inputs), and the process's peak memory. Beside each wall time,
the CPU seconds of this process: on a machine shared with other work the wall times follow
the load (a bare forward pass took 0.011 s in one run and 0.141 s in the next), the CPU
seconds much less; an otherwise idle 2-core machine takes between half and all of them. The goals on a
2-core machine: fine-tune <= 2 min at 500 m, <= 10 min at 150 m; predict <= 0.2 s.
Only this script reads the shared data folder; the library never does.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout

CHICAGO = "crime/chicago_assaults/chicago_aggravated_assaults.csv.gz"


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def line(what: str, seconds: float, floor_what: str, floor_s: float, cpu_s: float | None = None,
         floor_cpu_s: float | None = None) -> None:
    cpu = "" if cpu_s is None else f"   CPU {cpu_s:8.2f} s, floor's {floor_cpu_s:7.3f} s, ratio {cpu_s / max(floor_cpu_s, 1e-9):5.1f}"
    print(f"  {what:44s} {seconds:8.2f} s   floor ({floor_what}) {floor_s:7.3f} s   ratio {seconds / max(floor_s, 1e-9):6.1f}{cpu}")


def real_city(path: Path, years: int, cell_size_m: float):
    """(counts (T, H, W), starts, mask, grid) for the last `years` years of a date/latitude/longitude csv."""
    from safety_models import grid

    df = pd.read_csv(path, usecols=["date", "latitude", "longitude"], parse_dates=["date"])
    df = df[df["date"] >= df["date"].max() - pd.Timedelta(days=round(365.25 * years))].dropna()
    t0 = time.perf_counter()
    spec = grid.fit_grid(df["latitude"].to_numpy(), df["longitude"].to_numpy(), cell_size_m)
    starts = grid.window_starts(df["date"].min(), df["date"].max(), 24)
    counts = grid.count_tensor(spec, df["date"], df["latitude"].to_numpy(), df["longitude"].to_numpy(),
                               starts[0], 24, len(starts))
    mask = grid.city_mask(spec, counts)
    seconds = time.perf_counter() - t0
    # floor: the bare histogram of flat (window, cell) ids, projection and window arithmetic done
    cells = grid.latlon_to_cell(spec, df["latitude"].to_numpy(), df["longitude"].to_numpy())
    window = ((df["date"] - starts[0]) // pd.Timedelta(hours=24)).to_numpy()
    flat = window * spec.n_cells + cells
    t0 = time.perf_counter()
    np.bincount(flat[cells >= 0], minlength=len(starts) * spec.n_cells)
    floor = time.perf_counter() - t0
    print(f"\n{path.name}, last {years} years: {len(df):,} events, {len(starts)} windows x {spec.n_rows} x "
          f"{spec.n_cols} cells of {cell_size_m:g} m ({int(mask.sum()):,} in the city)")
    line("grid + aggregation + city mask", seconds, "np.bincount of the ids", floor)
    return counts, starts, mask, spec


class StageClock:
    """An on_progress callback noting when each reported stage starts (stages may repeat)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self.marks: list[tuple[str, float, float]] = []
        self.steps = 0

    def __call__(self, d: dict) -> None:
        stage = str(d.get("stage"))
        if stage == "train":
            self.steps += 1
        if not self.marks or self.marks[-1][0] != stage:
            self.marks.append((stage, time.perf_counter() - self.t0, time.process_time() - self.cpu0))
            print(f"    ... {stage} from {self.marks[-1][1]:.1f} s", flush=True)

    def spans(self) -> dict[str, tuple[float, float]]:
        """{stage: (wall seconds, CPU seconds of this process)}, summed over its spans."""
        out: dict[str, tuple[float, float]] = {}
        ends = [(t, c) for _, t, c in self.marks[1:]] + [(time.perf_counter() - self.t0, time.process_time() - self.cpu0)]
        for (stage, start, cpu_start), (end, cpu_end) in zip(self.marks, ends):
            if stage != "done":
                wall, cpu = out.get(stage, (0.0, 0.0))
                out[stage] = (wall + end - start, cpu + cpu_end - cpu_start)
        return out


def bench(counts, starts, mask, spec, base: dict, cfg) -> None:
    from safety_models.modeling.training import fit, predict_window

    clock = StageClock()
    t0, c0 = time.perf_counter(), time.process_time()
    res = fit(counts, starts, mask, cfg, base_state=base, on_progress=clock, grid=spec)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    model = res.model
    # floor: bare forward/backward passes of the same network (every stage) on one batch
    x = torch.randn(cfg.batch_size, model.cfg.in_channels, *counts.shape[1:])
    model.train()
    logit, log_rate = model(x)
    (logit.mean() + log_rate.mean()).backward()                              # warm-up
    t1, c1 = time.perf_counter(), time.process_time()
    logit, log_rate = model(x)
    (logit.mean() + log_rate.mean()).backward()
    bare_step, bare_cpu = time.perf_counter() - t1, time.process_time() - c1
    model.zero_grad(set_to_none=True)
    model.eval()
    steps = max(1, clock.steps)
    print(f"  default fine-tune: {len(res.history)} epochs run, kept epoch {res.metrics['validation']['best_epoch']}, "
          f"ships {res.blend.describe() if hasattr(res.blend, 'describe') else res.blend.weights}")
    line(f"fit, all stages ({steps} training steps)", seconds, f"{steps} bare fwd+bwd of batch {cfg.batch_size}",
         steps * bare_step, cpu_seconds, steps * bare_cpu)
    for stage, (span, cpu) in clock.spans().items():
        print(f"    {stage:42s} {span:8.2f} s   CPU {cpu:8.2f} s")
    test = res.metrics.get("test", {})
    print(f"  test PAI@5 {test.get('pai_5', float('nan')):.2f}  ROC-AUC {test.get('roc_auc', float('nan')):.3f} "
          f"(short-pretrained base: for timing, not a score to quote)")
    fcfg = res.feature_config
    predict_window(model, counts, starts, len(counts), fcfg, mask)            # warm-up
    times, cpus = [], []
    for _ in range(5):
        t1, c1 = time.perf_counter(), time.process_time()
        predict_window(model, counts, starts, len(counts), fcfg, mask)
        times.append(time.perf_counter() - t1)
        cpus.append(time.process_time() - c1)
    with torch.inference_mode():
        x1 = torch.randn(1, model.cfg.in_channels, *counts.shape[1:])
        model(x1)
        floors, floor_cpus = [], []
        for _ in range(5):
            t1, c1 = time.perf_counter(), time.process_time()
            model(x1)
            floors.append(time.perf_counter() - t1)
            floor_cpus.append(time.process_time() - c1)
    line("predict the next window (median of 5)", float(np.median(times)), "one bare forward",
         float(np.median(floors)), float(np.median(cpus)), float(np.median(floor_cpus)))
    print(f"  peak memory of this process so far: {peak_rss_gb():.2f} GB")


def main() -> None:
    from safety_models.modeling.training import TrainConfig, pretrain

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared-data", type=Path, help="the shared data folder (Chicago assaults)")
    ap.add_argument("--cell-size", type=float, default=500.0, help="cell size in metres")
    ap.add_argument("--years", type=int, default=4)
    ap.add_argument("--pretrain-steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from safety_models.modeling.synthetic import simulate_city

    t0 = time.perf_counter()
    small = simulate_city(7, rows=40, cols=40, n_windows=500, window_hours=24, events_per_window=20.0)
    base = pretrain([small], max_steps=args.pretrain_steps, time_budget_s=600, batch_size=4)
    print(f"short pretraining ({args.pretrain_steps} steps, for timing only): {time.perf_counter() - t0:.1f} s")
    cfg = TrainConfig(category="crime", cell_size_m=args.cell_size)
    print(f"TrainConfig: the product's default (epochs {cfg.epochs} x {cfg.steps_per_epoch} steps of "
          f"{cfg.batch_size}, patience {cfg.patience}, freeze {cfg.freeze_up_to}), {args.threads} threads")
    if args.shared_data:
        counts, starts, mask, spec = real_city(args.shared_data / CHICAGO, args.years, args.cell_size)
    else:
        from safety_models.grid import GridSpec

        counts, starts, mask = simulate_city(3, rows=80, cols=60, n_windows=1460, window_hours=24,
                                             events_per_window=40.0)
        spec = GridSpec("", 0.0, 0.0, args.cell_size, counts.shape[1], counts.shape[2])
        print(f"\nsimulated city: {counts.shape[0]} windows x {counts.shape[1]} x {counts.shape[2]} cells")
    bench(counts, starts, mask, spec, base, cfg)


if __name__ == "__main__":
    main()
