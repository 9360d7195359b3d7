"""Evaluation: how a model did on a later period it never saw, next to every baseline on the
same windows and cells (for the next window or a horizon the category has a model for); the
differences with their bootstrap intervals, the share of the gap to the hindsight ranking the
model closes, the scores at flagged areas, the curves, the calibration, the confusion matrix,
the scores over time, and the fine-tuning study."""

import streamlit as st

from pages import _auth as auth
from pages import _ui as ui
from safety_models import paths
from safety_models.presentation import charts, tables
from safety_models.presentation.text import (baseline_label, evaluation_period_text,
                                             is_quick_evaluation, percent, window_label)

st.title("Evaluation")
st.caption("Every model is scored on the windows after its training data (the test period), "
           "window by window, seeing only the past – exactly like the baselines beside it.")

store = ui.get_store()

category = ui.category_selector("eval_category")
versions = ui.list_models(category)
if versions.empty:
    ui.wait_for_model(category)
    st.stop()

horizon_models = ui.horizon_models(category)
known_hours = versions["window_hours"].dropna()
horizon = ui.horizon_choice("eval_horizon", category,
                            int(known_hours.iloc[0]) if len(known_hours) else None,
                            label="Forecasts of")
versions = tables.versions_for_horizon(versions, horizon)
# The version shown first: the active model (the next window) or the horizon's own model.
default_id = horizon_models.get(horizon) if horizon else next(
    iter(versions.loc[versions["status"] == "active", "model_id"]), None)
ids = versions["model_id"].astype(str).tolist()
labels = {r.model_id: f"{r.model_id} ({'in use' if r.model_id == default_id else r.status})"
          for r in versions.itertuples()}
if st.session_state.get("eval_model") not in ids:
    st.session_state.pop("eval_model", None)
model_id = st.selectbox("Model", ids, index=ids.index(default_id) if default_id in ids else 0,
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
                    text=f"Scoring {baseline_label(p.get('step', 'model'))}…"))
            st.rerun()
    st.stop()

unit = window_label(evaluation.get("window_hours"))
# A first evaluation may score the latest windows only (the starting forecast's, in seconds).
quick = is_quick_evaluation(evaluation, ui.model_info(paths.db_url(), model_id).get("val_end"))
st.markdown(evaluation_period_text(evaluation, quick=quick))

# Lazy tabs: only the open one runs, so the charts (and the charting library the browser
# loads for them) wait until someone asks for them.
scores_tab, curves_tab, time_tab, study_tab = st.tabs(
    ["Scores", "Curves", "Over time", "Fine-tuning study"], key="eval_tab", on_change="rerun")

# ---------------------------------------------------------------------------- the table
with scores_tab:
    if scores_tab.open:
        st.subheader("Model and baselines")
        st.dataframe(tables.metrics_table(evaluation), width="stretch", key="eval_table",
                     column_config=ui.column_config(tables.METRIC_COLUMNS))
        st.caption("Hit rate: share of the period's incidents inside the cells flagged (top "
                   "1/5/10 % of the city's area). PAI: hit rate divided by the area share (how "
                   "many times better than flagging cells at random). Higher is better for "
                   "every column except Brier. The hindsight row ranks cells by where the test "
                   "period's incidents fell: a bound no forecast is expected to reach.")
        gap = tables.oracle_gap_text(evaluation)
        if gap:
            st.markdown(gap)

        comparisons = tables.comparisons_table(evaluation)
        if not comparisons.empty:
            st.subheader("Differences, with their uncertainty")
            st.dataframe(comparisons, width="stretch", key="eval_comparisons")
            st.caption(f"The model minus each other forecaster, {unit} by {unit} on the test "
                       "period: the mean difference and, in brackets, its 95 % interval from "
                       "a block bootstrap over consecutive windows. An interval above zero "
                       "means the model is better beyond chance.")

        areas = tables.area_scores_table(evaluation)
        if not areas.empty:
            st.subheader("Scores at the flagged areas")
            st.dataframe(areas, width="stretch", key="eval_areas",
                         column_config=ui.column_config(tables.area_columns(areas)))
            st.caption("Cells flagged from the top of the ranking until the area given is "
                       "used, as an analyst flags them (km² or square miles).")

        st.subheader("Yes/no at the operating threshold")
        model = evaluation["results"]["model"]
        left, right = st.columns([1, 1.3])
        with left:
            st.dataframe(tables.confusion_table(model), width="stretch", key="eval_confusion")
            st.caption(f"Counted over every city cell and {unit} of the test period; a cell is "
                       "flagged when its chance is at least "
                       f"{model.get('threshold', float('nan')):.1%} (chosen on the validation "
                       "period).")
        with right:
            a, b, c = st.columns(3)
            a.metric("Accuracy", percent(model.get("accuracy")))
            b.metric("Always “no incident”", percent(model.get("always_no_event_accuracy")))
            c.metric("Balanced accuracy", percent(model.get("balanced_accuracy")))
            st.info("Accuracy looks high because most cells have no incident in most "
                    f"{unit}s: always answering “no incident” already scores "
                    f"{percent(model.get('always_no_event_accuracy'))}. Judge the model by hit "
                    "rate, PAI and balanced accuracy instead.", icon=":material/lightbulb:")

# ---------------------------------------------------------------------------- curves
with curves_tab:
    if curves_tab.open:
        st.subheader("Incidents captured against area flagged")
        left, right = st.columns(2)
        left.plotly_chart(charts.hit_rate_figure(evaluation), width="stretch",
                          key="eval_hit_rate")
        right.plotly_chart(charts.pai_figure(evaluation), width="stretch", key="eval_pai")
        left, right = st.columns(2)
        left.plotly_chart(charts.roc_figure(evaluation), width="stretch", key="eval_roc")
        right.plotly_chart(charts.calibration_figure(evaluation), width="stretch",
                           key="eval_calibration")

# ---------------------------------------------------------------------------- over time
with time_tab:
    if time_tab.open:
        weekly = int(evaluation.get("window_hours") or 24) < 168
        st.subheader("Scores over the test period")
        per_window = tables.scores_over_time(evaluation, "hit_rate_5")
        if per_window.empty:
            st.caption("No per-window scores in this evaluation.")
        else:
            st.plotly_chart(charts.scores_over_time_figure(per_window), width="stretch",
                            key="eval_per_window")
            st.caption(("Mean of the days of each week" if weekly else "Each week") + " – "
                       f"share of the {unit}'s incidents inside the top 5 % of the area; "
                       "windows without incidents have no score.")

# ---------------------------------------------------------------------------- study
with study_tab:
    if study_tab.open:
        st.subheader("Fine-tuning study")
        st.caption("The same city trained from scratch and from the pretrained base with "
                   "different layers frozen and amounts of history: which choice works best "
                   "here.")
        with ui.shown_errors("reading the fine-tuning study"):
            from safety_models.evaluation import study

            runs = study.load_study(category)
            if runs is None or len(runs) == 0:
                st.info("No study has been run for this category yet: "
                        f"`python -m safety_models study --category {category}` runs it "
                        "(it trains several small models; expect a while).",
                        icon=":material/science:")
            else:
                st.markdown("\n".join(f"- {line}" for line in study.summarise_study(runs)))
                st.plotly_chart(charts.study_figure(runs), width="stretch", key="eval_study")
                with st.expander("Every run of the study"):
                    st.dataframe(runs, hide_index=True, width="stretch")
