"""Words and numbers for people: times, durations, percents, names of categories and
forecasters, job progress, upload outcomes and model descriptions (no streamlit).

The dashboard and the command line both take their texts from here, so one thing is said one
way. Where the terminal needs another form (ISO dates, a bar of `#`), the function for it sits
beside the dashboard's and reads the same fields.

Missing values show as "–" (an en dash) in the dashboard's texts and as "-" in the terminal's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

MISSING = "–"
MISSING_TERMINAL = "-"

# ---------------------------------------------------------------------------------- numbers


def is_missing(value: Any) -> bool:
    """None, NaN, NaT or pd.NA: what a table holds where a value is absent (a string is never
    missing)."""
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def when(ts: Any) -> str:
    """A time for the dashboard: '28 Nov 2026 14:05'; the date alone at midnight
    ('28 Nov 2026'); '–' for None/NaT."""
    return _time_text(ts, "%d %b %Y", "%d %b %Y %H:%M", MISSING)


def when_iso(ts: Any) -> str:
    """A time for the terminal: '2026-11-28 14:05'; the date alone at midnight ('2026-11-28',
    date-only data); '-' for None/NaT."""
    return _time_text(ts, "%Y-%m-%d", "%Y-%m-%d %H:%M", MISSING_TERMINAL)


def _time_text(ts: Any, date_format: str, datetime_format: str, missing: str) -> str:
    if is_missing(ts):
        return missing
    t = pd.Timestamp(ts)
    at_midnight = t.hour == 0 and t.minute == 0 and t.second == 0
    return t.strftime(date_format if at_midnight else datetime_format)


def duration(seconds: Any) -> str:
    """12 -> '12 s', 125 -> '2 min 5 s', 4000 -> '1 h 6 min'; '–' when unknown."""
    if is_missing(seconds):
        return MISSING
    s = int(round(float(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {(s % 3600) // 60} min"


def percent(value: Any, digits: int = 1) -> str:
    """A share as a percent with fixed digits: 0.9234 -> '92.3 %'; '–' when unknown."""
    if is_missing(value):
        return MISSING
    return f"{100 * float(value):.{digits}f} %"


def short_percent(probability: Any) -> str:
    """A chance as a short percent (map tooltips, legends): 0.1234 -> '12.3 %', 0.3 -> '30 %';
    under 1 % two significant digits ('0.42 %'); 0 -> '0 %'; '–' when unknown."""
    if is_missing(probability) or not math.isfinite(float(probability)):
        return MISSING
    value = 100.0 * float(probability)
    if value == 0:
        return "0 %"
    if value < 1:
        return f"{value:.2g} %"
    return f"{value:.1f}".rstrip("0").rstrip(".") + " %"


def window_label(window_hours: int | None) -> str:
    """24 -> 'day', 168 -> 'week', 6 -> '6-hour window'; 'window' when unknown."""
    if not window_hours:
        return "window"
    if window_hours == 24:
        return "day"
    if window_hours == 168:
        return "week"
    return f"{window_hours}-hour window"


def horizon_option_label(horizon: str | None, window_hours: int | None) -> str:
    """The dashboard's choice of what a forecast covers: None -> 'Next day' (the next window,
    window_label), '7d' -> 'Next 7 days'."""
    if horizon is None:
        return f"Next {window_label(window_hours)}"
    return f"Next {int(str(horizon).rstrip('d'))} days"


def period_label(window_hours: int | None, horizon_windows: int = 1) -> str:
    """What one forecast covers, as a noun: window_label for one window ('day', 'week'), else
    the horizon's length ('7-day period' for 7 daily windows, '4-week period' for 4 weekly)."""
    n = max(1, int(horizon_windows or 1))
    if n == 1:
        return window_label(window_hours)
    hours = int(window_hours or 24) * n
    if hours % 168 == 0 and int(window_hours or 24) >= 168:
        return f"{hours // 168}-week period"
    if hours % 24 == 0:
        return f"{hours // 24}-day period"
    return f"{hours}-hour period"


