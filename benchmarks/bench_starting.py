"""The product's starting forecast (no network training) at every horizon, backtested by the
product: what a city gets in its first minutes, and since the stacked forecaster
(modeling/stack.py) is one of its candidates, a quick check of the stack through the
product's own path (ingest, train_starting_forecast, evaluate_category).

    python benchmarks/bench_starting.py --shared-data /work/shared/data \
        [--categories crime,traffic,health] [--horizons 1,7,30] [--home DIR] [--flag-area 0.75sqmi]
        [--files PATH,...]   # another dataset for the one category given (cities not developed on)

Per dataset and horizon: what shipped (chosen on validation windows), test PAI@5 / ROC-AUC of
it and of the baselines, the paired block-bootstrap interval of its difference from the best
baseline (per-window PAI@5 and AUC), the share of that baseline's gap to the hindsight oracle
it closes, and the wall / CPU seconds of training and evaluating. Only this script reads the
shared data folder; the library never does.
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
    ap.add_argument("--horizons", default="1,7,30", help="days; 1 = the next window")
    ap.add_argument("--home", type=Path, help="default: a temporary folder")
    ap.add_argument("--flag-area", dest="flag_areas", action="append", default=[])
    ap.add_argument("--files", help="other shared files for the one category given, comma-separated paths "
                                    "under --shared-data (e.g. traffic/nyc_crashes_2023_01/nyc_crashes_202301.csv)")
    args = ap.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="bench_starting_"))
    os.environ["SAFETY_MODELS_HOME"] = str(home)
    os.environ.pop("SAFETY_MODELS_DB_URL", None)
    from safety_models.data import ingest
    from safety_models.data.store import Store
    from safety_models.evaluation import backtest
    from safety_models.service import workflows

    print(f"home {home}; load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    store = Store()
    files = dataset_files(ap, args.categories, args.files)
    for category in args.categories.split(","):
        if store.incidents(category).empty:
            for rel in files[category]:
                ingest.ingest_path(store, args.shared_data / rel, category)
        for h in args.horizons.split(","):
            days = int(h)
            horizon = None if days <= 1 or (category == "health" and days < 7) else days
            t0, c0 = time.perf_counter(), time.process_time()
            model_id = workflows.train_starting_forecast(store, category, evaluate=False, horizon=horizon)
            t_train, c_train = time.perf_counter() - t0, time.process_time() - c0
            t0, c0 = time.perf_counter(), time.process_time()
            result = backtest.evaluate_category(store, category, model_id, flag_areas=args.flag_areas,
                                                horizon=f"{horizon}d" if horizon else None).to_dict()
            t_eval, c_eval = time.perf_counter() - t0, time.process_time() - c0
            res = result["results"]
            model = res["model"]
            gap = model.get("oracle_gap") or {}
            best = gap.get("best_baseline")
            diff = (model.get("vs_baselines") or {}).get(best, {})
            print(f"\n== {category}, horizon {horizon or 'next window'}: {model_id} "
                  f"(train {t_train:.1f} s wall / {c_train:.1f} s CPU, evaluate {t_eval:.1f} s / {c_eval:.1f} s)")
            print(f"   shipped: {(model.get('blend') or {}).get('description', 'network')} -- "
                  f"{(model.get('blend') or {}).get('reason', '')}")
            shown = {"shipped": model, **res["baselines"], "oracle": res["oracle"]}
            for name, m in shown.items():
                area = ""
                if args.flag_areas and m.get("hit_rate_area"):
                    area = f"  hit rate at {args.flag_areas[0]} {m['hit_rate_area'].get(args.flag_areas[0]):.3f}"
                print(f"   {name:22s} PAI@5 {m['pai']['5']:.3f}  ROC-AUC {m['roc_auc']:.4f}{area}")
            nan2 = [float("nan")] * 2
            pai_d, auc_d = diff.get("pai_5", {}), diff.get("auc", {})
            print(f"   shipped - {best}: PAI@5 {pai_d.get('mean_difference', float('nan')):+.3f} "
                  f"({pai_d.get('ci95', nan2)[0]:+.3f} .. {pai_d.get('ci95', nan2)[1]:+.3f}), "
                  f"per-window AUC {auc_d.get('mean_difference', float('nan')):+.4f} "
                  f"({auc_d.get('ci95', nan2)[0]:+.4f} .. {auc_d.get('ci95', nan2)[1]:+.4f}); "
                  f"closes {gap.get('pai_5_share', float('nan')):.0%} of its gap to the oracle")
    print(f"\nload average now {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
