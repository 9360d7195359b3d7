"""The dashboard's plotly figures, built from the library's tables (no streamlit).

Every figure goes through `_layout`, so all charts share one look: a horizontal legend under
the plot, narrow side margins and a fixed height. Every forecaster (the model and each
baseline) has one colour and one label in every chart; the model's line is the thick one and
is drawn last, on top.
"""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from safety_models.presentation.tables import forecasters
from safety_models.presentation.text import baseline_label, study_run_label

# One colour per forecaster, the same in every chart: the model stands out in dark blue.
FORECASTER_COLOURS: dict[str, str] = {
    "model": "#1d4e89",
    "historical_average": "#e4572e",
    "kde": "#f0a202",
    "prospective_hotspot": "#2a9d8f",
    "naive": "#9a9a9a",
    "seasonal": "#8e6c8a",
}
OTHER_FORECASTER_COLOUR = "#6c757d"
REFERENCE_LINE = {"dash": "dot", "color": "grey"}   # chance, perfect foresight, calibration
# Operators flag at most a few tenths of the city: the area axes show that part.
AREA_RANGE = [0, 0.3]
CURVE_HEIGHT_PX = 380


def forecaster_colour(name: str) -> str:
    return FORECASTER_COLOURS.get(str(name), OTHER_FORECASTER_COLOUR)


def forecaster_line(name: str) -> dict[str, Any]:
    """A forecaster's line style: its colour; thick for the model, thin for the baselines."""
    return {"width": 3 if name == "model" else 1.5, "color": forecaster_colour(name)}


def _layout(figure: go.Figure, height_px: int, top_px: int = 40, legend_y: float = -0.3,
            legend_reversed: bool = False, **layout: Any) -> go.Figure:
    """The one layout every chart shares: height, margins (room for a title at the top
    when top_px allows), a horizontal legend legend_y below the plot (in plot heights;
    reversed so the model, drawn last, is listed first), and the chart's own settings."""
    legend: dict[str, Any] = {"orientation": "h", "y": legend_y}
    if legend_reversed:
        legend["traceorder"] = "reversed"
    figure.update_layout(height=height_px, margin={"l": 10, "r": 10, "t": top_px, "b": 10},
                         legend=legend, **layout)
    return figure


# ---------------------------------------------------------------------------------- training


def loss_figure(history: pd.DataFrame) -> go.Figure:
    """Training (and validation) loss per epoch, from tables.loss_history."""
    figure = go.Figure()
    for column, name in (("loss", "training loss"), ("train_loss", "training loss"),
                         ("val_loss", "validation loss")):
        if column in history:
            figure.add_trace(go.Scatter(x=history["epoch"], y=history[column], name=name,
                                        mode="lines+markers"))
    return _layout(figure, 260, top_px=10, legend_y=-0.35, xaxis_title="epoch",
                   yaxis_title="loss")


def study_figure(runs: pd.DataFrame) -> go.Figure:
    """Test hit rate at 5 % per study run (validation beside it), best baseline as a line."""
    table = runs.copy()
    table["run"] = [study_run_label(r) for r in table.to_dict("records")]
    table = table.drop_duplicates("run", keep="last")
    figure = go.Figure()
    figure.add_trace(go.Bar(x=table["run"], y=table["val_hit_rate_5"], name="validation",
                            marker_color="#9db4d0"))
    figure.add_trace(go.Bar(x=table["run"], y=table["test_hit_rate_5"], name="test",
                            marker_color="#2c5d8f"))
    # A study saved without the baseline's score (older runs) has no line to draw.
    baseline = pd.to_numeric(table.get("baseline_hit_rate_5", pd.Series(dtype=float)),
                             errors="coerce").dropna()
    if len(baseline):
        name = str(table["best_baseline"].dropna().iloc[0]) if "best_baseline" in table else ""
        figure.add_hline(y=float(baseline.iloc[0]), line_dash="dot", line_color="#b10026",
                         annotation_text=f"best baseline ({name.replace('_', ' ')})",
                         annotation_position="top left")
    return _layout(figure, 380, top_px=20, legend_y=-0.35, barmode="group",
                   yaxis={"tickformat": ".0%"}, yaxis_title="hit rate at 5 % of area")


# ---------------------------------------------------------------------------------- incidents


def history_figure(history: pd.DataFrame, cell_id: int, unit: str) -> go.Figure:
    """A cell's recorded incidents per window (bars) and its predicted chance (line, right
    axis), from workflows.cell_history; unit names the window ('day', 'week')."""
    from plotly.subplots import make_subplots

    figure = make_subplots(specs=[[{"secondary_y": True}]])
    time_column = next((c for c in ("window_start", "start", "time") if c in history), None)
    x = history[time_column] if time_column else history.index
    if "events" in history:
        figure.add_trace(go.Bar(x=x, y=history["events"], name=f"incidents per {unit}",
                                marker_color="#4b6584", opacity=0.7), secondary_y=False)
    if "probability" in history:
        figure.add_trace(go.Scatter(x=x, y=history["probability"], name="predicted chance",
                                    mode="lines", line={"color": "#d7301f", "width": 2}),
                         secondary_y=True)
    _layout(figure, 300, top_px=30, legend_y=-0.2, title=f"Cell {cell_id}", bargap=0.1)
    figure.update_yaxes(title_text="incidents", secondary_y=False)
    figure.update_yaxes(title_text="chance", tickformat=".0%", secondary_y=True)
    return figure


