"""File -> accepted incidents + rejected rows with reasons -> store. No database code here.

`read_incident_file` = `reading.read_rows` + `parse_rows` (`columns.detect_mapping` +
`parse_incidents`); `ingest_bytes` / `ingest_path` hand the result to `store.add_upload`,
which deduplicates and keeps the original file (ingest_path lets go of the file's bytes
once they are rows, and the store copies the file from disk, checking it is unchanged). Every row of the file is accepted or rejected: a rejected row keeps
the file's own columns plus `row_number` (lines below the header: the 1-based data row when
no value holds a line break) and one `reason` (the first that applies, in the order of
REJECT_REASONS). Accepted incidents have INCIDENT_COLUMNS, plus `place` (block/street/address
text) when the mapping names a place column.
"""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from safety_models.errors import FileUnusable, MappingError
from safety_models.schema import INCIDENT_COLUMNS, check_category
from safety_models.data.vocabulary import OUTCOME_VALUES
from safety_models.data.columns import ColumnMapping, detect_mapping
from safety_models.data.values import (is_missing, parse_clock_column, parse_datetime_column, parse_location_column, parse_number_column)
from safety_models.data.geo import project_to_wgs84
from safety_models.data.reading import (UNBALANCED_QUOTE, WRONG_FIELD_COUNT, RowsRead, read_rows,
                                        read_table)

__all__ = [
    "ColumnMapping", "EARLIEST_TIME", "ParsedFile", "REJECT_REASONS", "detect_mapping", "ingest_bytes",
    "ingest_path", "parse_incidents", "parse_rows", "read_incident_file", "read_table",
]

NEGATIVE_TEST = "negative test result"
OTHER_TYPE = "not one of the incident types asked for"
MISSING_TIME = "missing time"
UNPARSEABLE_TIME = "unparseable time"
OUTSIDE_TIME = "time outside the plausible range"
MISSING_COORDS = "missing coordinates"
UNPARSEABLE_COORDS = "unparseable coordinates"
OUTSIDE_AREA = "coordinates outside the data's area"
# Reject reasons in the order they are checked; a row gets the first that applies. The first
# two are lines the reader could not split into the header's columns (reading.py).
REJECT_REASONS: tuple[str, ...] = (
    UNBALANCED_QUOTE, WRONG_FIELD_COUNT, NEGATIVE_TEST, OTHER_TYPE, MISSING_TIME, UNPARSEABLE_TIME,
    OUTSIDE_TIME, MISSING_COORDS, UNPARSEABLE_COORDS, OUTSIDE_AREA,
)

# Plausible incident times: from EARLIEST_TIME (1900-01-01 is a common "no date" value; no
# city's open data starts before 1970) to the upload time plus LATEST_SLACK (the file's clock
# is the city's local one, the upload time this machine's: they may differ by a day).
EARLIEST_TIME = pd.Timestamp("1970-01-01")
LATEST_SLACK = pd.Timedelta(days=1)

# The bulk of the data: the 1st-99th percentile box, widened by max(20 km, half its size).
BULK_QUANTILE = 0.01
BULK_MARGIN_M = 20_000.0
BULK_MARGIN_SHARE = 0.5
# And, whatever the file's size, a circle around the median point: radius max(100 km, 6 x the
# median distance to it). 100 km: a file's median point may lie at one end of a city (a
# day of spraying in one neighbourhood), and the largest cities are 70-100 km across. The
# median and the median distance ignore up to half the points, so a few rows geocoded to
# another city cannot widen it (the box above reads the 2nd lowest/highest value in a file
# of under 200 rows, which three identical rows defeat).
AREA_MIN_RADIUS_KM = 100.0
AREA_RADIUS_PER_MEDIAN_DISTANCE = 6.0


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
                       overrides: ColumnMapping | None = None, *,
                       earliest: pd.Timestamp | str | None = None,
                       latest: pd.Timestamp | str | None = None,
                       only_types: Sequence[str] | None = None) -> ParsedFile:
    """Bytes of a CSV export -> ParsedFile. Raises FileUnusable / MappingError naming the file.

    earliest / latest bound the plausible incident times (default EARLIEST_TIME, and now plus
    LATEST_SLACK); rows outside are rejected as OUTSIDE_TIME. only_types: keep only rows of
    these incident types (parse_incidents).
    """
    check_category(category)
    return parse_rows(read_rows(data, file_name), file_name, category, overrides,
                      earliest=earliest, latest=latest, only_types=only_types)


