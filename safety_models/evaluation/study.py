"""The fine-tuning study: which layers to freeze, which learning rate, how much history, and
whether starting from the pretrained base beats training from scratch, on this city's data.

Design (bounded cost, choices made on validation windows only):

1. **Freezing.** From scratch (nothing frozen) and from ``pretrained`` with each freezing depth
   (none, stem, layer1, layer2, layer3), all history, the default optimiser (AdamW 1e-3).
2. **Learning rate.** Scratch and the pretrained depth with the best *validation* PAI at 5 %
   of the area, each with SGD (momentum 0.9) at 1e-4, 1e-3, 1e-2 and AdamW at 1e-3.
3. **History.** The best scratch and best pretrained setting (by validation) with 90 days,
   one year and all history before the training cut (weekly data: 1 year, 2 years, all).

Every run uses the same splits (train / validation / test windows, as ``training.fit`` draws
them from the whole data), the same few epochs of at most STUDY_STEPS_PER_EPOCH batches (so the
same compute) and the same cached pretrained base; each is
scored by ``evaluation.backtest`` on the test windows, and the baselines are scored once on
those windows for reference. Settings that already ran are not run again, so the full study
is about 6 + 6 + 4 = 16 runs. ``quick=True`` runs scratch and pretrained with nothing and
layer2 frozen, one epoch of at most QUICK_STEPS_PER_EPOCH batches (3 runs): the default of
the dashboard and the tests.

Test scores are reported, never used to choose; the summary names which choice wins on
validation and what it scored on test, next to the best baseline's test scores (the best
baseline is picked on test, which flatters the baselines, not the model).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from safety_models.evaluation import backtest as evaluation
from safety_models import paths
from safety_models.schema import check_category
from safety_models.files import write_json_atomic, write_text_atomic

ProgressFn = Callable[[dict], None]

FREEZE_STAGES: tuple[str, ...] = ("none", "stem", "layer1", "layer2", "layer3")
# (optimizer, learning rate): SGD with momentum 0.9 at three rates, and AdamW.
OPTIMIZERS: tuple[tuple[str, float], ...] = (("sgd", 1e-4), ("sgd", 1e-3), ("sgd", 1e-2), ("adamw", 1e-3))
DEFAULT_OPTIMIZER: tuple[str, float] = ("adamw", 1e-3)
STUDY_EPOCHS = 3
QUICK_EPOCHS = 1
# Batches per epoch (of TrainConfig.batch_size windows): every run gets the same compute, and
# ten years of daily windows do not make a run take hours. train_overrides may change it.
STUDY_STEPS_PER_EPOCH = 100
QUICK_STEPS_PER_EPOCH = 40
QUICK_FREEZES: tuple[str, ...] = ("none", "layer2")

# The score that chooses between settings (validation windows) and the test scores reported.
SELECT_BY = "val_pai_5"
COLUMNS: tuple[str, ...] = (
    "stage", "base", "freeze_up_to", "history_days", "optimizer", "lr", "epochs", "kept_epoch", "train_seconds",
    "val_pai_5", "val_hit_rate_5", "val_roc_auc", "test_roc_auc", "test_pai_5", "test_hit_rate_5",
    "best_baseline", "baseline_roc_auc", "baseline_pai_5", "baseline_hit_rate_5",
)


def history_options(window_hours: int) -> tuple[int | None, ...]:
    """Training history to try, in days before the training cut; None = all of it.

    Day windows: 90 days, 1 year, all. Week windows (health) have 7x fewer samples per day,
    so: 1 year, 2 years, all.
    """
    return (365, 730, None) if window_hours >= 168 else (90, 365, None)


@dataclass(frozen=True)
class StudyRun:
    """One setting of the study. base: "none" (from scratch) or "pretrained"."""

    stage: str               # "freezing" | "learning rate" | "history" | "quick"
    base: str
    freeze_up_to: str
    history_days: int | None
    optimizer: str
    lr: float
    epochs: int

    def key(self) -> tuple:
        """Identity of the setting (stage excluded), so a setting is trained once."""
        return (self.base, self.freeze_up_to, self.history_days, self.optimizer, self.lr, self.epochs)


def freezing_runs(epochs: int) -> list[StudyRun]:
    optimizer, lr = DEFAULT_OPTIMIZER
    return [StudyRun("freezing", "none", "none", None, optimizer, lr, epochs)] + [
        StudyRun("freezing", "pretrained", stage, None, optimizer, lr, epochs) for stage in FREEZE_STAGES
    ]


def quick_runs() -> list[StudyRun]:
    optimizer, lr = DEFAULT_OPTIMIZER
    return [StudyRun("quick", "none", "none", None, optimizer, lr, QUICK_EPOCHS)] + [
        StudyRun("quick", "pretrained", stage, None, optimizer, lr, QUICK_EPOCHS) for stage in QUICK_FREEZES
    ]


def learning_rate_runs(best: Iterable[StudyRun]) -> list[StudyRun]:
    return [replace(run, stage="learning rate", optimizer=opt, lr=lr) for run in best for opt, lr in OPTIMIZERS]


def history_runs(best: Iterable[StudyRun], window_hours: int) -> list[StudyRun]:
    return [replace(run, stage="history", history_days=days) for run in best for days in history_options(window_hours)]


# ---------------------------------------------------------------------------------------------
# Running


def _train_config(category: str, run: StudyRun, window_hours: int, overrides: Mapping[str, Any]):
    from safety_models.modeling.training import TrainConfig

    # the network alone: the study compares ways of fine-tuning it, which a blend with the
    # baselines would blur (the shipped models blend; see modeling/forecaster.py)
    return TrainConfig(**{
        "blend": False,
        **dict(overrides), "category": category, "base": run.base, "freeze_up_to": run.freeze_up_to,
        "optimizer": run.optimizer, "lr": run.lr, "epochs": run.epochs, "history_days": run.history_days,
        "window_hours": window_hours,
    })


def _best_baseline(baseline_results: dict[str, dict]) -> tuple[str, dict]:
    """The baseline with the highest test PAI at 5 % (ties: ROC-AUC)."""
    def rank(item: tuple[str, dict]) -> tuple[float, float]:
        m = item[1]
        return (_num((m.get("pai") or {}).get("5")), _num(m.get("roc_auc")))

    return max(baseline_results.items(), key=rank)


def _num(value: Any) -> float:
    return -math.inf if value is None or not math.isfinite(float(value)) else float(value)


def _row(run: StudyRun, result: evaluation.BacktestResult, train_seconds: float,
         baseline_name: str, baseline: dict, kept_epoch: int | None = None) -> dict[str, Any]:
    m = result.results["model"]
    val = m.get("validation") or {}
    return {
        **asdict(run),
        "kept_epoch": kept_epoch,
        "train_seconds": float(train_seconds),
        "val_pai_5": val.get("pai_5"), "val_hit_rate_5": val.get("hit_rate_5"), "val_roc_auc": val.get("roc_auc"),
        "test_roc_auc": m.get("roc_auc"), "test_pai_5": m["pai"].get("5"), "test_hit_rate_5": m["hit_rate"].get("5"),
        "best_baseline": baseline_name, "baseline_roc_auc": baseline.get("roc_auc"),
        "baseline_pai_5": baseline["pai"].get("5"), "baseline_hit_rate_5": baseline["hit_rate"].get("5"),
    }


def _best(rows: list[dict], base: str) -> StudyRun | None:
    """The setting of `base` ("none"/"pretrained") with the best validation score so far."""
    mine = [r for r in rows if r["base"] == base]
    if not mine:
        return None
    best = max(mine, key=lambda r: (_num(r[SELECT_BY]), _num(r["val_roc_auc"])))
    return StudyRun(**{k: best[k] for k in StudyRun.__dataclass_fields__})


def run_study(store: Any, category: str, on_progress: ProgressFn | None = None,
              quick: bool = False, train_overrides: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Train and backtest the study's settings on a category's data; one row per run.

    Saves the table to studies/<category>.csv and .json under the home folder (atomic) and
    returns it (columns: COLUMNS). on_progress gets {"stage": "study", "fraction", "run",
    "n_runs", "setting": {...}, "step"} during each run's training and scoring, and "row"
    after it. train_overrides: other TrainConfig fields for every run (cell_size_m,
    batch_size, val_windows, test_windows, ...). The pretrained base is the home's active one
    (pretrained first when there is none: modeling.pretrained.pretrained_base). Raises NotReady
    without data.
    """
    from safety_models.modeling import training
    from safety_models.modeling.city import prepare_city
    from safety_models.modeling.pretrained import pretrained_base

    category = check_category(category)
    overrides = {"steps_per_epoch": QUICK_STEPS_PER_EPOCH if quick else STUDY_STEPS_PER_EPOCH,
                 **dict(train_overrides or {})}
    city = prepare_city(store, category, cell_size_m=overrides.get("cell_size_m"),
                        window_hours=overrides.get("window_hours"))
    window_hours = int(city.window_hours)
    overrides["cell_size_m"] = float(city.grid.cell_size_m)
    base_state = pretrained_base(store)[1]

    rows: list[dict] = []
    done: set[tuple] = set()
    baseline_cache: dict[str, Any] = {}
    started = time.perf_counter()
    # Planned runs so far; later stages are planned from earlier results (validation only).
    plan = quick_runs() if quick else freezing_runs(STUDY_EPOCHS)
    # Full: 6 freezing runs; 3 new rates for each of the 2 best (their AdamW 1e-3 run exists);
    # 2 new histories for each (their all-history run exists).
    n_planned = len(plan) if quick else len(plan) + 2 * (len(OPTIMIZERS) - 1) + 2 * 2

    def run_all(runs: list[StudyRun]) -> None:
        for run in runs:
            if run.key() in done:
                continue
            i = len(rows)
            setting = asdict(run)

            def report(fraction: float, **extra: Any) -> None:
                if on_progress is not None:
                    on_progress({"stage": "study", "fraction": min(1.0, (i + fraction) / n_planned),
                                 "run": i + 1, "n_runs": n_planned, "setting": setting, **extra})

            report(0.0)
            cfg = _train_config(category, run, window_hours, overrides)
            trained = training.fit(
                city.counts, city.starts, city.mask, cfg,
                base_state=base_state if run.base == "pretrained" else None,
                on_progress=lambda p: report(0.8 * float(p.get("fraction", 0.0)), step="train"),
            )
            checkpoint = {**trained.checkpoint(), "category": category, "model_id": f"study-{category}-{i + 1}"}
            # Runs differ in where training starts (history_days), never in the validation and
            # test windows, so the baselines are scored once on those.
            window = checkpoint["data_window"]
            window_key = (str(window["train_end"]), str(window["val_end"]))
            if window_key not in baseline_cache:
                if baseline_cache:
                    raise RuntimeError("study runs drew different validation/test windows; they must share them")
                baseline_cache[window_key] = evaluation.score_baselines(city, window)
            result = evaluation.backtest(trained.model, checkpoint, city,
                                         baseline_results=baseline_cache[window_key],
                                         on_progress=lambda p: report(0.8 + 0.2 * p["fraction"], step="evaluate"))
            name, baseline = _best_baseline(result.results["baselines"])
            row = _row(run, result, checkpoint.get("train_seconds", trained.train_seconds), name, baseline,
                       kept_epoch=((checkpoint.get("metrics") or {}).get("validation") or {}).get("best_epoch"))
            rows.append(row)
            done.add(run.key())
            report(1.0, row=row)

    run_all(plan)
    if not quick:
        best = [b for b in (_best(rows, "none"), _best(rows, "pretrained")) if b is not None]
        run_all(learning_rate_runs(best))
        best = [b for b in (_best(rows, "none"), _best(rows, "pretrained")) if b is not None]
        run_all(history_runs(best, window_hours))

    table = _typed(pd.DataFrame(rows, columns=list(COLUMNS)))
    save_study(category, table, quick=quick, seconds=time.perf_counter() - started)
    if on_progress is not None:
        on_progress({"stage": "study", "fraction": 1.0, "run": len(rows), "n_runs": len(rows)})
    return table


