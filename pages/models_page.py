"""Models and training: retrain a category's model in the background (never in this
process), follow its progress live, compare the versions, promote or roll back."""

import dataclasses

import streamlit as st

from pages import _auth as auth
from pages import _ui as ui
from safety_models.service import actions, jobs
from safety_models import paths
from safety_models.modeling import registry
from safety_models.modeling.training import TrainConfig
from safety_models.presentation import charts, tables, text
from safety_models.schema import HORIZONS, horizon_days

st.title("Models and training")

store = ui.get_store()
url = paths.db_url()
category = ui.category_selector("train_category")
active_id = ui.active_model_id(category)
active_info = ui.model_info(url, active_id) if active_id else {}
active_window_hours = active_info.get("window_hours")
active_cell_size_m = (active_info.get("grid") or {}).get("cell_size_m")

BASE_CHOICES = {
    "pretrained": "Pretrained base (recommended)",
    "imagenet": "ImageNet ResNet",
    "none": "From scratch",
    "active": "Continue the model in use",
}
FREEZE_CHOICES = {
    "none": "nothing (retrain all layers)",
    "stem": "the stem",
    "layer1": "up to layer 1",
    "layer2": "up to layer 2",
    "layer3": "up to layer 3",
    "layer4": "up to layer 4 (only the head learns)",
}
ADMIN_ONLY = None if auth.allowed("promote") else "Only an administrator changes the model in use."
# The cell sizes offered besides the map's own: the default, and the small cells that plans
# for blocks and street segments use (the CLI takes any size: train --cell-size 600ft).
CELL_SIZES_M = (500.0, 250.0, 150.0)
DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)
            if f.default is not dataclasses.MISSING}


@st.fragment(run_every=1.5)
def job_progress(job_id: int) -> None:
    """Live progress of one job, read from the jobs table (so it survives a reload and shows
    in every session); when the job ends, the whole page reruns to show the result."""
    job = jobs.get_job(store, job_id)
    if job["status"] not in jobs.ACTIVE_STATUSES:
        ui.models_changed()
        st.rerun(scope="app")
    with st.container(border=True):
        top, button = st.columns([5, 1], vertical_alignment="center")
        top.markdown(f"**{text.job_title(job)}** · job {job_id} · {job['status']}")
        if button.button("Cancel", key="train_cancel", icon=":material/stop_circle:",
                         disabled=not auth.allowed("cancel")):
            with ui.shown_errors("cancelling the job"):
                actions.cancel_job(store, auth.actor(), job_id)
                st.toast("Cancelling… the job stops after the current step.")
        waiting_for_worker = job["status"] == "queued" and job.get("queue_job_id") is not None
        st.progress(text.job_fraction(job), text=text.job_progress_text(
            job, workers_alive=jobs.workers_alive(store) if waiting_for_worker else None))
        history = tables.loss_history(job)
        if not history.empty:
            st.plotly_chart(charts.loss_figure(history), width="stretch", key="train_loss_curve")
        elif job.get("message"):
            st.caption(job["message"])


def train_form() -> None:
    """The choices that matter for a retrain, with defaults and one line on each."""
    with st.form("train_form", border=True):
        st.markdown(f"**Retrain the {text.category_label(category).lower()} model**")
        left, right, span = st.columns(3)
        # A starting forecast has no network to continue (a linear model of the rates).
        from safety_models.service import forecasts

        continuable = active_id is not None and \
            forecasts.known_forecaster(active_id) != "linear"
        bases = [b for b in BASE_CHOICES if b != "active" or continuable]
        base = left.selectbox(
            "Start from", bases, format_func=BASE_CHOICES.get, key="train_base",
            help="Pretrained base: learnt on many simulated cities, adapts fastest. ImageNet: "
                 "generic image features. From scratch: random weights, for comparison. "
                 "Continue: the model in use, on the newest data.")
        left.caption("Where the weights start before learning this city.")
        freeze = right.selectbox(
            "Keep frozen", list(FREEZE_CHOICES), format_func=FREEZE_CHOICES.get,
            index=list(FREEZE_CHOICES).index(DEFAULTS.get("freeze_up_to", "layer2")),
            key="train_freeze",
            help="Frozen layers keep what the base learnt; freezing more trains faster and "
                 "needs less data, freezing less adapts more to this city.")
        right.caption("Early layers kept as they are; the rest is retrained.")
        horizon = span.selectbox(
            "Forecast over", [None, *HORIZONS], key="train_horizon",
            format_func=lambda h: text.horizon_option_label(h, active_window_hours),
            help="The next window: a candidate for the category's map (promote it to use "
                 "it). 7 to 90 days: a model trained for the events of that horizon; the "
                 "Risk map and the Evaluation page offer it as soon as it is made.")
        span.caption("What each forecast covers.")
        a, b, c, d, e = st.columns(5)
        learning_rate = a.number_input(
            "Learning rate", min_value=1e-6, max_value=1.0,
            value=float(DEFAULTS.get("lr", 1e-3)), format="%.0e", step=1e-4, key="train_lr",
            help="Size of each update: smaller changes the starting model less.")
        epochs = b.number_input(
            "Epochs", min_value=1, max_value=200, value=int(DEFAULTS.get("epochs", 10)),
            step=1, key="train_epochs",
            help="Passes over the training windows; more takes longer and may overfit.")
        history_days = c.number_input(
            "History (days)", min_value=0, max_value=20_000,
            value=int(DEFAULTS.get("history_days") or 0), step=30, key="train_history_days",
            help="How many days before the test period to learn from; 0 uses all the data.")
        optimizer = d.selectbox(
            "Optimizer", ["adamw", "sgd"],
            index=["adamw", "sgd"].index(DEFAULTS.get("optimizer", "adamw")),
            key="train_optimizer", help="AdamW adapts step sizes per weight; SGD is plainer.")
        other_sizes = [m for m in CELL_SIZES_M
                       if not active_cell_size_m or abs(m - active_cell_size_m) > 1e-6]
        cell_size_m = e.selectbox(
            "Cell size", [None, *other_sizes], key="train_cell_size",
            format_func=lambda m: f"{m:g} m" if m is not None else (
                f"{active_cell_size_m:g} m (the map's)" if active_cell_size_m else "the map's"),
            help="Smaller cells name smaller places (150 m is about a block) but hold fewer "
                 "incidents each and take longer to train. Another size makes a new grid: "
                 "promoting the model switches the map to it.")
        st.caption("Training runs in the background: you can leave this page; the Overview "
                   "page shows its progress. A new model is used only once you promote it.")
        submitted = st.form_submit_button("Start training", type="primary", key="train_start",
                                          icon=":material/play_arrow:")
    if submitted:
        with ui.shown_errors("starting the training job"):
            # No cell size (None): the training workflow keeps the category's grid.
            config = TrainConfig(
                category=category, base=active_id if base == "active" else base,
                cell_size_m=cell_size_m,
                freeze_up_to=freeze, lr=float(learning_rate), epochs=int(epochs),
                optimizer=optimizer, history_days=int(history_days) or None,
                horizon_days=horizon_days(horizon) if horizon else None)
            # Queued for a worker when the home is set up for workers (SAFETY_MODELS_WORKERS).
            job_id = actions.start_training(store, auth.actor(), config.to_dict())
            st.toast(text.job_started_text(jobs.get_job(store, job_id) or {"job_id": job_id}))
            st.rerun()


