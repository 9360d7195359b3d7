"""charts: the figures' traces (names, order, colours) and the one layout they share."""

from __future__ import annotations

import pandas as pd
import pytest

from safety_models.presentation import charts


def forecaster(hit_rate, auc, calibration=True):
    return {
        "roc_auc": auc,
        "curves": {"area_share": [0.0, 0.05, 0.1], "hit_rate": [0.0, hit_rate, 1.5 * hit_rate],
                   "pai": [None, hit_rate / 0.05, 1.5 * hit_rate / 0.1],
                   "perfect_hit_rate": [0.0, 0.9, 1.0],
                   "roc": {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.7, 1.0]}},
        "calibration": [{"mean_predicted": 0.1, "observed_rate": 0.12, "count": 50},
                        {"mean_predicted": 0.5, "observed_rate": 0.4, "count": 0}]
        if calibration else [],
    }


@pytest.fixture
def evaluation() -> dict:
    return {"results": {"model": forecaster(0.3, 0.812),
                        "baselines": {"kde": forecaster(0.2, None),
                                      "naive": forecaster(0.1, 0.6, calibration=False)}}}


def names(figure) -> list[str]:
    return [trace.name for trace in figure.data]


def assert_shared_layout(figure, height_px: int) -> None:
    layout = figure.layout
    assert layout.height == height_px
    assert (layout.margin.l, layout.margin.r, layout.margin.b) == (10, 10, 10)
    assert layout.legend.orientation == "h"


def test_hit_rate_figure_draws_the_model_last_and_thickest(evaluation):
    figure = charts.hit_rate_figure(evaluation)
    assert names(figure) == ["kernel density (KDE)", "last window (naive)", "this model",
                             "perfect foresight"]
    model = figure.data[2]
    assert model.line.width == 3 and model.line.color == charts.FORECASTER_COLOURS["model"]
    assert figure.data[0].line.width == 1.5 and figure.data[0].line.color == "#f0a202"
    assert list(model.y) == [0.0, 0.3, pytest.approx(0.45)]
    assert figure.layout.title.text == "Hit rate"
    assert list(figure.layout.xaxis.range) == charts.AREA_RANGE
    assert figure.layout.legend.traceorder == "reversed"    # the model listed first
    assert_shared_layout(figure, 380)


def test_pai_figure_starts_where_area_is_flagged(evaluation):
    figure = charts.pai_figure(evaluation)
    assert names(figure) == ["kernel density (KDE)", "last window (naive)", "this model"]
    assert list(figure.data[2].x) == [0.05, 0.1]
    assert list(figure.data[2].y) == pytest.approx([6.0, 4.5])


def test_roc_figure_names_the_area_under_the_curve(evaluation):
    figure = charts.roc_figure(evaluation)
    assert names(figure) == ["kernel density (KDE)", "last window (naive) (0.60)",
                             "this model (0.81)", "chance"]
    assert figure.data[-1].line.dash == "dot"
    assert_shared_layout(figure, 380)


def test_calibration_figure_skips_empty_bins_and_forecasters(evaluation):
    figure = charts.calibration_figure(evaluation)
    assert names(figure) == ["kernel density (KDE)", "this model", "perfectly calibrated"]
    assert list(figure.data[1].x) == [0.1] and list(figure.data[1].y) == [0.12]


def test_scores_over_time_figure_orders_baselines_by_name_then_the_model():
    per_window = pd.DataFrame({"start": pd.to_datetime(["2025-01-06"] * 3),
                               "forecaster": ["naive", "model", "kde"],
                               "value": [0.1, 0.5, 0.2]})
    figure = charts.scores_over_time_figure(per_window)
    assert names(figure) == ["kernel density (KDE)", "last window (naive)", "this model"]
    assert list(figure.data[2].y) == [0.5]
    assert figure.layout.yaxis.title.text == "hit rate at 5 %"
    assert figure.layout.margin.t == 10 and figure.layout.legend.y == -0.2
    assert_shared_layout(figure, 340)


def test_loss_and_history_figures():
    history = pd.DataFrame({"epoch": [1, 2], "loss": [0.5, 0.3], "val_loss": [0.6, 0.4]})
    figure = charts.loss_figure(history)
    assert names(figure) == ["training loss", "validation loss"]
    assert figure.layout.xaxis.title.text == "epoch"
    assert_shared_layout(figure, 260)
    cell = pd.DataFrame({"window_start": pd.date_range("2025-01-01", periods=3),
                         "events": [0, 2, 1], "probability": [0.1, 0.3, 0.2]})
    figure = charts.history_figure(cell, 17, "day")
    assert names(figure) == ["incidents per day", "predicted chance"]
    assert figure.layout.title.text == "Cell 17"
    assert figure.layout.yaxis2.tickformat == ".0%"
    assert_shared_layout(figure, 300)


def test_study_figure_shows_each_run_once_and_the_best_baseline():
    runs = pd.DataFrame({"base": ["none", "pretrained", "pretrained"],
                         "freeze_up_to": ["none", "layer2", "layer2"],
                         "val_hit_rate_5": [0.1, 0.2, 0.3], "test_hit_rate_5": [0.15, 0.25, 0.35],
                         "baseline_hit_rate_5": [0.2] * 3,
                         "best_baseline": ["historical_average"] * 3})
    figure = charts.study_figure(runs)
    assert names(figure) == ["validation", "test"]
    assert list(figure.data[1].x) == ["scratch", "frozen to layer2"]
    assert list(figure.data[1].y) == [0.15, 0.35]       # the later run of a label wins
    assert figure.layout.annotations[0].text == "best baseline (historical average)"
    without = charts.study_figure(runs.drop(columns="baseline_hit_rate_5"))
    assert not without.layout.annotations


def test_incident_figures():
    per_category = pd.DataFrame({"period": pd.to_datetime(["2025-01-06", "2025-01-13"] * 2),
                                 "incidents": [3, 4, 1, 0],
                                 "category": ["Crime", "Crime", "Public health",
                                              "Public health"]})
    figure = charts.incidents_by_category_figure(per_category)
    assert names(figure) == ["Crime", "Public health"]
    assert figure.layout.title.text == "Incidents by category"
    assert_shared_layout(figure, 340)
    per_subtype = per_category.rename(columns={"category": "subtype"})
    figure = charts.incidents_by_subtype_figure(per_subtype, "Crime")
    assert figure.layout.title.text == "Crime by type" and figure.layout.bargap == 0.05
    assert_shared_layout(figure, 360)
