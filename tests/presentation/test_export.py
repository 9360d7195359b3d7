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


def test_csv_neutralises_formula_text_but_keeps_numbers():
    """OWASP's CSV-injection rule on text cells (and headers); numbers stay numbers."""
    from safety_models.presentation.export import csv_text, neutralise_cell

    df = pd.DataFrame({
        "text": ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\r=y", "plain", "-87.631", "+5",
                 "x\r=cmd()"],
        "count": [-1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        "lon": np.full(10, -87.5),
        "=HYPERLINK(\"x\")": ["a"] * 10,
    })
    rows = list(pd.read_csv(io.StringIO(csv_text(df)), dtype=str, keep_default_na=False)
                .itertuples(index=False, name=None))
    assert [r[0] for r in rows] == ["'=1+1", "'+SUM(A1)", "'-2+3", "'@cmd", "'\tx", "'\r=y",
                                    "plain", "-87.631", "+5", "x\r=cmd()"]
    assert [r[1] for r in rows] == [str(v) for v in df["count"]], "negative ints unchanged"
    assert {r[2] for r in rows} == {"-87.5"}
    assert csv_text(df).splitlines()[0] == 'text,count,lon,"\'=HYPERLINK(""x"")"'
    assert neutralise_cell(-3) == -3 and neutralise_cell("a=b") == "a=b"


def test_prediction_csv_goes_through_the_same_rule():
    df = table().assign(district=["=evil()", "District 1"])
    text = prediction_to_csv(df).decode()
    assert "'=evil()" in text and ",District 1" in text
    assert ",0.75," in text