def parse_rows(rows: RowsRead, file_name: str, category: str,
               overrides: ColumnMapping | None = None, *,
               earliest: pd.Timestamp | str | None = None,
               latest: pd.Timestamp | str | None = None,
               only_types: Sequence[str] | None = None) -> ParsedFile:
    """The rows a reader made of a file (reading.read_rows) -> ParsedFile: read_incident_file
    after the reading (a caller can then drop the file's bytes before the parsing). Consumes
    rows: the columns of times and places are taken out of rows.frame once parsed."""
    df = rows.frame
    # Columns are recognised on the lines that could be read (all of them if none could).
    readable = df.drop(index=list(rows.unreadable)) if rows.unreadable else df
    if readable.empty:
        readable = df
    readable.attrs = dict(df.attrs)
    mapping = detect_mapping(readable, overrides)
    return parse_incidents(df, mapping, category, file_name, row_numbers=rows.row_numbers,
                           unreadable=rows.unreadable, earliest=earliest, latest=latest,
                           only_types=only_types, release_columns=True)


def ingest_bytes(store, data: bytes, file_name: str, category: str,
                 overrides: ColumnMapping | None = None, *,
                 earliest: pd.Timestamp | str | None = None,
                 only_types: Sequence[str] | None = None):
    """Parse a file and add it to the store; returns the store's UploadSummary.

    The same bytes stored before for the category are not parsed again: the summary says
    what this call added (nothing) and which upload holds them (store.find_upload)."""
    earlier = store.find_upload(data, category, file_name=file_name)
    if earlier is not None:
        return _same_types_as(store, earlier, only_types)
    _check_types_match_the_category(store, category, only_types, file_name)
    parsed = read_incident_file(data, file_name, category, overrides, earliest=earliest,
                                only_types=only_types)
    return store.add_upload(
        file_name=file_name, data=data, category=category, accepted=parsed.accepted,
        rejected=parsed.rejected, rows_read=parsed.rows_read,
        mapping=_stored_mapping(parsed.mapping, only_types),
    )


def ingest_path(store, path: str | Path, category: str, overrides: ColumnMapping | None = None, *,
                earliest: pd.Timestamp | str | None = None,
                only_types: Sequence[str] | None = None):
    """ingest_bytes on a file on disk (the file's name is kept, not its folder).

    The file's bytes are dropped once read into rows: the stored copy is made from the file
    itself, and refused (nothing stored) when the file changed meanwhile. At ten million
    rows this keeps an 830 MB file out of memory while it is parsed and stored."""
    path = Path(path)
    check_category(category)
    data = read_file_bytes(path)
    earlier = store.find_upload(data, category, file_name=path.name)
    if earlier is not None:
        return _same_types_as(store, earlier, only_types)
    _check_types_match_the_category(store, category, only_types, path.name)
    checksum = hashlib.sha256(data).hexdigest()
    rows = read_rows(data, path.name)
    del data
    parsed = parse_rows(rows, path.name, category, overrides, earliest=earliest,
                        only_types=only_types)
    del rows
    return store.add_upload(
        file_name=path.name, data=path, checksum=checksum, category=category,
        accepted=parsed.accepted, rejected=parsed.rejected, rows_read=parsed.rows_read,
        mapping=_stored_mapping(parsed.mapping, only_types),
    )


