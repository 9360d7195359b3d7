"""tables: the DataFrames shown for model versions, jobs, uploads, hotspots, evaluations and
incidents over time."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from safety_models.presentation import tables


def metrics(hit, pai, auc):
    return {"hit_rate": {"5": hit}, "pai": {"5": pai}, "roc_auc": auc}


def evaluation_of(model, **baselines) -> dict:
    return {"results": {"model": model, "baselines": baselines}}


def test_metric_value_reads_nested_and_flat_metrics():
    assert tables.metric_value({"pai": {"5": 3.5}}, "pai", "5") == 3.5
    assert tables.metric_value({"pai_5": 2.0}, "pai", "5") == 2.0
    assert tables.metric_value({"roc_auc": "0.75"}, "roc_auc") == 0.75
    assert tables.metric_value({"roc_auc": "n/a"}, "roc_auc") is None
    assert tables.metric_value(None, "roc_auc") is None
    assert tables.metric_value({}, "pai", "5") is None


VERSIONS = pd.DataFrame({
    "model_id": ["crime-2", "crime-1", "base-1"], "category": ["crime", "crime", "*"],
    "status": ["active", "retired", "active"],
    "created_at": pd.to_datetime(["2026-11-28 14:05", "2026-11-01 09:00", "2026-10-01 08:00"]),
    "data_end": pd.to_datetime(["2026-11-27", None, None]),
    "base_model_id": ["base-1", None, None], "parent": [None, None, None],
    "train_seconds": [125.0, float("nan"), 4000.0],
    "val_metrics": [{"hit_rate_5": 0.4, "pai_5": 8.0, "roc_auc": 0.8}, None, None],
    "test_metrics": [metrics(0.35, 7.0, 0.7812), {"roc_auc": 0.6}, None],
})


def test_versions_table_for_the_dashboard():
    table = tables.versions_table(VERSIONS)
    first = table.iloc[0].to_dict()
    assert first["status"] == "● in use" and first["model"] == "crime-2"
    assert first["from"] == "base base-1" and first["data until"] == "27 Nov 2026"
    assert (first["val hit rate 5 %"], first["test PAI 5 %"], first["test ROC-AUC"]) == \
        (0.4, 7.0, 0.7812)
    assert first["training time"] == "2 min 5 s"
    assert list(table["status"]) == ["● in use", "retired", "● in use"]
    # A base id column mixing ids and None holds NaN: no "base nan".
    assert table.iloc[1]["from"] == "–" and table.iloc[1]["training time"] == "–"
    assert pd.isna(table.iloc[1]["test hit rate 5 %"])
    assert set(tables.VERSION_COLUMNS) <= set(table.columns)


def test_models_text_table_for_the_terminal():
    table = tables.models_text_table(VERSIONS)
    assert table.iloc[0].to_dict() == {
        "model_id": "crime-2", "category": "crime", "status": "active",
        "created": "2026-11-28 14:05", "base": "base-1", "train_s": "125",
        "val_auc": "0.800", "val_pai_5": "8.000", "test_auc": "0.781", "test_pai_5": "7.000"}
    assert table.iloc[2]["category"] == "(base)"
    assert table.iloc[1][["base", "train_s", "val_auc", "test_pai_5"]].tolist() == \
        ["-", "-", "-", "-"]


def test_jobs_table_keeps_the_category_and_the_shared_jobs():
    rows = [{"job_id": 1, "kind": "train", "category": "crime", "status": "succeeded",
             "created_at": pd.Timestamp("2026-11-28 14:05"), "model_id": "crime-2"},
            {"job_id": 2, "kind": "train", "category": "traffic", "status": "failed",
             "message": "no data"},
            {"job_id": 3, "kind": "bootstrap", "category": None, "status": "running",
             "started_at": pd.Timestamp("2026-11-28 00:00")}]
    table = tables.jobs_table(rows, "crime")
    assert list(table["job"]) == [1, 3]
    assert table.iloc[0].to_dict() == {"job": 1, "kind": "train", "status": "succeeded",
                                       "started": "28 Nov 2026 14:05", "finished": "–",
                                       "model": "crime-2", "message": ""}
    assert table.iloc[1]["started"] == "28 Nov 2026"
    assert list(tables.jobs_table(rows)["job"]) == [1, 2, 3]
    assert tables.jobs_table([], "crime").empty


def test_loss_history_keeps_the_current_step():
    job = {"history": [{"stage": "pretrain", "epoch": 1, "loss": 1.0},
                       {"stage": "train", "category": "crime", "epoch": 1, "loss": 0.5},
                       {"stage": "train", "category": "traffic", "epoch": 1, "loss": 0.4},
                       {"stage": "train", "category": "traffic", "epoch": 2, "loss": 0.3}],
           "progress": {"stage": "train", "category": "traffic"}}
    history = tables.loss_history(job)
    assert list(history["epoch"]) == [1, 2] and list(history["loss"]) == [0.4, 0.3]
    assert tables.loss_history({"history": []}).empty
    assert tables.loss_history({"history": [{"stage": "x"}]}).empty


LISTING = pd.DataFrame({
    "upload_id": [1, 2], "file_name": ["a.csv", "b.csv"], "category": ["crime", "health"],
    "uploaded_at": pd.to_datetime(["2026-11-28 14:05", "2026-11-29 08:00"]),
    "rows_read": [1500, 10], "accepted": [1204, 0], "rejected": [290, 10],
    "duplicates": [6, 0], "is_demo": [True, False],
    "time_min": pd.to_datetime(["2019-03-01 08:15", None]),
    "time_max": pd.to_datetime(["2019-03-04", None]),
    "stored_path": ["x", "y"], "only_types": [[], ["burglary", "robbery"]],
})


def test_uploads_tables_for_the_dashboard_and_the_terminal():
    shown = tables.uploads_table(LISTING)
    assert list(shown.columns) == ["upload_id", "file_name", "category", "types", "uploaded_at",
                                   "rows_read", "accepted", "rejected", "duplicates", "period",
                                   "is_demo"]
    assert list(shown["category"]) == ["Crime", "Public health"]
    assert list(shown["types"]) == ["all", "burglary, robbery"]
    assert list(shown["period"]) == ["01 Mar 2019 08:15 – 04 Mar 2019", "– – –"]
    terminal = tables.uploads_text_table(LISTING)
    assert terminal.iloc[0].to_dict() == {
        "id": 1, "category": "crime", "file": "a.csv", "types": "all", "accepted": "1,204", "rejected": "290",
        "duplicates": "6", "from": "2019-03-01", "to": "2019-03-04",
        "uploaded": "2026-11-28 14:05", "demo": "yes"}
    assert terminal.iloc[1][["from", "to", "demo"]].tolist() == ["-", "-", ""]


def prediction_table(n: int = 6) -> pd.DataFrame:
    probability = np.linspace(0.3, 0.0, n)
    return pd.DataFrame({
        "cell_id": np.arange(n), "lat": 41.0 + 0.01 * np.arange(n), "lon": -87.0,
        "probability": probability, "expected_count": probability * 2,
        "events_last_30d": np.arange(n)[::-1], "rank": np.arange(1, n + 1),
        "risk_level": ["very high", "high", "elevated", "low", "low", "low"][:n],
    })


SQUARE = {"type": "FeatureCollection", "features": [{
    "type": "Feature", "properties": {"dist_num": "7", "name": "7"},
    "geometry": {"type": "Polygon", "coordinates": [[[-87.1, 40.99], [-86.9, 40.99],
                                                     [-86.9, 41.015], [-87.1, 41.015],
                                                     [-87.1, 40.99]]]}}]}


def test_top_hotspots_and_the_columns_shown():
    top = tables.top_hotspots(prediction_table(), 3)
    assert list(top["rank"]) == [1, 2, 3] and list(top["chance"]) == [30.0, 24.0, 18.0]
    assert list(top["district"]) == ["", "", ""] and list(top["place"]) == ["", "", ""]
    assert list(tables.hotspots_shown(top).columns) == ["rank", "cell", "chance",
                                                        "last 30 days", "map"]
    assert list(tables.hotspots_shown(top, with_risk_level=True).columns) == \
        ["rank", "cell", "risk level", "chance", "last 30 days", "map"]
    named = tables.top_hotspots(prediction_table(), 3, SQUARE)
    assert list(named["district"]) == ["District 7", "District 7", ""]
    assert list(tables.hotspots_shown(named, with_risk_level=True).columns) == \
        ["rank", "district", "chance", "last 30 days", "map"]
    assert tables.top_hotspots(prediction_table().iloc[:0], 3).empty


def test_hotspots_are_named_by_place_and_open_in_the_citys_map(monkeypatch):
    table = prediction_table()
    places = pd.DataFrame({"cell_id": [int(table["cell_id"].iloc[0])],
                           "place": ["010XX W MADISON ST"]})
    top = tables.top_hotspots(table, 3, SQUARE, places)
    assert list(top["place"]) == ["010XX W MADISON ST", "", ""]
    assert list(tables.hotspots_shown(top).columns) == ["rank", "district", "place", "chance",
                                                        "last 30 days", "map"]
    lat, lon = top["lat"].iloc[0], top["lon"].iloc[0]
    assert top["map"].iloc[0] == (f"https://www.openstreetmap.org/?mlat={lat:.5f}&mlon={lon:.5f}"
                                  f"#map=17/{lat:.5f}/{lon:.5f}")
    monkeypatch.setenv("SAFETY_MODELS_PLACE_URL", "https://maps.city.example/?at={lat},{lon}")
    assert tables.top_hotspots(table, 1)["map"].iloc[0] == \
        f"https://maps.city.example/?at={lat},{lon}"
    # A past window: what happened replaces the last 30 days.
    past = table.assign(happened=[2] + [0] * (len(table) - 1))
    shown = tables.hotspots_shown(tables.top_hotspots(past, 3))
    assert list(shown.columns) == ["rank", "cell", "chance", "happened", "map"]
    assert list(shown["happened"]) == [2, 0, 0]


def test_incidents_per_week_fill_gaps_with_zero():
    times = pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-20"])   # Wed, Thu, Mon
    df = pd.DataFrame({"occurred_at": times, "subtype": ["a", "", "a"]})
    weekly = tables.incidents_per_period(df, "W")
    assert list(weekly["period"]) == list(pd.to_datetime(["2024-12-30", "2025-01-06",
                                                           "2025-01-13", "2025-01-20"]))
    assert list(weekly["incidents"]) == [2, 0, 0, 1]
    by_type = tables.incidents_per_period(df, "W", by_subtype=True)
    assert set(by_type["subtype"]) == {"a", "unspecified"}
    assert by_type["incidents"].sum() == 3
    monthly = tables.incidents_per_period(df, "M")
    assert list(monthly["incidents"]) == [3]
    with pytest.raises(ValueError, match="freq"):
        tables.period_starts(times.to_series(), "Y")


def test_incidents_by_category_names_the_categories_and_skips_empty_ones():
    week = pd.DataFrame({"period": pd.to_datetime(["2025-01-06"]), "incidents": [4]})
    table = tables.incidents_by_category({"crime": week, "health": week.iloc[:0]})
    assert table[["category", "incidents"]].values.tolist() == [["Crime", 4]]
    assert tables.incidents_by_category({"crime": week.iloc[:0]}).empty


def test_metrics_table_model_first_with_names_for_people():
    evaluation = evaluation_of(metrics(0.3, 6.0, 0.8), naive=metrics(0.1, 2.0, 0.6),
                               kde=metrics(0.25, 5.0, 0.82))
    table = tables.metrics_table(evaluation)
    assert list(table.index) == ["this model", "last window (naive)", "kernel density (KDE)"]
    assert table.loc["this model", "hit_rate_5"] == 0.3
    assert table.loc["kernel density (KDE)", "pai_5"] == 5.0
    assert list(table.columns) == [c for c in tables.METRIC_COLUMNS if c in table.columns]
    assert list(tables.forecasters(evaluation)) == ["naive", "kde", "model"]


def test_confusion_table():
    table = tables.confusion_table({"confusion": {"tp": 5, "fn": 2, "fp": 30, "tn": 963}})
    assert table.loc["flagged"].tolist() == [5, 30]
    assert table.loc["not flagged"].tolist() == [2, 963]
    assert list(table.columns) == ["incident happened", "no incident"]


def test_headline_scores_pick_the_best_baseline():
    evaluation = evaluation_of(metrics(0.3, 6.0, 0.8), naive=metrics(0.1, 2.0, 0.6),
                               kde=metrics(0.25, 5.0, 0.82))
    head = tables.headline_scores(evaluation)
    assert head["hit_rate_5"] == 0.3 and head["best_hit_rate_5"] == 0.25
    assert head["best_baseline"] == "kernel density (KDE)"
    assert head["best_roc_auc"] == 0.82
    assert tables.headline_scores(None) is None
    alone = tables.headline_scores(evaluation_of(metrics(0.3, 6.0, 0.8)))
    assert math.isnan(alone["best_pai_5"]) and alone["best_baseline"] == "–"


def test_headline_markdown_marks_where_the_model_is_better():
    head = {"pai_5": 6.04, "best_pai_5": 5.0, "hit_rate_5": 0.301, "best_hit_rate_5": 0.299,
            "roc_auc": 0.8, "best_roc_auc": 0.82}
    assert tables.headline_markdown(head).splitlines() == [
        "| | model | best baseline |", "|:--|--:|--:|",
        "| PAI @ 5 % | **6.0** ▲ | 5.0 |",
        "| hit rate @ 5 % | **30%** | 30% |",          # equal at the precision shown: no arrow
        "| ROC-AUC | **0.80** ▼ | 0.82 |",
    ]
    alone = tables.headline_markdown({**head, "best_pai_5": float("nan")})
    assert "| PAI @ 5 % | **6.0** | – |" in alone


def test_scores_over_time_average_days_per_week():
    def window(start, value):
        return {"start": start, "hit_rate_5": value}

    evaluation = {"window_hours": 24, "results": {
        "model": {"per_window": [window("2025-01-06", 1.0), window("2025-01-07", 0.0),
                                 window("2025-01-08", None), window("2025-01-13", 0.5)]},
        "baselines": {"kde": {"per_window": [window("2025-01-06", 0.2)]}}}}
    table = tables.scores_over_time(evaluation)
    model = table[table["forecaster"] == "model"]
    assert list(model["start"]) == list(pd.to_datetime(["2025-01-06", "2025-01-13"]))
    assert list(model["value"]) == [0.5, 0.5]   # the window without a score is skipped
    assert table[table["forecaster"] == "kde"]["value"].tolist() == [0.2]


def test_hotspots_as_a_markdown_table():
    shown = pd.DataFrame({"rank": [1, 2], "district": ["District 11", "District 4"],
                          "place": ["0XX W A | B ST", ""], "chance": [13.25, 9.0],
                          "last 30 days": [6, 1], "map": ["https://m/1", "https://m/2"]})
    assert tables.hotspots_markdown(shown).splitlines() == [
        "| # | district | place | chance | 30 days | map |",
        "|--:|:--|:--|--:|--:|:--|",
        "| 1 | District 11 | 0XX W A \\| B ST | 13.2 % | 6 | [open ↗](https://m/1) |",
        "| 2 | District 4 | – | 9.0 % | 1 | [open ↗](https://m/2) |",
    ]


def test_account_states_and_the_terminals_account_table():
    now = pd.Timestamp("2026-11-30 09:00")
    assert tables.account_state(True, None, now) == "disabled"
    assert tables.account_state(False, pd.Timestamp("2026-11-30 09:10"), now) == "locked until 09:10"
    assert tables.account_state(False, pd.Timestamp("2026-11-30 08:50"), now) == "active"
    assert tables.account_state(False, pd.NaT, now) == "active"
    listing = pd.DataFrame({
        "name": ["admin", "ana"], "role": ["admin", "analyst"], "disabled": [False, True],
        "created_at": pd.to_datetime(["2026-11-01 08:00", "2026-11-02 09:30"]),
        "created_by": ["first start (random password)", "root"],
        "last_login_at": pd.to_datetime(["2026-11-29 17:45", None]),
        "locked_until": pd.to_datetime([None, None]),
    })
    shown = tables.accounts_text_table(listing, now)
    assert shown.to_dict("records") == [
        {"name": "admin", "role": "admin", "state": "active", "last sign-in": "2026-11-29 17:45",
         "created": "2026-11-01 08:00", "by": "first start (random password)"},
        {"name": "ana", "role": "analyst", "state": "disabled", "last sign-in": "never",
         "created": "2026-11-02 09:30", "by": "root"}]


def test_scores_at_flagged_areas_one_row_per_forecaster_that_has_them():
    def scored(hit, pai, pei):
        return {**metrics(hit, pai, 0.7), "hit_rate_area": {"1km2": hit},
                "pai_area": {"1km2": pai}, "pei_area": {"1km2": pei},
                "cells_flagged_area": {"1km2": 4}}

    evaluation = evaluation_of(scored(0.4, 8.0, 0.5), naive=scored(0.2, 4.0, 0.25),
                               kde=metrics(0.3, 5.0, 0.8))
    evaluation["results"]["oracle"] = scored(0.6, 12.0, 0.75)
    table = tables.area_scores_table(evaluation)
    assert list(table.index) == ["this model", "last window (naive)",
                                 "hindsight (not a forecast)"]       # kde has none
    assert list(table.columns) == ["cells 1km2", "hit rate 1km2", "PAI 1km2", "PEI 1km2"]
    assert table.loc["last window (naive)", "PAI 1km2"] == 4.0
    assert table.loc["this model", "cells 1km2"] == 4
    assert set(tables.area_columns(table)) == set(table.columns)
    assert tables.area_scores_table(evaluation_of(metrics(0.4, 8.0, 0.7))).empty


def test_differences_with_intervals_and_the_oracle_gap():
    def diff(mean, low, high, better=None):
        return {"mean_difference": mean, "ci95": [low, high], "share_model_better": better}

    model = metrics(0.4, 8.0, 0.7)
    model["vs_baselines"] = {"naive": {"pai_5": diff(1.5, 0.5, 2.5, 0.6),
                                       "hit_rate_5": diff(0.05, 0.01, 0.09),
                                       "auc": diff(0.02, -0.001, 0.041)}}
    model["oracle_gap"] = {"best_baseline": "naive", "pai_5_share": 0.25, "roc_auc_share": -0.1}
    evaluation = evaluation_of(model, naive=metrics(0.3, 6.5, 0.68))
    table = tables.comparisons_table(evaluation)
    assert table.loc["last window (naive)"].to_dict() == {
        "PAI 5 %": "+1.50 [+0.50, +2.50]", "hit rate 5 % (points)": "+5.0 [+1.0, +9.0]",
        "ROC-AUC": "+0.020 [-0.001, +0.041]", "windows better (PAI)": "60 %"}
    line = tables.oracle_gap_text(evaluation)
    assert "last window (naive)" in line and "**25 %**" in line and "**-10 %**" in line
    assert tables.comparisons_table(evaluation_of(metrics(0.4, 8.0, 0.7))).empty
    assert tables.oracle_gap_text(evaluation_of(metrics(0.4, 8.0, 0.7))) is None


def test_versions_of_a_horizon():
    versions = pd.DataFrame({"model_id": ["c-3", "c-2", "c-1"],
                             "val_metrics": [{"horizon_days": 7}, None, {"pai": {"5": 2}}]})
    assert tables.versions_for_horizon(versions, "7d")["model_id"].tolist() == ["c-3"]
    assert tables.versions_for_horizon(versions, None)["model_id"].tolist() == ["c-2", "c-1"]
    assert tables.versions_for_horizon(versions, "30d").empty


def test_hotspots_with_the_expected_number_where_known():
    top = tables.top_hotspots(prediction_table(), 3)
    shown = tables.hotspots_shown(top, with_expected=True)
    assert list(shown.columns) == ["rank", "cell", "chance", "expected", "last 30 days", "map"]
    assert tables.hotspots_markdown(shown).splitlines()[0] == \
        "| # | cell | chance | expected | 30 days | map |"
    past = prediction_table().assign(expected_count=float("nan"), happened=0)
    shown = tables.hotspots_shown(tables.top_hotspots(past, 3), with_expected=True)
    assert "expected" not in shown.columns          # a past window keeps only the chance
