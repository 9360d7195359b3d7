"""Recognising open-data incident layouts: read any CSV export, find its time and location columns.

Cities publish the same kind of table under many names and encodings (Chicago `Date`/`Latitude`,
NYC `CRASH DATE`/`CRASH TIME`, Barcelona `Any;Mes_any;Dia_mes;Hora_dia` with UTM metres).
Columns are recognised by their names AND their content, never by the file's name, so an
unknown city's export works when it follows the usual conventions; when it does not, the
MappingError says which columns were found and which override (`--time-column`, ...) to pass.

`read_table` turns bytes into a table of stripped strings; `detect_mapping` returns a
`ColumnMapping`. The value parsers (`parse_datetime_column`, `parse_number_column`, ...) are
shared with `ingest.parse_incidents`, which turns a mapped table into accepted/rejected rows.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from safety_models.errors import MappingError
from safety_models.data.geo import plausible_share, project_to_wgs84
from safety_models.data.values import (_LOCATION_HINT, infer_datetime_format, is_missing, parse_clock_column, parse_location_column, parse_number_column)
from safety_models.data.vocabulary import (PLACE_NAMES, PLACE_TOKENS, SUBTYPE_TIERS, CLOCK_NAMES, CLOCK_TOKENS, DATETIME_BAD_TOKENS, DATETIME_GOOD_TOKENS, DAY_NAMES, HOUR_NAMES, ID_NAMES, ID_TOKENS, LAT_NAMES, LAT_TOKENS, LOCATION_NAMES, LOCATION_TOKENS, LON_NAMES, LON_TOKENS, MONTH_NAMES, OUTCOME_SUBSTRINGS, OUTCOME_VALUES, SUBTYPE_EXCLUDE_TOKENS, WEEKDAY_TOKENS, X_NAMES, X_TOKENS, YEAR_NAMES, Y_NAMES, Y_TOKENS, _name_rank, _tokens, normalise_name)



# How many values detection looks at per column (the head plus an even spread of the rest).
SAMPLE_SIZE = 4000
# Share of a sample's non-empty values that must parse for a column to count as time/coordinates.
MIN_PARSE_SHARE = 0.8
# Strings that mean "no value" in open-data exports.
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "-", "--", "?", "nat"})



@dataclass(frozen=True)
class ColumnMapping:
    """Which column of a file holds what; every field is a column name in the file, or None.

    Time comes from one of: `time` (full datetime or date only); `date` plus a time-of-day
    column `clock` (may be None: midnight); or `year`/`month`/`day` (+ optional `hour`).
    Location comes from one of: `lat`/`lon` (WGS84 degrees); `location` ("(lat, lon)" or WKT
    "POINT (lon lat)"); or projected `x`/`y` with `crs` (e.g. "EPSG:25831"). A file whose x/y
    (or lat/lon) columns hold each other's values is recorded by naming them the other way round.
    `outcome` is a test-result column (0/1, yes/no, positive/negative): negative rows are not events.
    `place` is a block, street or address text kept with each incident (names hot spots).
    As an override, an empty string for `subtype`, `source_id`, `outcome` or `place` means "none".
    """

    time: str | None = None
    date: str | None = None
    clock: str | None = None
    year: str | None = None
    month: str | None = None
    day: str | None = None
    hour: str | None = None
    lat: str | None = None
    lon: str | None = None
    location: str | None = None
    x: str | None = None
    y: str | None = None
    crs: str | None = None
    subtype: str | None = None
    source_id: str | None = None
    outcome: str | None = None
    place: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> ColumnMapping:
        """Build from a dict; unknown keys are ignored (older/newer saved mappings still load)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in names})

    def columns(self) -> list[str]:
        """The file columns this mapping uses (not the crs)."""
        return [v for k, v in self.to_dict().items() if v and k != "crs"]

    def describe(self) -> str:
        """One line for people, e.g. "time 'Date'; location 'Latitude'/'Longitude'; subtype 'Species'"."""
        parts = []
        if self.time:
            parts.append(f"time {self.time!r}")
        elif self.date:
            parts.append(f"date {self.date!r}" + (f" + time of day {self.clock!r}" if self.clock else ""))
        elif self.year:
            ymd = "/".join(repr(c) for c in (self.year, self.month, self.day, self.hour) if c)
            parts.append(f"time from year/month/day{'/hour' if self.hour else ''} {ymd}")
        if self.lat and self.lon:
            parts.append(f"latitude {self.lat!r}, longitude {self.lon!r}")
        elif self.location:
            parts.append(f"location {self.location!r}")
        elif self.x and self.y:
            parts.append(f"x (easting) {self.x!r}, y (northing) {self.y!r} in {self.crs or 'an unknown CRS'}")
        parts.append(f"subtype {self.subtype!r}" if self.subtype else "no subtype")
        parts.append(f"id {self.source_id!r}" if self.source_id else "no id column (rows hashed)")
        if self.outcome:
            parts.append(f"test outcome {self.outcome!r} (negatives skipped)")
        if self.place:
            parts.append(f"place {self.place!r}")
        return "; ".join(parts)



