"""What every page shares: the one Store, the caches, error display and a few widgets.

Caching lives here and nowhere else:
* `st.cache_resource` holds one Store per database URL (per process);
* `st.cache_data` holds query results and predictions, keyed by what makes them change:
  the database, the model id, the window and a cheap "data stamp" (Store.data_version) or
  models version, so a new upload or a new model shows at once (within STAMP_TTL_S when
  another process made it: the stamps are read once a second for every session), and
  nothing is recomputed otherwise;
* `built_once` keeps what a page draws from data its key names completely (the map's deck
  and its JSON, legends, hotspot tables), once for every session, read-only.

What the pages show is built by `safety_models.presentation` (text, tables, charts, map
layers); this module only turns it into Streamlit elements. The page scripts import it as
`from pages import _ui as ui`. Its name starts with "_" so that Streamlit never lists it as a
page (app.py's st.navigation names the pages).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import itertools
import threading
import time
from typing import Any, Callable, Iterator, TypeVar

import pandas as pd
import streamlit as st

from safety_models import paths
from safety_models.data.store import Store
from safety_models.errors import UserError
from safety_models.presentation import text
from safety_models.presentation.tables import ColumnFormat
from safety_models.schema import CATEGORIES

CATEGORY_ICONS: dict[str, str] = {
    "crime": ":material/local_police:",
    "traffic": ":material/car_crash:",
    "health": ":material/health_and_safety:",
}
DATETIME_FORMAT = "D MMM YYYY, HH:mm"   # Streamlit's (moment.js) format for datetime columns
# The stamps that key the caches (the data's, the models') are read at most once per this many
# seconds for all sessions together: with twenty sessions, reading them on every visit (and
# several times per page) was most of a page's database time. A change made on this server
# clears them at once; one made by another process (an upload or a model from the command
# line, a job) shows within this many seconds.
STAMP_TTL_S = 1.0
BOUNDARY_TTL_S = 60    # district outlines from another process show within a minute
T = TypeVar("T")


# ------------------------------------------------------------------------------ the store


@st.cache_resource(show_spinner=False)
def _store_for(url: str) -> Store:
    return Store(url)


def get_store() -> Store:
    """The process's Store for the configured database (one per URL, shared by sessions;
    a Store holds only an engine, which is safe to share)."""
    return _store_for(paths.db_url())


@st.cache_resource(show_spinner=False, ttl=STAMP_TTL_S)
def _data_stamp(db_url: str) -> str:
    return _store_for(db_url).data_version()


def data_stamp() -> str:
    """Changes whenever incidents are added or removed: keys the cached queries (one small
    query of the uploads table, shared by every session for STAMP_TTL_S)."""
    return _data_stamp(paths.db_url())


@st.cache_resource(show_spinner=False, max_entries=256, ttl=600)
def _built(key: tuple, _build: Callable[[], Any]) -> Any:
    return _build()


def built_once(key: tuple, build: Callable[[], T]) -> T:
    """build() once for every session while key holds (and at most ten minutes): for what a
    page draws from data that the key names completely (a map's deck, hotspot tables, a
    legend). The result is shared, so it must be read-only."""
    return _built(key, build)


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


@st.cache_data(show_spinner=False, max_entries=32)
def per_period(db_url: str, category: str, freq: str, by_subtype: bool,
               stamp: str) -> pd.DataFrame:
    """Incidents of a category counted per day/week/month (and per subtype)."""
    from safety_models.presentation import tables

    return tables.incidents_per_period(_store_for(db_url).incidents_per_day(category), freq,
                                       by_subtype=by_subtype)


@st.cache_data(show_spinner=False, max_entries=16)
def file_preview(file_id: str, file_name: str, _data: bytes):
    """(table of strings, detected mapping or None, detection error or None) for a file
    being uploaded; keyed by the uploader's file id (the bytes are not hashed)."""
    from safety_models.data import ingest
    from safety_models.errors import MappingError

    table = ingest.read_table(_data, file_name)
    try:
        return table, ingest.detect_mapping(table), None
    except MappingError as err:
        return table, None, str(err)


