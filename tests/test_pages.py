"""Every dashboard page runs on a tiny city (AppTest, in-process) and shows its key elements.

Widgets are found by their `key=`. Nothing here starts a process: jobs.start_job is patched
where a page would start one. Every test signs in first (as `admin`, whose password
SAFETY_MODELS_ADMIN_PASSWORD sets on the first start, unless it says otherwise).
"""

from __future__ import annotations

import json
import sys
import time
import types
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from conftest import build_tiny_home, copy_home, synthetic_incidents, synthetic_incidents_csv

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = ["pages/overview_page.py", "pages/risk_map_page.py", "pages/data_page.py", "pages/models_page.py",
         "pages/evaluation_page.py", "pages/method_page.py", "pages/admin_page.py"]
TIMEOUT_S = 120
ADMIN_PASSWORD = "admin-password-for-tests"


@pytest.fixture(autouse=True)
def admin_password(monkeypatch):
    """The first start makes `admin` with this password instead of a random one."""
    monkeypatch.setenv("SAFETY_MODELS_ADMIN_PASSWORD", ADMIN_PASSWORD)


@pytest.fixture(autouse=True)
def no_street_map(monkeypatch):
    """No street map unless a test asks for one: nothing is fetched, the maps are the same
    with or without a network."""
    monkeypatch.setenv("SAFETY_MODELS_MAP_STYLE", "none")


@pytest.fixture
def home(tiny_home_with_models, tmp_path, monkeypatch) -> Path:
    """A private copy of the home with data and tiny models, set as SAFETY_MODELS_HOME."""
    path = copy_home(tiny_home_with_models, tmp_path / "home")
    monkeypatch.setenv("SAFETY_MODELS_HOME", str(path))
    monkeypatch.delenv("SAFETY_MODELS_DB_URL", raising=False)
    return path


@pytest.fixture
def data_home(tiny_home, tmp_path, monkeypatch) -> Path:
    """A private copy of the home with data only (no model yet)."""
    path = copy_home(tiny_home, tmp_path / "home")
    monkeypatch.setenv("SAFETY_MODELS_HOME", str(path))
    monkeypatch.delenv("SAFETY_MODELS_DB_URL", raising=False)
    return path


@pytest.fixture
def started_jobs(monkeypatch) -> list[tuple[str, dict]]:
    """Patch jobs.start_job: record (kind, config) instead of starting a process."""
    from safety_models.service import jobs

    calls: list[tuple[str, dict]] = []

    def fake_start_job(store, kind, config, on_created=None):
        calls.append((kind, dict(config)))
        if on_created is not None:
            on_created(999)
        return 999

    monkeypatch.setattr(jobs, "start_job", fake_start_job)
    return calls


def sign_in(at: AppTest, name: str = "admin", password: str = ADMIN_PASSWORD) -> AppTest:
    at.text_input(key="login_name").set_value(name)
    at.text_input(key="login_password").set_value(password)
    return at.button(key="login_submit").click().run()


def open_page(page: str, name: str = "admin", password: str = ADMIN_PASSWORD) -> AppTest:
    """A new session: sign in, then go to the page."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.run()
    sign_in(at, name, password)
    assert "login_name" not in [w.key for w in at.text_input], \
        f"not signed in: {[e.value for e in at.error]}"
    if page != PAGES[0]:
        at.switch_page(page).run()
    return at


def add_account(name: str, role: str, password: str) -> None:
    from safety_models.data.store import Store
    from safety_models.service import accounts

    with Store() as store:
        accounts.ensure_admin(store)   # as the first start would have, before any other
        accounts.add_account(store, name, role, password)


def shows_sign_in_only(at: AppTest) -> bool:
    """The sign-in form and nothing of any page."""
    return ([t.value for t in at.title] == ["Safety risk maps"]
            and [w.key for w in at.text_input] == ["login_name", "login_password"]
            and not at.dataframe and not at.metric and not at.get("plotly_chart")
            and not at.get("deck_gl_json_chart") and not at.get("download_button"))


def assert_clean(at: AppTest) -> None:
    """No exception and no error box on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def open_tab(at: AppTest, key: str, label: str) -> AppTest:
    """Select a tab of a lazy st.tabs (only the open tab's content runs)."""
    at.session_state[key] = label
    return at.run()


def table_with(at: AppTest, column: str):
    """The first table (st.dataframe) on the page with that column (tables have no key)."""
    for frame in at.dataframe:
        if column in frame.value.columns:
            return frame.value
    raise AssertionError(f"no table with a {column!r} column; tables: "
                         f"{[list(f.value.columns) for f in at.dataframe]}")


