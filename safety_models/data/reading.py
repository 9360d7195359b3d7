"""Reading the bytes of any CSV export (gzip/zip, UTF-8/Latin-1, , ; tab |) into a table of strings."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import zipfile

import pandas as pd

from safety_models.errors import FileUnusable

try:  # pyarrow (a streamlit dependency) reads CSV ~5x faster than pandas' own parser
    import pyarrow as pa
except ImportError:  # pragma: no cover
    pa = None



# How many values detection looks at per column (the head plus an even spread of the rest).
SAMPLE_SIZE = 4000
# Share of a sample's non-empty values that must parse for a column to count as time/coordinates.
MIN_PARSE_SHARE = 0.8
# Strings that mean "no value" in open-data exports.
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "-", "--", "?", "nat"})


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
