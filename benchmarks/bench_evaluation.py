"""Backtest time and the model-vs-baselines table.

Three ways to run it:

    python benchmarks/bench_evaluation.py --synthetic
        A year of daily test windows (plus 60 validation windows) on a 90 x 60 grid of a
        synthetic city, with an untrained model: the time of the backtest alone (the target
        is well under a minute on 2 CPU cores).

    SAFETY_MODELS_HOME=/path/to/home python benchmarks/bench_evaluation.py --category crime
        The category's active model (or --model-id) in an existing home: time and table.

    python benchmarks/bench_evaluation.py --shared-data /work/shared/data [--categories crime,traffic,health]
        Loads the shared Chicago aggravated assaults (crime), Barcelona accidents (traffic) and
        Chicago West Nile virus traps (health) into a fresh temporary home (or --home), trains a
        model per category (--base, --epochs) and backtests it: time and table per dataset, the
        shipped forecaster (blend or network), model - baseline differences with paired
        block-bootstrap intervals, the share of each baseline's gap to the hindsight oracle the
        model closes, and a summary across datasets; --flag-area 0.75sqmi adds flagged areas;
        --cell-size 150 trains on 150 m cells instead of the product's 500 m. Also times what the
        pages show of the new model: its forecasts, the next window, the CSV/GeoJSON downloads.

Only this script reads the shared data folder; the library never does.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

# Runnable as a plain script from anywhere without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHOWN = ["pai_5", "hit_rate_5", "pei_5", "roc_auc", "pr_auc", "brier", "balanced_accuracy", "accuracy",
         "always_no_event_accuracy"]

# The shared files per category (relative to --shared-data).
SHARED_FILES: dict[str, list[str]] = {
    "crime": ["crime/chicago_assaults/chicago_aggravated_assaults.csv.gz"],
    "traffic": [f"traffic/bcn_accidents/clean/bcn_accidents_{year}.csv" for year in range(2010, 2020)],
    "health": ["health/chicago_wnv/train.csv"],
}


def dataset_files(ap: argparse.ArgumentParser, categories: str, files: str | None) -> dict[str, list[str]]:
    """SHARED_FILES, with --files (comma-separated paths under --shared-data) in place of the
    one category given; an argparse error when --files comes with several categories."""
    chosen = dict(SHARED_FILES)
    if files:
        if "," in categories:
            ap.error("--files needs exactly one category")
        chosen[categories] = files.split(",")
    return chosen


class StepTimer:
    """An on_progress callback that notes when each step ("model", a baseline, "done") starts."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.t0 = time.perf_counter()

    def __call__(self, progress: dict) -> None:
        self.started.setdefault(str(progress.get("step")), time.perf_counter() - self.t0)

    def describe(self) -> str:
        marks = sorted(self.started.items(), key=lambda kv: kv[1])
        spans = [f"{name} {(marks[i + 1][1] if i + 1 < len(marks) else t) - t:.1f} s"
                 for i, (name, t) in enumerate(marks) if name != "done"]
        return ", ".join(spans) + " (each baseline's span includes its scoring; 'model' includes the model's)"


def print_result(label: str, result, seconds: float, timer: StepTimer | None = None) -> dict:
    """Print the table, the paired differences and the oracle gap; return one summary row."""
    from safety_models.evaluation.backtest import summary_table

    d = result.to_dict()
    model = d["results"]["model"]
    print(f"\n== {label}: {d['category']} model {d['model_id']}")
    print(f"test {d['test_start']} .. {d['test_end']}: {d['n_windows']} windows of {d['window_hours']} h, "
          f"{d['n_test_events']:,} events, cells {d['cell_size_m']:g} m; backtest {seconds:.1f} s")
    if timer is not None:
        print(f"  time by step: {timer.describe()}")
    if model.get("blend"):
        print(f"  shipped forecaster: {model['blend'].get('description')} ({model['blend'].get('reason')})")
    table = summary_table(d, extra=True)[SHOWN]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print(table)
    comparisons = dict(model.get("vs_baselines", {}))
    if model.get("vs_network"):
        comparisons["network (alone)"] = model["vs_network"]
    for name, comparison in comparisons.items():
        parts = []
        for key, what in (("pai_5", "PAI@5"), ("auc", "per-window AUC")):
            c = comparison.get(key)
            if c and c["mean_difference"] is not None:
                lo, hi = c["ci95"]
                parts.append(f"{what} {c['mean_difference']:+.3f} (95% CI {lo:+.3f} .. {hi:+.3f})")
        better = (comparison.get("pai_5") or {}).get("share_model_better")
        tail = f", model better in {better:.0%} of windows" if better is not None else ""
        print(f"  model - {name:<20} " + "; ".join(parts) + tail)
    gap = model.get("oracle_gap") or {}
    for name, shares in (gap.get("by_baseline") or {}).items():
        print(f"  share of the gap {name} -> oracle closed: PAI@5 {_pct(shares.get('pai_5'))}, "
              f"ROC-AUC {_pct(shares.get('roc_auc'))}")
    return summary_row(d)


