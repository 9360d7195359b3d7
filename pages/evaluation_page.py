"""Evaluation: how a model did on a later period it never saw, next to every baseline on the
same windows and cells; the curves, the calibration, the confusion matrix, the scores over
time, and the fine-tuning study."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pages import _auth as auth
from pages import _common as ui
from safety_models.presentation import maplayers as mapview
from safety_models import paths

st.title("Evaluation")
st.caption("Every model is scored on the windows after its training data (the test period), "
           "window by window, seeing only the past – exactly like the baselines beside it.")

store = ui.get_store()
url = paths.db_url()

category = ui.category_selector("eval_category")
versions = ui.list_models(category)
if versions.empty:
    ui.wait_for_model(category)
    st.stop()

active = versions.loc[versions["status"] == "active", "model_id"]
ids = versions["model_id"].astype(str).tolist()
labels = {r.model_id: f"{r.model_id} ({r.status})" for r in versions.itertuples()}
model_id = st.selectbox("Model", ids, index=ids.index(active.iloc[0]) if len(active) else 0,
                        format_func=labels.get, key="eval_model")

evaluation = ui.load_evaluation(model_id)
if evaluation is None:
    st.info("This model has not been evaluated yet. The backtest scores it and every baseline "
            "on the test period (usually well under a minute).", icon=":material/info:")
    if st.button("Run evaluation", type="primary", key="eval_run",
                 icon=":material/play_arrow:", disabled=not auth.allowed("evaluate"),
                 help=None if auth.allowed("evaluate") else "An analyst runs evaluations."):
        with ui.shown_errors("evaluating the model"):
            from safety_models.service import actions

            bar = st.progress(0.0, text="Scoring the model and the baselines…")
            actions.evaluate(
                store, auth.actor(), category, model_id,
                on_progress=lambda p: bar.progress(
                    min(1.0, float(p.get("fraction", 0.0))),
                    text=f"Scoring {mapview.baseline_label(p.get('step', 'model'))}…"))
            st.rerun()
    st.stop()

results = evaluation["results"]
# Baselines first, the model last: its line is drawn on top (and listed first in legends).
forecasters = {**results.get("baselines", {}), "model": results["model"]}
unit = ui.window_label(evaluation.get("window_hours"))
st.markdown(
    f"Test period **{ui.when(evaluation['test_start'])} – {ui.when(evaluation['test_end'])}**: "
    f"{evaluation['n_windows']} {unit}s, {evaluation['n_test_events']:,} incidents, cells of "
    f"{evaluation['cell_size_m']:g} m.")

# ---------------------------------------------------------------------------- the table
st.subheader("Model and baselines")
table = ui.metrics_table(evaluation)
st.dataframe(table, width="stretch", key="eval_table", column_config=ui.METRIC_COLUMNS)
st.caption("Hit rate: share of the period's incidents inside the cells flagged (top 1/5/10 % "
           "of the city's area). PAI: hit rate divided by the area share (how many times better "
           "than flagging cells at random). Higher is better for every column except Brier.")

# ---------------------------------------------------------------------------- curves
st.subheader("Incidents captured against area flagged")
left, right = st.columns(2)
curves = {name: m.get("curves") or {} for name, m in forecasters.items()}
ZOOM = [0, 0.3]   # operators flag at most a few tenths of the city: show that part
with left:
    figure = go.Figure()
    for name, curve in curves.items():
        if curve.get("area_share"):
            figure.add_trace(go.Scatter(
                x=curve["area_share"], y=curve["hit_rate"], name=mapview.baseline_label(name),
                mode="lines", line={"width": 3 if name == "model" else 1.5,
                                    "color": mapview.forecaster_colour(name)}))
    perfect = curves.get("model", {}).get("perfect_hit_rate")
    if perfect:
        figure.add_trace(go.Scatter(x=curves["model"]["area_share"], y=perfect,
                                    name="perfect foresight", mode="lines",
                                    line={"dash": "dot", "color": "grey"}))
    figure.update_layout(title="Hit rate", xaxis_title="share of the city's area flagged",
                         yaxis_title="share of incidents captured", height=380,
                         xaxis={"tickformat": ".0%", "range": ZOOM},
                         yaxis={"tickformat": ".0%"},
                         margin={"l": 10, "r": 10, "t": 40, "b": 10},
                         legend={"orientation": "h", "y": -0.3, "traceorder": "reversed"})
    st.plotly_chart(figure, width="stretch", key="eval_hit_rate")
with right:
    figure = go.Figure()
    for name, curve in curves.items():
        if curve.get("area_share"):
            figure.add_trace(go.Scatter(
                x=curve["area_share"][1:], y=curve["pai"][1:], name=mapview.baseline_label(name),
                mode="lines", line={"width": 3 if name == "model" else 1.5,
                                    "color": mapview.forecaster_colour(name)}))
    figure.update_layout(title="PAI (predictive accuracy index)",
                         xaxis_title="share of the city's area flagged",
                         yaxis_title="hit rate ÷ area share", height=380,
                         xaxis={"tickformat": ".0%", "range": ZOOM},
                         margin={"l": 10, "r": 10, "t": 40, "b": 10},
                         legend={"orientation": "h", "y": -0.3, "traceorder": "reversed"})
    st.plotly_chart(figure, width="stretch", key="eval_pai")

left, right = st.columns(2)
with left:
    figure = go.Figure()
    for name, curve in curves.items():
        roc = curve.get("roc")
        if roc:
            auc = forecasters[name].get("roc_auc")
            figure.add_trace(go.Scatter(
                x=roc["fpr"], y=roc["tpr"], mode="lines",
                name=f"{mapview.baseline_label(name)} ({auc:.2f})" if auc is not None
                else mapview.baseline_label(name),
                line={"width": 3 if name == "model" else 1.5,
                      "color": mapview.forecaster_colour(name)}))
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                                line={"dash": "dot", "color": "grey"}))
    figure.update_layout(title="ROC (area under the curve in brackets)",
                         xaxis_title="false alarm rate", yaxis_title="detection rate",
                         height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                         legend={"orientation": "h", "y": -0.3, "traceorder": "reversed"})
    st.plotly_chart(figure, width="stretch", key="eval_roc")
with right:
    figure = go.Figure()
    for name, m in forecasters.items():
        rows = pd.DataFrame(m.get("calibration") or [])
        if rows.empty:
            continue
        rows = rows[rows["count"] > 0]
        figure.add_trace(go.Scatter(
            x=rows["mean_predicted"], y=rows["observed_rate"], mode="lines+markers",
            name=mapview.baseline_label(name),
            line={"width": 3 if name == "model" else 1.5,
                  "color": mapview.forecaster_colour(name)}))
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                                line={"dash": "dot", "color": "grey"}))
    figure.update_layout(title="Calibration: predicted chance against what happened",
                         xaxis_title="predicted chance", yaxis_title="observed share",
                         height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                         xaxis={"tickformat": ".0%"}, yaxis={"tickformat": ".0%"},
                         legend={"orientation": "h", "y": -0.3, "traceorder": "reversed"})
    st.plotly_chart(figure, width="stretch", key="eval_calibration")

# ---------------------------------------------------------------------------- confusion
st.subheader("Yes/no at the operating threshold")
model = results["model"]
confusion = model.get("confusion") or {}
left, right = st.columns([1, 1.3])
with left:
    st.dataframe(
        pd.DataFrame({"incident happened": [confusion.get("tp"), confusion.get("fn")],
                      "no incident": [confusion.get("fp"), confusion.get("tn")]},
                     index=["flagged", "not flagged"]),
        width="stretch", key="eval_confusion")
    st.caption(f"Counted over every city cell and {unit} of the test period; a cell is "
               f"flagged when its chance is at least {model.get('threshold', float('nan')):.1%}"
               " (chosen on the validation period).")
with right:
    a, b, c = st.columns(3)
    a.metric("Accuracy", ui.percent(model.get("accuracy")))
    b.metric("Always “no incident”", ui.percent(model.get("always_no_event_accuracy")))
    c.metric("Balanced accuracy", ui.percent(model.get("balanced_accuracy")))
    st.info("Accuracy looks high because most cells have no incident in most "
            f"{unit}s: always answering “no incident” already scores "
            f"{ui.percent(model.get('always_no_event_accuracy'))}. Judge the model by hit "
            "rate, PAI and balanced accuracy instead.", icon=":material/lightbulb:")

# ---------------------------------------------------------------------------- over time
weekly = int(evaluation.get("window_hours") or 24) < 168
st.subheader("Scores over the test period")
per_window = mapview.scores_over_time(evaluation, "hit_rate_5")
if per_window.empty:
    st.caption("No per-window scores in this evaluation.")
else:
    figure = go.Figure()
    names = [*sorted(set(per_window["forecaster"]) - {"model"}), "model"]
    for name in names:
        part = per_window[per_window["forecaster"] == name]
        figure.add_trace(go.Scatter(
            x=part["start"], y=part["value"], name=mapview.baseline_label(name),
            mode="lines+markers", line={"width": 3 if name == "model" else 1.5,
                                        "color": mapview.forecaster_colour(name)}))
    figure.update_layout(height=340, yaxis={"tickformat": ".0%", "title": "hit rate at 5 %"},
                         margin={"l": 10, "r": 10, "t": 10, "b": 10},
                         legend={"orientation": "h", "y": -0.2, "traceorder": "reversed"})
    st.plotly_chart(figure, width="stretch", key="eval_per_window")
    st.caption(("Mean of the days of each week" if weekly else "Each week") + " – share of "
               f"the {unit}'s incidents inside the top 5 % of the area; windows without "
               "incidents have no score.")

# ---------------------------------------------------------------------------- study
st.subheader("Fine-tuning study")
st.caption("The same city trained from scratch and from the pretrained base with different "
           "layers frozen and amounts of history: which choice works best here.")
with ui.shown_errors("reading the fine-tuning study"):
    from safety_models.evaluation import study

    runs = study.load_study(category)
    if runs is None or len(runs) == 0:
        st.info("No study has been run for this category yet: "
                f"`python -m safety_models study --category {category}` runs it "
                "(it trains several small models; expect a while).", icon=":material/science:")
    else:
        st.markdown("\n".join(f"- {line}" for line in study.summarise_study(runs)))
        st.plotly_chart(ui.study_figure(runs), width="stretch", key="eval_study")
        with st.expander("Every run of the study"):
            st.dataframe(runs, hide_index=True, width="stretch")
