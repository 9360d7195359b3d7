"""Tables as files people download: CSV (every CSV the dashboard or the command line
writes goes through `csv_text`), and prediction tables as GeoJSON.

All are plain functions of the table (and the grid for outlines); nothing touches disk.
Times are written as ISO 8601 naive local datetimes, the city's own clock.

CSV injection: a spreadsheet runs a cell that starts with = + - @ (or a tab or carriage
return before one) as a formula, and uploaded files, account names typed at a failed
sign-in and district names all reach our CSVs. Such text cells get a leading single quote
(the OWASP rule): the spreadsheet shows the text as text, and people still read it. Numbers
stay numbers: numeric columns are never touched, and a text cell that is just a number
("-87.63", a longitude in a rejected row) cannot be a formula, so it is kept as it is.
"""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import pandas as pd

from safety_models.grid import GridSpec, cell_to_boundary
from safety_models.files import to_jsonable

# The properties every GeoJSON Feature carries, in this order.
GEOJSON_PROPERTIES: tuple[str, ...] = (
    "cell_id", "probability", "expected_count", "risk_level", "rank", "model_id", "window_start",
)


FORMULA_STARTS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def neutralise_cell(value: Any) -> Any:
    """A text that a spreadsheet would run as a formula, with a leading single quote; any
    other value (numbers, dates, None, a text that is only a number) unchanged."""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS \
            and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def neutralise_cells(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of df whose text cells and column names are neutralised (neutralise_cell);
    numeric, boolean and datetime columns are left exactly as they are."""
    out = df.copy()
    for column in out.columns:
        series = out[column]
        if pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series):
            out[column] = series.map(neutralise_cell, na_action="ignore")
    out.columns = [neutralise_cell(c) if isinstance(c, str) else c for c in out.columns]
    return out


def csv_text(df: pd.DataFrame) -> str:
    """df as CSV text: header row, no index, ISO times, '.' decimals, cells neutralised.
    Lines end in CRLF (RFC 4180): with it the writer quotes every cell holding a carriage
    return, which a bare LF ending would leave unquoted, and a spreadsheet would take
    "x\r=cmd()" for two rows, the second one a formula."""
    buffer = io.StringIO()
    neutralise_cells(df).to_csv(buffer, index=False, date_format="%Y-%m-%dT%H:%M:%S",
                                lineterminator="\r\n")
    return buffer.getvalue()


def csv_bytes(df: pd.DataFrame) -> bytes:
    """csv_text as UTF-8 bytes (what a download button or a file gets)."""
    return csv_text(df).encode("utf-8")


def prediction_to_csv(df: pd.DataFrame) -> bytes:
    """The prediction table as UTF-8 CSV (header row, no index, ISO times, '.' decimals)."""
    return csv_bytes(df)


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