def _pct(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:+.0%}"


def summary_row(d: dict) -> dict:
    """One line per dataset: PAI@5 / ROC-AUC of every forecaster, the model's difference to
    the best baseline (by test PAI@5) with its interval, and the share of the oracle gap."""
    from safety_models.evaluation.backtest import summary_table

    table = summary_table(d, extra=True)
    model = d["results"]["model"]
    gap = model.get("oracle_gap") or {}
    best = gap.get("best_baseline")
    row = {"category": d["category"], "model_id": d["model_id"],
           **{f"{name}": f"{table.loc[name, 'pai_5']:.2f} / {table.loc[name, 'roc_auc']:.3f}" for name in table.index}}
    if best:
        c = model["vs_baselines"][best]["pai_5"]
        a = model["vs_baselines"][best]["auc"]
        row.update(best_baseline=best,
                   d_pai_5=f"{c['mean_difference']:+.2f} [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}]",
                   d_auc_window=f"{a['mean_difference']:+.3f} [{a['ci95'][0]:+.3f}, {a['ci95'][1]:+.3f}]",
                   gap_closed_pai_5=_pct(gap.get("pai_5_share")), gap_closed_auc=_pct(gap.get("roc_auc_share")))
    return row


def bench_synthetic(n_test: int = 365, n_val: int = 60, n_train: int = 400, shape=(90, 60)) -> float:
    """Backtest of an untrained tiny-config model on a synthetic city; returns seconds."""
    from safety_models.evaluation import backtest as evaluation
    from safety_models import features
    from safety_models.modeling import models
    from safety_models.grid import GridSpec
    from safety_models.modeling.city import CityData

    rng = np.random.default_rng(0)
    n_windows = n_train + n_val + n_test
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    rate = 0.02 + 0.5 * np.exp(-((yy - 30) ** 2 + (xx - 20) ** 2) / 60.0) + 0.3 * np.exp(-((yy - 60) ** 2 + (xx - 45) ** 2) / 30.0)
    counts = rng.poisson(rate, size=(n_windows, rows, cols)).astype(np.float32)
    starts = pd.date_range("2021-01-01", periods=n_windows, freq="D")
    spec = GridSpec("EPSG:32616", 440_000.0, 4_620_000.0, 500.0, rows, cols)
    city = CityData("crime", spec, 24, starts, counts, np.ones(shape, bool), None)
    feature_cfg = features.FeatureConfig(window_hours=24)
    model = models.create_model(models.ModelConfig(in_channels=features.n_channels(feature_cfg))).eval()
    checkpoint = {"model_id": "synthetic", "category": "crime", "feature_config": feature_cfg.to_dict(),
                  "data_window": {"start": str(starts[0]), "end": str(starts[-1]),
                                  "train_end": str(starts[n_train]), "val_end": str(starts[n_train + n_val])}}
    timer = StepTimer()
    result = evaluation.backtest(model, checkpoint, city, on_progress=timer)
    seconds = time.perf_counter() - timer.t0
    print_result(f"synthetic {rows}x{cols}, {n_test} test + {n_val} validation days (untrained model)", result,
                 seconds, timer)
    return seconds


def bench_home(category: str, model_id: str | None) -> float:
    from safety_models.evaluation import backtest as evaluation
    from safety_models.data.store import Store

    store = Store()
    timer = StepTimer()
    result = evaluation.evaluate_category(store, category, model_id, on_progress=timer)
    seconds = time.perf_counter() - timer.t0
    print_result(f"home {os.environ.get('SAFETY_MODELS_HOME', './data')}", result, seconds, timer)
    return seconds


