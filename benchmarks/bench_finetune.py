"""The fine-tuning question in numbers: the product's pretrained base vs ImageNet weights vs
training from scratch, with 25 %, 50 % and 100 % of the training history, per shared dataset.

    python benchmarks/bench_finetune.py --shared-data /work/shared/data
    python benchmarks/bench_finetune.py --shared-data /work/shared/data --categories health --epochs 3

Loads the shared Chicago assaults (crime), Barcelona accidents (traffic) and Chicago West Nile
virus (health) into a fresh home (as bench_evaluation.py does), pretrains the home's base once
(--pretrain-seconds, the product's budget by default) and, per dataset, history share and base,
fine-tunes the network alone (TrainConfig(blend=False): a blend with the baselines would blur
the comparison) with the same short schedule (--epochs x --steps-per-epoch batches) and scores
it with evaluation.backtest on the test year, beside the best baseline on the same windows
(picked on test, which flatters the baselines). Every run shares the validation and test
windows; a share of the history keeps the latest part of the training windows
(TrainConfig.history_days). The training time of each run is printed beside the floor of the
same run: its starting forecast alone (fit_starting_forecast, the linear model every network
starts from), and the ratio.

ImageNet weights are never downloaded: the runs use torchvision's hub cache file when it is
there (models.imagenet_weights_file) and say which file is missing otherwise.
Only this script reads the shared data folder; the library never does.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout

from benchmarks.bench_evaluation import SHARED_FILES  # noqa: E402  (the same shared files)

BASES = ("pretrained", "imagenet", "none")
SHARES = (0.25, 0.5, 1.0)


def history_days_for(share: float, city, cfg) -> int | None:
    """Days of training history that are `share` of what the split leaves; None for all."""
    from safety_models.features import FeatureConfig
    from safety_models.modeling.training import split_windows

    if share >= 1.0:
        return None
    fcfg = FeatureConfig(window_hours=city.window_hours)
    first, train_end, _, _ = split_windows(city.counts, cfg, fcfg)
    return max(1, int(round(share * (train_end - first) * city.window_hours / 24)))


def imagenet_note() -> str | None:
    """None when the ImageNet weights are in the hub cache, else a sentence saying which file."""
    from safety_models.modeling.models import imagenet_weights_file

    file = imagenet_weights_file("resnet18")
    if file.is_file():
        return None
    return (f"ImageNet weights skipped: {file} is not there (nothing is downloaded; copy "
            f"torchvision's resnet18 IMAGENET1K_V1 file there to include them)")


def run_category(store, category: str, base_state: dict, epochs: int, steps: int, shares, bases) -> list[dict]:
    from safety_models.evaluation import backtest as evaluation
    from safety_models.modeling.city import prepare_city
    from safety_models.modeling.training import TrainConfig, fit, fit_starting_forecast

    city = prepare_city(store, category)
    rows: list[dict] = []
    baseline_results = None
    print(f"\n== {category}: {city.counts.shape[0]} windows of {city.window_hours} h x "
          f"{city.counts.shape[1]} x {city.counts.shape[2]} cells ({int(city.mask.sum()):,} in the city), "
          f"{int(city.counts.sum()):,} events", flush=True)
    for share in shares:
        probe = TrainConfig(category=category)
        days = history_days_for(share, city, probe)
        floor_cfg = TrainConfig(category=category, history_days=days)
        t0 = time.perf_counter()
        fit_starting_forecast(city.counts, city.starts, city.mask, floor_cfg)
        floor_s = time.perf_counter() - t0
        for base in bases:
            cfg = TrainConfig(category=category, base=base, epochs=epochs, steps_per_epoch=steps,
                              history_days=days, blend=False)
            t0 = time.perf_counter()
            res = fit(city.counts, city.starts, city.mask, cfg,
                      base_state=base_state if base == "pretrained" else None, grid=city.grid)
            seconds = time.perf_counter() - t0
            checkpoint = {**res.checkpoint(), "category": category, "model_id": f"finetune-{category}-{base}-{share}",
                          "grid": city.grid.to_dict()}
            if baseline_results is None:
                baseline_results = evaluation.score_baselines(city, checkpoint["data_window"])
            result = evaluation.backtest(res.model, checkpoint, city, baseline_results=baseline_results)
            model = result.results["model"]
            best_name, best = max(baseline_results.items(),
                                  key=lambda kv: (_num(kv[1]["pai"].get("5")), _num(kv[1].get("roc_auc"))))
            row = {"category": category, "history": f"{share:.0%}", "history_days": days if days else "all",
                   "base": base, "kept_epoch": res.metrics["validation"]["best_epoch"],
                   "train_s": round(seconds, 1), "floor_s": round(floor_s, 1),
                   "ratio": round(seconds / max(floor_s, 1e-9), 1),
                   "val_pai_5": model.get("validation", {}).get("pai_5"),
                   "test_pai_5": model["pai"].get("5"), "test_roc_auc": model.get("roc_auc"),
                   "best_baseline": best_name, "baseline_pai_5": best["pai"].get("5"),
                   "baseline_roc_auc": best.get("roc_auc")}
            rows.append(row)
            print(f"  {row['history']:>4} history ({row['history_days']} days), base {base:10s}: "
                  f"train {seconds:6.1f} s (floor: its starting forecast alone {floor_s:5.1f} s, ratio "
                  f"{row['ratio']:5.1f}), kept epoch {row['kept_epoch']}, test PAI@5 {_fmt(row['test_pai_5'])} "
                  f"AUC {_fmt(row['test_roc_auc'], 3)}; {best_name} {_fmt(row['baseline_pai_5'])} / "
                  f"{_fmt(row['baseline_roc_auc'], 3)}", flush=True)
    return rows


def _num(value) -> float:
    return -math.inf if value is None or not math.isfinite(float(value)) else float(value)


def _fmt(value, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(float(value)) else f"{float(value):.{digits}f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared-data", type=Path, required=True, help="the shared data folder (…/shared/data)")
    ap.add_argument("--categories", default="health,traffic,crime")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--steps-per-epoch", type=int, default=20)
    ap.add_argument("--shares", default="0.25,0.5,1", help="shares of the training history")
    ap.add_argument("--pretrain-seconds", type=float, default=None,
                    help="pretraining budget of the home's base (default: the product's)")
    ap.add_argument("--home", type=Path, help="a home to use (default: a temporary folder)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        home = args.home or Path(tmp)
        os.environ["SAFETY_MODELS_HOME"] = str(home)
        os.environ.pop("SAFETY_MODELS_DB_URL", None)
        from safety_models.data import ingest
        from safety_models.data.store import Store
        from safety_models.modeling.pretrained import pretrained_base

        store = Store()
        categories = [c.strip() for c in args.categories.split(",") if c.strip()]
        for category in categories:
            if store.time_range(category) is None:
                for rel in SHARED_FILES[category]:
                    ingest.ingest_path(store, args.shared_data / rel, category)
        t0 = time.perf_counter()
        options = {"time_budget_s": args.pretrain_seconds} if args.pretrain_seconds else None
        base_state = pretrained_base(store, pretrain_options=options)[1]
        print(f"pretrained base: {time.perf_counter() - t0:.0f} s (simulated cities + {', '.join(categories)})")
        note = imagenet_note()
        bases = [b for b in BASES if not (b == "imagenet" and note)]
        if note:
            print(note)
        shares = [float(s) for s in args.shares.split(",")]
        rows = []
        for category in categories:
            rows += run_category(store, category, base_state, args.epochs, args.steps_per_epoch, shares, bases)
        print(f"\n== summary (network alone, {args.epochs} epochs x {args.steps_per_epoch} batches; test = last year)")
        with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:.3f}".format):
            print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