def markdown_tables_with(at: AppTest, header: str) -> list[list[list[str]]]:
    """The markdown tables on the page whose header row names `header`: rows of cells (the
    header first), e.g. the hotspots."""
    found = []
    for block in at.markdown:
        lines = [line for line in block.value.splitlines() if line.startswith("|")]
        if not lines or header not in [c.strip() for c in lines[0].strip("|").split("|")]:
            continue
        rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
        found.append([rows[0]] + rows[2:])          # without the alignment row
    return found


def deck_spec(at: AppTest) -> dict:
    charts = at.get("deck_gl_json_chart")
    assert charts, "no pydeck chart on the page"
    return json.loads(charts[0].proto.json)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_without_errors(home, started_jobs, page):
    at = open_page(page)
    assert_clean(at)
    assert at.title, "every page has a title"
    assert started_jobs == [], "opening a page must not start a job"


# What a page says while its category has data but no model yet: (kind of box, words).
NO_MODEL_YET = {
    "pages/overview_page.py": ("warning", "Crime has data but no model"),
    "pages/risk_map_page.py": ("info", "There is no crime model yet"),
    "pages/evaluation_page.py": ("info", "There is no crime model yet"),
    "pages/models_page.py": ("info", "No model of this category yet"),
}


def test_no_model_messages_name_real_pages():
    # A renamed page must fail here rather than silently skip its check below.
    assert set(NO_MODEL_YET) <= set(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_before_any_model_exists(data_home, started_jobs, page):
    """Data but no model yet (the first minutes of a new city): every page explains what is
    missing and none fails."""
    at = open_page(page)
    assert_clean(at)
    if page in NO_MODEL_YET:
        kind, words = NO_MODEL_YET[page]
        shown = [box.value for box in getattr(at, kind)]
        assert any(words in message for message in shown), shown


def test_overview_shows_each_category(home, started_jobs):
    at = open_page("pages/overview_page.py")
    assert_clean(at)
    stored = [m for m in at.metric if m.label == "Incidents stored"]
    assert len(stored) == 3
    assert all(int(m.value.replace(",", "")) > 0 for m in stored)
    # The headline scores of every (evaluated) model beside the best baseline's ...
    headlines = [m.value for m in at.markdown if "best baseline" in m.value and "ROC-AUC" in m.value]
    assert len(headlines) == 3
    # ... and its top 5 hotspots, named by district, each with a link to the city's map.
    hotspots = markdown_tables_with(at, "district")
    assert len(hotspots) == 3 and all(len(t) == 1 + 5 for t in hotspots)
    for table in hotspots:
        district, link = table[0].index("district"), table[0].index("map")
        assert all(row[district].startswith("District ") for row in table[1:])
        assert all(row[link].startswith("[open ↗](https://www.openstreetmap.org/")
                   for row in table[1:])


def test_risk_map_draws_cells_outlines_and_hotspots(home, started_jobs):
    at = open_page("pages/risk_map_page.py")
    assert_clean(at)
    spec = deck_spec(at)
    layer_ids = [layer["id"] for layer in spec["layers"]]
    assert layer_ids == ["cells", "districts", "district-labels"]
    cells = spec["layers"][0]
    assert cells["pickable"] and cells["data"], "cells must be drawn and clickable"
    first = cells["data"][0]
    assert {"probability_text", "expected_text", "events_last_30d", "rank",
            "risk_level"} <= set(first)
    # No basemap: nothing is fetched from a tile server.
    assert "mapProvider" not in spec and "cartocdn" not in json.dumps(spec)
    [hotspots] = markdown_tables_with(at, "30 days")
    assert [row[0] for row in hotspots[1:]] == [str(r) for r in range(1, 11)]
    assert {b.key for b in at.get("download_button")} >= {"map_download_csv",
                                                           "map_download_geojson"}


def test_risk_map_view_stays_when_options_change(home, started_jobs):
    at = open_page("pages/risk_map_page.py")
    before = deck_spec(at)["initialViewState"]
    at.toggle(key="map_3d").set_value(True).run()
    at.toggle(key="map_incidents").set_value(True).run()
    at.segmented_control(key="map_colour").set_value("risk_level").run()
    assert_clean(at)
    spec = deck_spec(at)
    after = spec["initialViewState"]
    # Centre and zoom come from the grid only; only the tilt changes for 3D.
    assert {k: after[k] for k in ("latitude", "longitude", "zoom")} == \
           {k: before[k] for k in ("latitude", "longitude", "zoom")}
    assert after["pitch"] > 0
    layers = {layer["id"]: layer for layer in spec["layers"]}
    assert layers["cells"]["extruded"] is True
    assert layers["incidents"]["data"], "recent incidents are drawn as points"


def test_risk_map_for_a_past_date(home, started_jobs):
    import datetime as dt

    at = open_page("pages/risk_map_page.py")
    at.segmented_control(key="map_when").set_value("date").run()
    at.date_input(key="map_date").set_value(dt.date(2024, 9, 2)).run()
    assert_clean(at)
    assert any("02 Sep 2024" in m.value for m in at.markdown)


def test_evaluation_lists_model_and_every_baseline(home, started_jobs):
    at = open_page("pages/evaluation_page.py")
    assert_clean(at)
    assert not at.get("plotly_chart"), "the charts' tabs run only when opened"
    table = table_with(at, "pai_5")
    assert table.index[0] == "this model"
    assert len(table) >= 5, "the model and at least four baselines"
    for column in ("hit_rate_5", "pai_5", "roc_auc", "accuracy", "always_no_event_accuracy"):
        assert column in table.columns
    labels = {m.label for m in at.metric}
    assert {"Accuracy", "Always “no incident”"} <= labels


def test_models_page_has_retrain_controls_and_starts_a_job(home, started_jobs):
    at = open_page("pages/models_page.py")
    assert_clean(at)
    for key in ("train_base", "train_freeze", "train_optimizer"):
        assert at.selectbox(key=key) is not None
    for key in ("train_lr", "train_epochs", "train_history_days"):
        assert at.number_input(key=key) is not None
    assert table_with(at, "model").shape[0] >= 1
    at.selectbox(key="train_base").set_value("none")
    at.selectbox(key="train_freeze").set_value("layer1")
    at.number_input(key="train_epochs").set_value(2)
    at.button(key="train_start").click().run()
    assert_clean(at)
    assert len(started_jobs) == 1
    kind, config = started_jobs[0]
    assert kind == "train"
    assert config["category"] == "crime" and config["base"] == "none"
    assert config["freeze_up_to"] == "layer1" and config["epochs"] == 2
    assert config["cell_size_m"] is None, "no size: the training workflow keeps the grid"
    assert config["horizon_days"] is None, "the next window unless a horizon is chosen"


def test_models_page_trains_a_model_for_a_horizon(home, started_jobs):
    at = open_page("pages/models_page.py")
    choice = at.selectbox(key="train_horizon")
    assert choice.options == ["Next day", "Next 7 days", "Next 14 days", "Next 30 days",
                              "Next 60 days", "Next 90 days"]
    choice.set_value("60d")
    at.button(key="train_start").click().run()
    assert_clean(at)
    [(kind, config)] = started_jobs
    assert kind == "train" and config["horizon_days"] == 60


def test_models_page_trains_on_smaller_cells(home, started_jobs):
    """The cell size choice: the map's own grid by default (above), or a smaller one."""
    at = open_page("pages/models_page.py")
    choice = at.selectbox(key="train_cell_size")
    assert choice.options[0].endswith("(the map's)") and "150 m" in choice.options
    choice.set_value(150.0)
    at.button(key="train_start").click().run()
    assert_clean(at)
    [(kind, config)] = started_jobs
    assert kind == "train" and config["cell_size_m"] == 150.0


def test_models_page_shows_a_running_job(home, started_jobs, monkeypatch):
    """A job row as the job process writes it: the page shows its progress and Cancel."""
    from datetime import datetime

    from safety_models.service import jobs
    from safety_models.data.store import Store

    store = Store()
    jobs.list_jobs(store)  # creates the jobs table
    with store.begin() as conn:
        conn.execute(jobs.jobs_table.insert().values(
            kind="train", category="crime", config={"category": "crime"}, status="running",
            created_at=datetime.now(), started_at=datetime.now(),
            progress={"stage": "train", "fraction": 0.4, "epoch": 2, "epochs": 5,
                      "loss": 0.31, "elapsed_s": 12, "eta_s": 18},
            history=[{"stage": "train", "epoch": 1, "loss": 0.5},
                     {"stage": "train", "epoch": 2, "loss": 0.31}]))
    store.close()
    monkeypatch.setattr(jobs, "recover_stale_jobs", lambda store: [])  # no process to check
    at = open_page("pages/models_page.py")
    assert_clean(at)
    assert at.button(key="train_cancel") is not None
    bars = at.get("progress")
    assert bars and "epoch 2 of 5" in bars[0].proto.text
    assert not [b for b in at.button if b.key == "train_start"]


def test_data_page_uploads_a_file_and_lists_it(data_home, started_jobs):
    at = open_page("pages/data_page.py")
    assert_clean(at)
    assert not at.get("plotly_chart"), "hidden tabs do not run"
    open_tab(at, "data_tab", "Uploads")
    assert len(table_with(at, "file_name")) == 3
    open_tab(at, "data_tab", "Load files")
    extra = synthetic_incidents("traffic", 60, seed=11)
    extra["ID"] = [f"new{i}" for i in range(len(extra))]
    extra["Block"] = [f"0{i % 3}XX W MAIN ST" for i in range(len(extra))]
    extra.loc[extra.index[:4], "Date"] = "not a date"
    at.selectbox(key="upload_category").set_value("traffic")
    at.file_uploader(key="upload_files").set_value(
        [("new_accidents.csv", extra.to_csv(index=False).encode(), "text/csv")]).run()
    assert_clean(at)
    # The detected mapping is shown in editable selectboxes.
    detected = {s.key.rsplit("_", 1)[-1]: s.value for s in at.selectbox
                if s.key and s.key.startswith("mapping_")}
    assert detected["time"] == "Date" and detected["lat"] == "Latitude"
    assert detected["place"] == "Block"
    at.button(key="upload_load").click().run()
    assert_clean(at)
    messages = " ".join(w.value for w in [*at.warning, *at.success])
    assert "new_accidents.csv" in messages and "56 incidents added" in messages
    assert "unparseable time" in " ".join(c.value for c in at.caption)
    open_tab(at, "data_tab", "Uploads")
    assert len(table_with(at, "file_name")) == 4
    open_tab(at, "data_tab", "Incidents over time")
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 2, "incidents by category and by type"


def test_data_page_loads_one_offence_of_a_file_of_several(data_home, started_jobs):
    at = open_page("pages/data_page.py")
    extra = synthetic_incidents("crime", 60, seed=12)
    extra["ID"] = [f"typed{i}" for i in range(len(extra))]
    extra.loc[extra.index[-1], "Primary Type"] = ""              # a blank type is no choice
    robberies = int((extra["Primary Type"] == "ROBBERY").sum())
    extra.loc[extra["Primary Type"].eq("ROBBERY")[::-1].idxmax(), "Primary Type"] = "Robbery"  # a last one spelt otherwise
    at.file_uploader(key="upload_files").set_value(
        [("all_offences.csv", extra.to_csv(index=False).encode(), "text/csv")]).run()
    [choice] = [m for m in at.multiselect if m.key.endswith("_only_types")]
    typed = extra["Primary Type"].str.upper()
    assert sorted(choice.options) == sorted(f"{t} ({n:,} rows)" for t, n in
                                            typed[typed != ""].value_counts().items())
    choice.set_value(["ROBBERY"]).run()
    at.button(key="upload_load").click().run()
    # The home's crime map holds every type: a robbery-only file would mix into it.
    [refusal] = at.error
    assert "keep every incident type" in refusal.value and "would mix them" in refusal.value
    from safety_models.data.store import Store

    with Store() as store:
        listing = store.list_uploads()
        for upload_id in listing.loc[listing["category"] == "crime", "upload_id"]:
            store.remove_upload(int(upload_id))
    at.button(key="upload_load").click().run()
    assert_clean(at)
    messages = " ".join(w.value for w in [*at.warning, *at.success])
    assert f"{robberies} incidents added" in messages
    assert "not one of the incident types asked for" in " ".join(c.value for c in at.caption)


def test_data_page_removes_an_upload_after_confirming(data_home, started_jobs):
    at = open_page("pages/data_page.py")
    open_tab(at, "data_tab", "Uploads")
    at.selectbox(key="remove_upload_id").set_value(3).run()
    at.button(key="remove_upload_confirm").click().run()
    assert_clean(at)
    assert list(table_with(at, "file_name")["upload_id"]) == [1, 2]


def test_data_page_explains_an_unusable_file(data_home, started_jobs):
    at = open_page("pages/data_page.py")
    at.file_uploader(key="upload_files").set_value(
        [("photo.csv", b"\x89PNG\r\n\x1a\n\x00\x00binary", "text/csv")]).run()
    assert not at.exception
    assert at.error and "photo.csv" in at.error[0].value


def test_first_start_loads_demo_and_starts_bootstrap(tmp_path, monkeypatch, started_jobs):
    """An empty home: the demo data is loaded and one bootstrap job is started."""
    from safety_models.data import ingest

    monkeypatch.setenv("SAFETY_MODELS_HOME", str(tmp_path / "fresh"))
    monkeypatch.delenv("SAFETY_MODELS_DB_URL", raising=False)

    def fake_demo(store):  # the real demo is large; a small city stands in for it
        ingest.ingest_bytes(store, synthetic_incidents_csv("crime", 100), "demo.csv", "crime")

    fake_module = types.ModuleType("safety_models.data.demo")
    fake_module.load_demo = fake_demo
    monkeypatch.setitem(sys.modules, "safety_models.data.demo", fake_module)
    at = open_page("pages/overview_page.py")
    assert not at.exception
    assert [kind for kind, _ in started_jobs] == ["bootstrap"]
    assert [m.value for m in at.metric if m.label == "Incidents stored"][0] == "100"
    # A second session does not start it again.
    open_page("pages/overview_page.py")
    assert len(started_jobs) == 1


def test_overview_opens_the_map_of_a_category(home, started_jobs):
    at = open_page("pages/overview_page.py")
    at.button(key="open_map_traffic").click().run()
    assert_clean(at)
    assert at.segmented_control(key="map_category").value == "traffic"
    assert deck_spec(at)["layers"][0]["id"] == "cells"


def test_risk_map_shows_the_history_of_a_clicked_cell(home, started_jobs):
    at = open_page("pages/risk_map_page.py")
    assert not at.get("plotly_chart"), "no cell chosen yet"
    cell = deck_spec(at)["layers"][0]["data"][-1]["cell_id"]
    # What the browser sends back when a cell is clicked (the pydeck chart's selection).
    at.session_state["risk_map_crime"] = {"selection": {"indices": {},
                                                        "objects": {"cells": [{"cell_id": cell}]}}}
    at.run()
    assert_clean(at)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["title"]["text"] == f"Cell {cell}"
    assert [trace["name"] for trace in spec["data"]] == ["incidents per day", "predicted chance"]
    # The clicked cell is outlined on the map.
    layers = deck_spec(at)["layers"]
    cells = layers[0]["data"]
    assert [c["cell_id"] for c in cells if c.get("line") == [0, 0, 0, 255]] == [cell]
    outlined = next(c for c in cells if c["cell_id"] == cell)
    assert layers[-1]["id"] == "selected-cell"
    assert layers[-1]["data"] == [{"polygon": outlined["polygon"]}]


def test_risk_map_says_which_forecaster_it_shows_and_since_when(home, started_jobs):
    at = open_page("pages/risk_map_page.py")
    assert_clean(at)
    line = [c.value for c in at.caption if c.value.startswith("Forecast by")]
    assert line and "the fine-tuned network" in line[0] and "in use since" in line[0]


def test_risk_map_looks_back_over_past_windows(home, started_jobs):
    at = open_page("pages/risk_map_page.py")
    at.segmented_control(key="map_when").set_value("back").run()
    assert_clean(at)
    slider = at.select_slider(key="map_back")
    latest = slider.value
    assert latest == len(slider.options) - 1 > 0, "the latest past window first"
    assert any("happened" in m.value for m in at.markdown)
    spec = deck_spec(at)
    assert [layer["id"] for layer in spec["layers"]][-1] == "incidents"
    assert "Incidents that then happened" in json.loads(
        at.get("deck_gl_json_chart")[0].proto.tooltip)["html"]
    [hotspots] = markdown_tables_with(at, "happened")
    assert len(hotspots) == 1 + 10
    # Step back one window ...
    at.select_slider(key="map_back").set_value(latest - 1).run()
    assert_clean(at)
    assert at.select_slider(key="map_back").value == latest - 1
    # ... and play: from there on, one window per run, stopping at the latest.
    at.button(key="map_play").click().run()
    assert_clean(at)
    assert at.session_state["map_playing"] is True
    assert at.select_slider(key="map_back").value == latest
    at.run()
    assert at.session_state["map_playing"] is False
    # At the latest window, Play starts from the first one.
    at.button(key="map_play").click().run()
    assert at.session_state["map_playing"] is True
    assert at.select_slider(key="map_back").value in (0, 1)


def test_risk_map_over_streets_when_the_style_can_be_reached(home, started_jobs, monkeypatch):
    import http.server
    import threading

    class Style(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"version": 8, "sources": {}, "layers": []}')

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Style)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        style = f"http://127.0.0.1:{httpd.server_address[1]}/style.json"
        monkeypatch.setenv("SAFETY_MODELS_MAP_STYLE", style)
        at = open_page("pages/risk_map_page.py")
        assert_clean(at)
        spec = deck_spec(at)
        assert spec["mapStyle"] == style and spec["mapProvider"] == "maplibre"
        assert not [c for c in at.caption if "Street map not shown" in c.value]
    finally:
        httpd.shutdown()