def bench_shared(shared: Path, categories: list[str], base: str, epochs: int, steps_per_epoch: int | None,
                 home: Path, flag_areas: list[str] = (), cell_size_m: float | None = None) -> None:
    from safety_models.evaluation import backtest as evaluation
    from safety_models.data import ingest
    from safety_models.service import workflows
    from safety_models.data.store import Store
    from safety_models.modeling.training import TrainConfig

    os.environ["SAFETY_MODELS_HOME"] = str(home)
    os.environ.pop("SAFETY_MODELS_DB_URL", None)
    store = Store()
    rows = []
    for category in categories:
        t0 = time.perf_counter()
        for rel in SHARED_FILES[category]:
            ingest.ingest_path(store, shared / rel, category)
        t_ingest = time.perf_counter() - t0
        # The product's default TrainConfig, with the training shortened to fit a benchmark.
        cfg = TrainConfig(category=category, base=base, epochs=epochs, steps_per_epoch=steps_per_epoch,
                          cell_size_m=cell_size_m)
        t0 = time.perf_counter()
        model_id = workflows.train_category(store, cfg, on_progress=_dots())
        t_train = time.perf_counter() - t0
        timer = StepTimer()
        result = evaluation.evaluate_category(store, category, model_id, on_progress=timer,
                                              flag_areas=flag_areas)
        seconds = time.perf_counter() - timer.t0
        print(f"\n[{category}] ingest {t_ingest:.1f} s, train (base {base}, freeze {cfg.freeze_up_to}, "
              f"{epochs} epochs x {steps_per_epoch or 'all'} batches of {cfg.batch_size}) {t_train:.1f} s "
              f"(the first category's includes pretraining the base)")
        row = print_result(f"shared data {', '.join(SHARED_FILES[category][:1])}", result, seconds, timer)
        if flag_areas:
            from safety_models.cli import area_table

            with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
                print(area_table(result.to_dict()))
        t_maps = time_maps_and_exports(store, category, model_id)
        rows.append({**row, "train_s": round(t_train), "backtest_s": round(seconds), **t_maps})
    print("\n== summary: PAI@5 / ROC-AUC on the test year; model - best baseline (by test PAI@5) with its paired "
          "block-bootstrap 95 % interval; share of the best baseline's gap to the oracle that the model closes")
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(pd.DataFrame(rows).set_index("category").T.to_string())


def time_maps_and_exports(store, category: str, model_id: str) -> dict:
    """Seconds for what the pages show of a new model: its forecasts (forecasts.refresh: the
    next window plus the latest windows with what happened), the next window alone
    (predict_category, which loads the model and bins the incidents), and the CSV and GeoJSON
    downloads of that table."""
    from safety_models.modeling import registry
    from safety_models.presentation import export
    from safety_models.grid import GridSpec
    from safety_models.service import forecasts, workflows

    out = {}
    t0 = time.perf_counter()
    forecasts.refresh(store, category, model_id)
    out["forecasts_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    table = workflows.predict_category(store, category, model_id=model_id)
    out["predict_s"] = round(time.perf_counter() - t0, 2)
    grid = GridSpec.from_dict(registry.model_info(store, model_id)["grid"])
    t0 = time.perf_counter()
    export.prediction_to_csv(table)
    export.prediction_to_geojson(table, grid)
    out["exports_s"] = round(time.perf_counter() - t0, 2)
    print(f"  maps and downloads: forecasts.refresh {out['forecasts_s']} s, predict_category (load, bin, "
          f"forecast) {out['predict_s']} s, CSV + GeoJSON of {len(table):,} cells {out['exports_s']} s")
    return out


def _dots():
    last = [-1]

    def report(progress: dict) -> None:
        tenth = int(10 * float(progress.get("fraction", 0.0)))
        if tenth != last[0]:
            last[0] = tenth
            print(f"  {progress.get('stage', '')} {tenth * 10}%", flush=True)

    return report


def main(argv: list[str] | None = None) -> None:
    from safety_models.modeling.training import TrainConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", action="store_true", help="time a year of daily windows on 90 x 60 cells")
    parser.add_argument("--category", help="backtest this category's model in SAFETY_MODELS_HOME")
    parser.add_argument("--model-id", help="a model id (default: the category's active model)")
    parser.add_argument("--shared-data", type=Path, help="the shared data folder (…/shared/data)")
    parser.add_argument("--categories", default="crime,traffic,health")
    parser.add_argument("--base", default="pretrained", help="pretrained | none (from scratch)")
    defaults = TrainConfig()
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="default: the product's")
    parser.add_argument("--steps-per-epoch", type=int, default=defaults.steps_per_epoch,
                        help="batches per epoch (0: a full pass over the training windows); default: the product's")
    parser.add_argument("--home", type=Path, help="home for --shared-data (default: a temporary folder)")
    parser.add_argument("--cell-size", type=float, default=None,
                        help="cell size in metres (default: the product's, 500 m)")
    parser.add_argument("--flag-area", dest="flag_areas", action="append", default=[], metavar="AREA",
                        help="also score a flagged area, e.g. 0.75sqmi or 2km2 (repeatable)")
    args = parser.parse_args(argv)
    if args.shared_data:
        categories = [c.strip() for c in args.categories.split(",") if c.strip()]
        if args.home:
            bench_shared(args.shared_data, categories, args.base, args.epochs, args.steps_per_epoch or None, args.home,
                         args.flag_areas, args.cell_size)
        else:
            with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
                bench_shared(args.shared_data, categories, args.base, args.epochs, args.steps_per_epoch or None,
                             Path(tmp), args.flag_areas, args.cell_size)
    elif args.category:
        bench_home(args.category, args.model_id)
    else:
        bench_synthetic()


if __name__ == "__main__":
    main()
