"""Store: atomic uploads, de-duplication, removal, the city check, WAL, round trips."""

from __future__ import annotations

import hashlib
import json
import os

import pandas as pd
import pytest
import sqlalchemy as sa

from safety_models.data import store as store_module
from safety_models.errors import CityMismatch, FileUnusable, UserError
from safety_models.schema import INCIDENT_COLUMNS
from safety_models.data.store import Store, UploadSummary

CHICAGO = (41.85, -87.65)
BARCELONA = (41.39, 2.17)
SUMMARY_KEYS = {"upload_id", "file_name", "category", "rows_read", "accepted", "rejected",
                "duplicates", "rejected_reasons", "time_min", "time_max", "already_loaded",
                "earlier_upload_id"}


def accepted_frame(keys, category="crime", where=CHICAGO, start="2019-01-01 08:00") -> pd.DataFrame:
    """One incident per key, an hour apart, a few hundred metres around `where`."""
    n = len(keys)
    return pd.DataFrame({
        "source_key": pd.array(keys, dtype="str"),
        "category": category,
        "subtype": pd.array(["theft" if i % 2 else "assault" for i in range(n)], dtype="str"),
        "occurred_at": pd.date_range(start, periods=n, freq="h"),
        "latitude": [where[0] + 0.001 * (i % 5) for i in range(n)],
        "longitude": [where[1] - 0.001 * (i % 3) for i in range(n)],
    }, columns=list(INCIDENT_COLUMNS))


def rejected_frame(rows: list[tuple[int, str, dict]]) -> pd.DataFrame:
    """rows of (row_number, reason, {file column: raw value})."""
    raw = pd.DataFrame([r[2] for r in rows], dtype="str")
    raw["row_number"] = pd.array([r[0] for r in rows], dtype="int64")
    raw["reason"] = pd.array([r[1] for r in rows], dtype="str")
    return raw


NO_REJECTS = pd.DataFrame({"row_number": pd.array([], dtype="int64"),
                           "reason": pd.array([], dtype="str")})


