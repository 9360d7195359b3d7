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

import codecs
import csv
import dataclasses
import gzip
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass

import numpy as np
import pandas as pd

from safety_models.errors import FileUnusable, MappingError

try:  # pyarrow (a streamlit dependency) parses dates and numbers ~40x faster than strptime
    import pyarrow as pa
    import pyarrow.compute as pc
except ImportError:  # pragma: no cover
    pa = pc = None

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
    As an override, an empty string for `subtype`, `source_id` or `outcome` means "none".
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
        return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# Reading bytes into a table of strings
# ---------------------------------------------------------------------------------------------

SEPARATORS = (",", ";", "\t", "|")


def read_table(data: bytes, file_name: str) -> pd.DataFrame:
    """Bytes of a delimited text file -> DataFrame of stripped strings ("" for empty).

    Handles gzip (and single-file zip) compression, UTF-8 with or without BOM, UTF-16 with BOM,
    Latin-1/cp1252, the separators , ; tab |, quoted fields and CR/CRLF/LF line ends.
    Decimal commas are left in the strings; the number parser understands them.
    Raises FileUnusable (naming the file) when it is empty, binary or has no data rows.
    `df.attrs["file_name"]` is set so that later messages can name the file.
    """
    data = _decompress(data, file_name)
    if not data.strip():
        raise FileUnusable(f"{file_name}: the file is empty")
    text_sample, encoding = _decode_sample(data, file_name)
    sep = sniff_separator(text_sample)
    if encoding == "utf-8-sig":
        data, encoding = (data[3:] if data.startswith(codecs.BOM_UTF8) else data), "utf-8"
    df = None
    if pa is not None:
        # Arrow's reader is ~5x faster; anything unusual (ragged rows, line breaks inside
        # quotes, duplicate names) goes to pandas' own parser, which says what is wrong.
        try:
            df = pd.read_csv(io.BytesIO(data), sep=sep, encoding=encoding, dtype=str,
                             keep_default_na=False, quotechar='"', engine="pyarrow")
            if df.columns.duplicated().any():
                df = None
        except Exception:  # noqa: BLE001 - any failure just means "use the C parser"
            df = None
    if df is None:
        try:
            df = pd.read_csv(
                io.BytesIO(data), sep=sep, encoding=encoding, dtype=str, keep_default_na=False,
                na_filter=False, skip_blank_lines=True, quotechar='"',
            )
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
            raise FileUnusable(f"{file_name}: could not be read as a {_sep_name(sep)}-separated table: {err}") from err
    df.columns = [str(c).strip().lstrip("\ufeff") for c in df.columns]
    if df.empty:
        raise FileUnusable(
            f"{file_name}: has a header ({', '.join(map(str, df.columns[:12]))}) but no data rows"
        )
    for col in df.columns:
        df[col] = df[col].astype(str).str.strip()
    df.attrs["file_name"] = file_name
    df.attrs["encoding"] = encoding
    df.attrs["separator"] = sep
    return df


def _decompress(data: bytes, file_name: str) -> bytes:
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise FileUnusable(f"{file_name}: looks gzip-compressed but could not be decompressed ({err})") from err
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                members = [n for n in zf.namelist() if not n.endswith("/")]
                if len(members) != 1:
                    raise FileUnusable(f"{file_name}: a zip archive must hold exactly one table, it holds {len(members)}")
                return zf.read(members[0])
        except zipfile.BadZipFile as err:
            raise FileUnusable(f"{file_name}: looks like a zip archive but could not be opened ({err})") from err
    return data


def _decode_sample(data: bytes, file_name: str) -> tuple[str, str]:
    """Pick the encoding; return (first ~64 KB of text, encoding name for pandas)."""
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        try:
            return data[:65536].decode("utf-16", errors="ignore"), "utf-16"
        except UnicodeDecodeError as err:  # pragma: no cover - errors="ignore"
            raise FileUnusable(f"{file_name}: not readable as UTF-16 text") from err
    head = data[:65536]
    if b"\x00" in head:
        raise FileUnusable(f"{file_name}: is a binary file (it contains NUL bytes), not a CSV text table")
    encoding = "utf-8-sig"
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            data.decode("cp1252")
            encoding = "cp1252"
        except UnicodeDecodeError:
            encoding = "latin-1"
    text = head.decode(encoding, errors="ignore")
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\r\n\f")
    if controls > max(2, len(text) // 100):
        raise FileUnusable(f"{file_name}: is a binary file (undecodable control bytes), not a CSV text table")
    return text, encoding


def _sep_name(sep: str) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}.get(sep, repr(sep))


