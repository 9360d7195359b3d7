"""What every page shares: the one Store, the caches, error display and small widgets.

Caching lives here and nowhere else:
* `st.cache_resource` holds one Store per database URL (per process);
* `st.cache_data` holds query results and predictions, keyed by what makes them change:
  the database, the model id, the window and a cheap "data stamp" (uploads and counts), so a
  new upload or a new model shows at once, and nothing is recomputed otherwise.

The page scripts import from here (`from pages import _common as ui`). The folder is
deliberately not called `pages/`: Streamlit 1.67 runs a `pages/` folder next to the entry
point as an old-style multipage app on a server's first run (before app.py's st.navigation),
which would skip app.py and list this module as a page.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any, Iterator

import pandas as pd
import streamlit as st

from safety_models import paths
from safety_models.errors import UserError
from safety_models.schema import CATEGORIES
from safety_models.data.store import Store

CATEGORY_LABELS: dict[str, str] = {
    "crime": "Crime",
    "traffic": "Traffic accidents",
    "health": "Public health",
}
CATEGORY_ICONS: dict[str, str] = {
    "crime": ":material/local_police:",
    "traffic": ":material/car_crash:",
    "health": ":material/health_and_safety:",
}


def category_label(category: str) -> str:
    return CATEGORY_LABELS.get(category, category.title())


# ------------------------------------------------------------------------------ the store


@st.cache_resource(show_spinner=False)
def _store_for(url: str) -> Store:
    return Store(url)


def get_store() -> Store:
    """The process's Store for the configured database (one per URL, shared by sessions;
    a Store holds only an engine, which is safe to share)."""
    return _store_for(paths.db_url())


def data_stamp() -> str:
    """Changes whenever incidents are added or removed: keys the cached queries."""
    store = get_store()
    uploads = store.list_uploads()
    last = int(uploads["upload_id"].max()) if len(uploads) else 0
    counts = store.incident_counts()
    return f"{last}:{len(uploads)}:" + ",".join(f"{k}={v}" for k, v in sorted(counts.items()))


# ------------------------------------------------------------------------------ errors


@contextlib.contextmanager
def shown_errors(doing: str) -> Iterator[None]:
    """Run a block; show a UserError as its message, anything else as a short message with
    the details folded away. Streamlit's own control flow (st.rerun, st.stop) passes through:
    those are BaseExceptions, not Exceptions."""
    try:
        yield
    except UserError as err:
        st.error(str(err), icon=":material/error:")
    except Exception as err:  # noqa: BLE001 - the page must stay usable
        st.error(f"Something went wrong while {doing}. The rest of the page still works; "
                 "the details below help whoever maintains this installation.",
                 icon=":material/error:")
        with st.expander("Technical details"):
            st.exception(err)


# ------------------------------------------------------------------------------ cached queries


@st.cache_data(show_spinner=False, max_entries=64)
def incident_counts(db_url: str, stamp: str) -> dict[str, int]:
    return _store_for(db_url).incident_counts()


@st.cache_data(show_spinner=False, max_entries=64)
def time_range(db_url: str, category: str, stamp: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    return _store_for(db_url).time_range(category)


@st.cache_data(show_spinner=False, max_entries=32)
def incidents(db_url: str, category: str, start: Any, end: Any, stamp: str) -> pd.DataFrame:
    return _store_for(db_url).incidents(category, start, end)


@st.cache_data(show_spinner=False, max_entries=16)
def uploads(db_url: str, stamp: str) -> pd.DataFrame:
    return _store_for(db_url).list_uploads()


@st.cache_data(show_spinner=False, max_entries=8, ttl=60)
def boundary(db_url: str, category: str) -> dict | None:
    """District outlines for a category (or for every category); cleared when saved here."""
    return _store_for(db_url).boundary(category)


@st.cache_data(show_spinner=False, max_entries=64)
def prediction(db_url: str, category: str, model_id: str, at_iso: str | None,
               stamp: str) -> pd.DataFrame:
    """The model's prediction for one window (None: the next window after the data)."""
    from safety_models.service import workflows

    at = None if at_iso is None else pd.Timestamp(at_iso)
    return workflows.predict_category(_store_for(db_url), category, at=at, model_id=model_id)