def read_file_bytes(path: Path) -> bytes:
    """The bytes of a file to load; FileUnusable saying what to do when it cannot be read."""
    try:
        if not path.is_file() and path.exists():
            raise FileUnusable(f"{path}: is not a regular file (a folder, device or pipe); "
                               "give the path of a CSV file")
        return path.read_bytes()
    except FileUnusable:
        raise
    except OSError as err:
        why = err.strerror or str(err)
        if err.errno == errno.ELOOP:
            hint = ("it is a symbolic link that leads back to itself; point the link at the "
                    "real file, or give the file's own path")
        elif isinstance(err, FileNotFoundError):
            hint = "check the path (a symbolic link may point to a file that is gone)"
        elif isinstance(err, PermissionError):
            hint = "give this user read permission on the file, or copy it somewhere readable"
        else:
            hint = "check the path and that the file can be read"
        raise FileUnusable(f"{path}: cannot be read ({why}): {hint}") from err


def parse_incidents(df: pd.DataFrame, mapping: ColumnMapping, category: str, file_name: str, *,
                    row_numbers: np.ndarray | None = None, unreadable: dict[int, str] | None = None,
                    earliest: pd.Timestamp | str | None = None,
                    latest: pd.Timestamp | str | None = None,
                    only_types: Sequence[str] | None = None,
                    release_columns: bool = False) -> ParsedFile:
    """A table of strings + its mapping -> accepted incidents and rejected rows (vectorised).

    row_numbers (rows,): each row's number in the file (default 1..n); unreadable: row
    position -> reason for rows the reader could not split (reading.RowsRead). Times before
    earliest (default EARLIEST_TIME) or after latest (default now + LATEST_SLACK) are
    rejected. only_types: incident types to keep (the type column's values, compared without
    case or surrounding spaces); the file's other rows are rejected as OTHER_TYPE, so every
    row is still accounted for. MappingError when the file has no type column, FileUnusable
    when no row has one of the types (naming the file's most common ones). Raises
    FileUnusable when every row is rejected, naming the top reasons with an example row. release_columns: the caller hands df over; the columns of times,
    coordinates and outcome are deleted from it once parsed and the rejected rows copied
    (at ten million rows they were 600 MB kept to the end for nothing).
    """
    check_category(category)
    if not (release_columns and isinstance(df.index, pd.RangeIndex) and df.index.start == 0
            and df.index.step == 1):
        df = df.reset_index(drop=True)
    n = len(df)
    reason_code = np.zeros(n, dtype=np.int8)  # 0 = accepted, i + 1 = REJECT_REASONS[i]
    row_numbers = (np.arange(1, n + 1, dtype="int64") if row_numbers is None
                   else np.asarray(row_numbers, dtype="int64"))

    def reject(mask: np.ndarray, reason: str) -> None:
        reason_code[(reason_code == 0) & np.asarray(mask, dtype=bool)] = REJECT_REASONS.index(reason) + 1

    for position, reason in (unreadable or {}).items():
        reason_code[position] = REJECT_REASONS.index(reason) + 1

    if mapping.outcome:
        values = df[mapping.outcome].astype(str).str.lower()
        negatives = [k for k, v in OUTCOME_VALUES.items() if not v]
        reject(values.isin(negatives).to_numpy(), NEGATIVE_TEST)

    if _type_choice(only_types):
        reject(~_of_types(df, mapping, only_types, file_name), OTHER_TYPE)

    occurred, time_missing, time_bad = _parse_time(df, mapping, file_name)
    reject(time_missing, MISSING_TIME)
    reject(time_bad, UNPARSEABLE_TIME)
    reject(outside_plausible_time(occurred, earliest, latest), OUTSIDE_TIME)

    lat, lon, loc_missing, loc_bad = _parse_location(df, mapping)
    reject(loc_missing, MISSING_COORDS)
    reject(loc_bad, UNPARSEABLE_COORDS)
    reject(outside_data_area(lat, lon, ~loc_missing & ~loc_bad), OUTSIDE_AREA)

    ok = reason_code == 0
    if not ok.any():
        raise FileUnusable(_all_rejected_message(df, mapping, reason_code, file_name, row_numbers))

    rejected = df.loc[~ok].copy()
    rejected["row_number"] = row_numbers[~ok]
    rejected["reason"] = np.asarray(REJECT_REASONS, dtype=object)[reason_code[~ok] - 1]
    rejected["reason"] = rejected["reason"].astype(str)

    # Every column built once, in its final type: at ten million rows each needless copy
    # (a filter that keeps every row, a column of Python objects turned to strings) was
    # hundreds of megabytes at the load's peak.
    every = bool(ok.all())

    def kept(values):
        return values if every else values[ok]

    keys = kept(source_keys(df, mapping.source_id))    # (a row's hash reads all its values)
    if release_columns:
        parsed = {c for reason in REJECT_REASONS for c in _reason_columns(reason, mapping)}
        for column in parsed - {mapping.subtype, mapping.place}:
            if column in df.columns:
                del df[column]
    if mapping.subtype:
        subtype = df[mapping.subtype].astype(str).str.strip()
    else:
        subtype = pd.Series("", index=df.index, dtype=str)
    accepted = pd.DataFrame({
        "source_key": keys,
        "category": _repeated(category, int(ok.sum())),
        "subtype": kept(pd.array(subtype.array, dtype="str")),
        "occurred_at": kept(occurred.to_numpy(dtype="datetime64[ns]")),
        "latitude": kept(lat),
        "longitude": kept(lon),
    }, columns=list(INCIDENT_COLUMNS), copy=False)
    del keys, subtype
    if mapping.place:
        accepted["place"] = kept(clean_place(df[mapping.place]))
    return ParsedFile(file_name=file_name, mapping=mapping, accepted=accepted.reset_index(drop=True),
                      rejected=rejected.reset_index(drop=True), rows_read=n)