def sniff_separator(text: str) -> str:
    """The separator among , ; tab | that splits the sample into the most, most consistent fields."""
    lines = text.splitlines()
    if len(lines) > 1 and len(text) >= 65535:
        lines = lines[:-1]  # the last line may be cut
    lines = [ln for ln in lines[:200] if ln.strip()]
    best, best_score = ",", (-1.0, 0)
    for sep in SEPARATORS:
        try:
            counts = [len(row) for row in csv.reader(lines, delimiter=sep, quotechar='"')]
        except csv.Error:
            continue
        if not counts or counts[0] < 2:
            continue
        consistent = sum(c == counts[0] for c in counts) / len(counts)
        score = (round(consistent, 2), counts[0])
        if score > best_score:
            best, best_score = sep, score
    return best


# ---------------------------------------------------------------------------------------------
# Value parsers (vectorised; shared with ingest)
# ---------------------------------------------------------------------------------------------

_PLAIN_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def _arrow_strings(values: pd.Series):
    """The Arrow array behind a str Series (no copy when pandas already stores it in Arrow)."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array(values.to_numpy(dtype=object), type=pa.large_string())


def to_datetime_exact(values: pd.Series, fmt: str, check_overflow: bool = True) -> pd.Series:
    """Strings -> datetime64[ns] (NaT where the whole string does not match `fmt`).

    Arrow's strptime is used when it can be; it rolls an impossible date like 30 Feb over into
    March, so results on days 1-3 of a month (the only ones a roll-over can produce) are
    re-checked with pandas' strict parser.
    """
    values = values.astype(str)
    if pc is None or "%f" in fmt or values.empty:
        return _in_ns_range(pd.to_datetime(values, format=fmt, errors="coerce"))
    got = pc.strptime(_arrow_strings(values), format=fmt, unit="s", error_is_null=True)
    out = _in_ns_range(pd.Series(got.to_numpy(zero_copy_only=False), index=values.index))
    if check_overflow and "%d" in fmt:
        early = (out.dt.day <= 3).to_numpy()
        if early.any():
            out[early] = _in_ns_range(pd.to_datetime(values[early], format=fmt, errors="coerce"))
    return out


def _in_ns_range(t: pd.Series) -> pd.Series:
    """datetime64[ns]; NaT for years outside 1678-2261 (codes like "101-10-64" read as year 101)."""
    arr = np.asarray(t.to_numpy(), dtype="datetime64[s]")
    ok = (arr >= np.datetime64("1678-01-01")) & (arr <= np.datetime64("2261-12-31"))
    arr = np.where(ok, arr, np.datetime64("NaT"))
    return pd.Series(arr.astype("datetime64[ns]"), index=t.index)


def to_float(values: pd.Series) -> np.ndarray:
    """Strings -> float64, NaN where not a plain number (vectorised; "1,5" is NaN here)."""
    if pc is None or values.empty:
        return np.array(pd.to_numeric(values, errors="coerce"), dtype="float64")
    arr = _arrow_strings(values.astype(str))
    plain = pc.match_substring_regex(arr, _PLAIN_NUMBER)
    out = np.full(len(values), np.nan)
    mask = np.asarray(plain.to_numpy(zero_copy_only=False), dtype=bool)
    if mask.any():
        out[mask] = pc.cast(pc.filter(arr, plain), pa.float64()).to_numpy(zero_copy_only=False)
    return out


def is_missing(s: pd.Series) -> np.ndarray:
    """True where a stripped string value means "no value" ("", NA, null, -, ...)."""
    s = s.astype(str)
    empty = np.array(s == "", dtype=bool)
    short = (~empty) & (s.str.len() <= 4).to_numpy()
    if short.any():
        empty[short] = s[short].str.lower().isin(MISSING_TOKENS).to_numpy()
    return empty


def parse_number_column(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Strings -> (float64 values, missing mask, unparseable mask); understands decimal commas.

    "4584941,35" -> 4584941.35; "2.129.612" (thousands dots) -> unparseable.
    """
    s = s.astype(str)
    missing = is_missing(s)
    values = to_float(s.where(~missing, ""))
    failed = np.isnan(values) & ~missing
    if failed.any():
        sub = s[failed]
        comma = sub.str.fullmatch(r"[+-]?\d*,\d+").fillna(False).to_numpy(dtype=bool)
        if comma.any():
            fixed = pd.to_numeric(sub[comma].str.replace(",", ".", regex=False), errors="coerce")
            idx = np.flatnonzero(failed)[comma]
            values[idx] = fixed.to_numpy(dtype="float64", na_value=np.nan)
    unparseable = np.isnan(values) & ~missing
    return values, missing, unparseable