# ---------------------------------------------------------------------------------------------
# Saving and reading


def study_paths(category: str) -> tuple[Path, Path]:
    """(csv, json) paths of a category's study under the home folder."""
    folder = paths.sub_dir("studies")
    category = check_category(category)
    return folder / f"{category}.csv", folder / f"{category}.json"


def save_study(category: str, table: pd.DataFrame, quick: bool = False, seconds: float | None = None) -> None:
    """Write the table as CSV and as JSON (with the plain-language summary), each atomically."""
    csv_path, json_path = study_paths(category)
    write_text_atomic(csv_path, table.to_csv(index=False))
    write_json_atomic(json_path, {
        "category": category,
        "created_at": datetime.now().replace(microsecond=0).isoformat(),
        "quick": bool(quick),
        "seconds": seconds,
        "summary": summarise_study(table),
        "runs": table.to_dict(orient="records"),
    })


def load_study(category: str) -> pd.DataFrame | None:
    """The last study of a category (columns: COLUMNS), or None if none was run."""
    csv_path, _ = study_paths(category)
    if not csv_path.exists():
        return None
    return _typed(pd.read_csv(csv_path))


_TEXT_COLUMNS = ("stage", "base", "freeze_up_to", "optimizer", "best_baseline")


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    """One set of dtypes however the table was made: text columns str, history_days and
    epochs nullable integers (<NA> = all history), every score float64 (NaN = undefined)."""
    out = table.copy()
    for column in out.columns:
        if column in _TEXT_COLUMNS:
            out[column] = out[column].astype("str")
        elif column in ("history_days", "epochs"):
            out[column] = pd.to_numeric(out[column]).astype("Int64")
        else:
            out[column] = pd.to_numeric(out[column]).astype("float64")
    return out


