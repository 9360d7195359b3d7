"""Vectorised value parsers shared by detection and ingest: times, clocks, numbers, "(lat, lon)" points."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

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