_PAIR_RE = r"^\(?\s*\[?\s*([+-]?\d+(?:\.\d+)?)\s*[,;]\s*([+-]?\d+(?:\.\d+)?)\s*\]?\s*\)?$"
_WKT_RE = r"^(?:SRID=\d+;)?\s*POINT\s*Z?\s*\(\s*([+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s+([+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?:\s+[+-]?[\d.]+)?\s*\)$"


def parse_location_column(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """"(lat, lon)" or WKT "POINT (lon lat)" strings -> (lat, lon, missing, unparseable).

    A "(a, b)" pair whose first number cannot be a latitude (|a| > 90) is read as (lon, lat).
    """
    s = s.astype(str)
    missing = is_missing(s)
    lat = np.full(len(s), np.nan)
    lon = np.full(len(s), np.nan)
    pair = s.str.extract(_PAIR_RE)
    a = pd.to_numeric(pair[0], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    b = pd.to_numeric(pair[1], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    has_pair = ~np.isnan(a) & ~np.isnan(b)
    if has_pair.any():
        flip = np.median(np.abs(a[has_pair])) > 90 and np.median(np.abs(b[has_pair])) <= 90
        lat_v, lon_v = (b, a) if flip else (a, b)
        lat[has_pair], lon[has_pair] = lat_v[has_pair], lon_v[has_pair]
    rest = ~has_pair & ~missing
    if rest.any():
        wkt = s[rest].str.upper().str.extract(_WKT_RE)
        idx = np.flatnonzero(rest)
        lon[idx] = pd.to_numeric(wkt[0], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        lat[idx] = pd.to_numeric(wkt[1], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    unparseable = (np.isnan(lat) | np.isnan(lon)) & ~missing
    return lat, lon, missing, unparseable


_LOCATION_HINT = re.compile(r"^\(.*,.*\)$|POINT", re.IGNORECASE)

# Date formats, in the order that breaks ties: month-first before day-first for "/", day-first
# first for "." and "-" (the usual conventions of US and European exports).
DATE_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d",
    "%m/%d/%Y", "%d/%m/%Y", "%m/%d/%y", "%d/%m/%y",
    "%d.%m.%Y", "%m.%d.%Y", "%d.%m.%y",
    "%d-%m-%Y", "%m-%d-%Y",
    "%d-%b-%Y", "%d-%b-%y", "%d/%b/%Y",
    "%Y-%m", "%Y/%m", "%m/%Y",  # month only (e.g. police.uk "2023-01"): the 1st of the month
)
# The same date read with day and month exchanged: used to prove a column's order.
_COUNTERPART = {
    "%m/%d/%Y": "%d/%m/%Y", "%d/%m/%Y": "%m/%d/%Y", "%m/%d/%y": "%d/%m/%y", "%d/%m/%y": "%m/%d/%y",
    "%d.%m.%Y": "%m.%d.%Y", "%m.%d.%Y": "%d.%m.%Y", "%d-%m-%Y": "%m-%d-%Y", "%m-%d-%Y": "%d-%m-%Y",
}
TIME_FORMATS: tuple[str, ...] = (
    "%H:%M", "%H:%M:%S", "%H:%M:%S.%f", "%I:%M %p", "%I:%M:%S %p", "%I:%M%p", "%I:%M:%S%p",
    "%I:%M:%S.%f %p", "%H.%M", "%H.%M.%S", "%Hh%M", "%H",
)
# A UTC offset after a clock time ("14:38:00-05:00", "14:38Z"); group 1 is the clock time.
_TZ_SUFFIX = r"(\d:\d\d(?::\d\d(?:\.\d+)?)?)\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$"
_TZ_SUFFIX_TEST = _TZ_SUFFIX.replace("(", "(?:", 1)
_DATE_TIME_SPLIT = r"(?:\s+|T)(?=\d)"
_DATE_LIKE = re.compile(
    r"^(\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|\d{1,2}[-/][A-Za-z]{3}[-/]\d{2,4}|\d{8})([ T]\d.*)?$|^(\d{4}[-/]\d{1,2}|\d{1,2}/\d{4})$")


def _sample(s: pd.Series, n: int = SAMPLE_SIZE) -> pd.Series:
    """The first n/2 values plus an even spread over the rest (detection on big files stays fast)."""
    if len(s) <= n:
        return s
    spread = np.linspace(n // 2, len(s) - 1, n - n // 2).astype(int)
    return pd.concat([s.iloc[: n // 2], s.iloc[spread]])


def _share_parsed(values: pd.Series, fmt: str) -> float:
    if values.empty:
        return 0.0
    return float(to_datetime_exact(values, fmt).notna().mean())


@dataclass(frozen=True)
class DatetimeFormat:
    """How a column's datetimes are written: one date format, time-of-day formats to try in order."""

    date_format: str
    time_formats: tuple[str, ...]   # seen in the sample, most common first
    separators: tuple[str, ...]     # between date and time: " " and/or "T"
    strip_timezone: bool
    share: float                    # share of the sample's non-empty values that parse
    share_with_time: float          # share of parsed sample values with a time of day

    def formats(self) -> list[str]:
        out = [f"{self.date_format}{sep}{t}" for t in self.time_formats for sep in self.separators]
        return out + [self.date_format]


def _shares(values: pd.Series, formats: tuple[str, ...], probe_size: int = 40) -> list[tuple[str, float]]:
    """(format, share of values parsed) for the formats that parse any of a small probe, in order.

    A failed parse is ~10x slower than a successful one, so formats are first tried on a probe.
    """
    if values.empty:
        return []
    probe = values.iloc[np.linspace(0, len(values) - 1, min(probe_size, len(values))).astype(int)]
    out = []
    for fmt in formats:
        if _share_parsed(probe, fmt) > 0:
            share = _share_parsed(values, fmt)
            out.append((fmt, share))
            if share == 1.0:
                break  # ties go to the earlier format, so nothing later can win
    return out


def infer_datetime_format(s: pd.Series, min_share: float = MIN_PARSE_SHARE) -> DatetimeFormat | None:
    """Look at a sample of a string column and decide how its dates are written; None if not dates.

    None also when less than `min_share` of the sample's non-empty values parse.

    The date order (day- or month-first) is chosen per column from the content: a value whose
    first field is > 12 proves day-first; an ambiguous column keeps the DATE_FORMATS order.
    """
    if min_share > 0:  # cheap first look, so wide tables are scanned quickly
        head = [v for v in s.head(500).astype(str).tolist() if v.lower() not in MISSING_TOKENS][:50]
        if not head or sum(bool(_DATE_LIKE.match(v)) for v in head) < min(0.5, min_share) * len(head):
            return None
    sample = _sample(s)
    sample = sample[~is_missing(sample)]
    if sample.empty:
        return None
    strip_tz = bool(sample.str.contains(_TZ_SUFFIX_TEST, regex=True).mean() > 0.2)
    if strip_tz:
        sample = sample.str.replace(_TZ_SUFFIX, r"\1", regex=True)
    parts = sample.str.split(_DATE_TIME_SPLIT, n=1, regex=True)
    date_tok = parts.str[0]
    time_tok = parts.str[1].dropna()
    time_tok = time_tok[time_tok != ""]
    best_fmt, best_share = None, 0.0
    for fmt, share in _shares(date_tok, DATE_FORMATS):
        if share > best_share + 1e-9:
            best_fmt, best_share = fmt, share
    if best_fmt is None or best_share < min_share:
        return None
    seen = sorted(_shares(time_tok, TIME_FORMATS, probe_size=200), key=lambda fs: -fs[1]) if len(time_tok) else []
    time_formats = tuple(f for f, share in seen if share > 0)
    with_t = sample.str.contains(r"\dT\d", regex=True).any()
    with_space = sample.str.contains(r"\d\s+\d", regex=True).any()
    separators = tuple(sep for sep, used in ((" ", with_space), ("T", with_t)) if used) or (" ",)
    fmt = DatetimeFormat(best_fmt, time_formats, separators, strip_tz, best_share, 0.0)
    parsed = _apply_formats(sample, fmt.formats())
    has_time = parsed.notna() & ((parsed.dt.hour != 0) | (parsed.dt.minute != 0) | (parsed.dt.second != 0))
    share = float(parsed.notna().mean())
    if share < min_share:
        return None
    return dataclasses.replace(fmt, share=share, share_with_time=float(has_time.sum() / max(1, parsed.notna().sum())))


def _apply_formats(s: pd.Series, formats: list[str]) -> pd.Series:
    """Try each format on the values still unparsed (vectorised per format)."""
    out = np.full(len(s), np.datetime64("NaT"), dtype="datetime64[ns]")
    todo = np.array(s.notna() & (s != ""), dtype=bool)
    for fmt in formats:
        if not todo.any():
            break
        idx = np.flatnonzero(todo)
        got = to_datetime_exact(s.iloc[idx], fmt).to_numpy(dtype="datetime64[ns]")
        ok = ~np.isnat(got)
        out[idx[ok]] = got[ok]
        todo[idx[ok]] = False
    return pd.Series(out, index=s.index)


def parse_datetime_column(s: pd.Series, fmt: DatetimeFormat | None = None) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Strings -> (datetime64[ns] naive, missing mask, unparseable mask).

    A timezone suffix is dropped, keeping the clock time as written ("2023-01-31T14:38:00-05:00"
    -> 14:38). If the chosen day/month order leaves values that only the other order reads
    (e.g. "31/01/2023" under month-first), the column is re-read in the other order.
    """
    s = s.astype(str).reset_index(drop=True)
    missing = is_missing(s)
    if fmt is None:
        fmt = infer_datetime_format(s, min_share=0.0)  # the column is chosen: read what can be read
    if fmt is None:
        return pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]"), missing, ~missing
    clean = s.where(~missing, "")
    if fmt.strip_timezone:
        clean = clean.str.replace(_TZ_SUFFIX, r"\1", regex=True)
    parsed = _apply_formats(clean, fmt.formats())
    failed = parsed.isna().to_numpy() & ~missing
    other = _COUNTERPART.get(fmt.date_format)
    if other and failed.any():
        alt_fmt = dataclasses.replace(fmt, date_format=other)
        rescued = _apply_formats(clean[failed], alt_fmt.formats()).notna().sum()
        if rescued:
            alt = _apply_formats(clean, alt_fmt.formats())
            if alt.notna().sum() >= parsed.notna().sum():
                parsed = alt
    unparseable = parsed.isna().to_numpy() & ~missing
    return parsed, missing, unparseable


def parse_clock_column(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time-of-day strings -> (timedelta64[ns] since midnight, missing, unparseable).

    Understands "14:38", "7:52:52 PM", "14:38:00.000", whole hours "19", and "1430" (HHMM).
    """
    s = s.astype(str).reset_index(drop=True)
    missing = is_missing(s)
    out = np.full(len(s), np.timedelta64("NaT"), dtype="timedelta64[ns]")
    digits = s.str.fullmatch(r"\d{1,4}").fillna(False).to_numpy(dtype=bool) & ~missing
    if digits.any():
        num = pd.to_numeric(s[digits], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        short = (s[digits].str.len() <= 2).to_numpy()
        hours = np.where(short, num, np.floor(num / 100))
        minutes = np.where(short, 0, num % 100)
        ok = (hours >= 0) & (hours <= 24) & (minutes < 60)
        vals = (hours * 3600 + minutes * 60) * 1e9
        idx = np.flatnonzero(digits)
        out[idx[ok]] = vals[ok].astype("int64").astype("timedelta64[ns]")
    rest = ~digits & ~missing
    if rest.any():
        sub = s[rest]
        got = pd.Series(pd.NaT, index=sub.index, dtype="datetime64[ns]")
        todo = pd.Series(True, index=sub.index)
        for f in TIME_FORMATS:
            if not todo.any():
                break
            g = to_datetime_exact(sub[todo], f, check_overflow=False)
            okm = g.notna()
            got[g.index[okm]] = g[okm].astype("datetime64[ns]")
            todo[g.index[okm]] = False
        delta = (got - got.dt.normalize()).to_numpy(dtype="timedelta64[ns]")
        out[np.flatnonzero(rest)] = delta
    unparseable = np.isnat(out) & ~missing
    return out, missing, unparseable


# ---------------------------------------------------------------------------------------------
# Column names
# ---------------------------------------------------------------------------------------------

def normalise_name(name: str) -> str:
    """"CRASH DATE" -> "crash_date"; "WnvPresent" -> "wnv_present"; "Año" -> "ano"."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name))
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _tokens(name: str) -> list[str]:
    return [t for t in normalise_name(name).split("_") if t]


def _name_rank(name: str, exact: tuple[str, ...], tokens: tuple[str, ...] = (), suffixes: tuple[str, ...] = ()) -> int | None:
    """0.. when the name matches (lower is better), None when not: exact names, then tokens, then suffixes."""
    norm = normalise_name(name)
    if norm in exact:
        return exact.index(norm)
    toks = norm.split("_")
    for i, t in enumerate(tokens):
        if t in toks:
            return 100 + i
    for i, suf in enumerate(suffixes):
        if norm.endswith(suf):
            return 200 + i
    return None


LAT_NAMES = ("lat", "latitude", "latitud", "y_lat", "lat_y", "latitude_wgs84", "lat_wgs84", "breitengrad", "breite", "latitud_wgs84")
LAT_TOKENS = ("lat", "latitude", "latitud", "breitengrad")
LON_NAMES = ("lon", "lng", "long", "longitude", "longitud", "x_lon", "lon_x", "x_long", "longitude_wgs84", "lon_wgs84", "laengengrad", "lange", "laenge", "longitud_wgs84")
LON_TOKENS = ("lon", "lng", "longitude", "longitud", "long", "laengengrad")
X_NAMES = ("x", "x_coordinate", "xcoord", "x_coord", "coord_x", "coordx", "coordenada_x", "coordenada_utm_x", "utm_x", "x_utm", "easting", "east", "rechtswert", "x_etrs89", "x_coordinate_state_plane")
X_TOKENS = ("x", "easting", "rechtswert", "xcoord", "utmx", "coordx")
Y_NAMES = ("y", "y_coordinate", "ycoord", "y_coord", "coord_y", "coordy", "coordenada_y", "coordenada_utm_y", "utm_y", "y_utm", "northing", "north", "hochwert", "y_etrs89", "y_coordinate_state_plane")
Y_TOKENS = ("y", "northing", "hochwert", "ycoord", "utmy", "coordy")
LOCATION_NAMES = ("location", "geolocation", "geo_location", "the_geom", "geom", "geometry", "point", "coordinates", "coords", "wkt", "georeference", "position", "location_1", "lat_lon", "latlon", "lat_long")
LOCATION_TOKENS = ("location", "geom", "geometry", "point", "coordinates", "wkt", "georeference", "latlon")

DATETIME_GOOD_TOKENS = ("occurred", "occurrence", "occur", "incident", "crash", "accident", "offense", "offence",
                        "event", "start", "from", "created", "reported", "report", "datetime", "timestamp",
                        "date", "fecha", "data", "datum", "time", "dt")
DATETIME_BAD_TOKENS = ("closed", "close", "due", "updated", "update", "resolution", "end", "to", "modified",
                       "edit", "last", "birth", "dob", "expiry", "expires", "until", "finish", "ended")
CLOCK_NAMES = ("time", "hora", "heure", "zeit", "uhrzeit", "clock", "hour", "time_of_day", "stunde", "hora_dia")
CLOCK_TOKENS = ("time", "hora", "heure", "zeit", "uhrzeit", "clock", "hour", "stunde")
YEAR_NAMES = ("year", "yr", "any", "ano", "anio", "anyo", "annee", "jahr", "ujahr", "year_of_incident", "any_accident")
MONTH_NAMES = ("month", "mes", "mes_any", "mes_ano", "mois", "monat", "umonat", "mth", "mon", "month_of_year")
DAY_NAMES = ("day", "dia", "dia_mes", "dia_del_mes", "jour", "tag", "day_of_month", "dom")
HOUR_NAMES = ("hour", "hora", "hora_dia", "heure", "stunde", "ustunde", "hr", "hour_of_day", "hora_del_dia")
WEEKDAY_TOKENS = ("setmana", "semana", "week", "wochentag", "semaine", "weekday", "dow", "nom", "name", "nombre")

SUBTYPE_TIERS: tuple[tuple[str, ...], ...] = (
    ("primary_type", "offense", "offence", "offense_type", "offence_type", "crime_type", "offense_description",
     "offence_description", "crime", "crime_category", "delito", "tipo_delito", "infraction", "straftat",
     "ucr_description", "nibrs_description", "offense_category"),
    ("complaint_type", "incident_type", "call_type", "collision_type", "accident_type", "crash_type",
     "event_type", "contributing_factor_vehicle_1", "contributing_factor", "species", "disease", "diagnosis",
     "nature", "nature_of_call", "tipus_accident", "tipo_accidente", "cause"),
    ("category", "subtype", "sub_type", "type", "descriptor", "loc_cat", "class", "classification",
     "description", "tipus", "tipo", "categoria", "categorie", "typ", "kategorie"),
)
SUBTYPE_EXCLUDE_TOKENS = ("location", "address", "street", "vehicle", "status", "agency", "zip", "facility",
                          "borough", "id", "code", "premise", "city", "community", "park", "channel")
ID_NAMES = ("id", "unique_key", "collision_id", "case_number", "incident_id", "numero_expedient", "report_number",
            "incident_number", "case_id", "record_id", "event_id", "report_id", "crash_record_id", "objectid",
            "object_id", "fid", "expedient", "expediente", "num_expediente", "incident_num", "report_no", "cad_number",
            "rd_no", "uid", "key")
ID_TOKENS = ("id", "key", "expedient", "expediente", "uuid")
OUTCOME_SUBSTRINGS = ("present", "result", "positive", "wnv", "outcome")
OUTCOME_VALUES = {"0": False, "1": True, "true": True, "false": False, "yes": True, "no": False,
                  "positive": True, "negative": False, "pos": True, "neg": False}


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
    return ColumnMapping(**time_fields, **loc_fields, subtype=subtype or None, source_id=source_id or None,
                         outcome=outcome or None)


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
            if 100_000 <= min(mx, my) <= 1_000_000 and 1_000_000 <= max(mx, my) <= 10_000_000:
                hint += "; they look like UTM metres, e.g. EPSG:326NN for WGS84 UTM zone NN, EPSG:258NN for ETRS89, EPSG:230NN for ED50"
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
            if values[values != ""].nunique() >= 0.95 * filled:
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


# ---------------------------------------------------------------------------------------------
# Coordinates
# ---------------------------------------------------------------------------------------------

def project_to_wgs84(x: np.ndarray, y: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Projected x/y (in the CRS's easting/northing order) -> (lat, lon) WGS84; NaN where invalid."""
    from pyproj import Transformer

    transformer = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    ok = np.isfinite(x) & np.isfinite(y)
    lat = np.full(len(x), np.nan)
    lon = np.full(len(x), np.nan)
    if ok.any():
        lo, la = transformer.transform(x[ok], y[ok], errcheck=False)
        lo, la = np.asarray(lo, dtype="float64"), np.asarray(la, dtype="float64")
        bad = ~np.isfinite(lo) | ~np.isfinite(la) | (np.abs(la) > 90) | (np.abs(lo) > 180)
        lo[bad], la[bad] = np.nan, np.nan
        lat[ok], lon[ok] = la, lo
    return lat, lon


def plausible_share(lat: np.ndarray, lon: np.ndarray, crs: str | None = None) -> float:
    """Share of points inside the CRS's area of use and within 100 km of their median (one city)."""
    ok = np.isfinite(lat) & np.isfinite(lon)
    if not ok.any():
        return 0.0
    inside = ok.copy()
    if crs:
        from pyproj import CRS

        area = CRS.from_user_input(crs).area_of_use
        if area is not None:
            margin = 1.0
            inside &= (lon >= area.west - margin) & (lon <= area.east + margin) & \
                      (lat >= area.south - margin) & (lat <= area.north + margin)
    if not inside.any():
        return 0.0
    mlat, mlon = np.median(lat[inside]), np.median(lon[inside])
    dist_km = haversine_km(lat, lon, mlat, mlon)
    near = inside & (np.nan_to_num(dist_km, nan=1e9) <= 100)
    return float(near.sum() / len(lat))


def haversine_km(lat, lon, lat0, lon0) -> np.ndarray:
    """Great-circle distance in km from each (lat, lon) to (lat0, lon0)."""
    p1, p2 = np.radians(lat), np.radians(lat0)
    dphi = p2 - p1
    dl = np.radians(lon0) - np.radians(lon)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
