"""Store.data_version: the cheap stamp the dashboard keys its cached queries by."""

import pandas as pd

from safety_models.data.store import Store


def _rows(n: int, first: int) -> pd.DataFrame:
    return pd.DataFrame({
        "ID": [f"id-{first + i}" for i in range(n)],
        "Date": pd.date_range("2024-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M"),
        "Latitude": [41.88 + 0.001 * i for i in range(n)],
        "Longitude": [-87.63 - 0.001 * i for i in range(n)],
    })


def test_data_version_changes_with_every_load_and_removal(tmp_path, monkeypatch):
    from safety_models.data import ingest

    monkeypatch.setenv("SAFETY_MODELS_HOME", str(tmp_path))
    monkeypatch.delenv("SAFETY_MODELS_DB_URL", raising=False)
    store = Store()
    try:
        empty = store.data_version()
        assert empty == "0:0:0"
        for name, first in (("a.csv", 0), ("b.csv", 100)):
            path = tmp_path / name
            _rows(30, first).to_csv(path, index=False)
            ingest.ingest_path(store, path, category="crime")
        two = store.data_version()
        assert two != empty and two.endswith(":2:60")
        first_id = int(store.list_uploads()["upload_id"].iloc[0])
        store.remove_upload(first_id)
        assert store.data_version() not in (two, empty)
        assert store.data_version().endswith(":1:30")
    finally:
        store.close()
