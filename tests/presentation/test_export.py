"""Export: CSV bytes and GeoJSON outlines of a hand-made two-cell prediction table."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from safety_models import grid
from safety_models.presentation.export import prediction_to_csv, prediction_to_geojson
from safety_models.grid import GridSpec

SPEC = GridSpec("EPSG:32616", 447_000.0, 4_636_000.0, 500.0, 2, 3)


def table() -> pd.DataFrame:
    return pd.DataFrame({
        "cell_id": np.array([4, 0], dtype=np.int64),
        "row": [1, 0], "col": [1, 0],
        "probability": np.array([0.75, 0.125], dtype=np.float32),
        "expected_count": [1.5, float("nan")],
        "rank": [1, 2],
        "risk_level": ["very high", "low"],
        "model_id": ["crime-20261128-231500-ab12"] * 2,
        "window_start": pd.to_datetime(["2026-03-02", "2026-03-02"]),
        "window_end": pd.to_datetime(["2026-03-03", "2026-03-03"]),
    })


def test_csv_round_trips_with_iso_times():
    data = prediction_to_csv(table())
    back = pd.read_csv(io.BytesIO(data))
    assert list(back.columns) == list(table().columns)
    assert back["cell_id"].tolist() == [4, 0] and back["probability"].tolist() == [0.75, 0.125]
    assert back["window_start"].tolist() == ["2026-03-02T00:00:00"] * 2


def test_geojson_has_one_square_per_cell_with_plain_properties():
    collection = prediction_to_geojson(table(), SPEC)
    json.dumps(collection, allow_nan=False)  # plain JSON: no numpy, no NaN
    first, second = collection["features"]
    assert first["id"] == 4 and first["geometry"]["type"] == "Polygon"
    assert first["properties"] == {
        "cell_id": 4, "probability": 0.75, "expected_count": 1.5, "risk_level": "very high",
        "rank": 1, "model_id": "crime-20261128-231500-ab12",
        "window_start": "2026-03-02T00:00:00",
    }
    assert second["properties"]["expected_count"] is None
    ring = first["geometry"]["coordinates"][0]
    assert ring == grid.cell_to_boundary(SPEC, [4])[0] and ring[0] == ring[-1]
    # Cell 4 is row 1, col 1: its south-west corner is one cell east and north of the origin.
    lat, lon = grid.xy_to_latlon(SPEC, [447_500.0], [4_636_500.0])
    assert ring[0] == pytest.approx([lon[0], lat[0]])


def test_empty_table_gives_an_empty_collection():
    assert prediction_to_geojson(table().iloc[:0], SPEC) == {
        "type": "FeatureCollection", "features": []}
