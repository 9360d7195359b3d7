"""Prediction tables (workflows.predict_category) as files people download: CSV and GeoJSON.

Both are plain functions of the table (and the grid for outlines); nothing touches disk.
Times are written as ISO 8601 naive local datetimes, the city's own clock.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from safety_models.grid import GridSpec, cell_to_boundary
from safety_models.files import to_jsonable

# The properties every GeoJSON Feature carries, in this order.
GEOJSON_PROPERTIES: tuple[str, ...] = (
    "cell_id", "probability", "expected_count", "risk_level", "rank", "model_id", "window_start",
)


def prediction_to_csv(df: pd.DataFrame) -> bytes:
    """The prediction table as UTF-8 CSV (header row, no index, ISO times, '.' decimals)."""
    return df.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S").encode("utf-8")

def prediction_to_geojson(df: pd.DataFrame, grid: GridSpec) -> dict:
    """A FeatureCollection with one Polygon Feature per row (a cell's square outline in WGS84
    [lon, lat]) and the GEOJSON_PROPERTIES present in df as properties; the Feature ``id``
    is the cell id. Rows keep their order (rank order for predict_category's table)."""
    if "cell_id" not in df.columns:
        raise ValueError("the prediction table has no cell_id column")
    cell_ids = df["cell_id"].to_numpy(dtype=np.int64)
    rings = cell_to_boundary(grid, cell_ids) if len(cell_ids) else []
    names = [name for name in GEOJSON_PROPERTIES if name in df.columns]
    columns = {name: df[name].tolist() for name in names}
    features = []
    for i, ring in enumerate(rings):
        features.append({
            "type": "Feature",
            "id": int(cell_ids[i]),
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {name: to_jsonable(columns[name][i]) for name in names},
        })
    return {"type": "FeatureCollection", "features": features}
