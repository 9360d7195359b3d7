"""File -> accepted incidents + rejected rows with reasons -> store. No database code here.

`read_incident_file` = `sources.read_table` + `sources.detect_mapping` + `parse_incidents`;
`ingest_bytes` / `ingest_path` hand the result to `store.add_upload`, which deduplicates and
keeps the original file. Every rejected row keeps the file's own columns plus `row_number`
(1-based data row) and one `reason` (the first that applies, in the order of REJECT_REASONS).
Accepted incidents have INCIDENT_COLUMNS, plus `place` (block/street/address text) when the
mapping names a place column.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from safety_models.errors import FileUnusable
from safety_models.schema import INCIDENT_COLUMNS, check_category
from safety_models.data.vocabulary import OUTCOME_VALUES
from safety_models.data.columns import ColumnMapping, detect_mapping
from safety_models.data.values import (is_missing, parse_clock_column, parse_datetime_column, parse_location_column, parse_number_column)
from safety_models.data.geo import project_to_wgs84
from safety_models.data.reading import read_table

__all__ = [
    "ColumnMapping", "ParsedFile", "REJECT_REASONS", "detect_mapping", "ingest_bytes", "ingest_path",
    "parse_incidents", "read_incident_file", "read_table",
]

NEGATIVE_TEST = "negative test result"
MISSING_TIME = "missing time"
UNPARSEABLE_TIME = "unparseable time"
MISSING_COORDS = "missing coordinates"
UNPARSEABLE_COORDS = "unparseable coordinates"
OUTSIDE_AREA = "coordinates outside the data's area"
# Reject reasons in the order they are checked; a row gets the first that applies.
REJECT_REASONS: tuple[str, ...] = (
    NEGATIVE_TEST, MISSING_TIME, UNPARSEABLE_TIME, MISSING_COORDS, UNPARSEABLE_COORDS, OUTSIDE_AREA,
)

# The bulk of the data: the 1st-99th percentile box, widened by max(20 km, half its size).
BULK_QUANTILE = 0.01
BULK_MARGIN_M = 20_000.0
BULK_MARGIN_SHARE = 0.5


@dataclass(frozen=True)
class ParsedFile:
    """One file parsed: accepted incidents (INCIDENT_COLUMNS) and rejected rows (file columns + row_number, reason).

    Duplicates are kept in `accepted`; the store deduplicates by (category, source_key).
    """

    file_name: str
    mapping: ColumnMapping
    accepted: pd.DataFrame
    rejected: pd.DataFrame
    rows_read: int

    def rejected_reasons(self) -> dict[str, int]:
        return self.rejected["reason"].value_counts().to_dict() if len(self.rejected) else {}


def read_incident_file(data: bytes, file_name: str, category: str,
                       overrides: ColumnMapping | None = None) -> ParsedFile:
    """Bytes of a CSV export -> ParsedFile. Raises FileUnusable / MappingError naming the file."""
    check_category(category)
    df = read_table(data, file_name)
    mapping = detect_mapping(df, overrides)
    return parse_incidents(df, mapping, category, file_name)


def ingest_bytes(store, data: bytes, file_name: str, category: str, overrides: ColumnMapping | None = None):
    """Parse a file and add it to the store; returns the store's UploadSummary."""
    parsed = read_incident_file(data, file_name, category, overrides)
    return store.add_upload(
        file_name=file_name, data=data, category=category, accepted=parsed.accepted,
        rejected=parsed.rejected, rows_read=parsed.rows_read, mapping=parsed.mapping.to_dict(),
    )