@st.cache_data(show_spinner=False, max_entries=64)
def cell_history(db_url: str, category: str, cell_id: int, stamp: str) -> pd.DataFrame:
    from safety_models.service import workflows

    return workflows.cell_history(_store_for(db_url), category, int(cell_id))


@st.cache_data(show_spinner=False, max_entries=32)
def evaluation(db_url: str, model_id: str, version: float | None) -> dict | None:
    """A model's saved evaluation; `version` is the file's mtime so a new run shows."""
    from safety_models.evaluation import backtest as ev

    return ev.load_evaluation(model_id)


def evaluation_version(model_id: str) -> float | None:
    from safety_models.evaluation import backtest as ev

    path = ev.evaluation_path(model_id)
    return path.stat().st_mtime if path.exists() else None


def load_evaluation(model_id: str) -> dict | None:
    return evaluation(paths.db_url(), model_id, evaluation_version(model_id))


@st.cache_data(show_spinner=False, max_entries=16)
def models(db_url: str, category: str | None, version: str) -> pd.DataFrame:
    from safety_models.modeling import registry

    return registry.list_models(_store_for(db_url), category)


def models_version() -> str:
    """Changes when a model is saved, promoted or rolled back."""
    from safety_models.modeling import registry

    df = registry.list_models(get_store(), None)
    if df.empty:
        return "0"
    active = ",".join(sorted(df.loc[df["status"] == "active", "model_id"].astype(str)))
    return f"{len(df)}:{df['created_at'].max()}:{active}:{df['activated_at'].max()}"


def list_models(category: str | None) -> pd.DataFrame:
    return models(paths.db_url(), category, models_version())


def active_model_id(category: str) -> str | None:
    from safety_models.modeling import registry

    return registry.active_model_id(get_store(), category)


def clear_data_caches() -> None:
    """After an upload or removal: everything keyed by the data stamp renews by itself; the
    explicit clear frees the memory of the old entries at once."""
    for fn in (incident_counts, time_range, incidents, uploads, prediction, cell_history,
               boundary):
        fn.clear()


# ------------------------------------------------------------------------------ widgets


def category_selector(key: str, label: str = "Category") -> str:
    """A segmented control over the categories (remembered per page by its key; another
    page may preselect it with remember_category)."""
    preset = key in st.session_state
    choice = st.segmented_control(
        label, options=list(CATEGORIES), format_func=category_label, key=key,
        default=None if preset else CATEGORIES[0], selection_mode="single", required=True)
    return choice or CATEGORIES[0]


def remember_category(key: str, category: str) -> None:
    """Preselect a category selector (by its key) on the page the user goes to next."""
    st.session_state[key] = category


def when(ts: Any) -> str:
    """A timestamp for people: '28 Nov 2026 14:05' (date only at midnight); '–' for none."""
    if ts is None or (not isinstance(ts, str) and pd.isna(ts)):
        return "–"
    t = pd.Timestamp(ts)
    if t.hour == 0 and t.minute == 0 and t.second == 0:
        return t.strftime("%d %b %Y")
    return t.strftime("%d %b %Y %H:%M")


