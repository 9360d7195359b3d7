"""Shared fixtures: a tiny city in a temporary home, with and without trained models.

`synthetic_incidents_csv(category)` makes a CSV export of a few hundred incidents around a
few hotspots (known by construction), `tiny_home` loads one per category into a temporary
SAFETY_MODELS_HOME (session-scoped: built once), and `tiny_home_with_models` adds a tiny
model per category (1 epoch, 1 km cells) trained in this process, so page tests and browser
tests see a complete installation in seconds. `use_home(path)` points the environment at a
home for one test.

Fixtures for one test: `home` (a fresh empty home), `store` (a Store on it), `crime_store`
(with 300 crime incidents), `one_thread` (one torch thread, seed 0). Helpers for tests that
need a saved model without training one: `tiny_net`, `fake_checkpoint`. Test modules share
fixtures and helpers through this file only (they do not import each other).
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from safety_models.grid import GridSpec
from safety_models.schema import CATEGORIES

CITY_CENTRE = (41.88, -87.65)            # latitude, longitude (a Chicago-like place)
HOTSPOTS_KM = ((0.0, 0.0), (2.5, -1.5), (-2.0, 2.0))   # north, east offsets of the hotspots
DATA_START = pd.Timestamp("2024-01-01")
DATA_DAYS = 420
INCIDENTS_PER_CATEGORY = 600
TINY_CELL_SIZE_M = 1000.0
FAKE_GRID = GridSpec("EPSG:32616", 447_000.0, 4_636_000.0, 500.0, 4, 5)   # fake_checkpoint's


def synthetic_incidents(category: str, n: int = INCIDENTS_PER_CATEGORY,
                        seed: int = 0) -> pd.DataFrame:
    """Incidents of one category: 70 % around the hotspots (sd 400 m), 30 % spread over a
    10 km square; times uniform over DATA_DAYS from DATA_START. Columns as an export has."""
    rng = np.random.default_rng(seed + CATEGORIES.index(category))
    km_lat = 1 / 111.0
    km_lon = 1 / (111.0 * np.cos(np.radians(CITY_CENTRE[0])))
    spot = rng.integers(0, len(HOTSPOTS_KM), n)
    clustered = rng.random(n) < 0.7
    north = np.where(clustered, np.take([h[0] for h in HOTSPOTS_KM], spot)
                     + rng.normal(0, 0.4, n), rng.uniform(-5, 5, n))
    east = np.where(clustered, np.take([h[1] for h in HOTSPOTS_KM], spot)
                    + rng.normal(0, 0.4, n), rng.uniform(-5, 5, n))
    seconds = rng.uniform(0, DATA_DAYS * 86400, n)
    times = (DATA_START + pd.to_timedelta(np.sort(seconds), unit="s")).floor("min")
    subtypes = {"crime": ["ASSAULT", "BATTERY", "ROBBERY"],
                "traffic": ["collision", "pedestrian", "cyclist"],
                "health": ["WNV", "salmonella"]}[category]
    return pd.DataFrame({
        "ID": [f"{category[:2]}{i:05d}" for i in range(n)],
        "Date": times.strftime("%m/%d/%Y %I:%M:%S %p"),
        "Primary Type": rng.choice(subtypes, n),
        "Latitude": np.round(CITY_CENTRE[0] + north * km_lat, 6),
        "Longitude": np.round(CITY_CENTRE[1] + east * km_lon, 6),
    })


def synthetic_incidents_csv(category: str, n: int = INCIDENTS_PER_CATEGORY, seed: int = 0,
                            bad_rows: int = 0) -> bytes:
    """The CSV bytes of synthetic_incidents, with `bad_rows` rows lacking coordinates."""
    df = synthetic_incidents(category, n, seed)
    if bad_rows:
        df = df.astype({"Latitude": object, "Longitude": object})
        df.loc[df.index[:bad_rows], ["Latitude", "Longitude"]] = ""
    buffer = io.StringIO()
    df.to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8")


def district_outlines() -> dict:
    """Four square 'districts' covering the synthetic city, as GeoJSON."""
    lat0, lon0 = CITY_CENTRE
    d_lat, d_lon = 5 / 111.0, 5 / (111.0 * np.cos(np.radians(lat0)))
    features = []
    for i, (s, w) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        south, west = lat0 - d_lat + s * d_lat, lon0 - d_lon + w * d_lon
        ring = [[west, south], [west + d_lon, south], [west + d_lon, south + d_lat],
                [west, south + d_lat], [west, south]]
        features.append({"type": "Feature", "properties": {"name": f"District {i + 1}"},
                         "geometry": {"type": "Polygon", "coordinates": [ring]}})
    return {"type": "FeatureCollection", "features": features}


class use_home:  # noqa: N801 - used as a context manager, like a function
    """Point SAFETY_MODELS_HOME (and no DB URL override) at `home` inside a with-block."""

    def __init__(self, home: Path):
        self.home = Path(home)

    def __enter__(self) -> Path:
        self._saved = {k: os.environ.get(k) for k in ("SAFETY_MODELS_HOME",
                                                      "SAFETY_MODELS_DB_URL")}
        os.environ["SAFETY_MODELS_HOME"] = str(self.home)
        os.environ.pop("SAFETY_MODELS_DB_URL", None)
        return self.home

    def __exit__(self, *exc) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def build_tiny_home(home: Path) -> Path:
    """Load synthetic incidents (one CSV per category) and district outlines into home."""
    from safety_models.data import ingest
    from safety_models.data.store import Store

    with use_home(home):
        store = Store()
        for category in CATEGORIES:
            ingest.ingest_bytes(store, synthetic_incidents_csv(category, bad_rows=3),
                                f"{category}_export.csv", category)
        store.set_boundary("*", district_outlines())
        # The home is prepared: the dashboard's first start must not load the demo into it.
        store.set_meta("first_start", "skipped: a prepared test home")
        store.close()
    return home


def tiny_train_config(category: str):
    """The fastest TrainConfig that still trains end to end (1 epoch, 1 km cells)."""
    from safety_models.modeling.training import TrainConfig

    weekly = category == "health"
    # 420 days of data: a short validation and test period leave most windows to train on.
    return TrainConfig(category=category, base="none", freeze_up_to="none", epochs=1,
                       cell_size_m=TINY_CELL_SIZE_M, batch_size=8, steps_per_epoch=3,
                       patience=1,
                       val_windows=8 if weekly else 30, test_windows=8 if weekly else 40)


TINY_FLAG_AREA = "1km2"            # the tiny home's evaluations score this flagged area too


def train_tiny_models(home: Path) -> dict[str, str]:
    """A tiny trained model per category in home (active), evaluated (with the flagged area
    TINY_FLAG_AREA), its forecasts computed (as a job leaves a model it made active), and a
    crime model for the next 7 days, evaluated and its forecasts computed too (ids["crime
    7d"]); returns their ids."""
    from safety_models.evaluation import backtest as evaluation
    from safety_models.service import forecasts, workflows
    from safety_models.data.store import Store

    ids = {}
    with use_home(home):
        store = Store()
        for category in CATEGORIES:
            result = workflows.train_category(store, tiny_train_config(category))
            model_id = result if isinstance(result, str) else result["model_id"]
            ids[category] = model_id
            evaluation.evaluate_category(store, category, model_id,
                                         flag_areas=(TINY_FLAG_AREA,))
            forecasts.refresh(store, category, model_id)
        weekly = workflows.train_category(
            store, dataclasses.replace(tiny_train_config("crime"), horizon_days=7))
        ids["crime 7d"] = weekly
        evaluation.evaluate_category(store, "crime", weekly, flag_areas=(TINY_FLAG_AREA,))
        forecasts.refresh(store, "crime", weekly)
        store.close()
    return ids


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory) -> Path:
    """A home with incidents of every category and district outlines, no model."""
    return build_tiny_home(tmp_path_factory.mktemp("home-data"))


def _source_digest() -> str:
    """A hash of everything that decides what build_tiny_home + train_tiny_models produce:
    the library's source (but the dashboard's mapview) and this file. Any change to either
    rebuilds the models."""
    import hashlib

    repo = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    library = repo / "safety_models"
    sources = [p for p in library.rglob("*.py") if "presentation" not in p.relative_to(library).parts]
    for path in sorted([*sources, Path(__file__)]):
        digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes())
    import torch
    digest.update(torch.__version__.encode())
    # float32 reductions depend on the thread count: a home built with another count would
    # not reproduce bit for bit when a test evaluates its model again.
    digest.update(f"threads={torch.get_num_threads()}".encode())
    return digest.hexdigest()[:16]