def interval_text(comparison: Mapping[str, Any] | None, scale: float = 1.0,
                  digits: int = 2) -> str:
    """A paired difference (backtest.paired_difference) for people: '+0.41 [+0.12, +0.70]'
    (the mean difference and its 95 % bootstrap interval, times scale); '–' without one."""
    if not comparison:
        return MISSING
    mean = comparison.get("mean_difference")
    low, high = (list(comparison.get("ci95") or []) + [None, None])[:2]
    if is_missing(mean):
        return MISSING
    shown = f"{scale * float(mean):+.{digits}f}"
    if is_missing(low) or is_missing(high):
        return shown
    return f"{shown} [{scale * float(low):+.{digits}f}, {scale * float(high):+.{digits}f}]"


# ---------------------------------------------------------------------------------- names

CATEGORY_LABELS: dict[str, str] = {
    "crime": "Crime",
    "traffic": "Traffic accidents",
    "health": "Public health",
}


def category_label(category: str) -> str:
    """'traffic' -> 'Traffic accidents'; an unknown category title-cased."""
    return CATEGORY_LABELS.get(category, category.title())


def kept_types_label(listing: pd.DataFrame, category: str) -> str | None:
    """'burglary only' when the category's own uploads (Store.list_uploads, not the demo's)
    kept only some incident types (ingest --only-types); None when they keep every type."""
    from safety_models.data.store import own_uploads     # not at import: the CLI starts without SQLAlchemy

    kept = sorted({t for types in own_uploads(listing, category)["only_types"] for t in types})
    return f"{', '.join(kept)} only" if kept else None


# The forecasters of an evaluation (the model and the baselines) by their saved names.
BASELINE_LABELS: dict[str, str] = {
    "model": "this model",
    "naive": "last window (naive)",
    "historical_average": "historical average",
    "kde": "kernel density (KDE)",
    "prospective_hotspot": "prospective hotspot",
    "seasonal": "same weekday/season",
    "network": "the network alone",
    "oracle": "hindsight (not a forecast)",
}


def baseline_label(name: str) -> str:
    """A forecaster's name for people: 'kde' -> 'kernel density (KDE)'; else '_' -> ' '."""
    return BASELINE_LABELS.get(str(name), str(name).replace("_", " "))


# What a model version forecasts with (workflows.forecaster_of), for people.
FORECASTER_LABELS: dict[str, str] = {
    "linear": "the starting forecast",
    "network": "the fine-tuned network",
}
FORECASTER_HELP: dict[str, str] = {
    "linear": "a linear model of each cell's long-run, recent and same-season rates and the "
              "calendar, fitted on this city in seconds",
    "network": "the pretrained ResNet fine-tuned on this city, over the starting forecast",
}


def forecaster_label(forecaster: str | None) -> str:
    """'linear' -> 'the starting forecast'; 'network' (or unknown) -> 'the fine-tuned network'."""
    return FORECASTER_LABELS.get(str(forecaster), FORECASTER_LABELS["network"])


def since(ts: Any, now: Any = None) -> str:
    """When something began, briefly: 'today 14:05', 'yesterday 09:12', else when(ts)."""
    if is_missing(ts):
        return MISSING
    t = pd.Timestamp(ts)
    today = (pd.Timestamp.now() if now is None else pd.Timestamp(now)).normalize()
    if t.normalize() == today:
        return f"today {t:%H:%M}"
    if t.normalize() == today - pd.Timedelta(days=1):
        return f"yesterday {t:%H:%M}"
    return when(t)


def blend_text(weights: Mapping[str, float] | None) -> str:
    """A version's validation-chosen mix in words: 'the network 60 % + kernel density (KDE)
    40 %', 'its linear base-rate part alone'; '' for none (the network alone)."""
    if not weights:
        return ""
    names = {"network": "the network", "base_rate": "its linear base-rate part"}
    if len(weights) == 1:
        return f"{names.get(next(iter(weights)), baseline_label(next(iter(weights))))} alone"
    return " + ".join(f"{names.get(name, baseline_label(name))} {100 * float(w):.0f} %"
                      for name, w in sorted(weights.items(), key=lambda kv: -kv[1]))


def _forecaster_said(forecaster: str | None, model_id: str,
                     blend: Mapping[str, float] | None, trained_for: str = "") -> str:
    """'**the starting forecast** (what it is; the mix; model `id`)': the part that the
    next window's line and a horizon's line share."""
    key = forecaster if forecaster in FORECASTER_LABELS else "network"
    mix = blend_text(blend)
    return (f"**{forecaster_label(key)}** ({FORECASTER_HELP[key]}"
            + (f"; as chosen on the validation windows: {mix}" if mix else "")
            + f"; model `{model_id}`{trained_for})")


