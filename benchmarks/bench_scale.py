"""Ten million incidents: load, aggregate, fine-tune and the dashboard's reads, on SQLite
and on PostgreSQL, each beside its floor, with each stage's peak memory.

    python benchmarks/bench_scale.py --rows 1000000                     # SQLite, 1 M rows
    python benchmarks/bench_scale.py                                    # SQLite, 10 M rows
    bash scripts/with_postgres.sh python benchmarks/bench_scale.py --db postgresql
    python benchmarks/bench_scale.py --db both --pg-url postgresql://...  # an empty database

Goals (issue 14, on 2 cores): load >= 1/3 of the floor's speed, aggregation to 500 m daily
counts <= 10 s, peak memory <= 4 GB in every stage.

What it does:
1. Writes a 10-year synthetic city (--rows incidents, fixed seed; ~30 x 30 km around
   Chicago's centre, 60 % in 60 hot spots, a weekly and yearly rhythm) as a portal-style
   CSV: ID, Date (%Y-%m-%d %H:%M:%S), Primary Type, Block, Latitude, Longitude. Not timed.
2. Each stage then runs in a fresh child process (so its peak RSS, ru_maxrss, is its own):
   - floor: bare `pandas.read_csv` of the file + `pandas.to_datetime` of its Date column
     with the known format + the database's bare bulk insert of the same rows (the file's
     text times, tuples built 50,000 rows at a time) into the product's own incidents
     table (same columns, constraints and indexes) in a separate, empty database, in one
     transaction: `executemany` on SQLite, `COPY` on PostgreSQL;
   - load: the product's ingest path (`ingest.ingest_path`, what `python -m safety_models
     ingest FILE` runs: reading, column recognition, parsing, checks, de-duplication, the
     stored copy of the file, the insert);
   - aggregate: `Store.incidents` (the read every model run starts with), then
     `city.prepare_city` on it: a 500 m grid and daily count tensor;
   - fine-tune: `workflows.train_category` with a short config (base 'none', 1 epoch of
     5 steps, no blend: the data path and one pass of each step, not a good model), which
     saves the version; then, timed apart, `forecasts.refresh` as the training job runs it
     (the map's forecasts and place names, and the counts model_city keeps);
   - pages: the reads a page visit makes (pages/_ui.py), each timed cold, beside the goal
     (<= 3 s): the data stamp (data_version, list_uploads, incident_counts), time_range,
     the Data page's per-month counts (Store.incidents_per_day), and with the active model
     (made by the finetune stage): its saved forecasts (forecasts.load: next window,
     look-back and place names, made when the model was), the 30 days of incidents before
     the window (the map's points), a past date's forecast (predict_category) and the top
     cell's history (forecasts.cell_history, as the map's cell panel), beside their floor (the bare read of the counts that
     model_city keeps). Then each changed read again as it ran before (every incident
     read), and whether the results are equal.
Prints one table per database: seconds, rows/s, peak RSS, and each figure beside its floor
or goal. Always exits 0 (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from anywhere

CENTRE_LAT, CENTRE_LON = 41.85, -87.68
HALF_SIDE_M = 15_000.0
YEARS = 10
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
CATEGORY = "crime"
CELL_SIZE_M = 500.0
GOAL_LOAD_SHARE = 1 / 3
GOAL_AGGREGATE_S = 10.0
GOAL_PEAK_GB = 4.0
GOAL_PAGE_S = 3.0      # each of a page's reads, cold
TYPES = ["THEFT", "BATTERY", "CRIMINAL DAMAGE", "ASSAULT", "DECEPTIVE PRACTICE",
         "MOTOR VEHICLE THEFT", "BURGLARY", "ROBBERY", "NARCOTICS", "OTHER OFFENSE"]


# ------------------------------------------------------------------------------ the city

def write_city_csv(path: Path, n_rows: int, seed: int = 14) -> None:
    """A 10-year synthetic city of n_rows incidents as a portal-style CSV (see the doc).

    Written in chunks with Arrow so that 10 M rows take seconds and little memory; rows are
    in time order within each chunk, as portal exports mostly are."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2015-01-01")
    n_seconds = int((start + pd.DateOffset(years=YEARS) - start).total_seconds())
    hot_m = rng.uniform(-HALF_SIDE_M * 0.8, HALF_SIDE_M * 0.8, size=(60, 2))
    hot_weight = rng.pareto(1.5, 60) + 1
    hot_weight /= hot_weight.sum()
    blocks = np.array([f"{rng.integers(1, 130) * 100:03d}XX {d} {s}"
                       for d, s in zip(rng.choice(list("NSEW"), 3000),
                                       rng.choice(["STATE ST", "MAIN ST", "PARK AVE", "LAKE DR",
                                                   "ELM ST", "OAK AVE", "1ST ST", "2ND ST"], 3000))],
                      dtype=object)
    chunk = 1_000_000
    writer = None
    try:
        for first in range(0, n_rows, chunk):
            n = min(chunk, n_rows - first)
            hot = rng.random(n) < 0.6
            offsets = rng.uniform(-HALF_SIDE_M, HALF_SIDE_M, size=(n, 2))     # (n, [east, north])
            k = int(hot.sum())
            offsets[hot] = hot_m[rng.choice(60, k, p=hot_weight)] + rng.normal(0, 350.0, (k, 2))
            lat = CENTRE_LAT + offsets[:, 1] / 111_320.0
            lon = CENTRE_LON + offsets[:, 0] / (111_320.0 * np.cos(np.radians(CENTRE_LAT)))
            # a yearly (summer) and weekly (weekend) rhythm by rejection: keep ~60 % of 2.2 n draws
            seconds = rng.integers(0, n_seconds, int(n * 2.2))
            day = seconds / 86_400.0
            keep = rng.random(len(seconds)) < (0.55 + 0.2 * np.sin(2 * np.pi * (day - 100) / 365.25)
                                               + 0.15 * ((day.astype(np.int64) + 3) % 7 >= 5))
            seconds = np.sort(seconds[keep][:n])
            times = (np.datetime64(start.to_datetime64(), "s") + seconds.astype("timedelta64[s]"))
            table = pa.table({
                "ID": pa.array(np.arange(first + 1, first + n + 1) + 10_000_000),
                "Date": pa.array(times).cast(pa.string()),
                "Primary Type": pa.array(np.asarray(TYPES, dtype=object)[
                    np.minimum(rng.geometric(0.3, n) - 1, len(TYPES) - 1)]),
                "Block": pa.array(blocks[rng.integers(0, len(blocks), n)]),
                "Latitude": pa.array(np.round(lat, 6)),
                "Longitude": pa.array(np.round(lon, 6)),
            })
            if writer is None:
                writer = pacsv.CSVWriter(str(path), table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


# ------------------------------------------------------------------------------ the stages

def peak_rss_gb() -> float:
    """This process's resident-set high-water mark (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def stage_floor(csv: Path, db_url: str, floor_url: str) -> dict:
    import pandas as pd
    import sqlalchemy as sa

    from safety_models.data.store import Store, uploads

    t0 = time.perf_counter()
    df = pd.read_csv(csv)
    t1 = time.perf_counter()
    times = pd.to_datetime(df["Date"], format=TIME_FORMAT)
    t2 = time.perf_counter()
    assert not times.isna().any()
    store = Store(floor_url)          # the product's schema, in an empty database
    with store.engine.begin() as conn:
        upload_id = conn.execute(uploads.insert().values(
            file_name="floor.csv", category=CATEGORY, checksum="0" * 64,
            uploaded_at=pd.Timestamp.now().to_pydatetime())).inserted_primary_key[0]
    columns = ("upload_id", "category", "subtype", "occurred_at", "latitude", "longitude",
               "source_key", "place")
    t3 = time.perf_counter()

    def chunks(n: int = 50_000):
        """The rows as insert tuples, n at a time (as the product builds them; whole-column
        lists of 10 M rows would cost gigabytes)."""
        for first in range(0, len(df), n):
            part = df.iloc[first:first + n]
            yield list(zip([int(upload_id)] * len(part), [CATEGORY] * len(part),
                           part["Primary Type"].tolist(), part["Date"].tolist(),
                           part["Latitude"].tolist(), part["Longitude"].tolist(),
                           part["ID"].astype(str).tolist(), part["Block"].tolist()))

    # one transaction, as the product's insert runs in (Store.begin: BEGIN, then COMMIT)
    with store.engine.begin() as conn:
        cursor = conn.connection.driver_connection.cursor()
        if store.is_sqlite:
            sql = (f"INSERT INTO incidents ({', '.join(columns)}) "
                   f"VALUES ({', '.join('?' * len(columns))})")
            for chunk in chunks():
                cursor.executemany(sql, chunk)
        else:
            with cursor.copy(f"COPY incidents ({', '.join(columns)}) FROM STDIN") as copy:
                for chunk in chunks():
                    for row in chunk:
                        copy.write_row(row)
        cursor.close()
    t4 = time.perf_counter()
    with store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM incidents")).scalar_one()
    store.close()
    return {"read_csv_s": t1 - t0, "to_datetime_s": t2 - t1, "insert_s": t4 - t3,
            "floor_s": (t2 - t0) + (t4 - t3), "rows": int(stored)}


def stage_load(csv: Path, db_url: str, floor_url: str) -> dict:
    from safety_models.data.ingest import ingest_path
    from safety_models.data.store import Store

    store = Store(db_url)
    t0 = time.perf_counter()
    summary = ingest_path(store, csv, CATEGORY)
    t1 = time.perf_counter()
    store.close()
    return {"load_s": t1 - t0, "accepted": summary.accepted, "rejected": summary.rejected,
            "duplicates": summary.duplicates}


class _ReadOnce:
    """The store with one category's incidents already read (the read is timed apart)."""

    def __init__(self, store, frame):
        self._store, self._frame = store, frame

    def incidents(self, category, start=None, end=None):
        return self._frame

    def __getattr__(self, name):
        return getattr(self._store, name)


def stage_aggregate(csv: Path, db_url: str, floor_url: str) -> dict:
    from safety_models.data.store import Store
    from safety_models.modeling.city import prepare_city

    store = Store(db_url)
    t0 = time.perf_counter()
    frame = store.incidents(CATEGORY)
    t1 = time.perf_counter()
    city = prepare_city(_ReadOnce(store, frame), CATEGORY, cell_size_m=CELL_SIZE_M,
                        window_hours=24)
    t2 = time.perf_counter()
    store.close()
    return {"read_s": t1 - t0, "aggregate_s": t2 - t1, "rows": len(frame),
            "windows": city.n_windows, "grid": f"{city.grid.n_rows} x {city.grid.n_cols}",
            "counted": int(city.counts.sum())}


def stage_finetune(csv: Path, db_url: str, floor_url: str) -> dict:
    import torch

    from safety_models.data.store import Store
    from safety_models.modeling import registry
    from safety_models.modeling.training import TrainConfig
    from safety_models.service import forecasts, workflows

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    store = Store(db_url)
    # short: a year of training windows, 30 validation and 30 test days, one epoch of 5 steps
    cfg = TrainConfig(category=CATEGORY, base="none", freeze_up_to="none", epochs=1,
                      steps_per_epoch=5, batch_size=8, blend=False, cell_size_m=CELL_SIZE_M,
                      history_days=365, val_windows=30, test_windows=30, device="cpu")
    first_seen: dict[str, float] = {}

    def on_progress(d: dict) -> None:
        first_seen.setdefault(str(d.get("stage")), time.perf_counter())

    t0 = time.perf_counter()
    model_id = workflows.train_category(store, cfg, on_progress=on_progress)
    t1 = time.perf_counter()
    marks = sorted(first_seen.items(), key=lambda kv: kv[1]) + [("end", t1)]
    steps = {"before_" + marks[0][0]: marks[0][1] - t0} if marks else {}
    steps.update({a: b_t - a_t for (a, a_t), (_, b_t) in zip(marks, marks[1:])})
    test = registry.model_info(store, model_id).get("test_metrics") or {}
    # what the training job does next (forecasts.model_ready, less its backtest): the map's
    # forecasts for the data now, place names and kept counts included
    places_s = []
    read_places = store.incident_places

    def timed_places(category):
        t = time.perf_counter()
        value = read_places(category)
        places_s.append(time.perf_counter() - t)
        return value

    store.incident_places = timed_places
    t2 = time.perf_counter()
    forecasts.refresh(store, CATEGORY, model_id)
    t3 = time.perf_counter()
    store.close()
    return {"finetune_s": t1 - t0, "model_id": model_id, "steps_s": steps,
            "test_hit_rate_5": test.get("hit_rate_5"), "test_roc_auc": test.get("roc_auc"),
            "maps_s": t3 - t2, "places_s": sum(places_s)}


def stage_pages(csv: Path, db_url: str, floor_url: str, before_too: bool = True) -> dict:
    """The reads the pages make on a visit (pages/_ui.py), each timed once in this fresh
    process (cold: no cache of the page's own), with the category's active model (the
    finetune stage makes one; without one the map's reads are not timed). With before_too,
    each read that changed is then timed again the way it ran before (every incident read),
    and the two results compared."""
    import pandas as pd

    from safety_models.data.store import Store
    from safety_models.modeling import city as citylib
    from safety_models.modeling import registry
    from safety_models.presentation import tables
    from safety_models.service import forecasts, workflows

    out: dict = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        value = fn()
        out[name] = time.perf_counter() - t0
        return value

    # What a dashboard process has imported before a visit (pages/_ui.py imports the
    # training code and the registry in the background once it is idle): timed apart.
    import importlib

    timed("imports_s", lambda: [importlib.import_module(name) for name in (
        "safety_models.modeling.training", "safety_models.modeling.registry",
        "safety_models.modeling.forecaster")])
    store = Store(db_url)
    # every page: the data stamp and the uploads' listing; the Overview: counts, time range
    timed("stamp_s", lambda: (store.data_version(), store.list_uploads(),
                              store.incident_counts()))
    first, last = timed("time_range_s", lambda: store.time_range(CATEGORY))
    # the Data page's per-month counts
    per_month = timed("per_month_s", lambda: tables.incidents_per_period(
        store.incidents_per_day(CATEGORY), "M"))
    model_id = registry.active_model_id(store, CATEGORY)
    if model_id is None:
        out["no_model"] = True
    else:
        # the map and the Overview: the model's saved forecasts (next window, look-back, place
        # names); made when the model was (the finetune stage), so a visit reads files
        folder = forecasts._model_dir(model_id) / forecasts.data_version(store, CATEGORY)
        out["forecasts_saved"] = folder.is_dir()
        bundle = timed("forecasts_s", lambda: forecasts.load(store, CATEGORY, model_id))
        window_start = pd.Timestamp(bundle.next_window["window_start"].iloc[0])
        recent = timed("recent_30d_s", lambda: store.incidents(
            CATEGORY, window_start - pd.Timedelta(days=30), window_start).tail(20_000))
        out["recent_rows"] = len(recent)
        cell = int(bundle.next_window["cell_id"].iloc[0])           # the top hot spot
        past = last - pd.Timedelta(days=365)
        out["kept_counts"] = any((Path(os.environ["SAFETY_MODELS_HOME"]) / citylib.CITIES_DIR)
                                 .glob(f"{CATEGORY}-*.npz"))
        # the map's "a past date" and a clicked cell's history, each with the model not yet
        # loaded in this process (the map itself reads only the saved forecasts)
        registry.clear_cache()
        at_date = timed("past_date_s", lambda: workflows.predict_category(store, CATEGORY, at=past))
        registry.clear_cache()
        history = timed("cell_history_s", lambda: forecasts.cell_history(store, CATEGORY, cell,
                                                                         bundle))
        kept = next((Path(os.environ["SAFETY_MODELS_HOME"]) / citylib.CITIES_DIR)
                    .glob(f"{CATEGORY}-*.npz"))
        # the floor of those two: the bare read of the kept counts file
        timed("floor_kept_counts_s", lambda: np.load(kept)["counts"].sum())
        out["kept_counts_mb"] = kept.stat().st_size / 1e6
    if before_too:
        from_rows = timed("before_per_month_s", lambda: tables.incidents_per_period(
            store.incidents(CATEGORY), "M"))
        out["per_month_equal"] = bool(per_month.equals(from_rows))
        if model_id is not None:
            kept.unlink()          # as before the counts were kept: every incident read
            again = timed("before_past_date_s",
                          lambda: workflows.predict_category(store, CATEGORY, at=past))
            out["past_date_equal"] = bool(again.equals(at_date))
            kept_again = next(kept.parent.glob(f"{CATEGORY}-*.npz"))
            kept_again.unlink()
            again = timed("before_cell_history_s",       # the model run on the click too
                          lambda: workflows.cell_history(store, CATEGORY, cell))
            out["cell_history_equal"] = bool(again.equals(history))
    store.close()
    return out


STAGES = {"floor": stage_floor, "load": stage_load, "aggregate": stage_aggregate,
          "finetune": stage_finetune, "pages": stage_pages}


def run_stage(name: str, csv: Path, home: Path, db_url: str, floor_url: str,
              no_before: bool = False) -> dict:
    """One stage in a child process; its figures plus peak_gb (the child's peak RSS)."""
    env = {**os.environ, "SAFETY_MODELS_HOME": str(home), "SAFETY_MODELS_DB_URL": db_url}
    done = subprocess.run([sys.executable, __file__, "--stage", name, "--csv", str(csv),
                           "--db-url", db_url, "--floor-url", floor_url]
                          + (["--no-before"] if no_before else []),
                          env=env, cwd=REPO, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return json.loads(lines[-1])


# ------------------------------------------------------------------------------ databases

def pg_database(admin_url: str, name: str, fresh: bool = True) -> str:
    """A fresh, empty database `name` on admin_url's server (dropped first), or with
    fresh=False the one an earlier run left (made when missing); its URL."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    url = make_url(admin_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                              {"n": name}).first() is not None
        if fresh and exists:
            conn.execute(sa.text(f'DROP DATABASE "{name}"'))
        if fresh or not exists:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def databases(kind: str, tmp: Path, pg_url: str | None,
              fresh: bool = True) -> list[tuple[str, str, str]]:
    """[(label, product URL, floor URL)] for --db; fresh=False keeps what an earlier run
    loaded (the SQLite files stay in tmp, which is then --work)."""
    out = []
    if kind in ("sqlite", "both"):
        out.append(("sqlite", f"sqlite:///{tmp / 'home-sqlite' / 'safety.db'}",
                    f"sqlite:///{tmp / 'floor.db'}"))
    if kind in ("postgresql", "both"):
        if not pg_url:
            print("--db postgresql needs --pg-url or SAFETY_MODELS_TEST_PG_URL "
                  "(scripts/with_postgres.sh sets it)", file=sys.stderr)
            raise SystemExit(2)
        out.append(("postgresql", pg_database(pg_url, "bench_scale", fresh),
                    pg_database(pg_url, "bench_scale_floor", fresh)))
    return out


# ------------------------------------------------------------------------------ the report

def rate(rows: int, seconds: float | None) -> str:
    return f"{rows / seconds:>12,.0f} rows/s" if seconds else " " * 19


def report(label: str, rows: int, r: dict) -> None:
    print(f"\n== {label}, {rows:,} incidents")
    for name, d in r.items():
        if "error" in d:
            print(f"  {name:<10} FAILED: {d['error']}")
    floor, load = r["floor"], r["load"]
    if "error" not in floor:
        print(f"  floor      {floor['floor_s']:7.1f} s {rate(rows, floor['floor_s'])}  "
              f"(read_csv {floor['read_csv_s']:.1f} s + to_datetime {floor['to_datetime_s']:.1f} s"
              f" + bare {'executemany' if label == 'sqlite' else 'COPY'} "
              f"{floor['insert_s']:.1f} s)  peak {floor['peak_gb']:.2f} GB")
    if "error" not in load:
        line = (f"  load       {load['load_s']:7.1f} s {rate(rows, load['load_s'])}  "
                f"(accepted {load['accepted']:,}, rejected {load['rejected']:,})  "
                f"peak {load['peak_gb']:.2f} GB")
        if "error" not in floor:
            share = floor["floor_s"] / load["load_s"]
            line += (f"\n             speed {share:.2f} of the floor's (floor/load), goal >= "
                     f"{GOAL_LOAD_SHARE:.2f}: {'PASS' if share >= GOAL_LOAD_SHARE else 'FAIL'}")
        print(line)
    agg = r["aggregate"]
    if "error" not in agg:
        print(f"  read       {agg['read_s']:7.1f} s {rate(rows, agg['read_s'])}  (Store.incidents)")
        print(f"  aggregate  {agg['aggregate_s']:7.1f} s {rate(rows, agg['aggregate_s'])}  "
              f"({agg['grid']} cells of {CELL_SIZE_M:.0f} m x {agg['windows']:,} days, "
              f"{agg['counted']:,} counted), goal <= {GOAL_AGGREGATE_S:g} s: "
              f"{'PASS' if agg['aggregate_s'] <= GOAL_AGGREGATE_S else 'FAIL'}; "
              f"read + aggregate {agg['read_s'] + agg['aggregate_s']:.1f} s  "
              f"peak {agg['peak_gb']:.2f} GB")
    ft = r["finetune"]
    if "error" not in ft:
        print(f"  fine-tune  {ft['finetune_s']:7.1f} s  (train_category, short config: read, "
              f"grid, GLM, 5 steps, scores, save, maps; test hit rate at 5 % "
              f"{ft['test_hit_rate_5'] or float('nan'):.3f}, ROC-AUC "
              f"{ft['test_roc_auc'] or float('nan'):.3f})  peak {ft['peak_gb']:.2f} GB")
        print("             " + ", ".join(f"{k} {v:.1f} s" for k, v in ft["steps_s"].items()))
        print(f"             then the map's forecasts (forecasts.refresh, as the job does): "
              f"{ft['maps_s']:.1f} s, of which the place names (Store.incident_places) "
              f"{ft['places_s']:.1f} s")
    pg = r["pages"]
    if "error" not in pg:
        def fig(name: str) -> str:
            seconds = pg.get(name + "_s")
            if seconds is None:
                return f"{name} not run"
            mark = "PASS" if seconds <= GOAL_PAGE_S else "FAIL"
            before = pg.get("before_" + name + "_s")
            was = f", before {before:.1f} s" if before is not None else ""
            return f"{name} {seconds:.2f} s {mark}{was}"
        print(f"  pages      each read <= {GOAL_PAGE_S:g} s cold (the goal), peak "
              f"{pg['peak_gb']:.2f} GB (the dashboard's imports first: {pg['imports_s']:.1f} s)")
        print("             " + "; ".join(fig(n) for n in ("stamp", "time_range", "per_month")))
        if pg.get("no_model"):
            print("             no active model: the map's reads need the finetune stage first")
        else:
            print("             " + "; ".join(fig(n) for n in ("forecasts", "recent_30d",
                                                              "past_date", "cell_history")))
            print(f"             floor: the bare read of the kept counts "
                  f"({pg['kept_counts_mb']:.0f} MB) {pg['floor_kept_counts_s']:.2f} s; "
                  f"forecasts saved before the visit: {pg['forecasts_saved']}; counts kept "
                  f"before it: {pg['kept_counts']}; {pg['recent_rows']:,} recent incidents")
        equal = {k[:-6]: v for k, v in pg.items() if k.endswith("_equal")}
        if equal:
            print("             the same results as before: " +
                  ", ".join(f"{k} {v}" for k, v in equal.items()))
    peaks = [d["peak_gb"] for d in r.values() if "peak_gb" in d]
    if peaks:
        print(f"  peak memory {max(peaks):.2f} GB (largest stage), goal <= {GOAL_PEAK_GB:g} GB: "
              f"{'PASS' if max(peaks) <= GOAL_PEAK_GB else 'FAIL'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("SAFETY_MODELS_TEST_PG_URL"),
                        help="a PostgreSQL server the benchmark may create databases on "
                             "(default: SAFETY_MODELS_TEST_PG_URL)")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help="comma-separated subset of " + ",".join(STAGES))
    parser.add_argument("--work", type=Path,
                        help="a folder kept between runs: the CSV (written once, reused when "
                             "it has --rows rows) and the SQLite homes; with it, a run whose "
                             "--stages include neither floor nor load reuses the databases an "
                             "earlier run loaded (PostgreSQL: on the same --pg-url server)")
    parser.add_argument("--no-before", action="store_true",
                        help="pages: skip timing each changed read again as it ran before "
                             "(every incident read: minutes at 10 M rows)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)     # the child's side
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--db-url", help=argparse.SUPPRESS)
    parser.add_argument("--floor-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        extra = {"before_too": False} if args.stage == "pages" and args.no_before else {}
        result = STAGES[args.stage](args.csv, args.db_url, args.floor_url, **extra)
        print(json.dumps({**result, "peak_gb": peak_rss_gb()}))
        return 0

    load = os.getloadavg()
    print(f"{len(os.sched_getaffinity(0))} CPU cores; load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f}")
    stages = args.stages.split(",")
    fresh = "floor" in stages or "load" in stages
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        tmp = Path(args.work or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        csv = tmp / f"city-{args.rows}.csv"
        t0 = time.perf_counter()
        if not csv.exists():
            write_city_csv(csv.with_suffix(".part"), args.rows)
            csv.with_suffix(".part").rename(csv)
            made = f"written in {time.perf_counter() - t0:.0f} s"
        else:
            made = "kept from an earlier run"
        print(f"synthetic city: {args.rows:,} incidents over {YEARS} years, "
              f"{csv.stat().st_size / 1e6:,.0f} MB CSV ({made})")
        for label, url, floor_url in databases(args.db, tmp, args.pg_url, fresh):
            if fresh and label == "sqlite":
                for old in (tmp / "home-sqlite", tmp / "floor.db"):
                    shutil.rmtree(old, ignore_errors=True) if old.is_dir() else \
                        old.unlink(missing_ok=True)
            home = tmp / f"home-{label}"
            home.mkdir(exist_ok=True)
            results = {}
            for name in stages:
                results[name] = run_stage(name, csv, home, url, floor_url, args.no_before)
                print(f"  {label} {name}: {json.dumps(results[name])}", flush=True)
            for name in STAGES:
                results.setdefault(name, {"error": "not run"})
            report(label, args.rows, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