def test_risk_map_without_streets_when_the_style_cannot_be_reached(home, started_jobs,
                                                                    monkeypatch):
    import socket

    with socket.socket() as sock:          # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("SAFETY_MODELS_MAP_STYLE", f"http://127.0.0.1:{port}/style.json")
    at = open_page("pages/risk_map_page.py")
    assert_clean(at)
    spec = deck_spec(at)
    assert "mapProvider" not in spec and spec["mapStyle"] == "__MAP_STYLE__"
    assert [c for c in at.caption if "Street map not shown" in c.value]


def test_overview_names_the_forecaster_of_each_category(home, started_jobs):
    at = open_page("pages/overview_page.py")
    assert_clean(at)
    names = [m.value for m in at.markdown if "since" in m.value and "`" in m.value]
    assert len(names) == 3 and all("fine-tuned network" in n for n in names)


def test_evaluation_charts_are_in_their_own_tabs(home, started_jobs):
    at = open_page("pages/evaluation_page.py")
    open_tab(at, "eval_tab", "Curves")
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 4, "hit rate, PAI, ROC and calibration"
    open_tab(at, "eval_tab", "Over time")
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 1


# ---------------------------------------------------------------------------- accounts


@pytest.mark.parametrize("page", PAGES)
def test_an_anonymous_visitor_sees_only_the_sign_in_form(home, started_jobs, page):
    """Every page's address (a deep link) shows the sign-in form and nothing of the page."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.run()
    if page != PAGES[0]:
        at.switch_page(page).run()
    assert not at.exception
    assert shows_sign_in_only(at)
    # Signed in, the same session shows the page the address named.
    sign_in(at)
    assert_clean(at)
    assert at.title and at.title[0].value != "Safety risk maps"


def test_a_wrong_password_is_refused_and_audited(home, started_jobs):
    from safety_models.data.store import Store
    from safety_models.service import audit

    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.run()
    sign_in(at, "admin", "not the password")
    assert shows_sign_in_only(at)
    assert "Wrong account name or password" in at.error[0].value
    with Store() as store:
        rows = audit.query(store, actions=["login"])
    assert list(rows["outcome"]) == ["failed"] and rows["who"].iloc[0] == "admin"


def test_a_viewer_has_no_upload_or_retrain_controls_and_the_service_refuses(home, started_jobs):
    from safety_models.data.store import Store
    from safety_models.errors import PermissionDenied
    from safety_models.service import actions, audit
    from safety_models.service.access import Actor

    add_account("vera", "viewer", "viewer-password")
    at = open_page(PAGES[0], "vera", "viewer-password")
    assert_clean(at)
    # Neither the Data nor the Models page nor the admin page is in a viewer's navigation.
    for page in ("pages/data_page.py", "pages/models_page.py", "pages/admin_page.py"):
        with pytest.raises(ValueError):
            at.switch_page(page)
    for page in ("pages/risk_map_page.py", "pages/evaluation_page.py", "pages/method_page.py"):
        at.switch_page(page).run()
        assert_clean(at)
        keys = {w.key for w in [*at.button, *at.get("file_uploader")]}
        assert not keys & {"upload_load", "train_start", "promote_button", "eval_run"}
    # Predictions are a viewer's to download.
    at.switch_page("pages/risk_map_page.py").run()
    assert {b.key for b in at.get("download_button")} >= {"map_download_csv"}
    # Called anyway, the service refuses, and says so in the audit trail.
    viewer = Actor("vera", "viewer", "dashboard")
    with Store() as store:
        with pytest.raises(PermissionDenied, match="analyst"):
            actions.ingest(store, viewer, synthetic_incidents_csv("crime", 20), "x.csv", "crime")
        with pytest.raises(PermissionDenied):
            actions.start_training(store, viewer, {"category": "crime"})
        with pytest.raises(PermissionDenied):
            actions.remove_upload(store, viewer, 1)
        rows = audit.query(store, who="vera", outcome="refused")
        assert len(store.list_uploads()) == 3
    assert started_jobs == []
    assert sorted(rows["action"]) == ["train.start", "upload", "upload.remove"]


def test_an_analysts_upload_appears_in_the_audit_trail(data_home, started_jobs):
    add_account("ana", "analyst", "analyst-password")
    at = open_page("pages/data_page.py", "ana", "analyst-password")
    extra = synthetic_incidents("crime", 30, seed=5)
    extra["ID"] = [f"ana{i}" for i in range(len(extra))]
    at.file_uploader(key="upload_files").set_value(
        [("ana_upload.csv", extra.to_csv(index=False).encode(), "text/csv")]).run()
    at.button(key="upload_load").click().run()
    assert_clean(at)
    # An analyst loads files but removes none.
    open_tab(at, "data_tab", "Uploads")
    assert at.get("popover") and at.get("popover")[0].proto.popover.disabled
    with pytest.raises(ValueError):
        at.switch_page("pages/admin_page.py")

    admin = open_page("pages/admin_page.py")
    open_tab(admin, "admin_tab", "Audit trail")
    assert_clean(admin)
    trail = table_with(admin, "action")
    mine = trail[(trail["who"] == "ana") & (trail["action"] == "upload")]
    assert len(mine) == 1
    assert mine["outcome"].iloc[0] == "ok" and mine["target"].iloc[0] == "upload #4"
    assert "ana_upload.csv (crime): 30 incidents added" in mine["detail"].iloc[0]
    assert {"login"} <= set(trail["action"])
    download = [b for b in admin.get("download_button") if b.key == "audit_download"]
    assert download, "the audit trail downloads as CSV"


def test_an_upload_above_the_limit_is_refused(data_home, started_jobs, monkeypatch):
    monkeypatch.setenv("SAFETY_MODELS_MAX_UPLOAD_MB", "0.001")   # about 1 kB
    at = open_page("pages/data_page.py")
    at.file_uploader(key="upload_files").set_value(
        [("big.csv", synthetic_incidents_csv("crime", 200), "text/csv")]).run()
    at.button(key="upload_load").click().run()
    assert not at.exception
    assert any("big.csv" in e.value and "refused" in e.value for e in at.error)


def test_sign_out_and_an_idle_session_end(home, started_jobs):
    from safety_models.data.store import Store
    from safety_models.service import audit

    at = open_page(PAGES[0])
    at.button(key="logout_button").click().run()
    assert shows_sign_in_only(at)
    sign_in(at)
    assert_clean(at)
    at.session_state["auth_last_seen"] = time.time() - 31 * 60   # default limit: 30 min
    at.run()
    assert shows_sign_in_only(at)
    assert "after 30 minutes" in at.info[0].value
    with Store() as store:
        rows = audit.query(store, actions=["login", "logout"])
    assert list(rows["outcome"][::-1]) == ["ok", "ok", "ok", "expired"]


def test_admin_page_adds_an_account_and_changes_its_role(home, started_jobs):
    from safety_models.data.store import Store
    from safety_models.service import accounts

    at = open_page("pages/admin_page.py")
    assert_clean(at)
    at.text_input(key="account_add_name").set_value("new.analyst")
    at.selectbox(key="account_add_role").set_value("analyst")
    at.text_input(key="account_add_password").set_value("a-long-password")
    at.button(key="account_add").click().run()
    assert_clean(at)
    assert any("new.analyst" in s.value for s in at.success)
    at.selectbox(key="account_name").set_value("new.analyst").run()
    at.selectbox(key="account_role").set_value("viewer").run()
    at.button(key="account_set_role").click().run()
    assert_clean(at)
    with Store() as store:
        assert accounts.get_account(store, "new.analyst")["role"] == "viewer"
    # The last administrator cannot be disabled: the page says why.
    at.selectbox(key="account_name").set_value("admin").run()
    at.button(key="account_toggle").click().run()
    assert any("last administrator" in e.value for e in at.error)


def test_first_start_without_a_password_prints_one_once(tmp_path, monkeypatch, started_jobs,
                                                         capsys):
    """No SAFETY_MODELS_ADMIN_PASSWORD: a random one is printed on the console, once, and
    the sign-in form says where to look; it signs in."""
    import re

    home = tmp_path / "fresh"
    build_tiny_home(home)
    monkeypatch.setenv("SAFETY_MODELS_HOME", str(home))
    monkeypatch.delenv("SAFETY_MODELS_DB_URL", raising=False)
    monkeypatch.delenv("SAFETY_MODELS_ADMIN_PASSWORD")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.run()
    printed = capsys.readouterr().out
    password = re.search(r"password: (\S+)", printed).group(1)
    assert shows_sign_in_only(at)
    assert any("printed once in the server's console" in i.value for i in at.info)
    again = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    again.run()
    assert "password:" not in capsys.readouterr().out
    sign_in(again, "admin", password)
    assert_clean(again)
    assert again.title[0].value == "Overview"


def test_risk_map_offers_the_horizons_the_category_has_models_for(home, started_jobs):
    at = open_page("pages/risk_map_page.py")
    assert_clean(at)
    choice = at.segmented_control(key="map_horizon")
    assert choice.options == ["Next day", "Next 7 days"] and choice.value == "next"
    choice.set_value("7d").run()
    assert_clean(at)
    # Which forecaster and since when, as the next window's line says it.
    [line] = [c.value for c in at.caption if c.value.startswith("Forecast of each **7-day")]
    assert " by **the " in line and "trained for this period" in line and "in use since **" in line
    heading = [m.value for m in at.markdown if m.value.startswith("**Crime**")]
    assert heading and "7-day period from" in heading[0]
    # The chance over the 7 days and the expected number, per hotspot.
    [hotspots] = markdown_tables_with(at, "expected")
    assert len(hotspots) == 1 + 10 and all(row[-2] != "–" for row in hotspots[1:])
    spec = json.loads(at.get("deck_gl_json_chart")[0].proto.json)
    cells = spec["layers"][0]["data"]
    assert cells and all(c["expected_text"] != "–" for c in cells[:10])
    # Looking back: the 7-day forecasts beside the incidents of those 7 days.
    at.segmented_control(key="map_when").set_value("back").run()
    assert_clean(at)
    assert any("7-day period from" in m.value and "happened" in m.value for m in at.markdown)
    # A past date: the 7-day forecast made that morning.
    at.segmented_control(key="map_when").set_value("date").run()
    at.date_input(key="map_date").set_value(pd.Timestamp("2024-12-01").date()).run()
    assert_clean(at)
    heading = [m.value for m in at.markdown if m.value.startswith("**Crime**")]
    assert heading and "7-day period from **01 Dec 2024** to **08 Dec 2024**" in heading[0]
    # Traffic has no horizon model: no choice, the next window.
    at.segmented_control(key="map_category").set_value("traffic").run()
    assert_clean(at)
    assert not [w for w in at.segmented_control if w.key == "map_horizon"]


def test_evaluation_offers_horizons_intervals_and_flagged_areas(home, started_jobs):
    from conftest import TINY_FLAG_AREA

    at = open_page("pages/evaluation_page.py")
    assert_clean(at)
    table = table_with(at, "pai_5")
    assert "hindsight (not a forecast)" in table.index
    differences = table_with(at, "PAI 5 %")
    assert "historical average" in differences.index
    assert differences.loc["historical average", "PAI 5 %"].count("[") == 1   # mean [low, high]
    assert any("the model closes" in m.value for m in at.markdown)
    areas = table_with(at, f"PAI {TINY_FLAG_AREA}")
    assert areas.index[0] == "this model" and areas[f"cells {TINY_FLAG_AREA}"].iloc[0] >= 1
    # The 7-day horizon: its own model and evaluation.
    at.segmented_control(key="eval_horizon").set_value("7d").run()
    assert_clean(at)
    model = at.selectbox(key="eval_model")
    assert len(model.options) == 1 and "(in use)" in model.options[0]
    assert any("covers the next 7-day period" in m.value for m in at.markdown)
    assert table_with(at, "pai_5").index[0] == "this model"


def test_look_back_starts_at_the_latest_forecast_of_the_horizon_chosen(home, started_jobs):
    at = open_page("pages/risk_map_page.py")
    at.segmented_control(key="map_when").set_value("back").run()
    at.select_slider(key="map_back").set_value(3).run()
    at.segmented_control(key="map_horizon").set_value("7d").run()
    assert_clean(at)
    slider = at.select_slider(key="map_back")
    assert slider.value == len(slider.options) - 1          # not the 1-day position kept
    heading = [m.value for m in at.markdown if m.value.startswith("**Crime**")][0]
    day = " ".join(slider.format_func(slider.value).split()[1:])    # "Thu 26 Dec 2024"
    assert f"from **{day}**" in heading                              # the period shown