def _repeated(text: str, n: int) -> pd.api.extensions.ExtensionArray:
    """A pandas "str" array of n copies of text (built in Arrow, not as n Python objects)."""
    try:
        import pyarrow as pa

        return pd.array(pa.array([text], type=pa.large_string()).take(np.zeros(n, dtype=np.int64)),
                        dtype="str")
    except ImportError:  # pragma: no cover - pyarrow comes with streamlit
        return pd.array([text] * n, dtype="str")


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


def clean_place(values: pd.Series) -> pd.api.extensions.ExtensionArray:
    """Place texts as people read them: spaces collapsed, "" where missing (a pandas "str"
    array: Arrow-backed, where an object array of ten million strings took gigabytes)."""
    text = values.astype(str)
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        # In Arrow (RE2), not pandas: a regex replace there goes through one Python string
        # per value (gigabytes at ten million rows). The class is exactly what Python's
        # str.isspace() calls whitespace, so the result equals the pandas one.
        collapsed = pc.utf8_trim_whitespace(pc.replace_substring_regex(
            pa.array(text.array), _WHITESPACE_RUN, " "))
        text = pd.Series(pd.array(collapsed, dtype="str"), index=values.index)
    except ImportError:  # pragma: no cover - pyarrow comes with streamlit
        text = text.str.replace(r"\s+", " ", regex=True).str.strip()
    return text.where(~is_missing(text), "").array


# Every character Python's str.isspace() accepts, in RE2's syntax.
_WHITESPACE_RUN = r"[\t\n\x{0b}\f\r \x{1c}-\x{1f}\x{85}\p{Z}]+"


def outside_plausible_time(occurred: pd.Series, earliest=None, latest=None) -> np.ndarray:
    """True where a parsed time is before earliest (default EARLIEST_TIME) or after latest
    (default: now + LATEST_SLACK); False where the time is missing (NaT)."""
    earliest = EARLIEST_TIME if earliest is None else pd.Timestamp(earliest)
    latest = (pd.Timestamp(datetime.now()) + LATEST_SLACK) if latest is None else pd.Timestamp(latest)
    values = pd.to_datetime(pd.Series(occurred)).to_numpy(dtype="datetime64[ns]")
    known = ~np.isnat(values)
    outside = np.zeros(len(values), dtype=bool)
    outside[known] = ((values[known] < earliest.to_datetime64())
                      | (values[known] > latest.to_datetime64()))
    return outside