def ingest_path(store, path: str | Path, category: str, overrides: ColumnMapping | None = None):
    """ingest_bytes on a file on disk (the file's name is kept, not its folder)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
        raise FileUnusable(f"{path}: cannot be read ({err.strerror or err})") from err
    return ingest_bytes(store, data, path.name, category, overrides)


def parse_incidents(df: pd.DataFrame, mapping: ColumnMapping, category: str, file_name: str) -> ParsedFile:
    """A table of strings + its mapping -> accepted incidents and rejected rows (vectorised).

    Raises FileUnusable when every row is rejected, naming the top reasons with an example row.
    """
    check_category(category)
    df = df.reset_index(drop=True)
    n = len(df)
    reason_code = np.zeros(n, dtype=np.int8)  # 0 = accepted, i + 1 = REJECT_REASONS[i]

    def reject(mask: np.ndarray, reason: str) -> None:
        reason_code[(reason_code == 0) & np.asarray(mask, dtype=bool)] = REJECT_REASONS.index(reason) + 1

    if mapping.outcome:
        values = df[mapping.outcome].astype(str).str.lower()
        negatives = [k for k, v in OUTCOME_VALUES.items() if not v]
        reject(values.isin(negatives).to_numpy(), NEGATIVE_TEST)

    occurred, time_missing, time_bad = _parse_time(df, mapping, file_name)
    reject(time_missing, MISSING_TIME)
    reject(time_bad, UNPARSEABLE_TIME)

    lat, lon, loc_missing, loc_bad = _parse_location(df, mapping)
    reject(loc_missing, MISSING_COORDS)
    reject(loc_bad, UNPARSEABLE_COORDS)
    reject(outside_data_area(lat, lon, ~loc_missing & ~loc_bad), OUTSIDE_AREA)

    ok = reason_code == 0
    if not ok.any():
        raise FileUnusable(_all_rejected_message(df, mapping, reason_code, file_name))

    if mapping.subtype:
        subtype = df[mapping.subtype].astype(str).str.strip()
    else:
        subtype = pd.Series("", index=df.index, dtype=str)
    accepted = pd.DataFrame({
        "source_key": source_keys(df, mapping.source_id)[ok],
        "category": category,
        "subtype": subtype[ok].to_numpy(dtype=object),
        "occurred_at": occurred[ok].to_numpy(dtype="datetime64[ns]"),
        "latitude": lat[ok],
        "longitude": lon[ok],
    }, columns=list(INCIDENT_COLUMNS))
    accepted = accepted.astype({"source_key": str, "category": str, "subtype": str})
    if mapping.place:
        accepted["place"] = clean_place(df[mapping.place])[ok]

    rejected = df.loc[~ok].copy()
    rejected["row_number"] = (np.flatnonzero(~ok) + 1).astype("int64")
    rejected["reason"] = np.asarray(REJECT_REASONS, dtype=object)[reason_code[~ok] - 1]
    rejected["reason"] = rejected["reason"].astype(str)
    return ParsedFile(file_name=file_name, mapping=mapping, accepted=accepted.reset_index(drop=True),
                      rejected=rejected.reset_index(drop=True), rows_read=n)


def _parse_time(df: pd.DataFrame, m: ColumnMapping, file_name: str) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """-> (occurred_at datetime64[ns], missing, unparseable) from whichever time columns the mapping names."""
    if m.time:
        return parse_datetime_column(df[m.time])
    if m.date:
        day, missing, bad = parse_datetime_column(df[m.date])
        day = day.dt.normalize()
        if m.clock:
            clock, clock_missing, clock_bad = parse_clock_column(df[m.clock])
            clock = np.where(clock_missing, np.timedelta64(0, "ns"), clock)  # no time of day: midnight
            occurred = day + pd.to_timedelta(clock)
            bad = bad | (clock_bad & ~missing)
        else:
            occurred = day
        return occurred, missing, bad
    if m.year and m.month and m.day:
        parts = {}
        missing = np.zeros(len(df), dtype=bool)
        bad = np.zeros(len(df), dtype=bool)
        for key, col in (("year", m.year), ("month", m.month), ("day", m.day)):
            values, miss, unparseable = parse_number_column(df[col])
            # "-1" is the usual "unknown" code of agency exports
            miss = miss | (values == -1)
            missing |= miss
            bad |= unparseable | (~miss & ~np.isnan(values) & (values != np.round(values)))
            parts[key] = values
        frame = pd.DataFrame({k: np.where(missing | bad, 2000 if k == "year" else 1, np.nan_to_num(v, nan=1)).astype("int64")
                              for k, v in parts.items()})
        occurred = pd.to_datetime(frame, errors="coerce").astype("datetime64[ns]")
        bad |= occurred.isna().to_numpy() & ~missing
        if m.hour:
            clock, clock_missing, clock_bad = parse_clock_column(df[m.hour])
            clock = np.where(clock_missing, np.timedelta64(0, "ns"), clock)
            bad |= clock_bad & ~missing
            occurred = occurred + pd.to_timedelta(clock)
        bad &= ~missing
        return occurred, missing, bad
    raise ValueError(f"{file_name}: the mapping names no time columns: {m.describe()}")


def _parse_location(df: pd.DataFrame, m: ColumnMapping) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """-> (lat, lon, missing, unparseable); lat/lon NaN where not usable."""
    if m.lat and m.lon:
        lat, lat_missing, lat_bad = parse_number_column(df[m.lat])
        lon, lon_missing, lon_bad = parse_number_column(df[m.lon])
        missing = lat_missing | lon_missing
        return lat, lon, missing, (lat_bad | lon_bad) & ~missing
    if m.location:
        return parse_location_column(df[m.location])
    if m.x and m.y:
        x, x_missing, x_bad = parse_number_column(df[m.x])
        y, y_missing, y_bad = parse_number_column(df[m.y])
        # -1 is the agencies' "unknown" code; no real projected coordinate is exactly -1 m
        missing = x_missing | y_missing | (x == -1) | (y == -1)
        bad = (x_bad | y_bad) & ~missing
        lat, lon = project_to_wgs84(x, y, m.crs)
        return lat, lon, missing, bad
    raise ValueError(f"the mapping names no location columns: {m.describe()}")


def clean_place(values: pd.Series) -> np.ndarray:
    """Place texts as people read them: spaces collapsed, "" where missing (object array)."""
    text = values.astype(str).str.replace(r"\s+", " ", regex=True).str.strip()
    return text.where(~is_missing(text), "").to_numpy(dtype=object)


def outside_data_area(lat: np.ndarray, lon: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """True where a parsed coordinate is (0, 0), out of WGS84 range, or far outside the data's bulk.

    The bulk is the 1st-99th percentile box of the points (for small files the second-lowest and
    second-highest points), widened by max(20 km, 50 % of the box's size) on each side: wide
    enough for a city's outer neighbourhoods, narrow enough to drop geocoding errors hundreds of
    kilometres away.
    """
    lat = np.asarray(lat, dtype="float64")
    lon = np.asarray(lon, dtype="float64")
    usable = np.asarray(usable, dtype=bool)
    finite = np.isfinite(lat) & np.isfinite(lon)
    in_range = finite & (np.abs(lat) <= 90) & (np.abs(lon) <= 180) & ~((lat == 0) & (lon == 0))
    outside = usable & ~in_range
    pts = usable & in_range
    if pts.sum() == 0:
        return outside
    la, lo = lat[pts], lon[pts]
    lat_lo, lat_hi = np.percentile(la, 100 * BULK_QUANTILE, method="higher"), np.percentile(la, 100 * (1 - BULK_QUANTILE), method="lower")
    lon_lo, lon_hi = np.percentile(lo, 100 * BULK_QUANTILE, method="higher"), np.percentile(lo, 100 * (1 - BULK_QUANTILE), method="lower")
    mid_lat = float(np.median(la))
    m_per_deg_lat = 111_320.0
    m_per_deg_lon = max(1.0, 111_320.0 * np.cos(np.radians(mid_lat)))
    size_m = max((lat_hi - lat_lo) * m_per_deg_lat, (lon_hi - lon_lo) * m_per_deg_lon)
    margin_m = max(BULK_MARGIN_M, BULK_MARGIN_SHARE * size_m)
    far = (
        (lat < lat_lo - margin_m / m_per_deg_lat) | (lat > lat_hi + margin_m / m_per_deg_lat)
        | (lon < lon_lo - margin_m / m_per_deg_lon) | (lon > lon_hi + margin_m / m_per_deg_lon)
    )
    return outside | (pts & far)


def source_keys(df: pd.DataFrame, id_column: str | None) -> np.ndarray:
    """The source's id (stripped) per row; where there is none, the sha1 of the raw row's values."""
    keys = np.empty(len(df), dtype=object)
    need_hash = np.ones(len(df), dtype=bool)
    if id_column:
        ids = df[id_column].astype(str).str.strip()
        has_id = ~is_missing(ids)
        keys[has_id] = ids[has_id].to_numpy(dtype=object)
        need_hash = ~has_id
    if need_hash.any():
        keys[need_hash] = _row_hashes(df.loc[need_hash])
    return keys


def _row_hashes(df: pd.DataFrame) -> np.ndarray:
    """sha1 hex of each row's values joined by the unit separator: identical raw rows -> same key."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        arrays = [pa.array(df[c].astype(str).to_numpy(dtype=object), type=pa.large_string()) for c in df.columns]
        joined = pc.binary_join_element_wise(*arrays, pa.scalar("\x1f", pa.large_string()))
        rows = joined.to_numpy(zero_copy_only=False)
    except ImportError:  # pragma: no cover - pyarrow comes with streamlit
        cols = [df[c].astype(str) for c in df.columns]
        rows = (cols[0].str.cat(cols[1:], sep="\x1f") if len(cols) > 1 else cols[0]).to_numpy(dtype=object)
    return np.array([hashlib.sha1(v.encode("utf-8")).hexdigest() for v in rows], dtype=object)


def _all_rejected_message(df: pd.DataFrame, m: ColumnMapping, reason_code: np.ndarray, file_name: str) -> str:
    counts = pd.Series(reason_code).value_counts()
    parts = []
    for code, count in counts.items():
        reason = REJECT_REASONS[int(code) - 1]
        row = int(np.flatnonzero(reason_code == code)[0])
        cols = _reason_columns(reason, m)
        shown = ", ".join(f"{df.at[row, c]!r} in column {c!r}" for c in cols)
        parts.append(f"{reason} ({count}); e.g. row {row + 1}: {shown}")
    return (f"{file_name}: all {len(df)} rows rejected: " + "; ".join(parts)
            + f". Columns used: {m.describe()}.")


def _reason_columns(reason: str, m: ColumnMapping) -> list[str]:
    if reason == NEGATIVE_TEST:
        return [m.outcome]
    if reason in (MISSING_TIME, UNPARSEABLE_TIME):
        cols = [m.time] if m.time else [m.date, m.clock] if m.date else [m.year, m.month, m.day, m.hour]
    else:
        cols = [m.lat, m.lon] if m.lat else [m.location] if m.location else [m.x, m.y]
    return [c for c in cols if c]
