"""Where a new grid's lines fall (modeling.city.choose_grid): does the placement chosen on the
validation period also catch more on the later, unseen test period?

    python benchmarks/bench_grid_offset.py --shared-data /work/shared/data
    python benchmarks/bench_grid_offset.py --shared-data /work/shared/data --cell-sizes 500,150 \
        --flag-area 0.75sqmi [--categories crime] [--files crime/houston_crime_2010/...csv]

Per dataset and cell size, each placement choose_grid tries (the fitted grid, and shifted by
half a cell east, north, both): its validation score (what choose_grid ranks by: the training
period's counts ranking the cells, the validation period's events caught in the top 1 % plus
top 5 % of the city), and on the test period (the last 365 days, as training splits it) the
hit rate at 1 % and 5 % of the city and at each --flag-area of the historical average (every
window before the test period ranks the cells), with the one choose_grid picks marked, and
the chosen placement's test difference from the fitted grid's. No model is trained: the
historical average stands in for any forecaster that ranks persistent hot spots, and the
time each choice takes (the placements' binning and scores) is printed beside its floor, one
binning of the incidents on the fitted grid. Only this script reads the shared data folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_evaluation import dataset_files  # noqa: E402  (the same files as the full backtest)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared-data", type=Path, required=True)
    ap.add_argument("--categories", default="crime,traffic,health")
    ap.add_argument("--cell-sizes", default="500,150")
    ap.add_argument("--flag-area", dest="flag_areas", action="append", default=[])
    ap.add_argument("--files", help="other files for the one category given, comma-separated paths under --shared-data")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench_grid_offset_"))
    os.environ["SAFETY_MODELS_HOME"] = str(home)
    os.environ.pop("SAFETY_MODELS_DB_URL", None)
    import numpy as np

    from safety_models import grid as gridlib
    from safety_models.data import ingest
    from safety_models.data.store import Store
    from safety_models.evaluation.metrics import hit_rate, hit_rate_area
    from safety_models.units import parse_area
    from safety_models.features import FeatureConfig
    from safety_models.modeling import city as citylib
    from safety_models.modeling.training import TrainConfig, split_windows
    from safety_models.schema import DEFAULT_WINDOW_HOURS

    store = Store()
    files = dataset_files(ap, args.categories, args.files)
    print(f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    gains = []
    for category in args.categories.split(","):
        for rel in files[category]:
            ingest.ingest_path(store, args.shared_data / rel, category)
        incidents = store.incidents(category)
        boundary = store.boundary(category)
        hours = DEFAULT_WINDOW_HOURS[category]
        for size in (float(s) for s in args.cell_sizes.split(",")):
            t0 = time.perf_counter()
            fitted = gridlib.fit_grid(incidents["latitude"], incidents["longitude"], size)
            starts = gridlib.window_starts(incidents["occurred_at"].min(), incidents["occurred_at"].max(), hours)
            gridlib.count_tensor(fitted, incidents["occurred_at"], incidents["latitude"], incidents["longitude"],
                                 starts[0], hours, len(starts))
            t_floor = time.perf_counter() - t0
            t0 = time.perf_counter()
            rows = citylib.grid_placements(category, incidents, size, hours, boundary)
            chosen = citylib.pick_placement(rows)          # choose_grid = these two steps
            t_choose = time.perf_counter() - t0
            print(f"\n== {category} ({', '.join(Path(f).parent.name for f in files[category][:1])}), "
                  f"{size:.0f} m cells: choosing took {t_choose:.1f} s (floor: one binning {t_floor:.1f} s, "
                  f"ratio {t_choose / t_floor:.1f})")
            test = {}
            for row in rows:
                spec = row["grid"]
                counts = gridlib.count_tensor(spec, incidents["occurred_at"], incidents["latitude"],
                                              incidents["longitude"], starts[0], hours, len(starts))
                _, _, val_end, n = split_windows(counts, TrainConfig(category=category, window_hours=hours),
                                                 FeatureConfig(window_hours=hours))
                mask = citylib._city_mask(spec, counts[:val_end], boundary)
                ranking = counts[:val_end].sum(axis=0).ravel()
                observed = counts[val_end:].sum(axis=0).ravel()
                cells = {f"{c:.0%}": hit_rate(ranking, observed, c, mask) for c in (0.01, 0.05)}
                for area in args.flag_areas:
                    cells[area] = hit_rate_area(ranking, observed, parse_area(area), size, mask)
                test[(row["east_cells"], row["north_cells"])] = cells
                mark = "  <- chosen" if spec == chosen else ""
                print(f"   shift east {row['east_cells']:.1f} north {row['north_cells']:.1f}: validation score "
                      f"{row['score']:.4f}; test hit rate " +
                      ", ".join(f"{k} {v:.4f}" for k, v in cells.items()) + mark)
            pick = next((r["east_cells"], r["north_cells"]) for r in rows if r["grid"] == chosen)
            diff = {k: test[pick][k] - test[(0.0, 0.0)][k] for k in test[pick]}
            gains.append((category, size, pick, diff))
            print("   chosen - fitted on test: " + ", ".join(f"{k} {v:+.4f}" for k, v in diff.items()))
    print("\nsummary (test hit rate, chosen placement - fitted grid):")
    for category, size, pick, diff in gains:
        print(f"   {category:8s} {size:5.0f} m  shift {pick}: " + ", ".join(f"{k} {v:+.4f}" for k, v in diff.items()))
    print(f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