def forecaster_line(forecaster: str | None, model_id: str, activated_at: Any,
                    training: Mapping[str, Any] | None = None, now: Any = None,
                    blend: Mapping[str, float] | None = None) -> str:
    """Which forecaster the map shows and since when (markdown), and, while a job trains the
    category's network (training: that job), that it is coming and on what condition. blend:
    the version's validation-chosen mix (Forecasts.blend), said when it is not the network
    alone."""
    line = (f"Forecast by {_forecaster_said(forecaster, model_id, blend)}, in use since "
            f"**{since(activated_at, now)}**.")
    if training is not None:
        line += (f" The fine-tuned network is being trained ({100 * job_fraction(training):.0f} "
                 "% of the job); it takes over only if it scores better on the validation "
                 "windows.")
    return line


def horizon_line(period: str, forecaster: str | None, model_id: str, serving_since: Any,
                 now: Any = None, blend: Mapping[str, float] | None = None) -> str:
    """forecaster_line for a horizon (markdown): which forecaster of the model trained for
    that horizon (the newest one serves it) forecasts each period, since when
    (serving_since: its activation, else its making), and what it forecasts."""
    return (f"Forecast of each **{period}** by "
            f"{_forecaster_said(forecaster, model_id, blend, ', trained for this period')}, in "
            f"use since **{since(serving_since, now)}**: the chance of at least one incident "
            "and the expected number over the whole period.")


def lookback_summary(prediction: Any, unit: str = "window", share: float = 0.05) -> str:
    """What happened in a past window against its forecast, in one line: 'no incidents
    happened' or '12 incidents happened, 5 of them (42 %) in the 5 % of cells ranked highest'.
    prediction: a ranked table with `rank` and `happened` (forecasts.past_window)."""
    from safety_models.evaluation.metrics import n_flagged

    total = int(prediction["happened"].sum())
    if total == 0:
        return f"no incidents happened that {unit}"
    top = n_flagged(share, len(prediction))
    caught = int(prediction.loc[prediction["rank"] <= top, "happened"].sum())
    word = "incident" if total == 1 else "incidents"
    return (f"{total:,} {word} happened, {caught:,} of them ({100 * caught / total:.0f} %) in "
            f"the {100 * share:g} % of cells ranked highest")


# ---------------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class Progress:
    """What people are shown of an on_progress dict (or a job's last one).

    epoch and epochs are both set or both None (an epoch is shown only as 'n of total')."""

    stage: str = ""                  # '' when not reported
    fraction: float = 0.0            # clipped to 0..1; 0 when missing or not a number
    category: str | None = None
    epoch: int | None = None
    epochs: int | None = None
    loss: float | None = None
    val_score: float | None = None
    elapsed_s: float | None = None
    eta_s: float | None = None


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def read_progress(stats: Mapping[str, Any] | None) -> Progress:
    """The fields of a progress dict that any progress display shows, in one place."""
    stats = stats or {}
    try:
        fraction = float(stats.get("fraction") or 0.0)
    except (TypeError, ValueError):
        fraction = 0.0
    fraction = 0.0 if math.isnan(fraction) else min(1.0, max(0.0, fraction))
    has_epoch = stats.get("epoch") is not None and bool(stats.get("epochs"))
    return Progress(
        stage=str(stats.get("stage") or ""),
        fraction=fraction,
        category=str(stats["category"]) if stats.get("category") else None,
        epoch=int(stats["epoch"]) if has_epoch else None,
        epochs=int(stats["epochs"]) if has_epoch else None,
        loss=_float_or_none(stats.get("loss")),
        val_score=_float_or_none(stats.get("val_score")),
        elapsed_s=_float_or_none(stats.get("elapsed_s")),
        eta_s=_float_or_none(stats.get("eta_s")),
    )