@st.cache_data(show_spinner=False, max_entries=16)
def uploads(db_url: str, stamp: str) -> pd.DataFrame:
    return _store_for(db_url).list_uploads()


_boundary_reads = itertools.count(1)


# cache_resource: one read-only GeoJSON for every session (cache_data would unpickle a copy
# of every outline on each visit); the read's number tells built_once when it changed.
@st.cache_resource(show_spinner=False, max_entries=8, ttl=BOUNDARY_TTL_S)
def _boundary(db_url: str, category: str) -> tuple[int, dict | None]:
    return next(_boundary_reads), _store_for(db_url).boundary(category)


def boundary(db_url: str, category: str) -> dict | None:
    """District outlines for a category (or for every category), read-only; renewed when
    saved here (clear_boundary) and within BOUNDARY_TTL_S of a change made elsewhere."""
    return _boundary(db_url, category)[1]


def boundary_version(db_url: str, category: str) -> int:
    """Changes whenever boundary() may have: a key part for what is built from outlines."""
    return _boundary(db_url, category)[0]


def clear_boundary() -> None:
    _boundary.clear()


@st.cache_data(show_spinner=False, max_entries=64)
def prediction(db_url: str, category: str, model_id: str, at_iso: str | None,
               stamp: str) -> pd.DataFrame:
    """The model's prediction for one window (None: the next window after the data)."""
    from safety_models.service import workflows

    at = None if at_iso is None else pd.Timestamp(at_iso)
    return workflows.predict_category(_store_for(db_url), category, at=at, model_id=model_id)


@st.cache_resource(show_spinner=False, max_entries=16)
def _forecasts_for(db_url: str, category: str, model_id: str, version: str):
    """A model's saved forecasts for one data version (service.forecasts; computed there
    first when a job has not). Held once per process, read-only: every session shows the
    same arrays."""
    from safety_models.service import forecasts

    return forecasts.load(_store_for(db_url), category, model_id, version)


def forecasts(category: str, model_id: str):
    """The forecasts the map and the Overview show: next window, past windows, places."""
    url = paths.db_url()
    return _forecasts_for(url, category, model_id, _forecasts_version(url, category,
                                                                      data_stamp()))


@st.cache_resource(show_spinner=False, max_entries=32)
def _forecasts_version(db_url: str, category: str, stamp: str) -> str:
    """The category's data version (service.forecasts.version_of) for a data stamp: the
    uploads' listing is read once per stamp, not unpickled on every visit."""
    from safety_models.service import forecasts as service

    return service.version_of(uploads(db_url, stamp), category)


@st.cache_data(show_spinner=False, max_entries=32)
def scale_max(db_url: str, category: str, model_id: str, stamp: str) -> float:
    """The top of the model's fixed colour scale (from its next-window prediction)."""
    from safety_models.presentation import maplayers

    return maplayers.probability_scale_max(forecasts(category, model_id).next_window["probability"])


# cache_resource: the same read-only list for every session (cache_data would unpickle a copy
# of thousands of cells on every visit, a tenth of a second of a map page's run).
@st.cache_resource(show_spinner=False, max_entries=24)
def _cell_records(key: tuple, _prediction: pd.DataFrame, _grid: Any, scale_max: float,
                  colour_by: str, selected_cell: int | None, _places: pd.DataFrame,
                  on_streets: bool, extruded: bool) -> list[dict]:
    from safety_models.presentation import maplayers

    return maplayers.cell_records(_prediction, _grid, scale_max, colour_by=colour_by,
                                  selected_cell=selected_cell, places=_places,
                                  on_streets=on_streets, extruded=extruded)


def cell_records(prediction: pd.DataFrame, grid: Any, scale_max: float, colour_by: str,
                 selected_cell: int | None, places: pd.DataFrame, on_streets: bool,
                 extruded: bool = False) -> list[dict]:
    """maplayers.cell_records, kept per model and window: a prediction of one model for one
    window never changes (the window start and model id name it)."""
    first = prediction.iloc[0]
    key = (str(first["model_id"]), str(first["window_start"]), len(prediction),
           "happened" in prediction)
    return _cell_records(key, prediction, grid, scale_max, colour_by, selected_cell, places,
                         on_streets, extruded)