running = last = None
with ui.shown_errors("reading the jobs"):
    running = jobs.active_job(store, category)
    last = next(iter(jobs.list_jobs(store, category, limit=1)), None)
if running is not None:
    job_progress(running["job_id"])
else:
    if last is not None:
        ui.show_job_outcome(last)
    train_form()

# ---------------------------------------------------------------------------- versions
st.subheader("Versions")
versions = ui.list_models(category)
if versions.empty:
    st.info("No model of this category yet.", icon=":material/hourglass_top:")
else:
    st.dataframe(tables.versions_table(versions), hide_index=True, width="stretch",
                 key="models_table", column_config=ui.column_config(tables.VERSION_COLUMNS))
    others = versions.loc[versions["status"] != "active", "model_id"].astype(str).tolist()
    left, right = st.columns(2)
    with left, st.container(border=True):
        st.markdown("**Promote a version**")
        if not others:
            st.caption("No other version to promote.")
        else:
            candidate = st.selectbox("Version", others, key="promote_model")
            row = versions.set_index("model_id").loc[candidate]
            active_row = (versions.set_index("model_id").loc[active_id]
                          if active_id in set(versions["model_id"]) else None)
            suggest, reason = registry.should_promote(
                row["val_metrics"], None if active_row is None else active_row["val_metrics"])
            (st.success if suggest else st.caption)(
                ("Suggested: " if suggest else "Not suggested: ") + reason)
            if st.button("Promote", key="promote_button", type="primary" if suggest
                         else "secondary", icon=":material/upgrade:",
                         disabled=not auth.allowed("promote"), help=ADMIN_ONLY):
                with ui.shown_errors("promoting the model"):
                    actions.promote(store, auth.actor(), candidate)
                    ui.models_changed()
                    ui.prediction.clear()
                    with st.spinner("Preparing its maps…"):
                        ui.forecasts(category, candidate)
                    st.toast(f"{candidate} is now the {category} model in use.")
                    st.rerun()
    with right, st.container(border=True):
        st.markdown("**Roll back**")
        st.caption("Go back to the version that was in use before the current one.")
        if st.button("Roll back", key="rollback_button", icon=":material/undo:",
                     disabled=active_id is None or not auth.allowed("rollback"), help=ADMIN_ONLY):
            with ui.shown_errors("rolling back"):
                previous = actions.rollback(store, auth.actor(), category)
                ui.models_changed()
                with st.spinner("Preparing its maps…"):
                    ui.forecasts(category, previous)
                st.toast(f"{previous} is the {category} model in use again.")
                st.rerun()

# ---------------------------------------------------------------------------- jobs
def recent_jobs() -> None:
    st.subheader("Recent jobs")
    with ui.shown_errors("listing the jobs"):
        recent = tables.jobs_table(jobs.list_jobs(store, limit=50), category)
        if recent.empty:
            st.caption("No training job yet.")
        else:
            st.dataframe(recent, hide_index=True, width="stretch", key="jobs_table")


# While a job runs, its row changes: refresh the list with it.
(st.fragment(run_every=3)(recent_jobs) if running is not None else recent_jobs)()