def progress_bar_line(stats: Mapping[str, Any] | None, width: int = 24) -> str:
    """One terminal line: 'train      [######..........]  25%  epoch 2/8  loss 0.3100  eta 12s'."""
    p = read_progress(stats)
    filled = int(round(width * p.fraction))
    parts = [f"{p.stage:<10}", "[" + "#" * filled + "." * (width - filled) + "]",
             f"{p.fraction:4.0%}"]
    if p.epoch is not None:
        parts.append(f"epoch {p.epoch}/{p.epochs}")
    if p.loss is not None:
        parts.append(f"loss {p.loss:.4f}")
    if p.val_score is not None:
        parts.append(f"val {p.val_score:.3f}")
    if p.eta_s is not None:
        parts.append(f"eta {p.eta_s:.0f}s")
    return "  ".join(parts)


# ---------------------------------------------------------------------------------- jobs

JOB_TITLES = {"bootstrap": "Preparing the first models", "pretrain": "Pretraining the base model",
              "train": "Training"}
STEP_LABELS = {"starting forecast": "starting forecast", "pretrain": "",
               "network": "fine-tuned network"}
STAGE_LABELS = {"pretrain": "pretraining the base model", "train": "training",
                "base_rate": "fitting the long-run rates", "cache": "preparing frozen layers",
                "prepare": "preparing the data", "evaluate": "evaluating",
                "validate": "validating", "save": "saving", "done": "saving the model"}
# How long after a job ended its outcome is still worth telling.
OUTCOME_SHOWN_FOR = pd.Timedelta(hours=6)


def job_title(job: Mapping[str, Any]) -> str:
    """'Training – Crime', 'Preparing the first models' (bootstrap jobs have no category)."""
    title = JOB_TITLES.get(job.get("kind"), str(job.get("kind")))
    if job.get("category"):
        title += f" – {category_label(job['category'])}"
    return title


def job_fraction(job: Mapping[str, Any]) -> float:
    """How far the job is, 0..1 (0 before it reports)."""
    return read_progress(job.get("progress")).fraction


def job_progress_text(job: Mapping[str, Any], workers_alive: int | None = None) -> str:
    """One line about a job's progress: stage, category, epoch, loss, elapsed and remaining,
    e.g. 'training · Crime · epoch 2 of 5 · loss 0.3100 · 12 s elapsed · about 18 s left'.
    workers_alive: for a job queued for a worker, how many are up (None: not known)."""
    progress = job.get("progress") or {}
    if job.get("status") == "queued" and not progress:
        if job.get("queue_job_id") is not None:
            if workers_alive == 0:
                return ("queued, but no worker is running: start one with "
                        "python -m safety_models worker")
            return "queued: waiting for a worker (python -m safety_models worker) to take it…"
        return "waiting for the training process to start…"
    p = read_progress(progress)
    parts = [STEP_LABELS.get(progress.get("step"), "") if progress.get("step") else "",
             STAGE_LABELS.get(p.stage, p.stage) or str(job.get("status") or "")]
    if p.category:
        parts.append(category_label(p.category))
    if p.epoch is not None:
        parts.append(f"epoch {p.epoch} of {p.epochs}")
    if p.loss is not None:
        parts.append(f"loss {p.loss:.4f}")
    if p.elapsed_s is not None:
        parts.append(f"{duration(p.elapsed_s)} elapsed")
    if p.eta_s is not None:
        parts.append(f"about {duration(p.eta_s)} left")
    return " · ".join(part for part in parts if part)


def job_started_text(job: Mapping[str, Any]) -> str:
    """What the retrain button says once it has started a job: here, or queued for a
    worker (a job with a queue entry)."""
    if job.get("queue_job_id") is not None:
        return (f"Training queued (job {job['job_id']}): a worker runs it; its progress "
                "shows here.")
    return f"Training started (job {job['job_id']})."


def job_outcome_text(job: Mapping[str, Any], now: pd.Timestamp | None = None) -> str | None:
    """How a finished job ended, in one sentence; None while it runs, for another status, or
    once it ended more than OUTCOME_SHOWN_FOR before `now` (default: the current time)."""
    finished = job.get("finished_at")
    now = pd.Timestamp.now() if now is None else pd.Timestamp(now)
    if finished is None or now - pd.Timestamp(finished) > OUTCOME_SHOWN_FOR:
        return None
    what = f"{job_title(job)} (job {job['job_id']}, {when(finished)})"
    status = job.get("status")
    if status == "succeeded":
        return (f"{what} finished: {job.get('model_id') or 'a new model'} is saved. "
                "Compare and promote it under **Versions**.")
    if status == "failed":
        return f"{what} failed: {job.get('message') or 'no reason recorded'}"
    if status == "cancelled":
        return f"{what} was cancelled; nothing was changed."
    return None


