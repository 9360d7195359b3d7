"""Train time of fine-tuning (frozen early stages, cached) vs training from scratch, and the
latency of predicting one city window; on a simulated city and, when available, real data.

    python benchmarks/bench_training.py                      # synthetic city (+ shared Chicago data if present)
    python benchmarks/bench_training.py --data PATH.csv.gz   # a csv with date, latitude, longitude columns
    python benchmarks/bench_training.py --steps 20 --threads 2

Both runs take the same number of optimizer steps, so the times compare per-step cost (the
fine-tuned run also pays for encoding the frozen stages once). The 'pretrained' base here is a
short pretraining (--pretrain-steps) on the simulated corpus, enough for timing only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout

from safety_models.modeling.synthetic import simulate_city
from safety_models.modeling.training import TrainConfig, fit, predict_window, pretrain

SHARED_CHICAGO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "crime" / "chicago_assaults" / "chicago_aggravated_assaults.csv.gz"


def real_city(path: Path, years: int = 4):
    from safety_models import grid

    df = pd.read_csv(path)
    time_col = next(c for c in df.columns if c.lower() in ("date", "datetime", "occurred_at"))
    lat_col = next(c for c in df.columns if c.lower() == "latitude")
    lon_col = next(c for c in df.columns if c.lower() == "longitude")
    df[time_col] = pd.to_datetime(df[time_col])
    df = df[df[time_col] >= df[time_col].max() - pd.Timedelta(days=365 * years)].dropna(subset=[lat_col, lon_col])
    spec = grid.fit_grid(df[lat_col].to_numpy(), df[lon_col].to_numpy(), 500.0)
    starts = grid.window_starts(df[time_col].min(), df[time_col].max(), 24)
    counts = grid.count_tensor(spec, df[time_col], df[lat_col].to_numpy(), df[lon_col].to_numpy(),
                               starts[0], 24, len(starts))
    return counts, starts.to_numpy(), grid.history_mask(counts)


def bench(name: str, counts, starts, mask, base: dict, steps: int) -> None:
    print(f"\n{name}: {counts.shape[0]} windows x {counts.shape[1]} x {counts.shape[2]} cells, "
          f"{int(counts.sum())} events")
    common = dict(category="crime", epochs=1, steps_per_epoch=steps, batch_size=16)
    for label, cfg, state in (
            ("fine-tune (pretrained, freeze_up_to=layer2, cached)", TrainConfig(base="pretrained", freeze_up_to="layer2", **common), base),
            ("fine-tune (pretrained, freeze_up_to=layer2, no cache)", TrainConfig(base="pretrained", freeze_up_to="layer2", cache_frozen=False, **common), base),
            ("scratch (none, everything trained)", TrainConfig(base="none", **common), None)):
        t0 = time.perf_counter()
        res = fit(counts, starts, mask, cfg, base_state=state)
        secs = time.perf_counter() - t0
        test = res.metrics.get("test", {})
        print(f"  {label:55s} {steps} steps: {secs:6.1f} s  test PAI@5 {test.get('pai_5', float('nan')):.2f} "
              f"AUC {test.get('roc_auc', float('nan')):.3f}")
    model, fcfg = res.model, res.feature_config
    predict_window(model, counts, starts, len(counts), fcfg, mask)      # warm-up
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        predict_window(model, counts, starts, len(counts), fcfg, mask)
        times.append(time.perf_counter() - t0)
    print(f"  predict one window (next day, features + forward): median {np.median(times) * 1000:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=None, help="csv(.gz) with date/latitude/longitude")
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--pretrain-steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    city = simulate_city(7, rows=60, cols=60, n_windows=900, window_hours=24, events_per_window=30.0)
    t0 = time.perf_counter()
    base = pretrain([city], max_steps=args.pretrain_steps, time_budget_s=600, batch_size=8)
    print(f"pretrain {args.pretrain_steps} steps: {time.perf_counter() - t0:.1f} s")
    bench("synthetic city", *city, base=base, steps=args.steps)
    path = args.data or (SHARED_CHICAGO.resolve() if SHARED_CHICAGO.resolve().is_file() else None)
    if path is not None:
        bench(f"real data {path.name}", *real_city(path), base=base, steps=args.steps)


if __name__ == "__main__":
    main()
