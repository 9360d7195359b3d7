"""Tables for people: the library's records turned into the DataFrames that are shown (model
versions, jobs, uploads, hotspots, evaluation scores, incidents per period), plus how each
shown column is labelled (no streamlit).

Dashboard tables keep numbers as numbers (the dashboard formats them with COLUMN_FORMATS);
the terminal's tables (`*_text_table`) hold finished strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from safety_models.presentation.text import (MISSING, MISSING_TERMINAL, baseline_label,
                                             category_label, duration, is_missing, when)

# ---------------------------------------------------------------------------------- columns


@dataclass(frozen=True)
class ColumnFormat:
    """How one shown column looks: heading, number format and a help line.

    number_format: "percent" (a share shown as %), a printf format ("%.2f", "%.1f %%"), or
    None; kind: "number", "text", "datetime" (shown as day, month, year and clock), or None
    for a heading only (the column's own type decides how it looks)."""

    label: str | None = None
    number_format: str | None = None
    help: str | None = None
    kind: str | None = "number"       # "number", "text", "datetime", "link" or None
    width_px: int | None = None


# The evaluation's measures, in the order they are shown (the model's table and the baselines').
METRIC_COLUMNS: dict[str, ColumnFormat] = {
    "hit_rate_5": ColumnFormat("hit rate 5 %", "percent",
                               "Share of incidents in the top 5 % of area"),
    "hit_rate_10": ColumnFormat("hit rate 10 %", "percent"),
    "pai_5": ColumnFormat("PAI 5 %", "%.2f", "Hit rate ÷ area share, top 5 % of area"),
    "pai_10": ColumnFormat("PAI 10 %", "%.2f"),
    "pei_5": ColumnFormat("PEI 5 %", "%.2f", "Hit rate ÷ the best possible hit rate"),
    "roc_auc": ColumnFormat("ROC-AUC", "%.3f"),
    "pr_auc": ColumnFormat("PR-AUC", "%.3f"),
    "brier": ColumnFormat("Brier", "%.4f", "Mean squared error of the chances; lower is better"),
    "balanced_accuracy": ColumnFormat("balanced acc.", "percent"),
    "accuracy": ColumnFormat("accuracy", "percent"),
    "always_no_event_accuracy": ColumnFormat("always “no”", "percent",
                                             "Accuracy of always answering “no incident”"),
    "precision": ColumnFormat("precision", "percent"),
    "recall": ColumnFormat("recall", "percent"),
    "f1": ColumnFormat("F1", "%.3f"),
}

VERSION_COLUMNS: dict[str, ColumnFormat] = {
    "val hit rate 5 %": ColumnFormat(number_format="percent"),
    "test hit rate 5 %": ColumnFormat(number_format="percent"),
    "test PAI 5 %": ColumnFormat(number_format="%.2f"),
    "test ROC-AUC": ColumnFormat(number_format="%.3f"),
    "created": ColumnFormat(kind="datetime"),
}

HOTSPOT_COLUMNS: dict[str, ColumnFormat] = {
    "rank": ColumnFormat("#", width_px=40),
    "cell": ColumnFormat("cell", "%d"),
    "place": ColumnFormat("place", kind="text",
                          help="The block, street or address most often recorded in the cell"),
    "chance": ColumnFormat("chance", "%.1f %%", "Chance of at least one incident"),
    "expected": ColumnFormat("expected", "%.2f", "Expected number of incidents"),
    "last 30 days": ColumnFormat("30 days", "%d", "Incidents recorded in the last 30 days"),
    "happened": ColumnFormat("happened", "%d", "Incidents recorded in the cell in that window"),
    "risk level": ColumnFormat("level", kind="text"),
    "map": ColumnFormat("map", kind="link", help="Open the spot in the city's usual map",
                        width_px=60),
}

UPLOAD_COLUMNS: dict[str, ColumnFormat] = {
    "upload_id": ColumnFormat("#", "%d"),
    "file_name": ColumnFormat("file", kind=None),
    "uploaded_at": ColumnFormat("loaded", kind="datetime"),
    "rows_read": ColumnFormat("rows", kind=None),
    "accepted": ColumnFormat("added", kind=None),
    "types": ColumnFormat("types kept", kind=None),
    "is_demo": ColumnFormat("demo", kind=None),
}


# ---------------------------------------------------------------------------------- models


def metric_value(metrics: Any, name: str, pct: str | None = None) -> float | None:
    """metrics[name][pct], metrics["<name>_<pct>"] or metrics[name]; None when absent.

    Saved metrics nest the coverage (`{"pai": {"5": 3.1}}`); older ones were flat."""
    if not isinstance(metrics, dict):
        return None
    value = metrics.get(name)
    if pct is not None:
        value = value.get(pct) if isinstance(value, dict) else metrics.get(f"{name}_{pct}")
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def versions_for_horizon(versions: pd.DataFrame, horizon: str | None) -> pd.DataFrame:
    """The versions (registry.list_models) that forecast a horizon ("7d": trained for the
    next 7 days) or, for None, the next window; in the listing's order."""
    from safety_models.modeling.registry import horizon_days_of

    want = None if horizon is None else int(str(horizon).rstrip("d"))
    days = versions["val_metrics"].map(horizon_days_of) if len(versions) else []
    return versions[[d == want or (want is None and pd.isna(d)) for d in days]]


def versions_table(versions: pd.DataFrame) -> pd.DataFrame:
    """Model versions (registry.list_models) for the dashboard: status, id, when, data,
    origin, validation and test scores, training time."""
    rows = []
    for r in versions.to_dict("records"):
        val, test = r.get("val_metrics") or {}, r.get("test_metrics") or {}
        rows.append({
            "status": {"active": "● in use"}.get(r["status"], r["status"]),
            "model": r["model_id"],
            "created": r["created_at"],
            "data until": when(r.get("data_end")),
            "from": _origin(r.get("parent"), r.get("base_model_id")),
            "val hit rate 5 %": metric_value(val, "hit_rate", "5"),
            "test hit rate 5 %": metric_value(test, "hit_rate", "5"),
            "test PAI 5 %": metric_value(test, "pai", "5"),
            "test ROC-AUC": metric_value(test, "roc_auc"),
            "training time": duration(r.get("train_seconds")),
        })
    return pd.DataFrame(rows)


def _origin(parent: Any, base_model_id: Any) -> str:
    """Where a version started: its parent model, else 'base <id>', else '–'. A column
    mixing ids and None holds NaN for the missing ones, which must not read 'base nan'."""
    if not is_missing(parent) and parent:
        return str(parent)
    if not is_missing(base_model_id) and base_model_id:
        return f"base {base_model_id}"
    return MISSING


def models_text_table(versions: pd.DataFrame) -> pd.DataFrame:
    """Model versions (registry.list_models) for the terminal: one line each, headline
    validation and test scores to three decimals, '-' where absent."""
    def score(metrics: Any, name: str, pct: str | None = None) -> str:
        value = metric_value(metrics, name, pct)
        return MISSING_TERMINAL if value is None else f"{value:.3f}"

    return pd.DataFrame({
        "model_id": versions["model_id"],
        "category": versions["category"].replace({"*": "(base)"}),
        "status": versions["status"],
        "created": versions["created_at"].dt.strftime("%Y-%m-%d %H:%M"),
        "base": versions["base_model_id"].fillna(MISSING_TERMINAL),
        "train_s": versions["train_seconds"].map(
            lambda v: MISSING_TERMINAL if pd.isna(v) else f"{v:.0f}"),
        "val_auc": versions["val_metrics"].map(lambda m: score(m, "roc_auc")),
        "val_pai_5": versions["val_metrics"].map(lambda m: score(m, "pai", "5")),
        "test_auc": versions["test_metrics"].map(lambda m: score(m, "roc_auc")),
        "test_pai_5": versions["test_metrics"].map(lambda m: score(m, "pai", "5")),
    })


# ---------------------------------------------------------------------------------- jobs


def jobs_table(job_rows: Iterable[Mapping[str, Any]], category: str | None = None) -> pd.DataFrame:
    """Recent jobs for the dashboard (of a category, plus the bootstrap/pretrain jobs every
    category needs; every job when category is None)."""
    rows = []
    for job in job_rows:
        job_category = job.get("category")
        if category is not None and job_category not in (None, category):
            continue
        rows.append({
            "job": job.get("job_id"), "kind": job.get("kind"), "status": job.get("status"),
            "started": when(job.get("started_at") or job.get("created_at")),
            "finished": when(job.get("finished_at")),
            "model": job.get("model_id") or "",
            "message": job.get("message") or "",
        })
    return pd.DataFrame(rows)


def loss_history(job: Mapping[str, Any]) -> pd.DataFrame:
    """The loss points of the job's current step (a bootstrap job trains several models, one
    stage and category after another): columns epoch, loss / train_loss / val_loss, ...;
    empty before the first epoch."""
    history = pd.DataFrame(job.get("history") or [])
    if history.empty or "epoch" not in history:
        return pd.DataFrame()
    progress = job.get("progress") or {}
    for key in ("stage", "category"):
        if key in history and progress.get(key) is not None:
            mine = history[history[key] == progress[key]]
            if not mine.empty:
                history = mine
    return history.reset_index(drop=True)


# ---------------------------------------------------------------------------------- uploads


def uploads_table(listing: pd.DataFrame) -> pd.DataFrame:
    """Store.list_uploads for the dashboard: category in words, the incident types kept and
    the incidents' period."""
    return listing.assign(
        category=listing["category"].map(category_label),
        types=_types_kept(listing),
        period=[f"{when(a)} – {when(b)}" for a, b in zip(listing["time_min"], listing["time_max"])],
    )[["upload_id", "file_name", "category", "types", "uploaded_at", "rows_read", "accepted",
       "rejected", "duplicates", "period", "is_demo"]]


def _types_kept(listing: pd.DataFrame) -> list[str]:
    """Per upload: the incident types it kept (ingest --only-types), or "all"."""
    return [", ".join(types) or "all" for types in listing["only_types"]]


def uploads_text_table(listing: pd.DataFrame) -> pd.DataFrame:
    """Store.list_uploads for the terminal: counts with thousands separators, ISO dates."""
    def day(times: pd.Series) -> pd.Series:
        return times.dt.strftime("%Y-%m-%d").fillna(MISSING_TERMINAL)

    return pd.DataFrame({
        "id": listing["upload_id"], "category": listing["category"],
        "file": listing["file_name"], "types": _types_kept(listing),
        "accepted": listing["accepted"].map("{:,}".format),
        "rejected": listing["rejected"].map("{:,}".format),
        "duplicates": listing["duplicates"].map("{:,}".format),
        "from": day(listing["time_min"]),
        "to": day(listing["time_max"]),
        "uploaded": listing["uploaded_at"].dt.strftime("%Y-%m-%d %H:%M"),
        "demo": listing["is_demo"].map({True: "yes", False: ""}),
    })


# ---------------------------------------------------------------------------------- accounts


def account_state(disabled: bool, locked_until: Any, now: pd.Timestamp | None = None) -> str:
    """'disabled', 'locked until 14:05' (a sign-in lock still running) or 'active'."""
    now = pd.Timestamp.now() if now is None else now
    if disabled:
        return "disabled"
    if not is_missing(locked_until) and pd.Timestamp(locked_until) > now:
        return f"locked until {pd.Timestamp(locked_until):%H:%M}"
    return "active"


def accounts_table(listing: pd.DataFrame, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """accounts.list_accounts for the dashboard: name, role, state, times kept as times."""
    return listing.assign(state=[account_state(d, u, now) for d, u in
                                 zip(listing["disabled"], listing["locked_until"])])[
        ["name", "role", "state", "last_login_at", "created_at", "created_by"]]


def accounts_text_table(listing: pd.DataFrame, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """accounts.list_accounts for the terminal: finished strings, ISO times."""
    return pd.DataFrame({
        "name": listing["name"], "role": listing["role"],
        "state": [account_state(d, u, now) for d, u in
                  zip(listing["disabled"], listing["locked_until"])],
        "last sign-in": listing["last_login_at"].dt.strftime("%Y-%m-%d %H:%M").fillna("never"),
        "created": listing["created_at"].dt.strftime("%Y-%m-%d %H:%M"),
        "by": listing["created_by"],
    })


def audit_text_table(rows: pd.DataFrame, detail_chars: int = 80) -> pd.DataFrame:
    """audit.query's rows for the terminal, in the order given; long details cut."""
    return pd.DataFrame({
        "when": rows["at"].dt.strftime("%Y-%m-%d %H:%M:%S"), "who": rows["who"],
        "via": rows["via"], "action": rows["action"], "target": rows["target"],
        "outcome": rows["outcome"],
        "detail": [d if len(d) <= detail_chars else d[:detail_chars - 1] + "…"
                   for d in rows["detail"].astype(str)],
    })


# ---------------------------------------------------------------------------------- hotspots


def top_hotspots(prediction: pd.DataFrame, n: int = 10,
                 geojson: dict[str, Any] | None = None,
                 places: pd.DataFrame | None = None) -> pd.DataFrame:
    """The n highest-ranked cells of a prediction: rank, cell, district (from the outlines,
    '' without), place (the cell's most frequent block/street/address, from the forecasts'
    places: cell_id, place; '' without), risk level, chance (percent, one decimal), expected,
    last 30 days, happened (a past window's incidents; absent for the next window), map (a
    link to the cell centre in the city's usual map), lat, lon."""
    columns = ["rank", "cell", "district", "place", "risk level", "chance", "expected",
               "last 30 days", "map", "lat", "lon"]
    if prediction.empty:
        return pd.DataFrame(columns=columns)
    from safety_models.presentation.basemap import place_url
    from safety_models.presentation.maplayers import district_of   # shapely: only here

    top = prediction.sort_values("rank").head(n)
    known = {} if places is None or places.empty else dict(
        zip(places["cell_id"].astype(int), places["place"].astype(str)))
    table = pd.DataFrame({
        "rank": top["rank"].astype(int).to_numpy(),
        "cell": top["cell_id"].astype(int).to_numpy(),
        "district": district_of(top["lat"], top["lon"], geojson),
        "place": [known.get(int(c), "") for c in top["cell_id"]],
        "risk level": top["risk_level"].astype(str).to_numpy(),
        "chance": (100 * top["probability"].astype(float)).round(1).to_numpy(),
        "expected": top["expected_count"].astype(float).round(2).to_numpy(),
        "last 30 days": top["events_last_30d"].astype(int).to_numpy(),
        "map": [place_url(lat, lon) for lat, lon in zip(top["lat"], top["lon"])],
        "lat": top["lat"].astype(float).round(5).to_numpy(),
        "lon": top["lon"].astype(float).round(5).to_numpy(),
    })
    if "happened" in top:
        table.insert(columns.index("last 30 days") + 1, "happened",
                     top["happened"].astype(int).to_numpy())
    return table


def hotspots_shown(hotspots: pd.DataFrame, with_risk_level: bool = False,
                   with_expected: bool = False) -> pd.DataFrame:
    """The columns of top_hotspots worth showing: where the cell is, as people name places
    (the district when the outlines name one, the place where the files name one, else the
    cell; with its risk level if asked when neither names it), the chance, the expected
    incidents if asked (where known: a past window keeps only the chance), what happened
    (a past window) or the last 30 days, and the link to the map."""
    where = [c for c in ("district", "place") if hotspots[c].astype(bool).any()]
    if not where:
        where = ["cell", "risk level"] if with_risk_level else ["cell"]
    expected = ["expected"] if with_expected and hotspots["expected"].notna().any() else []
    counts = ["happened"] if "happened" in hotspots else ["last 30 days"]
    return hotspots[["rank", *where, "chance", *expected, *counts, "map"]]


def _markdown_cell(value: Any) -> str:
    """A value for a markdown table cell: pipes and line breaks cannot break the table."""
    return str(value).replace("|", "\\|").replace("\n", " ").strip() or MISSING


def hotspots_markdown(shown: pd.DataFrame) -> str:
    """hotspots_shown as a markdown table for people: labels of HOTSPOT_COLUMNS, the chance
    in percent, the map column as a link. (A markdown table needs nothing more loaded in the
    browser; a few rows need no sorting or scrolling.)"""
    formats = HOTSPOT_COLUMNS
    heads = [formats[c].label if c in formats and formats[c].label else c for c in shown.columns]
    right = {"rank", "cell", "chance", "expected", "last 30 days", "happened"}
    lines = ["| " + " | ".join(heads) + " |",
             "|" + "|".join("--:" if c in right else ":--" for c in shown.columns) + "|"]
    for row in shown.to_dict("records"):
        cells = []
        for column, value in row.items():
            if column == "chance":
                cells.append(f"{float(value):.1f} %")
            elif column == "expected":
                cells.append(MISSING if is_missing(value) else f"{float(value):.2f}")
            elif column == "map":
                cells.append(f"[open ↗]({value})")
            else:
                cells.append(_markdown_cell(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- over time


def period_starts(times: pd.Series, freq: str) -> pd.Series:
    """The start of each time's period: "D" day, "W" week from Monday, "M" calendar month."""
    times = pd.to_datetime(times)
    if freq == "D":
        return times.dt.normalize()
    if freq == "W":
        return times.dt.normalize() - pd.to_timedelta(times.dt.day_of_week, unit="D")
    if freq == "M":
        return times.dt.to_period("M").dt.start_time
    raise ValueError(f"freq must be 'D', 'W' or 'M', got {freq!r}")


_RANGE_FREQ = {"D": "D", "W": "W-MON", "M": "MS"}


def incidents_per_period(incidents: pd.DataFrame, freq: str = "W",
                         by_subtype: bool = False, top_subtypes: int = 8) -> pd.DataFrame:
    """Incidents counted per period: columns period (start), [subtype], incidents.

    freq: "D" days, "W" weeks starting Monday, "M" months. Without by_subtype, periods with
    no incident count 0 (so a gap in the data shows as a gap). by_subtype: one series per
    subtype; all but the top_subtypes most frequent are summed as "other", an empty subtype
    is "unspecified".

    incidents: one row per incident (occurred_at, subtype), or counts already made in the
    database (Store.incidents_per_day: occurred_at, subtype, incidents), which are summed."""
    columns = ["period", "subtype", "incidents"] if by_subtype else ["period", "incidents"]
    if incidents.empty:
        return pd.DataFrame(columns=columns)
    period = period_starts(incidents["occurred_at"], freq)
    weight = (incidents["incidents"].to_numpy(dtype="int64") if "incidents" in incidents
              else np.ones(len(incidents), dtype="int64"))
    if not by_subtype:
        counts = pd.Series(weight, index=pd.DatetimeIndex(period)).groupby(level=0).sum()
        full = pd.date_range(counts.index.min(), counts.index.max(), freq=_RANGE_FREQ[freq])
        counts = counts.reindex(full, fill_value=0)
        return pd.DataFrame({"period": counts.index, "incidents": counts.to_numpy()})
    subtype = incidents["subtype"].fillna("").astype(str).str.strip()
    subtype = subtype.where(subtype != "", "unspecified")
    top = (pd.Series(weight, index=subtype.to_numpy()).groupby(level=0).sum()
           .sort_values(ascending=False, kind="stable").head(top_subtypes).index)
    subtype = subtype.where(subtype.isin(top), "other")
    table = (pd.DataFrame({"period": period.to_numpy(), "subtype": subtype.to_numpy(),
                           "incidents": weight})
             .groupby(["period", "subtype"])["incidents"].sum().reset_index())
    return table[columns]


def incidents_by_category(per_category: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """incidents_per_period tables of several categories in one: period, incidents, category
    (in words); categories without incidents are left out (empty when none has any)."""
    frames = [table.assign(category=category_label(category))
              for category, table in per_category.items() if not table.empty]
    return pd.concat(frames) if frames else pd.DataFrame(columns=["period", "incidents",
                                                                  "category"])


# ---------------------------------------------------------------------------------- evaluation


def forecasters(evaluation: Mapping[str, Any]) -> dict[str, dict]:
    """An evaluation's forecasters by saved name, the baselines first and the model last (so
    charts draw its line on top)."""
    results = evaluation["results"]
    return {**results.get("baselines", {}), "model": results["model"]}


def metrics_table(evaluation: Mapping[str, Any]) -> pd.DataFrame:
    """The model's and every baseline's headline test scores, one row each (model first),
    then, where the evaluation has them, the network alone (a blend's) and the hindsight
    oracle; indexed by the forecaster's name for people; the METRIC_COLUMNS present, in their
    order."""
    from safety_models.evaluation.backtest import summary_table

    table = summary_table(evaluation, extra=True)
    table.index = [baseline_label(name) for name in table.index]
    table.index.name = "forecaster"
    return table[[c for c in METRIC_COLUMNS if c in table.columns]]


AREA_MEASURES: dict[str, str] = {"hit_rate_area": "hit rate", "pai_area": "PAI",
                                  "pei_area": "PEI"}


def area_scores_table(evaluation: Mapping[str, Any]) -> pd.DataFrame:
    """Scores at the flagged areas the evaluation was asked for (evaluate --flag-area, e.g.
    "0.75sqmi"): one row per forecaster that has them (model first, the baselines, the
    network alone, the oracle), columns "<measure> <area>" (hit rate, PAI, PEI) and, first,
    how many cells each area flags ("cells <area>"). Empty when the evaluation has none."""
    results = evaluation.get("results") or {}
    by_name = {"model": results.get("model") or {}, **(results.get("baselines") or {}),
               **{k: results[k] for k in ("network", "oracle") if k in results}}
    areas = list((by_name["model"].get("pai_area") or {}).keys())
    if not areas:
        return pd.DataFrame()
    cells = by_name["model"].get("cells_flagged_area") or {}
    rows = {}
    for name, m in by_name.items():
        if not m.get("pai_area"):
            continue
        row: dict[str, Any] = {}
        for area in areas:
            row[f"cells {area}"] = cells.get(area)
            for key, label in AREA_MEASURES.items():
                value = (m.get(key) or {}).get(area)
                row[f"{label} {area}"] = float("nan") if value is None else float(value)
        rows[baseline_label(name)] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "forecaster"
    return table


def area_columns(table: pd.DataFrame) -> dict[str, ColumnFormat]:
    """How area_scores_table's columns look (their names carry the area strings)."""
    formats = {"cells": ColumnFormat(number_format="%d", help="Cells flagged to cover the area"),
               "hit rate": ColumnFormat(number_format="percent"),
               "PAI": ColumnFormat(number_format="%.2f"), "PEI": ColumnFormat(number_format="%.2f")}
    return {c: formats[c.rsplit(" ", 1)[0]] for c in table.columns
            if c.rsplit(" ", 1)[0] in formats}


COMPARISON_MEASURES: dict[str, tuple[str, float, int]] = {   # key: (label, scale, digits)
    "pai_5": ("PAI 5 %", 1.0, 2), "hit_rate_5": ("hit rate 5 % (points)", 100.0, 1),
    "auc": ("ROC-AUC", 1.0, 3)}


def comparisons_table(evaluation: Mapping[str, Any]) -> pd.DataFrame:
    """The model minus each baseline (and minus the network alone, for a blend), window by
    window on the test period: the mean difference with its 95 % paired bootstrap interval
    (text.interval_text; hit rate in percentage points) and the share of windows the model
    did better. Rows: the other forecaster for people; empty when the evaluation has no
    comparisons (saved before they were computed)."""
    from safety_models.presentation.text import interval_text

    model = (evaluation.get("results") or {}).get("model") or {}
    others = dict(model.get("vs_baselines") or {})
    if model.get("vs_network"):
        others["network"] = model["vs_network"]
    rows = {}
    for name, comparison in others.items():
        row = {label: interval_text(comparison.get(key), scale, digits)
               for key, (label, scale, digits) in COMPARISON_MEASURES.items()}
        better = (comparison.get("pai_5") or {}).get("share_model_better")
        row["windows better (PAI)"] = MISSING if is_missing(better) else f"{100 * float(better):.0f} %"
        rows[baseline_label(name)] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model minus"
    return table


def oracle_gap_text(evaluation: Mapping[str, Any]) -> str | None:
    """The share of the gap between the best baseline and the hindsight oracle that the model
    closes, in one line (PAI at 5 % and ROC-AUC); None when the evaluation has none."""
    gap = ((evaluation.get("results") or {}).get("model") or {}).get("oracle_gap") or {}
    if not gap.get("best_baseline"):
        return None

    def share(key: str) -> str:
        value = gap.get(f"{key}_share")
        return MISSING if is_missing(value) else f"{100 * float(value):.0f} %"

    return (f"Of the gap between the best baseline ({baseline_label(gap['best_baseline'])}) and "
            f"the hindsight ranking, the model closes **{share('pai_5')}** on PAI at 5 % and "
            f"**{share('roc_auc')}** on ROC-AUC (100 % = as good as knowing where the period's "
            "incidents would fall; below 0 = worse than the baseline).")


def confusion_table(model_results: Mapping[str, Any]) -> pd.DataFrame:
    """The model's yes/no outcomes at its threshold: rows flagged / not flagged, columns
    incident happened / no incident (counts of cell-windows; None when not saved)."""
    confusion = model_results.get("confusion") or {}
    return pd.DataFrame({"incident happened": [confusion.get("tp"), confusion.get("fn")],
                         "no incident": [confusion.get("fp"), confusion.get("tn")]},
                        index=["flagged", "not flagged"])


def headline_scores(evaluation: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The model's headline test scores and the best baseline's, from a saved evaluation.

    Returns hit_rate_5, pai_5, roc_auc of the model, and for each the best baseline value
    (best_hit_rate_5 with best_baseline, best_pai_5, best_roc_auc with best_baseline_auc);
    NaN / '–' without baselines; None when there is no evaluation or it lacks the model's
    scores."""
    if not evaluation or "results" not in evaluation:
        return None
    from safety_models.evaluation.backtest import summary_table

    table = summary_table(evaluation)
    if "model" not in table.index:
        return None
    model = table.loc["model"]
    baselines = table.drop(index="model")
    out: dict[str, Any] = {k: float(model[k]) for k in ("hit_rate_5", "pai_5", "roc_auc")}
    if baselines.empty:
        out.update(best_hit_rate_5=float("nan"), best_pai_5=float("nan"),
                   best_roc_auc=float("nan"), best_baseline="–", best_baseline_auc="–")
        return out
    best = baselines["hit_rate_5"].astype(float).fillna(-1).idxmax()
    best_auc = baselines["roc_auc"].astype(float).fillna(-1).idxmax()
    out.update(best_hit_rate_5=float(baselines.loc[best, "hit_rate_5"]),
               best_pai_5=float(baselines["pai_5"].astype(float).max()),
               best_roc_auc=float(baselines.loc[best_auc, "roc_auc"]),
               best_baseline=baseline_label(best), best_baseline_auc=baseline_label(best_auc))
    return out


def headline_markdown(headline: Mapping[str, Any]) -> str:
    """headline_scores as a small markdown table: model beside the best baseline, with ▲/▼
    where the model is better/worse at the precision shown."""
    def row(label: str, model: float, baseline: float, fmt: str) -> str:
        shown, shown_baseline = format(model, fmt), format(baseline, fmt)
        # An arrow only where the difference shows at the precision displayed.
        better = "" if pd.isna(baseline) or pd.isna(model) or shown == shown_baseline else (
            " ▲" if model > baseline else " ▼")
        return (f"| {label} | **{shown}**{better} | "
                f"{'–' if pd.isna(baseline) else shown_baseline} |")

    return "\n".join([
        "| | model | best baseline |", "|:--|--:|--:|",
        row("PAI @ 5 %", headline["pai_5"], headline["best_pai_5"], ".1f"),
        row("hit rate @ 5 %", headline["hit_rate_5"], headline["best_hit_rate_5"], ".0%"),
        row("ROC-AUC", headline["roc_auc"], headline["best_roc_auc"], ".2f"),
    ])


def scores_over_time(evaluation: Mapping[str, Any], metric: str = "hit_rate_5") -> pd.DataFrame:
    """Per-window scores of the model and every baseline: columns start, forecaster (the
    saved name), value. Daily windows are averaged per week (Monday) so the chart shows a
    trend rather than a comb of 0 and 100 %; windows without events (no score) are skipped."""
    results = evaluation.get("results") or {}
    by_name = {"model": results.get("model") or {}, **(results.get("baselines") or {})}
    rows = [{"start": w.get("start"), "forecaster": name, "value": w.get(metric)}
            for name, m in by_name.items() for w in (m.get("per_window") or [])]
    table = pd.DataFrame(rows, columns=["start", "forecaster", "value"]).dropna()
    if table.empty:
        return table
    table["start"] = pd.to_datetime(table["start"])
    table["value"] = table["value"].astype(float)
    if int(evaluation.get("window_hours") or 24) < 168:
        table["start"] = period_starts(table["start"], "W")
        table = table.groupby(["start", "forecaster"], sort=True)["value"].mean().reset_index()
    return table