@pytest.fixture
def home(tmp_path, monkeypatch, db_url):
    """A fresh home, its database on SQLite and on PostgreSQL (conftest.db_url)."""
    monkeypatch.setenv("SAFETY_MODELS_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def store(home):
    s = Store()
    yield s
    s.close()


def add(store, keys, data=None, category="crime", where=CHICAGO, rejected=NO_REJECTS, **kw):
    accepted = accepted_frame(keys, category, where)
    data = data if data is not None else ("|".join(keys) + category).encode()
    return store.add_upload("f.csv", data, category, accepted, rejected,
                            len(accepted) + len(rejected), {"time": "date"}, **kw)


def test_upload_summary_counts_and_keys(store, home):
    rejected = rejected_frame([(3, "missing time", {"date": "", "id": "c"})])
    summary = add(store, ["a", "b", "d"], rejected=rejected)
    assert set(summary.to_dict()) == SUMMARY_KEYS
    assert (summary.rows_read, summary.accepted, summary.rejected, summary.duplicates) == (4, 3, 1, 0)
    assert summary.rejected_reasons == {"missing time": 1}
    assert summary.time_min == "2019-01-01T08:00:00" and summary.time_max == "2019-01-01T10:00:00"
    assert summary.already_loaded is False
    assert UploadSummary.from_dict(summary.to_dict()) == summary
    assert store.incident_counts() == {"crime": 3, "traffic": 0, "health": 0}
    kept = store.list_uploads().loc[0, "stored_path"]
    assert open(kept, "rb").read() == b"a|b|dcrime"
    assert [p.name for p in (home / "uploads").iterdir()] == [f"{summary.upload_id}-f.csv"]


def test_duplicates_within_file_and_across_uploads(store):
    first = add(store, ["a", "b", "b", "c"])
    assert (first.accepted, first.duplicates) == (3, 1)
    second = add(store, ["c", "d", "e"])
    assert (second.accepted, second.duplicates) == (2, 1)
    assert store.incident_counts()["crime"] == 5
    # The same key in another category is another incident.
    third = add(store, ["a"], category="traffic")
    assert (third.accepted, third.duplicates) == (1, 0)


def test_same_file_twice_adds_nothing(store):
    first = add(store, ["a", "b"], data=b"same bytes")
    again = add(store, ["x", "y"], data=b"same bytes")
    assert again.already_loaded and again.upload_id == first.upload_id
    assert store.incident_counts()["crime"] == 2
    assert len(store.list_uploads()) == 1
    # The same bytes for another category are another upload.
    other = add(store, ["a"], data=b"same bytes", category="health")
    assert not other.already_loaded and other.accepted == 1


def test_failure_halfway_leaves_store_as_before(store, home, monkeypatch):
    add(store, ["a", "b"])
    before = (store.incident_counts(), store.list_uploads().to_dict("list"),
              sorted(p.name for p in (home / "uploads").iterdir()))
    calls = []
    if store.is_sqlite:   # fail between two executemany chunks
        monkeypatch.setattr(store_module, "INSERT_CHUNK_ROWS", 2)
        real_execute_many = Store._execute_many

        def fail_after_first_chunk(self, conn, sql, rows):
            calls.append(len(rows))
            if len(calls) > 1:
                raise RuntimeError("disk full")
            return real_execute_many(self, conn, sql, rows)

        monkeypatch.setattr(Store, "_execute_many", fail_after_first_chunk)
    else:                 # PostgreSQL: fail once COPY has inserted every row
        real_copy = Store._copy_incidents

        def fail_after_copy(conn, upload_id, new, order):
            calls.append(real_copy(conn, upload_id, new, order))
            raise RuntimeError("disk full")

        monkeypatch.setattr(Store, "_copy_incidents", staticmethod(fail_after_copy))
    rejected = rejected_frame([(9, "missing coordinates", {"date": "2019-01-01"})])
    with pytest.raises(RuntimeError, match="disk full"):
        add(store, ["c", "d", "e", "f", "g"], rejected=rejected)
    assert calls == ([2, 2] if store.is_sqlite else [5])
    after = (store.incident_counts(), store.list_uploads().to_dict("list"),
             sorted(p.name for p in (home / "uploads").iterdir()))
    assert after == before
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM rejected_rows")).scalar() == 0


def test_an_upload_from_a_path_keeps_the_file_and_refuses_one_that_changed(store, home, tmp_path):
    data = b"date,id\n2019-01-01,a\n"
    path = tmp_path / "city.csv"
    path.write_bytes(data)
    accepted = accepted_frame(["a"], "crime", CHICAGO)
    summary = store.add_upload("city.csv", path, "crime", accepted, NO_REJECTS, 1, {},
                               checksum=hashlib.sha256(data).hexdigest())
    assert summary.accepted == 1
    kept = home / "uploads" / f"{summary.upload_id}-city.csv"
    assert kept.read_bytes() == data
    # the same bytes again, by path: already loaded, nothing added
    again = store.add_upload("city.csv", path, "crime", accepted, NO_REJECTS, 1, {},
                             checksum=hashlib.sha256(data).hexdigest())
    assert again.already_loaded and again.accepted == 0
    # the file was rewritten after it was parsed: refused, nothing stored or kept
    before = (store.incident_counts(), store.list_uploads().to_dict("list"),
              sorted(p.name for p in (home / "uploads").iterdir()))
    parsed = b"date,id\n2019-01-02,b\n"
    path.write_bytes(b"date,id\n2019-01-02,c\n")
    with pytest.raises(FileUnusable, match="city.csv: the file changed while it was being loaded"):
        store.add_upload("city.csv", path, "crime", accepted_frame(["b"], "crime", CHICAGO),
                         NO_REJECTS, 1, {}, checksum=hashlib.sha256(parsed).hexdigest())
    assert (store.incident_counts(), store.list_uploads().to_dict("list"),
            sorted(p.name for p in (home / "uploads").iterdir())) == before


def test_remove_upload_takes_its_incidents_and_rejected_rows(store, home):
    keep = add(store, ["a", "b"])
    gone = add(store, ["c", "d", "e"],
               rejected=rejected_frame([(4, "unparseable time", {"date": "yesterday"})]))
    assert store.remove_upload(gone.upload_id) == 3
    assert store.incident_counts()["crime"] == 2
    assert store.list_uploads()["upload_id"].tolist() == [keep.upload_id]
    assert [p.name for p in (home / "uploads").iterdir()] == [f"{keep.upload_id}-f.csv"]
    with pytest.raises(UserError, match="no upload #"):
        store.remove_upload(gone.upload_id)
    with pytest.raises(UserError, match="no upload #"):
        store.rejected_rows(gone.upload_id)


def test_city_mismatch_is_refused_per_category(store):
    add(store, ["a", "b"], is_demo=True)
    with pytest.raises(CityMismatch) as err:
        add(store, ["x", "y"], where=BARCELONA)
    message = str(err.value)
    assert "km" in message and "remove-upload" in message and "SAFETY_MODELS_HOME" in message
    assert "f.csv (demo)" in message
    assert store.incident_counts()["crime"] == 2 and len(store.list_uploads()) == 1
    # Another category may hold another city.
    assert add(store, ["x", "y"], where=BARCELONA, category="traffic").accepted == 2
    # Nearby (a few km away) is the same city.
    assert add(store, ["n"], where=(CHICAGO[0] + 0.05, CHICAGO[1])).accepted == 1


def test_portable_code_path_gives_the_same_results(store):
    """The paths used for databases other than SQLite and PostgreSQL (Core inserts after a
    key lookup, Core reads), exercised on SQLite."""
    if not store.is_sqlite:
        pytest.skip("exercised on SQLite only")
    store.is_sqlite = False
    store.dialect = "portable"
    add(store, ["a", "b", "b"])
    summary = add(store, ["b", "c"])
    assert (summary.accepted, summary.duplicates) == (1, 1)
    df = store.incidents("crime", start="2019-01-01 09:00")
    assert df["occurred_at"].dtype == "datetime64[ns]"
    assert df["occurred_at"].tolist() == [pd.Timestamp("2019-01-01 09:00")] * 2
    assert len(store.incidents("crime")) == 3


def test_sqlite_runs_in_wal_mode_with_busy_timeout(store):
    if not store.is_sqlite:
        pytest.skip("SQLite's settings")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0


def test_switching_a_new_file_to_wal_tries_again_while_it_is_locked():
    """Two connections switching a new file to WAL at once deadlock; SQLite answers one of
    them "database is locked" at once (no busy wait). That one tries again; other errors, and
    a lock that never ends, still raise."""
    import sqlite3

    class Cursor:
        def __init__(self, errors):
            self.errors, self.calls = list(errors), 0

        def execute(self, sql):
            assert sql == "PRAGMA journal_mode = WAL"
            self.calls += 1
            if self.errors:
                raise sqlite3.OperationalError(self.errors.pop(0))

    cursor = Cursor(["database is locked", "database is locked"])
    store_module.set_wal_mode(cursor, pause_s=0)
    assert cursor.calls == 3
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        store_module.set_wal_mode(Cursor(["disk I/O error"]), pause_s=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        store_module.set_wal_mode(Cursor(["database is locked"] * 3), attempts=3, pause_s=0)


def test_readers_are_not_blocked_by_a_writer_and_writers_queue(store):
    """The dashboard reads while a training process writes (WAL); two writers wait for each
    other (BEGIN IMMEDIATE + busy timeout) instead of failing."""
    import threading

    add(store, ["a"])
    other = Store()
    with store.begin() as conn:
        conn.execute(store_module.meta.insert().values(key="k", value="v"))
        assert other.incident_counts()["crime"] == 1     # a read during an open write
        assert other.get_meta("k") is None               # ... sees the last commit only
    assert other.get_meta("k") == "v"
    errors = []

    def load(prefix):
        try:
            s = Store()
            for i in range(3):
                add(s, [f"{prefix}{i}-{j}" for j in range(50)])
            s.close()
        except Exception as err:   # noqa: BLE001 - reported by the assert below
            errors.append(err)

    threads = [threading.Thread(target=load, args=(p,)) for p in "xy"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert errors == [] and store.incident_counts()["crime"] == 1 + 2 * 3 * 50


def test_rejected_rows_round_trip(store):
    rejected = rejected_frame([
        (2, "unparseable time", {"date": "31/31/2019", "id": "7", "note": "a, \"quoted\""}),
        (5, "missing coordinates", {"date": "2019-01-01", "id": "9", "note": None}),
    ])
    summary = add(store, ["a"], rejected=rejected)
    assert summary.rejected_reasons == {"unparseable time": 1, "missing coordinates": 1}
    back = store.rejected_rows(summary.upload_id)
    assert list(back.columns) == ["date", "id", "note", "row_number", "reason"]
    assert back["row_number"].tolist() == [2, 5]
    assert back["reason"].tolist() == ["unparseable time", "missing coordinates"]
    assert back.loc[0, "note"] == 'a, "quoted"' and pd.isna(back.loc[1, "note"])


def test_incidents_sorted_and_filtered_by_time(store):
    accepted = accepted_frame(["a", "b", "c", "d"]).iloc[::-1]
    store.add_upload("g.csv", b"g", "crime", accepted, NO_REJECTS, 4, {})
    df = store.incidents("crime")
    assert list(df.columns) == ["occurred_at", "latitude", "longitude", "subtype"]
    assert df["occurred_at"].dtype == "datetime64[ns]"
    assert df["occurred_at"].is_monotonic_increasing and len(df) == 4
    assert df["subtype"].tolist() == ["assault", "theft", "assault", "theft"]
    window = store.incidents("crime", start="2019-01-01 09:00", end=pd.Timestamp("2019-01-01 11:00"))
    assert window["occurred_at"].dt.hour.tolist() == [9, 10]
    assert store.time_range("crime") == (pd.Timestamp("2019-01-01 08:00"),
                                         pd.Timestamp("2019-01-01 11:00"))
    assert store.time_range("health") is None
    empty = store.incidents("health")
    assert len(empty) == 0 and empty["occurred_at"].dtype == "datetime64[ns]"


def test_bad_input_is_a_user_error(store):
    with pytest.raises(UserError, match="unknown category"):
        add(store, ["a"], category="fires")
    with pytest.raises(UserError, match="lacks the columns"):
        store.add_upload("h.csv", b"h", "crime", accepted_frame(["a"]).drop(columns="latitude"),
                         NO_REJECTS, 1, {})
    assert store.incident_counts()["crime"] == 0


def test_boundaries_meta_and_remove_demo(store):
    outline = {"type": "FeatureCollection", "features": []}
    store.set_boundary("crime", outline, is_demo=True)
    store.set_boundary("*", {"type": "FeatureCollection", "features": [], "name": "all"})
    assert store.boundary("crime") == outline
    assert store.boundary("traffic")["name"] == "all"
    store.set_meta("bootstrap", "done")
    store.set_meta("bootstrap", "again")
    assert store.get_meta("bootstrap") == "again" and store.get_meta("nothing") is None
    add(store, ["a", "b"], is_demo=True)
    add(store, ["z"], category="traffic")
    assert store.remove_demo() == 2
    assert store.incident_counts() == {"crime": 0, "traffic": 1, "health": 0}
    assert store.boundary("crime")["name"] == "all"


def test_other_modules_add_tables_on_the_shared_metadata(home):
    """The migrations make the product's tables; a table outside them (a test's) is made on
    first use by ensure_table."""
    extra = sa.Table("test_extra_table", store_module.metadata,
                     sa.Column("id", sa.Integer, primary_key=True))
    try:
        s = Store()
        assert not sa.inspect(s.engine).has_table("test_extra_table")
        s.ensure_table(extra)
        with s.begin() as conn:
            conn.execute(extra.insert().values(id=1))
        with s.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(extra)).scalar() == 1
        s.close()
    finally:
        store_module.metadata.remove(extra)


def test_mapping_is_stored_as_json(store):
    summary = add(store, ["a"])
    with store.engine.connect() as conn:
        text = conn.execute(sa.select(store_module.uploads.c.mapping)
                            .where(store_module.uploads.c.id == summary.upload_id)).scalar()
    assert json.loads(text) == {"time": "date"}


def test_place_text_is_kept_per_incident(store):
    accepted = accepted_frame(["a", "b", "c"], "crime", CHICAGO).assign(
        place=["010XX W MADISON ST", "", "0XX N STATE ST"])
    store.add_upload("f.csv", b"with places", "crime", accepted, NO_REJECTS, 3, {})
    places = store.incident_places("crime")
    assert sorted(places["place"]) == ["010XX W MADISON ST", "0XX N STATE ST"]
    assert places["latitude"].dtype == "float64"
    add(store, ["d"])                                     # a file without a place column
    assert len(store.incident_places("crime")) == 2 and store.incident_places("traffic").empty


def test_an_older_database_gets_the_place_column(home):
    import sqlalchemy as sa

    from safety_models import paths
    from safety_models.data.store import Store

    engine = sa.create_engine(paths.db_url())
    with engine.begin() as conn:   # the incidents table as an older version made it
        conn.exec_driver_sql(
            "CREATE TABLE incidents (id INTEGER PRIMARY KEY, upload_id INTEGER NOT NULL, "
            "category VARCHAR(16) NOT NULL, subtype TEXT NOT NULL, occurred_at TIMESTAMP NOT "
            "NULL, latitude FLOAT NOT NULL, longitude FLOAT NOT NULL, source_key VARCHAR(200) "
            "NOT NULL)")
    engine.dispose()
    with Store() as store:
        columns = {c["name"] for c in sa.inspect(store.engine).get_columns("incidents")}
        assert "place" in columns
        assert store.incident_places("crime").empty


# --- nothing lost, nothing silently wrong (issue 12) ------------------------------------------

def csv_export(rows: list[str]) -> bytes:
    """An export without an id column: rows of date,lat,lon,type."""
    return ("date,lat,lon,type\n" + "\n".join(rows) + "\n").encode()


CALL = "2019-03-01 10:00,41.8800,-87.6300,noise"


def test_identical_rows_count_by_multiplicity(store):
    from safety_models.data.ingest import ingest_bytes

    other = [f"2019-03-0{d} 10:00,41.88{d},-87.630,noise" for d in range(2, 6)]
    first = ingest_bytes(store, csv_export([CALL, *other]), "first.csv", "crime")
    assert (first.accepted, first.duplicates) == (5, 0)
    # Two calls at one address on one day are two events; the row stored once is matched
    # once: a file holding it three times adds two.
    second = ingest_bytes(store, csv_export([CALL, CALL, CALL, *other]), "second.csv", "crime")
    assert (second.rows_read, second.accepted, second.duplicates) == (7, 2, 5)
    assert store.incident_counts()["crime"] == 7
    # The same rows again, as other bytes (CRLF, another order): nothing added.
    again = csv_export([*other, CALL, CALL, CALL]).replace(b"\n", b"\r\n")
    third = ingest_bytes(store, again, "third.csv", "crime")
    assert (third.accepted, third.duplicates, third.already_loaded) == (0, 7, False)
    assert store.incident_counts()["crime"] == 7


def test_loading_a_file_again_reports_nothing_added_and_the_earlier_upload(store):
    from safety_models.data.ingest import ingest_bytes

    data = csv_export([CALL, "2019-03-02 10:00,41.88,-87.63,noise", "bad,41.88,-87.63,noise"])
    first = ingest_bytes(store, data, "calls.csv", "crime")
    again = ingest_bytes(store, data, "calls (copy).csv", "crime")
    assert again.already_loaded and again.earlier_upload_id == first.upload_id
    assert (again.accepted, again.duplicates, again.rejected, again.rows_read) == (0, 2, 1, 3)
    assert again.file_name == "calls (copy).csv"
    assert store.incident_counts()["crime"] == 2 and len(store.list_uploads()) == 1


def test_kept_uploads_are_written_durably_and_stored_relative_to_home(store, home, monkeypatch):
    import safety_models.files as files_module

    synced = []
    real_fsync = files_module.os.fsync
    monkeypatch.setattr(files_module.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    summary = add(store, ["a", "b"], data=b"the original bytes")
    assert len(synced) >= 2          # the file's data, then its folder after the rename
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(store_module.uploads.c.stored_path)).scalar()
    assert stored == f"uploads/{summary.upload_id}-f.csv"   # the home may move (restore)
    assert open(store.list_uploads().loc[0, "stored_path"], "rb").read() == b"the original bytes"


def test_commits_are_durable_synchronous_full(store):
    if not store.is_sqlite:
        pytest.skip("SQLite's settings (PostgreSQL commits are durable by default)")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2     # FULL


def test_opening_the_store_removes_temporary_files_of_killed_writers(home):
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    uploads = home / "uploads"
    uploads.mkdir()
    # A load killed while writing its kept file (write_atomic's temporary file, 16 MB).
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from safety_models.files import write_atomic\n"
         "def fill(fh):\n"
         "    fh.write(b'x' * 16_000_000); fh.flush(); print('written', flush=True); time.sleep(600)\n"
         f"write_atomic(Path({str(uploads / 'big.csv')!r}), fill)"],
        cwd=repo, stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "written"
    writer.kill()
    writer.wait()
    leftover = [p for p in uploads.iterdir()]
    assert len(leftover) == 1 and leftover[0].stat().st_size == 16_000_000
    # One written before write_atomic was used (no writer in its name), an hour old.
    legacy = uploads / (".tmp-" + "ab" * 16)
    legacy.write_bytes(b"old")
    old = time.time() - 7200
    os.utime(legacy, (old, old))
    # One being written right now by a live process (this one) stays.
    from safety_models.files import write_atomic
    live = write_atomic(uploads / "live.csv", lambda fh: fh.write(b"x"), replace=False)
    kept = uploads / "3-kept.csv"
    kept.write_bytes(b"a kept upload")
    Store().close()
    assert sorted(p.name for p in uploads.iterdir()) == sorted([live.name, kept.name])


@pytest.mark.parametrize("damage", ["overwritten", "truncated", "emptied"])
def test_a_damaged_database_is_a_message_pointing_to_check_and_restore(home, damage, db_url):
    if db_url is not None:
        pytest.skip("damages the SQLite file; a PostgreSQL server's files are its own")
    from safety_models.errors import DatabaseDamaged

    s = Store()
    add(s, [f"k{i}" for i in range(400)])
    s.close()
    db = home / "safety_models.db"
    for suffix in ("-wal", "-shm"):
        (home / f"safety_models.db{suffix}").unlink(missing_ok=True)
    if damage == "overwritten":
        db.write_bytes(os.urandom(50_000))
    elif damage == "truncated":
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    else:
        db.write_bytes(b"")
    with pytest.raises(DatabaseDamaged) as err:
        s = Store()
        try:      # a half file may open; reading it finds the damage
            s.incident_counts()
            s.list_uploads()
        except Exception as inner:  # noqa: BLE001 - the store's own translation is tested
            raise store_module.explain_storage_error(inner) or inner
        finally:
            s.close()
    message = str(err.value)
    assert str(db) in message and "python -m safety_models check" in message
    assert "restore" in message


def test_rows_are_inserted_in_chunks_in_order(store, monkeypatch):
    """The insert builds its rows a chunk at a time (ten million at once took gigabytes):
    chunks of 2 store the 5 rows, times to the second, places and duplicates as one chunk."""
    monkeypatch.setattr(store_module, "INSERT_CHUNK_ROWS", 2)
    accepted = accepted_frame(["a", "b", "c", "d", "e"]).assign(
        place=["1 MAIN ST", "", "3 MAIN ST", "4 MAIN ST", ""])
    summary = store.add_upload("f.csv", b"five", "crime", accepted, NO_REJECTS, 5, {})
    assert (summary.accepted, summary.duplicates) == (5, 0)
    stored = store.incidents("crime")
    assert list(stored["occurred_at"]) == list(pd.date_range("2019-01-01 08:00", periods=5, freq="h"))
    assert list(stored["subtype"]) == ["assault", "theft", "assault", "theft", "assault"]
    assert stored["latitude"].tolist() == pytest.approx([CHICAGO[0] + 0.001 * i for i in range(5)])
    assert sorted(store.incident_places("crime")["place"]) == ["1 MAIN ST", "3 MAIN ST", "4 MAIN ST"]
    again = accepted_frame(["d", "e", "f"], start="2019-01-01 11:00")
    summary = store.add_upload("g.csv", b"three", "crime", again, NO_REJECTS, 3, {})
    assert (summary.accepted, summary.duplicates) == (1, 2)
    assert store.incident_counts()["crime"] == 6


def test_insert_rows_are_the_tables_tuples():
    new = store_module._clean_accepted(
        accepted_frame(["k1", "k2", "k3"]).assign(place=["P", "", "Q"]), "crime")
    chunks = list(store_module._insert_rows(new, 7, chunk_rows=2))
    assert [len(c) for c in chunks] == [2, 1]
    assert chunks[0][1] == (7, "crime", "theft", "2019-01-01 09:00:00.000000", CHICAGO[0] + 0.001,
                            CHICAGO[1] - 0.001, "k2", None)
    assert chunks[1][0][-2:] == ("k3", "Q")


def test_incidents_are_read_in_batches_in_order(store, monkeypatch):
    """Store.incidents converts READ_BATCH_ROWS rows at a time (ten million tuples at once
    took gigabytes); batches of 2 give the same table as one read, filters included."""
    add(store, ["a", "b", "c", "d", "e"])
    whole = store.incidents("crime")
    monkeypatch.setattr(store_module, "READ_BATCH_ROWS", 2)
    batched = store.incidents("crime")
    pd.testing.assert_frame_equal(batched, whole)
    assert list(batched["occurred_at"]) == list(pd.date_range("2019-01-01 08:00", periods=5, freq="h"))
    assert list(batched["subtype"]) == ["assault", "theft", "assault", "theft", "assault"]
    assert (batched["occurred_at"].dtype, batched["latitude"].dtype, batched["subtype"].dtype) == \
        ("datetime64[ns]", "float64", "str")
    middle = store.incidents("crime", "2019-01-01 09:00", "2019-01-01 12:00")
    assert list(middle["occurred_at"].dt.hour) == [9, 10, 11]
    empty = store.incidents("traffic")
    assert empty.empty and empty["occurred_at"].dtype == "datetime64[ns]"


def test_places_are_read_in_batches(store, monkeypatch):
    accepted = accepted_frame(["a", "b", "c", "d"]).assign(place=["P1", "", "P3", "P4"])
    store.add_upload("f.csv", b"places", "crime", accepted, NO_REJECTS, 4, {})
    monkeypatch.setattr(store_module, "READ_BATCH_ROWS", 2)
    places = store.incident_places("crime")
    assert sorted(places["place"]) == ["P1", "P3", "P4"]
    assert (places["latitude"].dtype, places["place"].dtype) == ("float64", "str")
    assert sorted(places["latitude"].round(3)) == pytest.approx([41.85, 41.852, 41.853])
    empty = store.incident_places("traffic")
    assert empty.empty and list(empty.columns) == ["latitude", "longitude", "place"]


def test_incidents_per_day_counts_in_the_database_what_the_rows_give(store):
    from safety_models.presentation import tables

    # 30 incidents 13 hours apart over 17 days, then 3 of the same day in another upload
    accepted = accepted_frame([f"k{i}" for i in range(30)])
    accepted["occurred_at"] = pd.date_range("2019-01-30 20:00", periods=30, freq="13h")
    store.add_upload("a.csv", b"a", "crime", accepted, NO_REJECTS, 30, {})
    store.add_upload("b.csv", b"b", "crime", accepted_frame(["x", "y", "z"], start="2019-02-03 01:00"),
                     NO_REJECTS, 3, {})
    add(store, ["other"], data=b"c", category="traffic")
    daily = store.incidents_per_day("crime")
    assert list(daily.columns) == ["occurred_at", "subtype", "incidents"]
    assert daily["incidents"].sum() == 33 and str(daily["occurred_at"].dtype) == "datetime64[ns]"
    assert (daily["occurred_at"] == daily["occurred_at"].dt.normalize()).all()
    feb3 = daily[daily["occurred_at"] == pd.Timestamp("2019-02-03")]
    rows = store.incidents("crime")
    on_feb3 = rows[rows["occurred_at"].dt.normalize() == pd.Timestamp("2019-02-03")]
    assert feb3.groupby("subtype")["incidents"].sum().to_dict() == \
        on_feb3["subtype"].value_counts().to_dict()
    for freq in ("D", "W", "M"):
        for by_subtype in (False, True):
            expected = tables.incidents_per_period(rows, freq, by_subtype=by_subtype)
            got = tables.incidents_per_period(daily, freq, by_subtype=by_subtype)
            sort = ["period", "subtype"] if by_subtype else ["period"]
            pd.testing.assert_frame_equal(got.sort_values(sort).reset_index(drop=True),
                                          expected.sort_values(sort).reset_index(drop=True),
                                          check_dtype=False)
    assert store.incidents_per_day("health").empty


def test_per_day_counts_follow_uploads_duplicates_and_removals(store):
    def per_day(category="crime"):
        daily = store.incidents_per_day(category)
        return [(f"{d:%m-%d}", s, n) for d, s, n in zip(daily["occurred_at"], daily["subtype"],
                                                          daily["incidents"])]

    # a: 1 Jan 08:00 assault, 09:00 theft, 10:00 assault (accepted_frame alternates subtypes)
    a = store.add_upload("a.csv", b"a", "crime", accepted_frame(["k0", "k1", "k2"]),
                         NO_REJECTS, 3, {})
    assert per_day() == [("01-01", "assault", 2), ("01-01", "theft", 1)]
    # b: k1 again (a duplicate: not stored, not counted), a new key on 2 Jan 23:00
    b_rows = accepted_frame(["k1", "k9"], start="2019-01-02 22:00")
    b = store.add_upload("b.csv", b"b", "crime", b_rows, NO_REJECTS, 2, {})
    assert (b.accepted, b.duplicates) == (1, 1)
    assert per_day() == [("01-01", "assault", 2), ("01-01", "theft", 1), ("01-02", "theft", 1)]
    # a key twice in one file (2 Jan 00:00 assault, 01:00 theft): its first row only
    twice = store.add_upload("d.csv", b"d", "crime",
                             accepted_frame(["d1", "d1"], start="2019-01-02 00:00"), NO_REJECTS, 2, {})
    assert (twice.accepted, twice.duplicates) == (1, 1)
    assert per_day() == [("01-01", "assault", 2), ("01-01", "theft", 1),
                         ("01-02", "assault", 1), ("01-02", "theft", 1)]
    store.remove_upload(twice.upload_id)
    # another category's upload on the same day is counted there only
    store.add_upload("c.csv", b"c", "traffic", accepted_frame(["t0"]), NO_REJECTS, 1, {})
    assert per_day("traffic") == [("01-01", "assault", 1)]
    assert store.remove_upload(a.upload_id) == 3
    assert per_day() == [("01-02", "theft", 1)]
    store.remove_upload(b.upload_id)
    assert per_day() == [] and per_day("traffic") == [("01-01", "assault", 1)]


def test_insert_order_keeps_each_keys_first_row_by_time_ties_in_file_order():
    new = pd.DataFrame({"source_key": pd.array(["a", "b", "a", "c"], dtype="str"),
                        "occurred_at": pd.to_datetime(["2020-01-03", "2020-01-01",
                                                       "2020-01-01", "2020-01-01"])})
    # the second "a" is a duplicate even though it is earlier; b and c tie: file order
    assert store_module.insert_order(new).tolist() == [1, 3, 0]
    assert store_module.insert_order(new.iloc[:0]).tolist() == []