def outside_data_area(lat: np.ndarray, lon: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """True where a parsed coordinate is (0, 0), out of WGS84 range, or far outside the data's bulk.

    Far means either outside the 1st-99th percentile box of the points widened by max(20 km,
    50 % of the box's size) on each side, or farther from the median point than
    max(AREA_MIN_RADIUS_KM, AREA_RADIUS_PER_MEDIAN_DISTANCE x the median distance to it):
    wide enough for a city's outer neighbourhoods, narrow enough to drop geocoding errors
    hundreds of kilometres away, in a file of five rows as in one of a million.
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
    far |= _far_from_median(lat, lon, pts)
    return outside | (pts & far)


def _far_from_median(lat: np.ndarray, lon: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """True where a point of `pts` lies beyond the robust radius around the median point."""
    center_lat, center_lon = float(np.median(lat[pts])), float(np.median(lon[pts]))
    # Flat-earth km (within 1 % of the great circle over a city; far points stay far).
    km_per_deg_lon = 111.32 * max(0.01, np.cos(np.radians(center_lat)))
    distance = np.full(len(lat), np.nan)
    distance[pts] = np.hypot((lat[pts] - center_lat) * 110.57,
                             (lon[pts] - center_lon) * km_per_deg_lon)
    radius = max(AREA_MIN_RADIUS_KM, AREA_RADIUS_PER_MEDIAN_DISTANCE * float(np.median(distance[pts])))
    return pts & (distance > radius)


def source_keys(df: pd.DataFrame, id_column: str | None) -> pd.api.extensions.ExtensionArray:
    """The source's id (stripped) per row; where there is none, the sha1 of the raw row's values,
    numbered by occurrence: the 2nd, 3rd ... identical row of the file gets "<sha1>#2",
    "<sha1>#3" ... (two calls at one address on one day are two events), so a file loaded again
    adds nothing and one that repeats a stored row three times adds two. A pandas "str"
    array (Arrow-backed: ten million Python strings took gigabytes); when every row has an
    id, the ids' own array, without a copy per value."""
    need_hash = np.ones(len(df), dtype=bool)
    ids = None
    if id_column:
        ids = df[id_column].astype(str).str.strip()
        need_hash = np.asarray(is_missing(ids), dtype=bool)
        if not need_hash.any():
            return ids.array
    keys = np.empty(len(df), dtype=object)
    if ids is not None:
        keys[~need_hash] = ids[~need_hash].to_numpy(dtype=object)
    keys[need_hash] = _numbered(_row_hashes(df.loc[need_hash]))
    return pd.array(keys, dtype="str")


def _numbered(hashes: np.ndarray) -> np.ndarray:
    """hash, hash#2, hash#3 ... for the 1st, 2nd, 3rd ... occurrence (the 1st keeps the bare
    hash: the key stores made before occurrences were numbered)."""
    occurrence = pd.Series(hashes).groupby(hashes, sort=False).cumcount().to_numpy() + 1
    out = hashes.astype(object).copy()
    repeat = occurrence > 1
    if repeat.any():
        out[repeat] = [f"{h}#{k}" for h, k in zip(hashes[repeat], occurrence[repeat])]
    return out


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


def _all_rejected_message(df: pd.DataFrame, m: ColumnMapping, reason_code: np.ndarray, file_name: str,
                          row_numbers: np.ndarray) -> str:
    counts = pd.Series(reason_code).value_counts()
    parts = []
    for code, count in counts.items():
        reason = REJECT_REASONS[int(code) - 1]
        row = int(np.flatnonzero(reason_code == code)[0])
        cols = _reason_columns(reason, m) or list(df.columns[:6])
        shown = ", ".join(f"{_short(df.at[row, c])!r} in column {_short(c)!r}" for c in cols)
        parts.append(f"{reason} ({count}); e.g. row {row_numbers[row]}: {shown}")
    return (f"{file_name}: all {len(df)} rows rejected: " + "; ".join(parts)
            + f". Columns used: {m.describe()}.")


def _short(value, n: int = 60) -> str:
    text = str(value)
    return text if len(text) <= n else text[:n - 3] + "..."


def _type_choice(only_types: Sequence[str] | None) -> list[str]:
    """only_types as compared and stored: stripped, case-folded, sorted, without blanks."""
    return sorted({str(t).strip().casefold() for t in (only_types or ()) if str(t).strip()})


def _stored_mapping(mapping: ColumnMapping, only_types: Sequence[str] | None) -> dict:
    """What an upload records of how it was parsed: the mapping, and the types it kept."""
    choice = _type_choice(only_types)
    return {**mapping.to_dict(), **({"only_types": choice} if choice else {})}


def _same_types_as(store, earlier, only_types: Sequence[str] | None):
    """The earlier upload of the same bytes (nothing to add) when it kept the same incident
    types; FileUnusable saying how to load the other choice when it did not (loading the same
    file again must not look done while holding other incidents than asked for)."""
    had = store.upload_mapping(earlier.upload_id).get("only_types") or []
    want = _type_choice(only_types)
    if had == want:
        return earlier
    raise FileUnusable(
        f"{earlier.file_name} is already loaded as upload #{earlier.upload_id}, keeping "
        f"{_types_said(had)}; this load asked for {_types_said(want)}, so nothing was added. To "
        f"load it that way, remove the upload first (the Data page's Uploads tab, or python -m "
        f"safety_models remove-upload {earlier.upload_id}), or load it into another home "
        f"(SAFETY_MODELS_HOME) to keep both maps.")


def _check_types_match_the_category(store, category: str, only_types: Sequence[str] | None,
                                    file_name: str) -> None:
    """FileUnusable when the category's own uploads (not the demo's) kept another choice of
    incident types: a burglary file added to a map of every crime, or the reverse, would make
    one map of neither without anyone noticing."""
    from safety_models.data.store import own_uploads     # parsing alone needs no database

    own = own_uploads(store.list_uploads(), category)
    want = _type_choice(only_types)
    other = own[[list(kept) != want for kept in own["only_types"]]]
    if other.empty:
        return
    first = other.iloc[0]
    raise FileUnusable(
        f"{file_name}: the {category} map is made from uploads that keep "
        f"{_types_said(list(first['only_types']))} (upload #{int(first['upload_id'])}, "
        f"{first['file_name']}), and this load asks for {_types_said(want)}: one map would mix "
        f"them. Load it with the same choice of types, remove those uploads first, or load it "
        f"into another home (SAFETY_MODELS_HOME) for a map of its own.")


def _types_said(types: list[str]) -> str:
    return "only the types " + ", ".join(map(repr, types)) if types else "every incident type"


def _of_types(df: pd.DataFrame, mapping: ColumnMapping, only_types: Sequence[str],
              file_name: str) -> np.ndarray:
    """(rows,) True where the row's type is one of only_types (no case, no surrounding spaces)."""
    wanted = set(_type_choice(only_types))
    if not mapping.subtype:
        raise MappingError(f"{file_name}: only the types {', '.join(sorted(wanted))} were asked for, "
                           "but no column of incident types was recognised; name it with "
                           f"--type-column. Columns found: {', '.join(map(repr, df.columns))}.",
                           list(df.columns))
    values = df[mapping.subtype].astype(str).str.strip()
    keep = values.str.casefold().isin(wanted).to_numpy()
    if not keep.any():
        common = values.value_counts().head(8)
        raise FileUnusable(
            f"{file_name}: no row has the type {' or '.join(sorted(map(repr, wanted)))} in the column "
            f"{mapping.subtype!r}; its most common types are "
            + ", ".join(f"{t!r} ({n:,} rows)" for t, n in common.items())
            + ". Check the spelling, or name another column with --type-column.")
    return keep


def _reason_columns(reason: str, m: ColumnMapping) -> list[str]:
    if reason in (UNBALANCED_QUOTE, WRONG_FIELD_COUNT):
        return []
    if reason == NEGATIVE_TEST:
        return [m.outcome]
    if reason == OTHER_TYPE:
        return [m.subtype]
    if reason in (MISSING_TIME, UNPARSEABLE_TIME, OUTSIDE_TIME):
        cols = [m.time] if m.time else [m.date, m.clock] if m.date else [m.year, m.month, m.day, m.hour]
    else:
        cols = [m.lat, m.lon] if m.lat else [m.location] if m.location else [m.x, m.y]
    return [c for c in cols if c]