def forecaster_status(category: str, model_id: str, forecaster: str, activated_at: Any,
                      blend: dict | None = None) -> None:
    """Which forecaster the page shows and since when. While a job trains the category's
    models it refreshes by itself and reloads the page once another model takes over."""
    from safety_models.service import jobs

    def line() -> None:
        store = get_store()
        if active_model_id(category) != model_id:
            models_changed()
            st.rerun(scope="app")
        job = jobs.active_job(store, category)
        # The first models' job promotes the network only where it beats the starting forecast.
        training = job if job is not None and job["kind"] == "bootstrap" else None
        st.caption(text.forecaster_line(forecaster, model_id, activated_at, training,
                                        blend=blend))

    if jobs.active_job(get_store(), category) is None:
        line()
    else:
        st.fragment(line, run_every=3)()


@st.cache_resource(show_spinner=False, max_entries=4)
def _basemap_chooser_for(style_url: str | None):
    from safety_models.presentation import basemap

    return basemap.BasemapChooser(style_url)


def _basemap_chooser():
    from safety_models.presentation import basemap

    return _basemap_chooser_for(basemap.configured_style())


def basemap(wait_s: float = 1.0):
    """The street map under the cells, or none (basemap.Basemap): probed once per process in
    the background (the first start begins it); a page waits at most wait_s for the answer."""
    return _basemap_chooser().choose(wait_s)


@st.cache_data(show_spinner=False, max_entries=64)
def cell_history(db_url: str, category: str, model_id: str, cell_id: int,
                 stamp: str) -> pd.DataFrame:
    """A clicked cell's history under a model (the category's active one), its chances read
    from the model's saved forecasts."""
    from safety_models.service import forecasts as service

    return service.cell_history(_store_for(db_url), category, int(cell_id),
                                forecasts(category, model_id))


@st.cache_data(show_spinner=False, max_entries=32)
def evaluation(db_url: str, model_id: str, version: float | None) -> dict | None:
    """A model's saved evaluation; `version` is the file's mtime so a new run shows."""
    from safety_models.evaluation import backtest

    return backtest.load_evaluation(model_id)


def load_evaluation(model_id: str) -> dict | None:
    from safety_models.evaluation import backtest

    path = backtest.evaluation_path(model_id)
    return evaluation(paths.db_url(), model_id, path.stat().st_mtime if path.exists() else None)


@st.cache_data(show_spinner=False, max_entries=16)
def models(db_url: str, category: str | None, version: str) -> pd.DataFrame:
    from safety_models.modeling import registry

    return registry.list_models(_store_for(db_url), category)


@st.cache_resource(show_spinner=False, ttl=STAMP_TTL_S)
def _models_version(db_url: str) -> str:
    from safety_models.modeling import registry

    df = registry.list_models(_store_for(db_url), None)
    if df.empty:
        return "0"
    active = ",".join(sorted(df.loc[df["status"] == "active", "model_id"].astype(str)))
    return f"{len(df)}:{df['created_at'].max()}:{active}:{df['activated_at'].max()}"


def models_version() -> str:
    """Changes when a model is saved, promoted or rolled back (read once per STAMP_TTL_S for
    every session; models_changed() renews it at once)."""
    return _models_version(paths.db_url())


def models_changed() -> None:
    """After this session saved, promoted or rolled back a model (or saw a job end)."""
    _models_version.clear()
    models.clear()


@st.cache_data(show_spinner=False, max_entries=4, ttl=2)
def attention_items(db_url: str, models_version: str, data_stamp: str) -> list[dict]:
    """operations.attention_items, shared by every session for two seconds (the Overview's
    jobs part refreshes every two seconds while a job runs): a dozen queries otherwise ran on
    every visit of every session."""
    from safety_models.service import operations

    return operations.attention_items(_store_for(db_url))


def list_models(category: str | None) -> pd.DataFrame:
    return models(paths.db_url(), category, models_version())


@st.cache_data(show_spinner=False, max_entries=32)
def _horizon_models(db_url: str, category: str, version: str) -> dict[str, str]:
    from safety_models.service import workflows

    store = _store_for(db_url)
    return {h: workflows.horizon_model_id(store, category, h)
            for h in workflows.available_horizons(store, category)}