def _link_checkpoint_or_copy(source: str, target: str) -> None:
    """Hard-link model checkpoints (45 MB each, written once under a fresh name and never
    changed in place), copy everything else (the database is changed in place)."""
    if source.endswith(".pt"):
        try:
            os.link(source, target)
            return
        except OSError:     # another file system, or links not allowed
            pass
    shutil.copy2(source, target)


def copy_home(source: Path, target: Path) -> Path:
    """A private copy of a test home, so a test may change it. Checkpoints are shared by
    hard links (a test must not write into a `.pt` of a copied home), which keeps a run's
    disk use at megabytes per copy instead of 180 MB: about sixty tests copy one."""
    shutil.copytree(source, target, copy_function=_link_checkpoint_or_copy)
    return target


def _prune_kept_homes(kept: Path, older_than_s: float = 3600.0) -> None:
    """Remove homes kept for other versions of the source (and builds abandoned by killed
    sessions) once they are an hour old: each change to the library makes a new one, and on
    a machine that runs the tests for every change they would otherwise fill the disk."""
    now = time.time()
    for other in kept.parent.glob("safety-models-tiny-home-*"):
        if other.name == kept.name:
            continue
        try:
            if now - other.stat().st_mtime > older_than_s:
                shutil.rmtree(other, ignore_errors=True)
        except OSError:
            pass