def duration(seconds: Any) -> str:
    """12 -> '12 s', 125 -> '2 min 5 s', 4000 -> '1 h 7 min'; '–' when unknown."""
    if seconds is None or (isinstance(seconds, float) and pd.isna(seconds)):
        return "–"
    s = int(round(float(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {(s % 3600) // 60} min"


def window_label(window_hours: int | None) -> str:
    if not window_hours:
        return "window"
    if window_hours == 24:
        return "day"
    if window_hours == 168:
        return "week"
    return f"{window_hours}-hour window"


def now() -> datetime:
    return datetime.now()


# ------------------------------------------------------------------------------ first start


def first_start() -> None:
    """On an empty home, load the demo data and start the bootstrap job (a library call,
    idempotent: it records that it ran, so removing the demo later does not bring it back).
    Checked once per session; a failure is shown, never blocks the pages."""
    if st.session_state.get("_first_start_checked"):
        return
    st.session_state["_first_start_checked"] = True
    from safety_models.service import operations

    with shown_errors("preparing the first start"):
        operations.first_start(get_store())


# ------------------------------------------------------------------------------ jobs


JOB_ACTIVE_STATUSES = ("queued", "running")
JOB_TITLES = {"bootstrap": "Preparing the first models", "pretrain": "Pretraining the base model",
              "train": "Training"}
STAGE_LABELS = {"pretrain": "pretraining the base model", "train": "training",
                "base_rate": "fitting the long-run rates", "cache": "preparing frozen layers",
                "prepare": "preparing the data", "evaluate": "evaluating",
                "validate": "validating", "save": "saving", "done": "saving the model"}


def job_title(job: dict) -> str:
    title = JOB_TITLES.get(job.get("kind"), str(job.get("kind")))
    if job.get("category"):
        title += f" – {category_label(job['category'])}"
    return title


def loss_history(job: dict) -> pd.DataFrame:
    """The loss points of the job's current step (bootstrap jobs train several models)."""
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


def loss_figure(history: pd.DataFrame):
    import plotly.graph_objects as go

    figure = go.Figure()
    for column, name in (("loss", "training loss"), ("train_loss", "training loss"),
                         ("val_loss", "validation loss")):
        if column in history:
            figure.add_trace(go.Scatter(x=history["epoch"], y=history[column], name=name,
                                        mode="lines+markers"))
    figure.update_layout(height=260, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                         xaxis_title="epoch", yaxis_title="loss",
                         legend={"orientation": "h", "y": -0.35})
    return figure


def job_progress_text(job: dict) -> str:
    """One line for people about a job's progress: stage, epoch, elapsed and remaining."""
    progress = job.get("progress") or {}
    if job.get("status") == "queued" and not progress:
        return "waiting for the training process to start…"
    parts = [STAGE_LABELS.get(str(progress.get("stage")), str(progress.get("stage") or ""))
             or str(job.get("status") or "")]
    if progress.get("category"):
        parts.append(category_label(str(progress["category"])))
    if progress.get("epoch") is not None and progress.get("epochs"):
        parts.append(f"epoch {progress['epoch']} of {progress['epochs']}")
    if progress.get("loss") is not None:
        parts.append(f"loss {float(progress['loss']):.4f}")
    if progress.get("elapsed_s") is not None:
        parts.append(f"{duration(progress['elapsed_s'])} elapsed")
    if progress.get("eta_s") is not None:
        parts.append(f"about {duration(progress['eta_s'])} left")
    return " · ".join(p for p in parts if p)


def job_fraction(job: dict) -> float:
    progress = job.get("progress") or {}
    try:
        return min(1.0, max(0.0, float(progress.get("fraction") or 0.0)))
    except (TypeError, ValueError):
        return 0.0


# ------------------------------------------------------------------------------ models


@st.cache_data(show_spinner=False, max_entries=64)
def model_info(db_url: str, model_id: str) -> dict:
    """The registry row of a model version (a version never changes once saved)."""
    from safety_models.modeling import registry

    return registry.model_info(_store_for(db_url), model_id)


@st.cache_data(show_spinner=False, max_entries=32)
def scale_max(db_url: str, category: str, model_id: str, stamp: str) -> float:
    """The top of the model's fixed colour scale (from its next-window prediction)."""
    from safety_models.presentation import maplayers as mapview

    return mapview.probability_scale_max(
        prediction(db_url, category, model_id, None, stamp)["probability"])


# ------------------------------------------------------------------------------ map pieces


HOTSPOT_COLUMNS = {
    "rank": st.column_config.NumberColumn("#", width=40),
    "cell": st.column_config.NumberColumn("cell", format="%d"),
    "chance": st.column_config.NumberColumn("chance", format="%.1f %%",
                                            help="Chance of at least one incident"),
    "last 30 days": st.column_config.NumberColumn("30 days", format="%d",
                                                  help="Incidents recorded in the last 30 days"),
    "risk level": st.column_config.TextColumn("level"),
}


def selected_cell(state: Any) -> int | None:
    """The cell id a pydeck selection state holds (cells layer), None when nothing is."""
    from safety_models.presentation import maplayers as mapview

    try:
        objects = state["selection"]["objects"].get(mapview.CELLS_LAYER_ID) or []
    except (KeyError, TypeError, AttributeError):
        return None
    if not objects:
        return None
    cell = objects[0].get("cell_id")
    return None if cell is None else int(cell)


def legend_html(title: str, items: list, outlines: bool = False, incidents: bool = False) -> str:
    """A horizontal legend: colour swatches with labels, plus the outline / point keys."""
    from html import escape

    from safety_models.presentation import maplayers as mapview

    swatches = "".join(
        f'<span style="display:inline-flex;align-items:center;margin-right:12px">'
        f'<span style="width:22px;height:14px;background:{item.colour_hex};'
        f'border:1px solid #bbb;margin-right:5px;display:inline-block"></span>'
        f'{escape(item.label)}</span>' for item in items)
    extras = ""
    if outlines:
        extras += ('<span style="display:inline-flex;align-items:center;margin-right:12px">'
                   '<span style="width:22px;height:0;border-top:2px solid #3c3c3c;'
                   'margin-right:5px;display:inline-block"></span>district</span>')
    if incidents:
        r, g, b, _ = mapview.INCIDENT_RGBA
        extras += ('<span style="display:inline-flex;align-items:center">'
                   f'<span style="width:9px;height:9px;border-radius:50%;'
                   f'background:rgb({r},{g},{b});margin-right:5px;display:inline-block"></span>'
                   'recorded incident</span>')
    return (f'<div style="font-size:0.85rem;color:#444;line-height:1.9">'
            f'<b style="margin-right:10px">{escape(title)}</b>{swatches}{extras}</div>')


def history_figure(history: pd.DataFrame, cell_id: int, unit: str):
    """A line chart of a cell's recorded incidents per window and its predicted chance."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(specs=[[{"secondary_y": True}]])
    time_column = next((c for c in ("window_start", "start", "time") if c in history), None)
    x = history[time_column] if time_column else history.index
    if "events" in history:
        figure.add_trace(go.Bar(x=x, y=history["events"], name=f"incidents per {unit}",
                                marker_color="#4b6584", opacity=0.7), secondary_y=False)
    for column, colour in (("probability", "#d7301f"),):
        if column in history:
            figure.add_trace(go.Scatter(x=x, y=history[column], name="predicted chance",
                                        mode="lines", line={"color": colour, "width": 2}),
                             secondary_y=True)
    figure.update_layout(height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         title=f"Cell {cell_id}", legend={"orientation": "h", "y": -0.2},
                         bargap=0.1)
    figure.update_yaxes(title_text="incidents", secondary_y=False)
    figure.update_yaxes(title_text="chance", tickformat=".0%", secondary_y=True)
    return figure


@st.cache_data(show_spinner=False, max_entries=32)
def per_period(db_url: str, category: str, freq: str, by_subtype: bool,
               stamp: str) -> pd.DataFrame:
    """Incidents of a category counted per day/week/month (and per subtype)."""
    from safety_models.presentation import maplayers as mapview

    return mapview.incidents_per_period(_store_for(db_url).incidents(category), freq,
                                        by_subtype=by_subtype)


# ------------------------------------------------------------------------------ evaluation


def percent(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    return f"{100 * float(value):.{digits}f} %"


METRIC_COLUMNS = {
    "hit_rate_5": st.column_config.NumberColumn("hit rate 5 %", format="percent",
                                                help="Share of incidents in the top 5 % of area"),
    "hit_rate_10": st.column_config.NumberColumn("hit rate 10 %", format="percent"),
    "pai_5": st.column_config.NumberColumn("PAI 5 %", format="%.2f",
                                           help="Hit rate ÷ area share, top 5 % of area"),
    "pai_10": st.column_config.NumberColumn("PAI 10 %", format="%.2f"),
    "pei_5": st.column_config.NumberColumn("PEI 5 %", format="%.2f",
                                           help="Hit rate ÷ the best possible hit rate"),
    "roc_auc": st.column_config.NumberColumn("ROC-AUC", format="%.3f"),
    "pr_auc": st.column_config.NumberColumn("PR-AUC", format="%.3f"),
    "brier": st.column_config.NumberColumn("Brier", format="%.4f",
                                           help="Mean squared error of the chances; lower is better"),
    "balanced_accuracy": st.column_config.NumberColumn("balanced acc.", format="percent"),
    "accuracy": st.column_config.NumberColumn("accuracy", format="percent"),
    "always_no_event_accuracy": st.column_config.NumberColumn(
        "always “no”", format="percent",
        help="Accuracy of always answering “no incident”"),
    "precision": st.column_config.NumberColumn("precision", format="percent"),
    "recall": st.column_config.NumberColumn("recall", format="percent"),
    "f1": st.column_config.NumberColumn("F1", format="%.3f"),
}


def metrics_table(evaluation: dict) -> pd.DataFrame:
    """The model's and every baseline's headline test scores, one row each (model first)."""
    from safety_models.presentation import maplayers as mapview
    from safety_models.evaluation.backtest import summary_table

    table = summary_table(evaluation)
    table.index = [mapview.baseline_label(name) for name in table.index]
    table.index.name = "forecaster"
    return table[[c for c in METRIC_COLUMNS if c in table.columns]]


@st.cache_data(show_spinner=False, max_entries=32)
def model_configs(db_url: str, model_id: str) -> dict:
    """The small, plain parts of a checkpoint (configs, data window, metrics): no weights."""
    from safety_models.modeling import registry

    checkpoint = registry.load_checkpoint(_store_for(db_url), model_id)
    return {k: v for k, v in checkpoint.items() if k not in ("state_dict", "mask")}


BASE_DESCRIPTIONS = {
    "pretrained": "the product's base model, pretrained on simulated cities",
    "imagenet": "a ResNet pretrained on ImageNet photographs",
    "none": "random weights (trained from scratch)",
}


def model_description(db_url: str, model_id: str) -> str:
    """A few lines for people: data window, grid, window length, base model and freezing."""
    info = model_info(db_url, model_id)
    configs = model_configs(db_url, model_id)
    train = configs.get("train_config") or {}
    model_cfg = configs.get("model_config") or {}
    grid = info.get("grid") or {}
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
        f"- Started from {base_text}"
        + (f" ({model_cfg['backbone']})" if model_cfg.get("backbone") else "")
        + (f"; layers up to **{freeze}** kept frozen" if freeze and freeze != "none"
           else "; every layer retrained"),
    ]
    kept = training_kept(configs)
    if kept:
        lines.append(f"- {kept}")
    return "\n".join(lines)


def training_kept(configs: dict) -> str | None:
    """Which epoch of training the model keeps, in words (None when the checkpoint says not)."""
    validation = (configs.get("metrics") or {}).get("validation") or {}
    best, trained = validation.get("best_epoch"), len(configs.get("history") or [])
    if best is None or not trained:
        return None
    if int(best) == 0:
        return (f"Kept: the starting forecast (its linear base-rate path). None of the {trained} "
                "trained epochs improved the validation windows, so the network adds nothing yet")
    return f"Kept: epoch {int(best)} of {trained}, the best on the validation windows"


# ------------------------------------------------------------------------------ versions, jobs


def _score(metrics: Any, name: str, pct: str | None = None) -> float | None:
    """metrics[name][pct] or metrics[name] (or metrics["<name>_<pct>"]); None when absent."""
    if not isinstance(metrics, dict):
        return None
    value = metrics.get(name)
    if pct is not None:
        value = value.get(pct) if isinstance(value, dict) else metrics.get(f"{name}_{pct}")
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


VERSION_COLUMNS = {
    "val hit rate 5 %": st.column_config.NumberColumn(format="percent"),
    "test hit rate 5 %": st.column_config.NumberColumn(format="percent"),
    "test PAI 5 %": st.column_config.NumberColumn(format="%.2f"),
    "test ROC-AUC": st.column_config.NumberColumn(format="%.3f"),
    "created": st.column_config.DatetimeColumn(format="D MMM YYYY, HH:mm"),
}


def versions_table(versions: pd.DataFrame) -> pd.DataFrame:
    """Model versions for people: status, id, when, data, origin and scores."""
    rows = []
    for r in versions.to_dict("records"):
        val, test = r.get("val_metrics") or {}, r.get("test_metrics") or {}
        rows.append({
            "status": {"active": "● in use"}.get(r["status"], r["status"]),
            "model": r["model_id"],
            "created": r["created_at"],
            "data until": when(r.get("data_end")),
            "from": r.get("parent") or ("base " + str(r["base_model_id"])
                                         if r.get("base_model_id") else "–"),
            "val hit rate 5 %": _score(val, "hit_rate", "5"),
            "test hit rate 5 %": _score(test, "hit_rate", "5"),
            "test PAI 5 %": _score(test, "pai", "5"),
            "test ROC-AUC": _score(test, "roc_auc"),
            "training time": duration(r.get("train_seconds")),
        })
    return pd.DataFrame(rows)


def jobs_table(job_rows: list[dict], category: str | None = None) -> pd.DataFrame:
    """Recent jobs (of a category, plus the bootstrap/pretrain jobs every category needs)."""
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


def study_run_label(run: dict) -> str:
    """'scratch' / 'frozen to layer2' (+ ', 90 d', + optimiser when not the default)."""
    if run.get("base") == "none":
        text = "scratch"
    elif run.get("freeze_up_to") in (None, "none"):
        text = "fine-tuned, none frozen"
    else:
        text = f"frozen to {run['freeze_up_to']}"
    days = run.get("history_days")
    if days is not None and not pd.isna(days):
        text += f", {int(days)} d"
    if run.get("stage") == "learning rate":
        text += f", {run.get('optimizer')} {float(run.get('lr')):g}"
    return text


def study_figure(runs: pd.DataFrame):
    """Test hit rate at 5 % per study run (validation beside it), best baseline as a line."""
    import plotly.graph_objects as go

    table = runs.copy()
    table["run"] = [study_run_label(r) for r in table.to_dict("records")]
    table = table.drop_duplicates("run", keep="last")
    figure = go.Figure()
    figure.add_trace(go.Bar(x=table["run"], y=table["val_hit_rate_5"], name="validation",
                            marker_color="#9db4d0"))
    figure.add_trace(go.Bar(x=table["run"], y=table["test_hit_rate_5"], name="test",
                            marker_color="#2c5d8f"))
    baseline = pd.to_numeric(table.get("baseline_hit_rate_5"), errors="coerce").dropna()
    if len(baseline):
        name = str(table["best_baseline"].dropna().iloc[0]) if "best_baseline" in table else ""
        figure.add_hline(y=float(baseline.iloc[0]), line_dash="dot", line_color="#b10026",
                         annotation_text=f"best baseline ({name.replace('_', ' ')})",
                         annotation_position="top left")
    figure.update_layout(barmode="group", height=380, yaxis={"tickformat": ".0%"},
                         yaxis_title="hit rate at 5 % of area",
                         margin={"l": 10, "r": 10, "t": 20, "b": 10},
                         legend={"orientation": "h", "y": -0.35})
    return figure


def headline_markdown(headline: dict) -> str:
    """The model's headline test scores beside the best baseline's, as a small table."""
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


@st.fragment(run_every=2)
def wait_for_model(category: str) -> None:
    """While a category has no model: say so, show the job preparing one (if any), and
    rerun the whole page as soon as the model exists, so the page fills in by itself."""
    from safety_models.service import jobs
    from safety_models.modeling import registry

    store = get_store()
    if registry.active_model_id(store, category) is not None:
        models.clear()
        st.rerun(scope="app")
    job = jobs.active_job(store, category)
    if job is None:
        st.info(f"There is no {category_label(category).lower()} model yet. Start one on the "
                "**Models and training** page.", icon=":material/info:")
        return
    st.info(f"The {category_label(category).lower()} model is being prepared; this page "
            "fills in as soon as it is ready.", icon=":material/hourglass_top:")
    st.progress(job_fraction(job), text=f"{job_title(job)}: {job_progress_text(job)}")


def show_job_outcome(job: dict) -> None:
    """How the category's last job ended, for a few hours after it did."""
    finished = job.get("finished_at")
    if finished is None or pd.Timestamp.now() - pd.Timestamp(finished) > pd.Timedelta(hours=6):
        return
    what = f"{job_title(job)} (job {job['job_id']}, {when(finished)})"
    if job["status"] == "succeeded":
        st.success(f"{what} finished: {job.get('model_id') or 'a new model'} is saved. "
                   "Compare and promote it under **Versions**.", icon=":material/task_alt:")
    elif job["status"] == "failed":
        st.error(f"{what} failed: {job.get('message') or 'no reason recorded'}",
                 icon=":material/error:")
    elif job["status"] == "cancelled":
        st.info(f"{what} was cancelled; nothing was changed.", icon=":material/info:")