# ---------------------------------------------------------------------------------- uploads


def upload_result_text(summary: Mapping[str, Any]) -> str:
    """What one loaded file added, for the dashboard (markdown), from UploadSummary.to_dict()."""
    s = summary
    if s.get("already_loaded"):
        earlier = s.get("earlier_upload_id") or s["upload_id"]
        return (f"**{s['file_name']}** was loaded before (upload #{earlier}); nothing "
                "was added.")
    return (f"**{s['file_name']}** → {category_label(s['category'])}: "
            f"{s['accepted']:,} incidents added, {s['duplicates']:,} duplicates skipped, "
            f"{s['rejected']:,} rows rejected (of {s['rows_read']:,} read). "
            f"Incidents from {when(s['time_min'])} to {when(s['time_max'])}.")


def rejected_reasons_text(summary: Mapping[str, Any], limit: int | None = None,
                          separator: str = ": ") -> str:
    """'unparseable time: 4, missing coordinates: 1', most frequent first (at most `limit`)."""
    reasons = sorted((summary.get("rejected_reasons") or {}).items(), key=lambda kv: -kv[1])
    return ", ".join(f"{reason}{separator}{n:,}" for reason, n in reasons[:limit])


def upload_summary_lines(summary: Mapping[str, Any]) -> str:
    """What one loaded file added, for the terminal (a few lines), from
    UploadSummary.to_dict()."""
    s = summary
    head = f"{s['file_name']} ({s['category']})"
    if s.get("already_loaded"):
        earlier = s.get("earlier_upload_id") or s["upload_id"]
        return (f"{head}: already loaded as upload #{earlier}; nothing added "
                f"(its {s['duplicates']:,} incidents are stored, {s['rejected']:,} rows were "
                f"rejected then: python -m safety_models uploads)")
    lines = [f"{head}: upload #{s['upload_id']}",
             f"  read {s['rows_read']:,} rows: {s['accepted']:,} accepted, "
             f"{s['rejected']:,} rejected, {s['duplicates']:,} duplicates"]
    if s["rejected"]:
        lines.append("  rejected: " + rejected_reasons_text(s, limit=3, separator=" ")
                     + f" (python -m safety_models rejected {s['upload_id']} --out FILE.csv)")
    if s.get("time_min"):
        lines.append(f"  time range {when_iso(s['time_min'])} to {when_iso(s['time_max'])}")
    return "\n".join(lines)


def upload_label(upload: Mapping[str, Any]) -> str:
    """'#3 accidents.csv (traffic accidents, 1,204 incidents)': one upload in a list."""
    return (f"#{upload['upload_id']} {upload['file_name']} "
            f"({category_label(upload['category']).lower()}, {upload['accepted']:,} incidents)")


# ---------------------------------------------------------------------------------- models

BASE_DESCRIPTIONS = {
    "pretrained": "the product's base model, pretrained on simulated cities",
    "imagenet": "a ResNet pretrained on ImageNet photographs",
    "none": "random weights (trained from scratch)",
}


def model_description(model_id: str, info: Mapping[str, Any], configs: Mapping[str, Any]) -> str:
    """A few markdown bullets: data window, grid, window length, base model and freezing.

    info: the model's registry row (registry.model_info); configs: its checkpoint without the
    weights (train_config, model_config, metrics, history)."""
    train = configs.get("train_config") or {}
    model_config = configs.get("model_config") or {}
    grid = info.get("grid") or {}
    starting = configs.get("forecaster") == "linear"
    base = str(train.get("base", ""))
    base_text = BASE_DESCRIPTIONS.get(base, f"the earlier model `{base}`" if base else "unknown")
    freeze = train.get("freeze_up_to")
    lines = [
        f"- Model `{model_id}`, trained {when(info.get('created_at'))}"
        + (f" in {duration(info.get('train_seconds'))}" if info.get("train_seconds") else ""),
        f"- Data: incidents from **{when(info.get('data_start'))}** to "
        f"**{when(info.get('data_end'))}**; trained on windows before "
        f"{when(info.get('train_end'))}, tuned on those until {when(info.get('val_end'))}, "
        "tested on the windows after that",
        f"- Grid: {grid.get('n_rows', '?')} × {grid.get('n_cols', '?')} cells of "
        f"{float(grid.get('cell_size_m', info.get('cell_size_m') or 0)):g} m "
        f"({grid.get('crs', '?')}); one {window_label(info.get('window_hours'))} per prediction",
        f"- The starting forecast alone: {FORECASTER_HELP['linear']}; no network training "
        "(the fine-tuned network replaces it where it scores better on the validation windows)"
        if starting else
        f"- Started from {base_text}"
        + (f" ({model_config['backbone']})" if model_config.get("backbone") else "")
        + (f"; layers up to **{freeze}** kept frozen" if freeze and freeze != "none"
           else "; every layer retrained"),
    ]
    kept = training_kept(configs)
    if kept:
        lines.append(f"- {kept}")
    return "\n".join(lines)