@pytest.fixture(scope="session")
def tiny_home_with_models(tmp_path_factory) -> Path:
    """A home with incidents, outlines and a tiny evaluated model per category.

    Training three models takes a minute or two on a busy laptop, so the finished home is
    kept beside pytest's temporary folders (which persist between runs), named by a hash of
    the library's source and of this file: it is reused only while nothing that built it
    has changed. Each session works on its own copy."""

    home = tmp_path_factory.mktemp("home-models") / "home"
    kept = tmp_path_factory.getbasetemp().parent / f"safety-models-tiny-home-{_source_digest()}"
    _prune_kept_homes(kept)
    if not (kept / "ready").exists():
        building = kept.with_name(kept.name + f".building-{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        build_tiny_home(building)
        train_tiny_models(building)
        (building / "ready").write_text("built by tests/conftest.py\n")
        try:
            building.rename(kept)
        except OSError:   # another session finished first: use its copy
            shutil.rmtree(building, ignore_errors=True)
    os.utime(kept)      # in use: not pruned by another session
    return copy_home(kept, home)


PG_URL_ENV = "SAFETY_MODELS_TEST_PG_URL"   # a PostgreSQL database the tests may use


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, monkeypatch):
    """Run the test once on each database: SAFETY_MODELS_DB_URL unset (the home's SQLite
    file), then set to a fresh PostgreSQL schema (created for this test in the database
    that SAFETY_MODELS_TEST_PG_URL names, dropped after it; scripts/with_postgres.sh starts
    a throwaway server and sets it). Yields the URL, None for SQLite; the PostgreSQL run is
    skipped when SAFETY_MODELS_TEST_PG_URL is unset."""
    if request.param == "sqlite":
        monkeypatch.delenv("SAFETY_MODELS_DB_URL", raising=False)
        yield None
        return
    base = os.environ.get(PG_URL_ENV)
    if not base:
        pytest.skip(f"no PostgreSQL: set {PG_URL_ENV} (scripts/with_postgres.sh does)")
    import uuid

    import sqlalchemy as sa

    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    # Every connection of the test (its child processes' too) works inside the schema.
    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    monkeypatch.setenv("SAFETY_MODELS_DB_URL", url.render_as_string(hide_password=False))
    yield url.render_as_string(hide_password=False)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    except sa.exc.DBAPIError as err:   # a connection still open: the server is throwaway
        import warnings

        warnings.warn(f"schema {schema} left behind: {err}")
    admin.dispose()