# ---------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------

def detect_mapping(df: pd.DataFrame, overrides: ColumnMapping | None = None) -> ColumnMapping:
    """Recognise the time, location, subtype, id and test-outcome columns of an incident table.

    Non-None fields of `overrides` win (an empty string for subtype/source_id/outcome means none).
    Raises MappingError (with `.columns_found`) when an override names a missing column, or when
    the time or the location cannot be decided; the message lists the columns and the options.
    """
    overrides = overrides or ColumnMapping()
    file_name = df.attrs.get("file_name", "the file")
    columns = [str(c) for c in df.columns]
    for field, value in overrides.to_dict().items():
        if field != "crs" and value and value not in columns:
            raise MappingError(
                f"{file_name}: the column {value!r} given for {field} is not in the file; "
                f"columns found: {_list_columns(columns)}", columns)
    crs = overrides.crs
    if crs:
        _check_crs(crs, file_name, columns)
    sample = df.iloc[_sample_index(len(df))]
    ctx = _Detector(sample, columns, file_name)

    time_fields = ctx.time_fields(overrides)
    loc_fields = ctx.location_fields(overrides, crs)
    subtype = overrides.subtype if overrides.subtype is not None else ctx.subtype(df)
    source_id = overrides.source_id if overrides.source_id is not None else ctx.source_id(df)
    outcome = overrides.outcome if overrides.outcome is not None else ctx.outcome()
    used = {v for v in (*time_fields.values(), *loc_fields.values(), subtype, source_id, outcome) if v}
    place = overrides.place if overrides.place is not None else ctx.place(used)
    return ColumnMapping(**time_fields, **loc_fields, subtype=subtype or None, source_id=source_id or None,
                         outcome=outcome or None, place=place or None)