# ---------------------------------------------------------------------------------------------
# Plain-language summary


def _fmt_run(r: pd.Series) -> str:
    if r["base"] == "none":
        what = "from scratch"
    else:
        what = "fine-tuned, nothing frozen" if r["freeze_up_to"] == "none" else f"fine-tuned, frozen up to {r['freeze_up_to']}"
    history = "all history" if pd.isna(r["history_days"]) else f"{int(r['history_days'])} days of history"
    return f"{what}, {r['optimizer']} lr {r['lr']:g}, {history}"


def _scores(r: pd.Series) -> str:
    return f"test PAI@5 {r['test_pai_5']:.2f}, hit rate@5 {r['test_hit_rate_5']:.1%}, ROC-AUC {r['test_roc_auc']:.3f}"


def summarise_study(df: pd.DataFrame) -> list[str]:
    """Plain-language answers, each with its numbers: which layers to freeze, which learning
    rate, whether fine-tuning beats scratch (and with how much history), and the best baseline.

    Choices are made on validation PAI@5; the test scores are quoted. Empty list for no runs.
    """
    if df is None or len(df) == 0:
        return []
    df = df.copy()
    df["_select"] = pd.to_numeric(df[SELECT_BY], errors="coerce").fillna(-np.inf)
    lines: list[str] = []
    pretrained = df[df["base"] == "pretrained"]
    scratch = df[df["base"] == "none"]

    freeze_stage = df[df["stage"].isin(["freezing", "quick"]) & (df["base"] == "pretrained")]
    if len(freeze_stage):
        by_depth = freeze_stage.sort_values("_select", ascending=False)
        top = by_depth.iloc[0]
        others = ", ".join(f"{r['freeze_up_to']} {r[SELECT_BY]:.2f}" for _, r in by_depth.iloc[1:].iterrows())
        lines.append(
            f"Layers to freeze: up to {top['freeze_up_to']} (validation PAI@5 {top[SELECT_BY]:.2f}"
            + (f"; others: {others})" if others else ")") + f"; its {_scores(top)}."
        )
    lr_stage = df[df["stage"] == "learning rate"]
    if len(lr_stage):
        for base, label in (("pretrained", "fine-tuning"), ("none", "training from scratch")):
            part = lr_stage[lr_stage["base"] == base].sort_values("_select", ascending=False)
            if len(part):
                top = part.iloc[0]
                listing = ", ".join(f"{r['optimizer']} {r['lr']:g}: {r[SELECT_BY]:.2f}" for _, r in part.iterrows())
                lines.append(f"Learning rate for {label}: {top['optimizer']} {top['lr']:g} "
                             f"(validation PAI@5 — {listing}).")
    if len(pretrained) and len(scratch):
        best_ft = pretrained.sort_values("_select", ascending=False).iloc[0]
        best_sc = scratch.sort_values("_select", ascending=False).iloc[0]
        gain = best_ft["test_pai_5"] - best_sc["test_pai_5"]
        verdict = "beats" if gain > 0 else "does not beat"
        lines.append(
            f"Fine-tuning {verdict} training from scratch: best fine-tuned ({_fmt_run(best_ft)}) {_scores(best_ft)}; "
            f"best from scratch ({_fmt_run(best_sc)}) {_scores(best_sc)} (difference in PAI@5 {gain:+.2f})."
        )
    if (df["stage"] == "history").any():
        # Per amount of history, the best (on validation) fine-tuned and from-scratch runs; the
        # "all history" runs are those of the earlier stages.
        parts = []
        # All history (NaN) sorts last: inf.
        for days, group in df.groupby(df["history_days"].astype("float64").fillna(np.inf), sort=True):
            ft = group[group["base"] == "pretrained"].sort_values("_select", ascending=False)
            sc = group[group["base"] == "none"].sort_values("_select", ascending=False)
            if len(ft) and len(sc):
                label = "all history" if days == np.inf else f"{int(days)} days"
                parts.append(f"{label}: fine-tuned {ft['test_pai_5'].iloc[0]:.2f} vs scratch {sc['test_pai_5'].iloc[0]:.2f}")
        if parts:
            lines.append("By amount of training history (test PAI@5): " + "; ".join(parts) + ".")
    kept = pd.to_numeric(df.get("kept_epoch", pd.Series(dtype="float64")), errors="coerce")
    if (kept == 0).any():
        lines.append(
            f"In {int((kept == 0).sum())} of {len(df)} runs no trained epoch beat the starting forecast "
            "(the base-rate path under a zero head) on validation, so those runs kept it (kept_epoch 0) "
            "and give the same model: where they tie, the setting did not matter on this data."
        )
    any_row = df.iloc[0]
    if isinstance(any_row.get("best_baseline"), str):
        best_model = df.sort_values("_select", ascending=False).iloc[0]
        lines.append(
            f"Best baseline ({any_row['best_baseline']}): test PAI@5 {any_row['baseline_pai_5']:.2f}, "
            f"hit rate@5 {any_row['baseline_hit_rate_5']:.1%}, ROC-AUC {any_row['baseline_roc_auc']:.3f}; "
            f"the study's chosen model ({_fmt_run(best_model)}): {_scores(best_model)}."
        )
    return lines