# ---------------------------------------------------------------------------------------------
# Fixtures for one test: a fresh home, a store on it, a store with crime data, one torch thread


def _clear_model_cache() -> None:
    """Forget cached models (keyed by model id, so another home's would be served). Only
    when the registry was imported: otherwise the cache is empty and importing it would load
    torch into tests that never need it."""
    import sys

    registry = sys.modules.get("safety_models.modeling.registry")
    if registry is not None:
        registry.clear_cache()


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty home (tmp_path / "home") set as SAFETY_MODELS_HOME, without a database
    URL override; no cached model of another home is served."""
    monkeypatch.setenv("SAFETY_MODELS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SAFETY_MODELS_DB_URL", raising=False)
    _clear_model_cache()
    yield tmp_path / "home"
    _clear_model_cache()


@pytest.fixture()
def store(home, db_url):
    """A Store on the fresh home (no data), closed after the test; once on SQLite and once
    on PostgreSQL (db_url)."""
    from safety_models.data.store import Store

    s = Store()
    yield s
    s.close()


@pytest.fixture()
def crime_store(store):
    """The fresh home's store with 300 synthetic crime incidents (no model)."""
    from safety_models.data import ingest

    ingest.ingest_bytes(store, synthetic_incidents_csv("crime", n=300), "crime.csv", "crime")
    return store


@pytest.fixture()
def one_thread():
    """One torch thread and seed 0 for the test. The thread count is process-wide, and a
    leaked one would change the float32 reduction order for every test after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# Model checkpoints without training


def tiny_net(seed: int = 0):
    """A real RiskNet, small and with every weight random (fresh heads start at zero)."""
    import torch

    from safety_models.modeling.models import ModelConfig, create_model

    torch.manual_seed(seed)
    net = create_model(ModelConfig(in_channels=3, decoder_width=8, full_res_width=8))
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.1)
    return net.eval()


def fake_checkpoint(score: float = 0.5, seed: int = 0, grid=None) -> dict:
    """What workflows hands to save_model (training's checkpoint + grid and mask); grid:
    a GridSpec, FAKE_GRID by default."""
    from safety_models.modeling.models import model_to_state

    grid = FAKE_GRID if grid is None else grid
    return {
        "format": 1,
        **model_to_state(tiny_net(seed)),
        "feature_config": {"window_hours": 24},
        "train_config": {"category": "crime", "base": "none", "epochs": 1},
        "data_window": {"start": "2026-01-01", "end": "2026-03-01",
                        "train_end": "2026-02-01", "val_end": "2026-02-15"},
        "metrics": {"validation": {"hit_rate_5": score, "loss": np.float32(1.0 - score)},
                    "test": {"hit_rate_5": score}},
        "train_seconds": 1.5,
        "grid": grid,
        "mask": np.ones(grid.shape, dtype=bool),
    }


def network_checkpoint(seed: int = 0) -> dict:
    """fake_checkpoint with an untrained network that takes every feature channel of the
    default FeatureConfig: predicts, cell histories and forecasts run it in a second, where
    a trained one takes a training run."""
    import torch

    from safety_models.features import FeatureConfig, n_channels
    from safety_models.modeling.models import ModelConfig, create_model, model_to_state

    torch.manual_seed(seed)
    net = create_model(ModelConfig(in_channels=n_channels(FeatureConfig()), decoder_width=8,
                                   full_res_width=8)).eval()
    return {**fake_checkpoint(seed=seed), **model_to_state(net),
            "feature_config": FeatureConfig().to_dict()}


def wait_for(predicate, timeout_s: float = 60.0, what: str = "the job"):
    """predicate()'s first true value, polled every 0.2 s; AssertionError after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