def horizon_models(category: str) -> dict[str, str]:
    """{horizon: model id} for the horizons ("7d" .. "90d") the category has a model for,
    shortest first (renewed when a model is saved or promoted)."""
    return _horizon_models(paths.db_url(), category, models_version())


def horizon_choice(key: str, category: str, window_hours: int | None,
                   label: str = "Forecast over") -> str | None:
    """A segmented control over the next window and the category's horizons (only when it
    has a horizon model); None for the next window, else "7d" etc. Remembered per page by
    its key; a horizon the category lacks falls back to the next window."""
    horizons = list(horizon_models(category))
    if not horizons:
        return None
    options = ["next", *horizons]
    if st.session_state.get(key) not in options:
        st.session_state[key] = "next"
    choice = st.segmented_control(
        label, options=options, key=key, selection_mode="single", required=True,
        format_func=lambda h: text.horizon_option_label(None if h == "next" else h,
                                                        window_hours),
        help="The next window is the category's active model; each longer horizon is a model "
             "trained for it (the chance of at least one incident over those days, and the "
             "expected number).")
    return None if choice in (None, "next") else str(choice)


def active_model_id(category: str) -> str | None:
    from safety_models.modeling import registry

    return registry.active_model_id(get_store(), category)


@st.cache_data(show_spinner=False, max_entries=64)
def model_info(db_url: str, model_id: str) -> dict:
    """The registry row of a model version (a version never changes once saved)."""
    from safety_models.modeling import registry

    return registry.model_info(_store_for(db_url), model_id)


@st.cache_data(show_spinner=False, max_entries=32)
def model_configs(db_url: str, model_id: str) -> dict:
    """The small, plain parts of a checkpoint (configs, data window, metrics): no weights."""
    from safety_models.modeling import registry

    checkpoint = registry.load_checkpoint(_store_for(db_url), model_id)
    return {k: v for k, v in checkpoint.items() if k not in ("state_dict", "mask")}


def model_description(db_url: str, model_id: str) -> str:
    return text.model_description(model_id, model_info(db_url, model_id),
                                  model_configs(db_url, model_id))


def clear_data_caches() -> None:
    """After an upload or removal: everything keyed by the data stamp renews by itself; the
    explicit clear frees the memory of the old entries at once."""
    for fn in (_data_stamp, incident_counts, time_range, incidents, per_period, uploads,
               prediction, cell_history, _boundary):
        fn.clear()


def after_data_change(categories) -> None:
    """After files were loaded or removed: each category's map follows its data at once, and
    a category without a model gets its first ones in the background (operations.after_upload)."""
    from safety_models.service import operations

    for category in dict.fromkeys(categories):
        name = text.category_label(category).lower()
        with shown_errors(f"updating the {name} map"), \
                st.spinner(f"Updating the {name} map…", show_time=True):
            outcome = operations.after_upload(get_store(), category)
        if outcome["job_id"] is not None:
            st.toast(f"First {name} models are being prepared (job {outcome['job_id']}): "
                     "its map shows within a minute.", icon=":material/hourglass_top:")
    _forecasts_for.clear()


# ------------------------------------------------------------------------------ widgets


def category_selector(key: str, label: str = "Category") -> str:
    """A segmented control over the categories (remembered per page by its key; another
    page may preselect it with remember_category)."""
    preset = key in st.session_state
    choice = st.segmented_control(
        label, options=list(CATEGORIES), format_func=text.category_label, key=key,
        default=None if preset else CATEGORIES[0], selection_mode="single", required=True)
    return choice or CATEGORIES[0]


def remember_category(key: str, category: str) -> None:
    """Preselect a category selector (by its key) on the page the user goes to next."""
    st.session_state[key] = category


