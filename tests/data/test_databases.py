"""The bulk insert and ingest give the same rows on SQLite (executemany) and PostgreSQL (COPY).

Each test runs on both databases (conftest.db_url) and asserts exact known answers, so the
two runs agree with each other by agreeing with the same expectations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import synthetic_incidents_csv

from safety_models.data import ingest
from safety_models.data import store as store_module
from safety_models.data.store import Store
from safety_models.schema import INCIDENT_COLUMNS

NO_REJECTS = pd.DataFrame({"row_number": pd.array([], dtype="int64"),
                           "reason": pd.array([], dtype="str")})
# Text that COPY's text format must escape: tab, newline, backslash, a quote, non-ASCII,
# and the two-character string that COPY would read as NULL if it were not escaped.
AWKWARD = ["tab\there", "line\nbreak", "back\\slash", 'quote"d', "Straße ñ 東京", "\\N", ""]


@pytest.fixture
def store(tmp_path, monkeypatch, db_url):
    monkeypatch.setenv("SAFETY_MODELS_HOME", str(tmp_path / "home"))
    s = Store()
    yield s
    s.close()


def incident_frame(n: int, offset: int = 0) -> pd.DataFrame:
    """n incidents with keys k<offset>.., in REVERSE time order, full-precision coordinates,
    microsecond times and awkward subtypes and keys."""
    i = np.arange(offset, offset + n)
    return pd.DataFrame({
        "source_key": pd.array([f"k{j}{AWKWARD[j % len(AWKWARD)]}" for j in i], dtype="str"),
        "category": "crime",
        "subtype": pd.array([AWKWARD[j % len(AWKWARD)] for j in i], dtype="str"),
        "occurred_at": (pd.Timestamp("2020-01-01") + pd.to_timedelta(10_000 - i, unit="min")
                        + pd.to_timedelta(i % 997, unit="us")),
        "latitude": 41.85 + np.sin(i) / 7.0,        # every bit of the mantissa used
        "longitude": -87.65 - np.cos(i) / 3.0,
    }, columns=list(INCIDENT_COLUMNS))


def stored_rows(store: Store) -> pd.DataFrame:
    i = store_module.incidents.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(i.id, i.upload_id, i.source_key, i.subtype,
                                      i.occurred_at, i.latitude, i.longitude)
                            .order_by(i.id)).all()
    return pd.DataFrame(rows, columns=["id", "upload_id", "source_key", "subtype",
                                       "occurred_at", "latitude", "longitude"])


def test_bulk_insert_stores_exactly_the_new_rows_in_time_order(store):
    first = incident_frame(3_000)
    summary = store.add_upload("a.csv", b"a", "crime", first, NO_REJECTS, len(first), {})
    assert (summary.accepted, summary.duplicates) == (3_000, 0)
    # Half stored already, half new, and one key twice in the file.
    second = pd.concat([incident_frame(3_000, offset=1_500), incident_frame(1, offset=4_000)],
                       ignore_index=True)
    summary = store.add_upload("b.csv", b"b", "crime", second, NO_REJECTS, len(second), {})
    assert (summary.accepted, summary.duplicates) == (1_500, 1_501)

    rows = stored_rows(store)
    expected = pd.concat([first, incident_frame(1_500, offset=3_000)], ignore_index=True)
    assert len(rows) == 4_500 and rows["id"].is_unique
    assert rows["upload_id"].tolist() == [1] * 3_000 + [2] * 1_500
    # Within an upload, ids follow time (the file was in reverse time order).
    for _, part in rows.groupby("upload_id"):
        assert pd.to_datetime(part["occurred_at"]).is_monotonic_increasing
    by_key = rows.set_index("source_key").loc[expected["source_key"]]
    assert by_key["subtype"].tolist() == expected["subtype"].tolist()
    assert pd.DatetimeIndex(by_key["occurred_at"]).equals(pd.DatetimeIndex(expected["occurred_at"]))
    # Coordinates round-trip bit for bit.
    assert by_key["latitude"].to_numpy().tobytes() == expected["latitude"].to_numpy().tobytes()
    assert by_key["longitude"].to_numpy().tobytes() == expected["longitude"].to_numpy().tobytes()

    df = store.incidents("crime")
    assert len(df) == 4_500 and df["occurred_at"].is_monotonic_increasing
    assert df["occurred_at"].dtype == "datetime64[ns]"
    assert sorted(df["subtype"].unique()) == sorted(set(AWKWARD))


def test_ingest_through_the_store(store):
    data = synthetic_incidents_csv("traffic", n=400, bad_rows=5)
    summary = ingest.ingest_bytes(store, data, "traffic.csv", "traffic")
    assert (summary.rows_read, summary.accepted, summary.rejected) == (400, 395, 5)
    assert store.incident_counts() == {"crime": 0, "traffic": 395, "health": 0}
    assert store.rejected_rows(summary.upload_id)["row_number"].tolist() == [1, 2, 3, 4, 5]
    again = ingest.ingest_bytes(store, data, "traffic.csv", "traffic")
    assert again.already_loaded and store.incident_counts()["traffic"] == 395
    df = store.incidents("traffic")
    assert df["occurred_at"].is_monotonic_increasing
    assert store.time_range("traffic") == (df["occurred_at"].iloc[0], df["occurred_at"].iloc[-1])
    assert store.remove_upload(summary.upload_id) == 395
    assert store.incident_counts()["traffic"] == 0