def training_kept(configs: Mapping[str, Any]) -> str | None:
    """Which epoch of training the model keeps, in words (None when the checkpoint says not)."""
    validation = (configs.get("metrics") or {}).get("validation") or {}
    best, trained = validation.get("best_epoch"), len(configs.get("history") or [])
    if best is None or not trained:
        return None
    if int(best) == 0:
        return (f"Kept: the starting forecast (its linear base-rate path). None of the {trained} "
                "trained epochs improved the validation windows, so the network adds nothing yet")
    return f"Kept: epoch {int(best)} of {trained}, the best on the validation windows"


def study_run_label(run: Mapping[str, Any]) -> str:
    """A study run in a few words: 'scratch', 'frozen to layer2, 90 d', 'fine-tuned, none
    frozen, sgd 0.01' (the optimiser only in the learning-rate stage)."""
    if run.get("base") == "none":
        text = "scratch"
    elif run.get("freeze_up_to") in (None, "none"):
        text = "fine-tuned, none frozen"
    else:
        text = f"frozen to {run['freeze_up_to']}"
    days = run.get("history_days")
    if not is_missing(days):
        text += f", {int(days)} d"
    if run.get("stage") == "learning rate":
        text += f", {run.get('optimizer')} {float(run.get('lr')):g}"
    return text


# ---------------------------------------------------------------------------------- evaluation


def evaluation_period_text(evaluation: Mapping[str, Any], quick: bool = False) -> str:
    """'Test period **01 Sep 2024 – 30 Sep 2024**: 30 days, 1,234 incidents, cells of 500 m.'
    quick: the starting forecast's first evaluation, on the latest windows only."""
    unit = window_label(evaluation.get("window_hours"))
    text = (f"Test period **{when(evaluation['test_start'])} – {when(evaluation['test_end'])}**: "
            f"{evaluation['n_windows']} {unit}s, {evaluation['n_test_events']:,} incidents, "
            f"cells of {evaluation['cell_size_m']:g} m.")
    horizon_windows = int(evaluation.get("horizon_windows") or 1)
    if horizon_windows > 1:
        period = period_label(evaluation.get("window_hours"), horizon_windows)
        text += (f" Each forecast, made at the start of a {unit}, covers the next {period}, "
                 "and is scored against the incidents of that whole period.")
    if quick:
        text += (f" A quick first evaluation of the starting forecast, on its latest "
                 f"{evaluation['n_windows']} {unit}s only.")
    return text


def is_quick_evaluation(evaluation: Mapping[str, Any], val_end: Any) -> bool:
    """Whether an evaluation scored only the latest windows (the starting forecast's first,
    quick one): its test period starts after the model's validation windows end."""
    return not is_missing(val_end) and pd.Timestamp(evaluation["test_start"]) > pd.Timestamp(val_end)


def headline_caption(evaluation: Mapping[str, Any], quick: bool = False) -> str:
    """Where the headline scores come from: the test period and how many baselines."""
    return (f"Scored on {when(evaluation['test_start'])} – {when(evaluation['test_end'])} "
            f"(after its training data{'; a quick first evaluation' if quick else ''}), "
            f"against the best of {len(evaluation['results'].get('baselines', {}))} baselines; "
            "PAI @ 5 %: incidents caught in the top 5 % of the area ÷ 5 %.")