def column_config(formats: dict[str, ColumnFormat]) -> dict[str, Any]:
    """st.dataframe's column_config for the library's column formats (tables.*_COLUMNS)."""
    def one(f: ColumnFormat) -> Any:
        if f.kind == "datetime":
            return st.column_config.DatetimeColumn(f.label, format=DATETIME_FORMAT, help=f.help)
        if f.kind == "text":
            return st.column_config.TextColumn(f.label, help=f.help, width=f.width_px)
        if f.kind == "number":
            return st.column_config.NumberColumn(f.label, format=f.number_format, help=f.help,
                                                 width=f.width_px)
        if f.kind == "link":
            return st.column_config.LinkColumn(f.label, help=f.help, width=f.width_px,
                                               display_text="open ↗")
        return f.label   # a heading only: the column's own type decides how it looks

    return {name: one(f) for name, f in formats.items()}


# What later pages import, in the order they are likely needed: the map, then the charts.
WARM_UP_MODULES = ("pydeck", "plotly.graph_objects", "safety_models.presentation.charts")
# What the Models page (and a past date's map) import: torch and the training code, 3-4 s of
# CPU. Imported only once the server has been idle for IDLE_IMPORT_AFTER_S (an operator
# reading a page), so that it never holds the cores while a page is being drawn.
IDLE_IMPORT_MODULES = ("safety_models.modeling.training", "safety_models.modeling.registry")
IDLE_IMPORT_AFTER_S = 2.0
_last_run_end = [time.monotonic()]      # when a script run last finished (warm_up sets it)


@st.cache_resource(show_spinner=False)
def _warm_up_thread() -> threading.Thread:
    def imported(names) -> None:
        for name in names:
            try:
                importlib.import_module(name)
            except ImportError:
                pass

    def run() -> None:
        imported(WARM_UP_MODULES)
        while time.monotonic() - _last_run_end[0] < IDLE_IMPORT_AFTER_S:
            time.sleep(0.25)
        imported(IDLE_IMPORT_MODULES)
        # What is loaded now (modules, their functions and constants) lives as long as the
        # server: out of the collector's way, so a full collection stays quick.
        gc.freeze()
    thread = threading.Thread(target=run, name="warm-up imports", daemon=True)
    thread.start()
    return thread


def warm_up() -> None:
    """After every run (once per server process the work itself): import in the background
    what the other pages need, so the first visit to each does not wait for its imports (a
    Python import runs once; a page needing the module meanwhile waits for it); the heavy
    ones only while the server is idle."""
    _last_run_end[0] = time.monotonic()
    _warm_up_thread()


def first_start() -> None:
    """On an empty home, load the demo data and start the bootstrap job (a library call,
    idempotent: it records that it ran, so removing the demo later does not bring it back).
    Checked once per session; a failure is shown, never blocks the pages."""
    if st.session_state.get("_first_start_checked"):
        return
    st.session_state["_first_start_checked"] = True
    from safety_models.service import operations

    _basemap_chooser().start()          # the street map's server is checked meanwhile
    with shown_errors("preparing the first start"), \
            st.spinner("Preparing this installation (on the first start: loading the demo "
                       "data)…", show_time=True):
        operations.first_start(get_store())


@st.fragment(run_every=2)
def wait_for_model(category: str) -> None:
    """While a category has no model: say so, show the job preparing one (if any), and
    rerun the whole page as soon as the model exists, so the page fills in by itself."""
    from safety_models.modeling import registry
    from safety_models.service import jobs

    store = get_store()
    if registry.active_model_id(store, category) is not None:
        models_changed()
        st.rerun(scope="app")
    job = jobs.active_job(store, category)
    name = text.category_label(category).lower()
    if job is None:
        st.info(f"There is no {name} model yet. Start one on the **Models and training** "
                "page.", icon=":material/info:")
        return
    st.info(f"The {name} model is being prepared; this page fills in as soon as it is ready.",
            icon=":material/hourglass_top:")
    st.progress(text.job_fraction(job),
                text=f"{text.job_title(job)}: {text.job_progress_text(job)}")


def show_job_outcome(job: dict) -> None:
    """How the category's last job ended, for a few hours after it did."""
    outcome = text.job_outcome_text(job)
    if outcome is None:
        return
    if job["status"] == "succeeded":
        st.success(outcome, icon=":material/task_alt:")
    elif job["status"] == "failed":
        st.error(outcome, icon=":material/error:")
    else:
        st.info(outcome, icon=":material/info:")