def _sample_index(n: int) -> np.ndarray:
    if n <= SAMPLE_SIZE:
        return np.arange(n)
    return np.concatenate([np.arange(SAMPLE_SIZE // 2), np.linspace(SAMPLE_SIZE // 2, n - 1, SAMPLE_SIZE // 2).astype(int)])


def _list_columns(columns: list[str]) -> str:
    shown = ", ".join(repr(c) for c in columns[:40])
    return shown + (f" and {len(columns) - 40} more" if len(columns) > 40 else "")


def _check_crs(crs: str, file_name: str, columns: list[str]) -> None:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        CRS.from_user_input(crs)
    except CRSError as err:
        raise MappingError(f"{file_name}: {crs!r} is not a coordinate reference system pyproj knows "
                           f"(expected e.g. EPSG:25831): {err}", columns) from err


class _Detector:
    """Column recognition on a sample of the table (names first, content decides)."""

    def __init__(self, sample: pd.DataFrame, columns: list[str], file_name: str):
        self.sample = sample
        self.columns = columns
        self.file_name = file_name
        self._numbers: dict[str, tuple[np.ndarray, float, float]] = {}

    # -- content helpers --------------------------------------------------------------------
    def numbers(self, col: str) -> tuple[np.ndarray, float, float]:
        """(finite values, share of non-empty that parse, share of rows non-empty) for a sample column."""
        if col not in self._numbers:
            values, missing, _ = parse_number_column(self.sample[col])
            nonempty = (~missing).sum()
            finite = values[np.isfinite(values)]
            share = len(finite) / nonempty if nonempty else 0.0
            self._numbers[col] = (finite, share, nonempty / max(1, len(missing)))
        return self._numbers[col]

    def _first_values_match(self, col: str, pattern: re.Pattern, n: int = 20) -> bool:
        values = [v for v in self.sample[col].head(200).tolist() if v][:n]
        return bool(values) and sum(bool(pattern.search(v)) for v in values) >= 0.5 * len(values)

    def _ints_in(self, col: str, lo: int, hi: int) -> bool:
        values, share, filled = self.numbers(col)
        if share < MIN_PARSE_SHARE or filled < 0.5 or not len(values):
            return False
        ok = (values >= lo) & (values <= hi) & (values == np.round(values))
        return ok.mean() >= MIN_PARSE_SHARE

    def _degrees(self, col: str, limit: float) -> bool:
        """Mostly numbers within ±limit, and not all zero."""
        values, share, filled = self.numbers(col)
        if share < MIN_PARSE_SHARE or not len(values) or filled < 0.2:
            return False
        inside = (np.abs(values) <= limit).mean()
        return inside >= MIN_PARSE_SHARE and (values != 0).mean() >= 0.5

    def _ranked(self, exact, tokens=(), suffixes=(), exclude=()) -> list[str]:
        ranked = []
        for i, col in enumerate(self.columns):
            if exclude and set(_tokens(col)) & set(exclude):
                continue
            r = _name_rank(col, exact, tokens, suffixes)
            if r is not None:
                ranked.append((r, i, col))
        return [c for _, _, c in sorted(ranked)]

    # -- time ---------------------------------------------------------------------------------
    def time_fields(self, ov: ColumnMapping) -> dict:
        if ov.time:
            return {"time": ov.time}
        if ov.date:
            return {"date": ov.date, "clock": ov.clock or self._clock_column(exclude={ov.date})}
        if ov.year or ov.month or ov.day:
            found = self._ymd()
            fields = {k: getattr(ov, k) or found.get(k) for k in ("year", "month", "day", "hour")}
            if not all(fields[k] for k in ("year", "month", "day")):
                raise self._time_error("year, month and day columns are all needed")
            return fields
        candidates = []  # (has_time, name score, position, column, format)
        for i, col in enumerate(self.columns):
            name_score = self._datetime_name_score(col)
            # a column named like a date may hold more junk than an anonymous one
            fmt = infer_datetime_format(self.sample[col], 0.5 if name_score > 0 else MIN_PARSE_SHARE)
            if fmt is None:
                continue
            candidates.append((fmt.share_with_time > 0.02, name_score, -i, col, fmt))
        candidates.sort(reverse=True)
        timed = [c for c in candidates if c[0]]
        if timed:
            return {"time": timed[0][3]}
        dates = [c[3] for c in candidates]
        ymd = self._ymd()
        if dates:
            clock = self._clock_column(exclude=set(dates))
            if clock:
                return {"date": dates[0], "clock": clock}
        if ymd and ymd.get("hour"):
            return ymd
        if dates:
            return {"time": dates[0]}
        if ymd:
            return ymd
        if ov.clock:
            raise self._time_error(f"a time of day column ({ov.clock!r}) was given but no date column")
        raise self._time_error("no column holds dates")

    def _time_error(self, why: str) -> MappingError:
        if self._looks_like_area_table():
            why += "; " + self._why_no_location()
        return MappingError(
            f"{self.file_name}: could not find when the incidents happened ({why}). "
            f"Columns found: {_list_columns(self.columns)}. Pass --time-column NAME (a date or date-time column), "
            f"or --date-column with --clock-column, or --year-column/--month-column/--day-column[/--hour-column].",
            self.columns)

    @staticmethod
    def _datetime_name_score(col: str) -> int:
        toks = set(_tokens(col))
        score = 0
        for i, t in enumerate(DATETIME_GOOD_TOKENS):
            if t in toks:
                score = max(score, 100 - i)
        if toks & set(DATETIME_BAD_TOKENS):
            score -= 200
        return score

    def _clock_column(self, exclude: set[str]) -> str | None:
        for col in self._ranked(CLOCK_NAMES, CLOCK_TOKENS):
            if col in exclude:
                continue
            values = self.sample[col]
            _, missing, unparseable = parse_clock_column(values)
            nonempty = (~missing).sum()
            if nonempty and (~unparseable & ~missing).sum() / nonempty >= MIN_PARSE_SHARE:
                return col
        return None

    def _ymd(self) -> dict:
        found: dict[str, str] = {}
        used: set[str] = set()
        for role, names, lo, hi in (("month", MONTH_NAMES, 1, 12), ("year", YEAR_NAMES, 1800, 2200),
                                    ("day", DAY_NAMES, 1, 31), ("hour", HOUR_NAMES, 0, 24)):
            suffixes = tuple(n for n in names if len(n) >= 4)
            for col in self._ranked(names, names, suffixes, exclude=WEEKDAY_TOKENS):
                if col not in used and self._ints_in(col, lo, hi):
                    found[role] = col
                    used.add(col)
                    break
        if not all(k in found for k in ("year", "month", "day")):
            return {}
        return found

    # -- location -----------------------------------------------------------------------------
    def location_fields(self, ov: ColumnMapping, crs: str | None) -> dict:
        if ov.lat or ov.lon:
            lat = ov.lat or next((c for c in self._ranked(LAT_NAMES, LAT_TOKENS) if c != ov.lon), None)
            lon = ov.lon or next((c for c in self._ranked(LON_NAMES, LON_TOKENS) if c != ov.lat), None)
            if not (lat and lon):
                raise self._location_error("only one of --lat-column/--lon-column was given and the other was not found")
            return {"lat": lat, "lon": lon}
        if ov.location:
            return {"location": ov.location}
        if ov.x or ov.y:
            x = ov.x or next((c for c in self._ranked(X_NAMES, X_TOKENS) if c != ov.y), None)
            y = ov.y or next((c for c in self._ranked(Y_NAMES, Y_TOKENS) if c != ov.x), None)
            if not (x and y):
                raise self._location_error("only one of --x-column/--y-column was given and the other was not found")
            if not crs:
                raise self._projected_error(x, y)
            return {"x": x, "y": y, "crs": crs}
        pair = self._latlon_pair()
        if pair:
            return {"lat": pair[0], "lon": pair[1]}
        location = self._location_column()
        if location:
            return {"location": location}
        xy = self._xy_pair()
        if xy:
            x, y = xy
            if self._degrees(x, 180) and self._degrees(y, 90):
                # x/y columns holding degrees (e.g. X = longitude, Y = latitude exports)
                return {"lat": y, "lon": x}
            if not crs:
                raise self._projected_error(x, y)
            x, y = self._order_xy(x, y, crs)
            return {"x": x, "y": y, "crs": crs}
        raise self._location_error(self._why_no_location())

    def _latlon_pair(self) -> tuple[str, str] | None:
        lats = [c for c in self._ranked(LAT_NAMES, LAT_TOKENS) if self._degrees(c, 180)]
        lons = [c for c in self._ranked(LON_NAMES, LON_TOKENS) if self._degrees(c, 180)]
        for lat in lats:
            for lon in lons:
                if lat == lon:
                    continue
                lat_v, lon_v = self.numbers(lat)[0], self.numbers(lon)[0]
                lat_ok = (np.abs(lat_v) <= 90).mean() >= MIN_PARSE_SHARE
                lon_in_lat_range = (np.abs(lon_v) <= 90).mean() >= MIN_PARSE_SHARE
                if not lat_ok and lon_in_lat_range:
                    return lon, lat  # the columns hold each other's values
                if lat_ok:
                    return lat, lon
        return None

    def _location_column(self) -> str | None:
        named = self._ranked(LOCATION_NAMES, LOCATION_TOKENS)
        # unnamed columns are only looked at when their first values look like "(..., ...)" or POINT
        others = [c for c in self.columns if c not in named and self._first_values_match(c, _LOCATION_HINT)]
        for col in named + others:
            values = self.sample[col].head(500)
            lat, lon, missing, unparseable = parse_location_column(values)
            nonempty = (~missing).sum()
            ok = ~missing & ~unparseable & (np.abs(np.nan_to_num(lat, nan=999)) <= 90) & (np.abs(np.nan_to_num(lon, nan=999)) <= 180)
            min_share = 0.5 if col in named else MIN_PARSE_SHARE
            if nonempty and ok.sum() / nonempty >= min_share and ok.sum() >= 1:
                return col
        return None

    def _xy_pair(self) -> tuple[str, str] | None:
        xs = [c for c in self._ranked(X_NAMES, X_TOKENS) if self.numbers(c)[1] >= MIN_PARSE_SHARE and self.numbers(c)[2] >= 0.2]
        ys = [c for c in self._ranked(Y_NAMES, Y_TOKENS) if self.numbers(c)[1] >= MIN_PARSE_SHARE and self.numbers(c)[2] >= 0.2]
        for x in xs:
            for y in ys:
                if x != y:
                    return x, y
        return None

    def _order_xy(self, x: str, y: str, crs: str) -> tuple[str, str]:
        """Keep x/y as named unless the other order puts clearly more points in one plausible city."""
        xv, _, _ = parse_number_column(self.sample[x])
        yv, _, _ = parse_number_column(self.sample[y])
        as_named = plausible_share(*project_to_wgs84(xv, yv, crs), crs)
        swapped = plausible_share(*project_to_wgs84(yv, xv, crs), crs)
        return (y, x) if swapped > as_named + 0.1 else (x, y)

    def _projected_error(self, x: str, y: str) -> MappingError:
        xv, yv = self.numbers(x)[0], self.numbers(y)[0]
        hint = ""
        if len(xv) and len(yv):
            mx, my = float(np.median(xv)), float(np.median(yv))
            hint = f" (typical values {x}={mx:,.0f}, {y}={my:,.0f}"
            utm = "UTM metres, e.g. EPSG:326NN for WGS84 UTM zone NN, EPSG:258NN for ETRS89, EPSG:230NN for ED50"
            state_plane = ("US State Plane feet, e.g. EPSG:2263 New York Long Island, EPSG:3435 Illinois "
                           "East, EPSG:2278 Texas South Central, EPSG:2913 Oregon North")
            if 100_000 <= mx <= 1_000_000 and 1_000_000 <= my <= 10_000_000:
                # UTM: easting below 1,000 km, northing above; some State Plane zones too
                # (Massachusetts Mainland feet: x 775,000, y 2,950,000)
                hint += f"; they look like {utm}, or {state_plane}"
            elif 100_000 <= my <= 1_000_000 and 1_000_000 <= mx <= 10_000_000:
                hint += f"; they look like {state_plane}, or {utm} with x and y swapped"
            elif max(mx, my) >= 100_000:
                # State Plane eastings and northings run from hundreds of thousands of feet
                # (New York's northing) to over ten million (Texas South Central's)
                hint += f"; they may be {state_plane}, or another national grid"
            hint += ")"
        return MappingError(
            f"{self.file_name}: the columns {x!r} and {y!r} look like projected x/y coordinates{hint}, and no "
            f"usable latitude/longitude columns were found. Say which coordinate system they are in with "
            f"--crs EPSG:NNNN. Columns found: {_list_columns(self.columns)}.", self.columns)

    def _why_no_location(self) -> str:
        if self._looks_like_area_table():
            return ("it looks like a table of values per area (one column per area or mostly numeric columns, "
                    "e.g. rates by ZIP code), not one row per incident; the product needs one row per incident "
                    "with its own time and location")
        return "no latitude/longitude, location or x/y columns with coordinates"

    def _looks_like_area_table(self) -> bool:
        if len(self.columns) < 10:
            return False
        prefixes: dict[str, int] = {}
        for col in self.columns:
            m = re.match(r"^(.*?)[_ ]?\d+$", normalise_name(col))
            if m:
                prefixes[m.group(1)] = prefixes.get(m.group(1), 0) + 1
        if prefixes and max(prefixes.values()) >= 0.5 * len(self.columns):
            return True
        numeric = sum(self.numbers(c)[1] >= MIN_PARSE_SHARE for c in self.columns)
        return numeric >= 0.8 * len(self.columns)

    def _location_error(self, why: str) -> MappingError:
        return MappingError(
            f"{self.file_name}: could not find where the incidents happened: {why}. "
            f"Columns found: {_list_columns(self.columns)}. Pass --lat-column/--lon-column (WGS84 degrees), "
            f"--location-column (\"(lat, lon)\" or \"POINT (lon lat)\"), or --x-column/--y-column with --crs EPSG:NNNN.",
            self.columns)

    # -- subtype, id, outcome ----------------------------------------------------------------
    def subtype(self, df: pd.DataFrame) -> str | None:
        best = None
        for tier, names in enumerate(SUBTYPE_TIERS):
            for col in self._ranked(names, names):
                if tier == len(SUBTYPE_TIERS) - 1 and set(_tokens(col)) & set(SUBTYPE_EXCLUDE_TOKENS):
                    continue
                values = self.sample[col]
                nonempty = values[~is_missing(values)]
                if len(nonempty) < 0.2 * len(values) or nonempty.empty:
                    continue
                distinct = nonempty.nunique()
                if distinct > min(1000, max(50, 0.2 * len(nonempty))):
                    continue  # free text or an identifier, not a category
                if self.numbers(col)[1] >= 0.99 and distinct > 50:
                    continue  # a measurement, not a category
                best = col
                break
            if best:
                return best
        return None

    def source_id(self, df: pd.DataFrame) -> str | None:
        n = len(df)
        for col in self._ranked(ID_NAMES, ID_TOKENS):
            values = df[col]
            filled = (values != "").sum()
            if filled < 0.95 * n:
                continue
            # Nearly unique: 95 %, or one repeat in a file of under 20 rows (an id column
            # must be recognised in a small file too: its repeats are the duplicates).
            repeats = filled - values[values != ""].nunique()
            if repeats <= max(1.0, 0.05 * filled):
                return col
        return None

    def place(self, used: set[str]) -> str | None:
        """A block/street/address text column (by name), mostly filled, mostly not numbers;
        None when there is none. Columns the mapping already uses are skipped."""
        for col in self._ranked(PLACE_NAMES, PLACE_TOKENS):
            if col in used:
                continue
            values = self.sample[col]
            nonempty = values[~is_missing(values)]
            if len(nonempty) < 0.5 * len(values) or nonempty.empty:
                continue
            if self.numbers(col)[1] >= 0.5:
                continue  # a house number or a code, not a place people read
            if nonempty.astype(str).str.contains(r"[^\W\d_]", regex=True).mean() < 0.5:
                continue  # "9600-9699": a block's numbers without its street (Houston's "block")
            return col
        return None

    def outcome(self) -> str | None:
        for col in self.columns:
            norm = normalise_name(col)
            if not any(s in norm for s in OUTCOME_SUBSTRINGS):
                continue
            values = self.sample[col]
            values = values[~is_missing(values)].str.lower()
            if len(values) and values.isin(list(OUTCOME_VALUES)).all():
                return col
        return None
