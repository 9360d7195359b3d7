"""Store: atomic uploads, de-duplication, removal, the city check, WAL, round trips."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa

from safety_models.data import store as store_module
from safety_models.errors import CityMismatch, UserError
from safety_models.schema import INCIDENT_COLUMNS
from safety_models.data.store import Store, UploadSummary

CHICAGO = (41.85, -87.65)
BARCELONA = (41.39, 2.17)
SUMMARY_KEYS = {"upload_id", "file_name", "category", "rows_read", "accepted", "rejected",
                "duplicates", "rejected_reasons", "time_min", "time_max", "already_loaded"}


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

        def fail_after_copy(conn, upload_id, new):
            calls.append(real_copy(conn, upload_id, new))
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
