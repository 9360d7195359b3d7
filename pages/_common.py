"""What every page shares: the one Store, the caches, error display and small widgets.

Caching lives here and nowhere else:
* `st.cache_resource` holds one Store per database URL (per process);
* `st.cache_data` holds query results and predictions, keyed by what makes them change:
  the database, the model id, the window and a cheap "data stamp" (uploads and counts), so a
  new upload or a new model shows at once, and nothing is recomputed otherwise.

The page scripts import from here (`from pages._common import ...`); the folder is not a
package of pages: the app lists its pages explicitly with st.navigation.
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
from safety_models.store import Store

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
    from safety_models import workflows

    at = None if at_iso is None else pd.Timestamp(at_iso)
    return workflows.predict_category(_store_for(db_url), category, at=at, model_id=model_id)


@st.cache_data(show_spinner=False, max_entries=64)
def cell_history(db_url: str, category: str, cell_id: int, stamp: str) -> pd.DataFrame:
    from safety_models import workflows

    return workflows.cell_history(_store_for(db_url), category, int(cell_id))


@st.cache_data(show_spinner=False, max_entries=32)
def evaluation(db_url: str, model_id: str, version: float | None) -> dict | None:
    """A model's saved evaluation; `version` is the file's mtime so a new run shows."""
    from safety_models import evaluation as ev

    return ev.load_evaluation(model_id)


def evaluation_version(model_id: str) -> float | None:
    from safety_models import evaluation as ev

    path = ev.evaluation_path(model_id)
    return path.stat().st_mtime if path.exists() else None


def load_evaluation(model_id: str) -> dict | None:
    return evaluation(paths.db_url(), model_id, evaluation_version(model_id))


@st.cache_data(show_spinner=False, max_entries=16)
def models(db_url: str, category: str | None, version: str) -> pd.DataFrame:
    from safety_models import registry

    return registry.list_models(_store_for(db_url), category)


def models_version() -> str:
    """Changes when a model is saved, promoted or rolled back."""
    from safety_models import registry

    df = registry.list_models(get_store(), None)
    if df.empty:
        return "0"
    active = ",".join(sorted(df.loc[df["status"] == "active", "model_id"].astype(str)))
    return f"{len(df)}:{df['created_at'].max()}:{active}:{df['activated_at'].max()}"


def list_models(category: str | None) -> pd.DataFrame:
    return models(paths.db_url(), category, models_version())


def active_model_id(category: str) -> str | None:
    from safety_models import registry

    return registry.active_model_id(get_store(), category)


def clear_data_caches() -> None:
    """After an upload or removal: everything keyed by the data stamp renews by itself; the
    explicit clear frees the memory of the old entries at once."""
    for fn in (incident_counts, time_range, incidents, uploads, prediction, cell_history,
               boundary):
        fn.clear()


# ------------------------------------------------------------------------------ widgets


def category_selector(key: str, label: str = "Category", horizontal: bool = True) -> str:
    """A segmented control over the categories (remembered per page by its key)."""
    choice = st.segmented_control(
        label, options=list(CATEGORIES), format_func=category_label, key=key,
        default=CATEGORIES[0], selection_mode="single", required=True)
    return choice or CATEGORIES[0]


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
    from safety_models import workflows

    with shown_errors("preparing the first start"):
        workflows.first_start(get_store())


# ------------------------------------------------------------------------------ jobs


JOB_ACTIVE_STATUSES = ("queued", "running")


def job_progress_text(job: dict) -> str:
    """One line for people about a job's progress: stage, epoch, elapsed and remaining."""
    progress = job.get("progress") or {}
    parts = [str(progress.get("stage") or job.get("status") or "")]
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
    from safety_models import registry

    return registry.model_info(_store_for(db_url), model_id)


@st.cache_data(show_spinner=False, max_entries=32)
def scale_max(db_url: str, category: str, model_id: str, stamp: str) -> float:
    """The top of the model's fixed colour scale (from its next-window prediction)."""
    from safety_models import mapview

    return mapview.probability_scale_max(
        prediction(db_url, category, model_id, None, stamp)["probability"])


# ------------------------------------------------------------------------------ map pieces


def selected_cell(state: Any) -> int | None:
    """The cell id a pydeck selection state holds (cells layer), None when nothing is."""
    from safety_models import mapview

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

    from safety_models import mapview

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
    from safety_models import mapview

    return mapview.incidents_per_period(_store_for(db_url).incidents(category), freq,
                                        by_subtype=by_subtype)