def incidents_by_category_figure(per_category: pd.DataFrame) -> go.Figure:
    """One line per category, from tables.incidents_by_category."""
    figure = px.line(per_category, x="period", y="incidents", color="category",
                     title="Incidents by category")
    return _layout(figure, 340, legend_y=-0.2, xaxis_title=None)


def incidents_by_subtype_figure(per_subtype: pd.DataFrame, category: str) -> go.Figure:
    """Stacked bars per subtype, from tables.incidents_per_period(by_subtype=True);
    category is the title's words ('Crime')."""
    figure = px.bar(per_subtype, x="period", y="incidents", color="subtype",
                    title=f"{category} by type")
    return _layout(figure, 360, legend_y=-0.25, xaxis_title=None, bargap=0.05)


# ---------------------------------------------------------------------------------- evaluation


def _curves(evaluation: Mapping[str, Any]) -> dict[str, dict]:
    return {name: m.get("curves") or {} for name, m in forecasters(evaluation).items()}


def _area_axis() -> dict[str, Any]:
    return {"tickformat": ".0%", "range": AREA_RANGE}


def hit_rate_figure(evaluation: Mapping[str, Any]) -> go.Figure:
    """Share of incidents captured against share of area flagged, per forecaster, with the
    perfect-foresight curve."""
    curves = _curves(evaluation)
    figure = go.Figure()
    for name, curve in curves.items():
        if curve.get("area_share"):
            figure.add_trace(go.Scatter(x=curve["area_share"], y=curve["hit_rate"],
                                        name=baseline_label(name), mode="lines",
                                        line=forecaster_line(name)))
    perfect = curves.get("model", {}).get("perfect_hit_rate")
    if perfect:
        figure.add_trace(go.Scatter(x=curves["model"]["area_share"], y=perfect,
                                    name="perfect foresight", mode="lines", line=REFERENCE_LINE))
    return _layout(figure, CURVE_HEIGHT_PX, legend_reversed=True, title="Hit rate",
                   xaxis_title="share of the city's area flagged",
                   yaxis_title="share of incidents captured", xaxis=_area_axis(),
                   yaxis={"tickformat": ".0%"})


def pai_figure(evaluation: Mapping[str, Any]) -> go.Figure:
    """PAI (hit rate ÷ area share) against share of area flagged, per forecaster (from the
    first point with area, where PAI is defined)."""
    figure = go.Figure()
    for name, curve in _curves(evaluation).items():
        if curve.get("area_share"):
            figure.add_trace(go.Scatter(x=curve["area_share"][1:], y=curve["pai"][1:],
                                        name=baseline_label(name), mode="lines",
                                        line=forecaster_line(name)))
    return _layout(figure, CURVE_HEIGHT_PX, legend_reversed=True,
                   title="PAI (predictive accuracy index)",
                   xaxis_title="share of the city's area flagged",
                   yaxis_title="hit rate ÷ area share", xaxis=_area_axis())


def roc_figure(evaluation: Mapping[str, Any]) -> go.Figure:
    """ROC curve per forecaster, its area under the curve in the legend, and the chance line."""
    by_name = forecasters(evaluation)
    figure = go.Figure()
    for name, curve in _curves(evaluation).items():
        roc = curve.get("roc")
        if roc:
            auc = by_name[name].get("roc_auc")
            label = baseline_label(name)
            figure.add_trace(go.Scatter(
                x=roc["fpr"], y=roc["tpr"], mode="lines",
                name=f"{label} ({auc:.2f})" if auc is not None else label,
                line=forecaster_line(name)))
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                                line=REFERENCE_LINE))
    return _layout(figure, CURVE_HEIGHT_PX, legend_reversed=True,
                   title="ROC (area under the curve in brackets)",
                   xaxis_title="false alarm rate", yaxis_title="detection rate")


def calibration_figure(evaluation: Mapping[str, Any]) -> go.Figure:
    """Observed share of cell-windows with an incident against the predicted chance, per bin
    with any cell-window, per forecaster; the diagonal is perfect calibration."""
    figure = go.Figure()
    for name, m in forecasters(evaluation).items():
        rows = pd.DataFrame(m.get("calibration") or [])
        if rows.empty:
            continue
        rows = rows[rows["count"] > 0]
        figure.add_trace(go.Scatter(
            x=rows["mean_predicted"], y=rows["observed_rate"], mode="lines+markers",
            name=baseline_label(name), line=forecaster_line(name)))
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                                line=REFERENCE_LINE))
    return _layout(figure, CURVE_HEIGHT_PX, legend_reversed=True,
                   title="Calibration: predicted chance against what happened",
                   xaxis_title="predicted chance", yaxis_title="observed share",
                   xaxis={"tickformat": ".0%"}, yaxis={"tickformat": ".0%"})


def scores_over_time_figure(per_window: pd.DataFrame,
                            title: str = "hit rate at 5 %") -> go.Figure:
    """One line per forecaster over the test period, from tables.scores_over_time (the
    baselines in name order, the model last); title names the score (a share)."""
    figure = go.Figure()
    for name in [*sorted(set(per_window["forecaster"]) - {"model"}), "model"]:
        part = per_window[per_window["forecaster"] == name]
        figure.add_trace(go.Scatter(x=part["start"], y=part["value"], name=baseline_label(name),
                                    mode="lines+markers", line=forecaster_line(name)))
    return _layout(figure, 340, top_px=10, legend_y=-0.2, legend_reversed=True,
                   yaxis={"tickformat": ".0%", "title": title})
