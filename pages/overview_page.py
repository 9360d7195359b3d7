"""Overview: per category, what is stored, which model is in use and how good it is, where
the next window's hotspots are, and what needs attention (no model, stale model, jobs)."""

import pandas as pd
import streamlit as st

from pages import _ui as ui
from safety_models import paths
from safety_models.presentation import tables, text
from safety_models.presentation.text import category_label, when
from safety_models.schema import CATEGORIES

st.title("Overview")
st.caption("Where and when incidents are most likely in the next window, per category, "
           "and what needs your attention.")

store = ui.get_store()
url = paths.db_url()
stamp = ui.data_stamp()
counts = ui.incident_counts(url, stamp)
uploads = ui.uploads(url, stamp)


def jobs_and_attention(models_then: str) -> None:
    """Refreshes by itself: running jobs with their progress, and what needs attention; the
    whole page once a job has made or promoted a model (a category's map and scores)."""
    from safety_models.service import jobs

    if ui.models_version() != models_then:
        st.rerun(scope="app")
    with ui.shown_errors("reading the state of jobs and models"):
        items = ui.attention_items(url, models_then, ui.data_stamp())
        running = [j for j in jobs.list_jobs(store, limit=20)
                   if j["status"] in jobs.ACTIVE_STATUSES]
        if not items and not running:
            st.success("Nothing needs attention: every category has an up-to-date model.",
                       icon=":material/check_circle:")
            return
        st.subheader("Needs attention")
        for job in running:
            with st.container(border=True):
                st.markdown(f"**{text.job_title(job)}** (job {job['job_id']})")
                st.progress(text.job_fraction(job), text=text.job_progress_text(job))
        for item in items:
            level = item.get("level", "warning")
            show = {"error": st.error, "info": st.info}.get(level, st.warning)
            show(item["message"], icon=":material/priority_high:" if level != "info"
                 else ":material/info:")


# Refreshes every 2 s while a job runs (its progress), else now and then (a job started
# elsewhere, a model that turned stale).
busy = False
with ui.shown_errors("reading the state of jobs"):
    from safety_models.service import jobs as _jobs

    busy = _jobs.active_job(store) is not None
st.fragment(jobs_and_attention, run_every=2 if busy else 30)(ui.models_version())

st.subheader("Categories")
columns = st.columns(len(CATEGORIES), gap="medium")
for column, category in zip(columns, CATEGORIES):
    with column, st.container(border=True):
        st.markdown(f"#### {ui.CATEGORY_ICONS[category]} {category_label(category)}")
        with ui.shown_errors(f"summarising {category}"):
            n = counts.get(category, 0)
            span = ui.time_range(url, category, stamp)
            st.metric("Incidents stored", f"{n:,}")
            if span is None:
                st.caption("No data yet. Load a file on the **Data** page.")
                continue
            mine = uploads[uploads["category"] == category]
            last_upload = mine["uploaded_at"].max() if len(mine) else None
            st.caption(f"From {when(span[0].normalize())} to {when(span[1].normalize())}"
                       f" · last upload {when(last_upload)}")

            model_id = ui.active_model_id(category)
            if model_id is None:
                st.info("No model yet: one is being prepared, or start one on the "
                        "**Models and training** page.", icon=":material/hourglass_top:")
                continue
            forecasts = ui.forecasts(category, model_id)
            info = ui.model_info(url, model_id)
            st.markdown(f"**{text.forecaster_label(forecasts.forecaster).capitalize()}**, "
                        f"`{model_id}`, since {text.since(info.get('activated_at'))}")
            evaluation = ui.load_evaluation(model_id)
            headline = tables.headline_scores(evaluation)
            if headline is None:
                st.caption("Not evaluated yet (see the **Evaluation** page).")
            else:
                st.markdown(tables.headline_markdown(headline))
                st.caption(text.headline_caption(
                    evaluation, quick=text.is_quick_evaluation(evaluation, info.get("val_end"))))
            prediction = forecasts.next_window
            if prediction.empty:
                continue
            start = pd.Timestamp(prediction["window_start"].iloc[0])
            end = pd.Timestamp(prediction["window_end"].iloc[0])
            st.markdown(f"**Top 5 hotspots**, {when(start)} – {when(end)}")
            st.markdown(ui.built_once(
                ("overview-hotspots", category, model_id, str(start), stamp,
                 ui.boundary_version(url, category)),
                lambda: tables.hotspots_markdown(tables.hotspots_shown(tables.top_hotspots(
                    prediction, 5, ui.boundary(url, category), forecasts.places)))))
            if st.button("Open the risk map", key=f"open_map_{category}", icon=":material/map:",
                         on_click=ui.remember_category, args=("map_category", category)):
                st.switch_page("pages/risk_map_page.py")
