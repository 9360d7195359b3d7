"""How fast incidents become a count tensor: projection + cell assignment, then binning.

Synthetic: 1,000,000 incidents (fixed seed) over a ~30 x 30 km city around Chicago's centre
during 3 years, half clustered in hot spots, half spread out. Prints rows per second for each
stage and in total; no assertions (the target is about one second in total on 2 cores).

    python benchmarks/bench_aggregation.py [n_incidents]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

# Runnable as a plain script from anywhere without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from safety_models import grid

CENTRE_LAT, CENTRE_LON = 41.85, -87.68
HALF_SIDE_M = 15_000.0
N_DAYS = 3 * 365


def synthetic_incidents(n_incidents: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    """(lat, lon, occurred_at) of n_incidents, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    n_spread = n_incidents // 2
    n_hot = n_incidents - n_spread
    hot_centres_m = rng.uniform(-HALF_SIDE_M, HALF_SIDE_M, size=(40, 2))
    hot = hot_centres_m[rng.integers(0, 40, n_hot)] + rng.normal(0.0, 400.0, size=(n_hot, 2))
    spread = rng.uniform(-HALF_SIDE_M, HALF_SIDE_M, size=(n_spread, 2))
    offsets_m = np.concatenate([hot, spread])  # (incidents, [east, north])
    # Metres -> degrees near the centre; good enough for a benchmark's spatial layout.
    lat = CENTRE_LAT + offsets_m[:, 1] / 111_320.0
    lon = CENTRE_LON + offsets_m[:, 0] / (111_320.0 * np.cos(np.radians(CENTRE_LAT)))
    seconds = rng.integers(0, N_DAYS * 86_400, n_incidents)
    occurred_at = pd.Series(pd.Timestamp("2021-01-01") + pd.to_timedelta(np.sort(seconds), unit="s"))
    return lat, lon, occurred_at


def _rate(n_rows: int, seconds: float) -> str:
    return f"{n_rows / seconds:>14,.0f} rows/s  ({seconds:6.3f} s)"


def main(n_incidents: int = 1_000_000) -> dict[str, float]:
    """Run the benchmark, print the figures and return the seconds of each stage."""
    lat, lon, occurred_at = synthetic_incidents(n_incidents)
    spec = grid.fit_grid(lat, lon, cell_size_m=500.0)
    starts = grid.window_starts(occurred_at.min(), occurred_at.max(), 24)
    grid.latlon_to_cell(spec, lat[:10], lon[:10])  # warm the cached Transformer

    t0 = time.perf_counter()
    cell_ids = grid.latlon_to_cell(spec, lat, lon)
    t1 = time.perf_counter()
    counts = grid.count_tensor_from_cells(
        cell_ids, occurred_at, spec.shape, starts[0], 24, len(starts)
    )  # (windows, rows, cols)
    t2 = time.perf_counter()
    counts_again = grid.count_tensor(spec, occurred_at, lat, lon, starts[0], 24, len(starts))
    t3 = time.perf_counter()

    project_s, bin_s, total_s = t1 - t0, t2 - t1, t3 - t2
    print(f"incidents:            {n_incidents:,} over {len(starts)} daily windows")
    print(f"grid:                 {spec.n_rows} x {spec.n_cols} cells of {spec.cell_size_m:.0f} m ({spec.crs})")
    print(f"counted:              {int(counts.sum()):,} ({int(counts_again.sum()):,} via count_tensor)")
    print(f"projection + cells:   {_rate(n_incidents, project_s)}")
    print(f"count tensor (bins):  {_rate(n_incidents, bin_s)}")
    print(f"total (count_tensor): {_rate(n_incidents, total_s)}")
    return {"projection_s": project_s, "count_tensor_s": bin_s, "total_s": total_s}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
