"""Reading the bytes of any CSV export (gzip/zip, UTF-8/Latin-1, , ; tab |) into rows of strings.

Every line after the header ends up in exactly one row. A quoted value may hold line breaks
(old Socrata exports write "address\\ncity\\n(lat, lon)" in one cell), but a quote that is
never closed, or that would swallow lines which are rows of their own, does not: that line
becomes a row marked unreadable, with the reason, and reading goes on with the next line.
Ingest rejects unreadable rows, so nothing vanishes into a neighbour's cell.
"""

from __future__ import annotations

import array
import codecs
import csv
import gzip
import io
import re
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from safety_models.errors import FileUnusable

try:  # pyarrow (a streamlit dependency) reads CSV ~5x faster than the csv module
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv
except ImportError:  # pragma: no cover
    pa = pc = pa_csv = None

SEPARATORS = (",", ";", "\t", "|")
# An incident export has a few dozen columns; a "header" with more is not one (a one-line
# dump, a matrix), and refusing it up front keeps the refusal fast.
MAX_COLUMNS = 500
# A quoted value spanning more lines than this is an unbalanced quote, not a multi-line cell.
MAX_LINES_PER_ROW = 50
# How much of a file decides its separator and whether it is binary.
SAMPLE_BYTES = 65536

# Why a line is not a row of the table (ingest rejects it with this reason).
UNBALANCED_QUOTE = "unbalanced quote (a quoted value that never closes)"
WRONG_FIELD_COUNT = "wrong number of fields for the header"

_LATIN1_FALLBACK = "safety_models.latin1"   # cp1252's 5 undefined bytes read as Latin-1
codecs.register_error(_LATIN1_FALLBACK,
                      lambda err: (err.object[err.start:err.end].decode("latin-1"), err.end))
# A byte sequence that is valid multi-byte UTF-8: a file without one is plain single-byte text.
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]")
_LEADING_SPACE = re.compile(r"\s*")
_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class RowsRead:
    """A file's rows: every non-blank line after the header is in exactly one of them.

    frame        (rows, columns) stripped strings, "" for empty; attrs file_name, encoding,
                 separator. An unreadable row holds its line split at the separator.
    row_numbers  (rows,) int64: how many lines below the header the row starts (the first
                 data line is 1; equal to the data row's number when no value has a line break
                 and no line is blank).
    unreadable   row position -> why its line could not be split into the header's columns.
    """

    frame: pd.DataFrame
    row_numbers: np.ndarray
    unreadable: dict[int, str] = field(default_factory=dict)


def read_table(data: bytes, file_name: str) -> pd.DataFrame:
    """Bytes of a delimited text file -> DataFrame of stripped strings ("" for empty).

    The frame of `read_rows` (see there); unreadable lines are rows split at the separator.
    """
    return read_rows(data, file_name).frame


def read_rows(data: bytes, file_name: str) -> RowsRead:
    """Bytes of a delimited text file -> its rows, with a row number and, where a line could
    not be read, the reason.

    Handles gzip (and single-file zip) compression, UTF-8 with or without BOM, UTF-16 with BOM,
    Latin-1/cp1252, and files mixing UTF-8 and Latin-1 lines (each line is decoded on its
    own); the separators , ; tab |, quoted fields (with line breaks inside) and CR/CRLF/LF
    line ends. Decimal commas are left in the strings; the number parser understands them.
    Raises FileUnusable (naming the file) when it is empty, binary, has no data rows or far
    too many columns; these refusals take well under a second whatever the file's size.
    """
    data = _decompress(data, file_name)
    if re.search(rb"\S", data) is None:
        raise FileUnusable(f"{file_name}: the file is empty")
    split = _split_utf8(data, file_name)
    if split is not None:
        # The usual export, UTF-8: Arrow reads the body where it lies in the file's bytes
        # (no text of the whole file, no second copy of its bytes: at ten million rows those
        # were two more copies of an 830 MB file beside Arrow's table).
        header_line, body_bytes, sample, encoding = split
    else:
        text, encoding = decode_text(data, file_name)
        header_line, body = _split_header(text)
        sample = text[:SAMPLE_BYTES]
        del text
        # The body as UTF-8 bytes for Arrow, and the text dropped meanwhile.
        body_bytes = memoryview(body.encode("utf-8"))
        del body
    del data
    sep = sniff_separator(sample)
    header = _parse_header(header_line, sep, file_name)
    if not _has_text(body_bytes):
        raise FileUnusable(f"{file_name}: has a header ({_show_names(header)}) but no data rows")
    rows = (_read_fast(body_bytes, sep, len(header))
            or _read_slow(codecs.decode(body_bytes, "utf-8"), sep, header, file_name))
    del body_bytes
    frame, row_numbers, unreadable = rows
    frame.columns = _unique_names(header)
    if frame.empty:
        raise FileUnusable(f"{file_name}: has a header ({_show_names(header)}) but no data rows")
    frame.attrs.update(file_name=file_name, encoding=encoding, separator=sep)
    return RowsRead(frame=frame, row_numbers=row_numbers, unreadable=unreadable)


# ---------------------------------------------------------------------------------------------
# Bytes -> text


def _decompress(data: bytes, file_name: str) -> bytes:
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise FileUnusable(f"{file_name}: looks gzip-compressed but could not be decompressed ({err})") from err
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                members = [n for n in zf.namelist() if not n.endswith("/")]
                if len(members) != 1:
                    raise FileUnusable(f"{file_name}: a zip archive must hold exactly one table, it holds {len(members)}")
                return zf.read(members[0])
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError,
                NotImplementedError, RuntimeError) as err:   # RuntimeError: encrypted member
            raise FileUnusable(f"{file_name}: looks like a zip archive but could not be opened ({err})") from err
    return data


# How much of a UTF-8 file's start is decoded to find its header line.
HEAD_BYTES = 1 << 20
_BLOCK_BYTES = 1 << 24   # files are checked and counted this much at a time


def _split_utf8(data: bytes, file_name: str) -> tuple[str, memoryview, str, str] | None:
    """A UTF-8 file (with or without BOM) -> (header line, the body's bytes as a view into
    data, the text sample that decides the separator, "utf-8"), exactly as decode_text and
    _split_header would split it; None for any other file (UTF-16, cp1252, mixed lines) or a
    header line longer than HEAD_BYTES: decode_text's path reads those. Refuses binary files
    as decode_text does."""
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return None
    _refuse_binary(data[:SAMPLE_BYTES], "", file_name)   # before reading a binary file whole
    if not _is_utf8(data):
        return None
    head_bytes = data[:HEAD_BYTES]
    # a character cut at the end of the head stays undecoded (final=False)
    head = codecs.getincrementaldecoder("utf-8")().decode(head_bytes, final=False)
    consumed = len(head.encode("utf-8"))
    head = head.lstrip("\ufeff")
    _refuse_binary(data[:SAMPLE_BYTES], head[:SAMPLE_BYTES], file_name)
    header_line, rest = _split_header(head)
    # The header's line end must lie inside the head with a character after it (a "\r" at
    # the head's very end may be half of a "\r\n"), unless the head is the whole file.
    if not rest and consumed < len(data):
        return None
    offset = consumed - len(rest.encode("utf-8"))
    return header_line, memoryview(data)[offset:], head[:SAMPLE_BYTES], "utf-8"


def _is_utf8(data: bytes) -> bool:
    """Whether all of data is valid UTF-8, checked a block at a time (no text of the whole
    file is kept)."""
    view = memoryview(data)
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for first in range(0, len(view), _BLOCK_BYTES):
            decoder.decode(view[first:first + _BLOCK_BYTES])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _has_text(body: memoryview) -> bool:
    """Whether the body holds anything but whitespace (Python's idea of it, as str.strip)."""
    match = re.search(rb"\S", body)
    if match is None:
        return False
    if body[match.start()] < 0x80:
        return True
    # a non-ASCII character first: may be a no-break or other Unicode space; decide on text
    return re.search(r"\S", codecs.decode(body, "utf-8")) is not None


def _refuse_binary(data_head: bytes, text_head: str, file_name: str) -> None:
    """FileUnusable for binary content: a NUL byte, or many control characters in the text."""
    if b"\x00" in data_head:
        raise FileUnusable(f"{file_name}: is a binary file (it contains NUL bytes), not a CSV text table")
    controls = sum(1 for ch in text_head if ord(ch) < 32 and ch not in "\t\r\n\f")
    if controls > max(2, len(text_head) // 100) or "\x00" in text_head:
        raise FileUnusable(f"{file_name}: is a binary file (undecodable control bytes), not a CSV text table")


def _count_byte(data: memoryview, byte: bytes) -> int:
    """How often a byte occurs in data, a block at a time (a memoryview has no count())."""
    return sum(bytes(data[first:first + _BLOCK_BYTES]).count(byte)
               for first in range(0, len(data), _BLOCK_BYTES))


def decode_text(data: bytes, file_name: str) -> tuple[str, str]:
    """Bytes -> (text, encoding name). UTF-16 needs its BOM; otherwise UTF-8 when the whole
    file is UTF-8, cp1252 when it has no UTF-8 sequence at all, and else line by line (UTF-8
    where the line is UTF-8, cp1252 where not: exports appended to by different programs).
    Raises FileUnusable for binary content (NUL or many control bytes)."""
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        text, encoding = data.decode("utf-16", errors="replace"), "utf-16"
    else:
        if b"\x00" in data[:SAMPLE_BYTES]:
            raise FileUnusable(f"{file_name}: is a binary file (it contains NUL bytes), not a CSV text table")
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            if _UTF8_MULTIBYTE.search(data) is None:
                text, encoding = data.decode("cp1252", errors=_LATIN1_FALLBACK), "cp1252"
            else:
                text, encoding = _decode_by_line(data), "utf-8 and cp1252 (by line)"
    text = text.lstrip("\ufeff")
    _refuse_binary(b"", text[:SAMPLE_BYTES], file_name)
    return text, encoding


def _decode_by_line(data: bytes) -> str:
    parts = []
    for line in data.splitlines(keepends=True):   # bytes: splits at \r, \n, \r\n only
        try:
            parts.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            parts.append(line.decode("cp1252", errors=_LATIN1_FALLBACK))
    return "".join(parts)


def _split_header(text: str) -> tuple[str, str]:
    """(the first non-blank line, everything after it)."""
    start = _LEADING_SPACE.match(text).end()
    match = _LINE_END.search(text, start)
    if match is None:
        return text[start:], ""
    return text[start:match.start()], text[match.end():]


def _parse_header(line: str, sep: str, file_name: str) -> list[str]:
    if line.count(sep) + 1 > MAX_COLUMNS:
        raise FileUnusable(
            f"{file_name}: its first line splits into {line.count(sep) + 1:,} columns at "
            f"{_sep_name(sep)}s; an incident export has a header of a few dozen column names "
            "and then one line per incident")
    try:
        names = next(csv.reader([line], delimiter=sep, quotechar='"'))
    except (csv.Error, StopIteration):
        names = line.split(sep)
    return [name.strip() for name in names] or [""]


def _show_names(names: list[str], n: int = 12) -> str:
    shown = ", ".join(name if len(name) <= 40 else name[:37] + "..." for name in names[:n])
    return shown + (f" and {len(names) - n:,} more" if len(names) > n else "")


def _unique_names(names: list[str]) -> list[str]:
    """Names as pandas makes them: empty -> "Unnamed: i", repeats -> "name.1", "name.2"."""
    out: list[str] = []
    seen: set[str] = set()
    for i, name in enumerate(names):
        name = name.lstrip("\ufeff").strip() or f"Unnamed: {i}"
        candidate, k = name, 0
        while candidate in seen:
            k += 1
            candidate = f"{name}.{k}"
        seen.add(candidate)
        out.append(candidate)
    return out


def _sep_name(sep: str) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}.get(sep, repr(sep))


def sniff_separator(text: str) -> str:
    """The separator among , ; tab | that splits the sample into the most, most consistent fields."""
    lines = text.splitlines()
    if len(lines) > 1 and len(text) >= SAMPLE_BYTES - 1:
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
# Text -> rows

_Rows = tuple[pd.DataFrame, np.ndarray, dict[int, str]]
# A file whose first this-many rows are all unreadable is refused there and then.
HOPELESS_AFTER_ROWS = 1000
THREADED_READ_BYTES = 8_000_000


def _read_fast(data: memoryview, sep: str, n_columns: int) -> _Rows | None:
    """Arrow's reader, for the usual file (UTF-8 bytes of the rows after the header): one
    line per row, no blank lines, every row with the header's number of fields. None for
    anything else (the line-by-line reader decides)."""
    frame = _arrow_frame(data, sep, n_columns, newlines_in_values=False, line_breaks_ok=False)
    # Arrow skips empty lines: as many rows as lines means there were none, and the rows'
    # numbers are 1..n (any other count: the line-by-line reader numbers them).
    line_ends = _count_byte(data, b"\n") or _count_byte(data, b"\r")
    lines = line_ends + (0 if bytes(data[-1:]) in (b"\n", b"\r") else 1)
    if frame is None or len(frame) != lines:
        return None
    return frame, np.arange(1, len(frame) + 1, dtype="int64"), {}


def _arrow_frame(data: bytes | memoryview, sep: str, n_columns: int, newlines_in_values: bool,
                 line_breaks_ok: bool = True) -> pd.DataFrame | None:
    """Rows of UTF-8 text (no header) -> frame of stripped strings; None when Arrow cannot read it
    as n_columns fields per row (or is not installed), or, unless line_breaks_ok, when a
    value holds a line break (a multi-line cell or an unbalanced quote: the line-by-line
    reader tells them apart)."""
    if pa_csv is None:
        return None
    names = [f"c{i}" for i in range(n_columns)]
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(pa.py_buffer(data)),   # data where it lies, no copy
            # Threads only where they pay: Arrow's pool can abort the interpreter's exit
            # (apache/arrow#34314), and a short-lived CLI run should not risk that for a
            # small file.
            read_options=pa_csv.ReadOptions(column_names=names,
                                            use_threads=len(data) >= THREADED_READ_BYTES),
            parse_options=pa_csv.ParseOptions(delimiter=sep, quote_char='"',
                                              newlines_in_values=newlines_in_values),
            convert_options=pa_csv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                  strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, OverflowError):
        return None
    columns = {}
    for i in range(n_columns):
        # Taken out of the table one at a time, so that each raw column is freed once its
        # trimmed copy exists (not all of them kept until the end).
        column = table.column(0)
        table = table.remove_column(0)
        if not line_breaks_ok and (pc.any(pc.match_substring(column, "\n")).as_py()
                                   or pc.any(pc.match_substring(column, "\r")).as_py()):
            return None
        columns[i] = pd.Series(pd.array(pc.utf8_trim_whitespace(column), dtype="str"))
        del column
    return pd.DataFrame(columns)


def _stripped(values) -> pd.Series:
    return pd.Series(values, dtype="str").str.strip()


def _read_slow(body: str, sep: str, header: list[str], file_name: str) -> _Rows:
    """Line by line: a line without a quote is a row when it has the header's number of
    fields; one with a quote is read with the csv module, and its quoted value may span lines
    when it closes within MAX_LINES_PER_ROW lines and the lines it takes in are not rows
    themselves. A line that is not a row so is an unreadable row of its own (its text split
    at the separator), and reading goes on with the next line. The rows are written out as
    clean CSV for Arrow to read, so memory stays near the file's size. Cost: linear in the
    file, whatever its quotes."""
    lines = io.StringIO(body, newline="").readlines()   # keeps CR, LF and CRLF ends
    n, m = len(lines), len(header)
    unnamed_tail = _unnamed_tail(header)
    feed = _Feed(lines)
    reader = csv.reader(feed, delimiter=sep, quotechar='"')
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, quotechar='"', lineterminator="\n")
    parts: list[str] = []            # the clean CSV, a row per item (mostly the lines as read)
    starts = array.array("q")
    unreadable: dict[int, str] = {}
    i = 0
    while i < n:
        line = lines[i]
        first = i
        if '"' not in line:
            i += 1
            text = line.rstrip("\r\n")
            if not text.strip():
                continue   # a blank line
            count = text.count(sep) + 1
            if count == m:
                parts.append(text)
            else:
                fields = _fit(text.split(sep), m, unnamed_tail)
                if fields is None:
                    unreadable[len(starts)] = WRONG_FIELD_COUNT
                    fields = _split_raw(line, sep, m)
                parts.append(_csv_line(writer, out, fields))
            starts.append(first)
        else:
            feed.pos, feed.stop = i, min(n, i + MAX_LINES_PER_ROW)
            try:
                fields = next(reader, [])
            except csv.Error:   # a quoted value longer than the csv module's limit (128 KiB)
                fields = None
            i = max(feed.pos, i + 1)
            if fields is None or (i - first > 1 and
                                  _quote_is_unbalanced(lines, first, i, fields, sep, m)):
                unreadable[len(starts)] = UNBALANCED_QUOTE
                fields, i = _split_raw(line, sep, m), first + 1
            elif not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            else:
                fitted = _fit(fields, m, unnamed_tail)
                if fitted is None:
                    unreadable[len(starts)] = WRONG_FIELD_COUNT
                    fitted = _split_raw(line, sep, m)
                fields = fitted
            parts.append(_csv_line(writer, out, fields))
            starts.append(first)
        if len(starts) == HOPELESS_AFTER_ROWS and len(unreadable) == len(starts):
            raise FileUnusable(_hopeless(file_name, f"first {HOPELESS_AFTER_ROWS:,}", header,
                                         sep, unreadable[0]))
    if starts and len(unreadable) == len(starts):
        raise FileUnusable(_hopeless(file_name, f"{len(starts):,}", header, sep, unreadable[0]))
    del lines
    text = "\n".join(parts) + "\n"
    del parts
    frame = _arrow_frame(text.encode("utf-8"), sep, m, newlines_in_values=True)
    if frame is None:   # no Arrow: the csv module reads the clean text
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=sep, quotechar='"'))
        columns = list(zip(*rows)) if rows else [()] * m
        frame = pd.DataFrame({k: _stripped(list(values)) for k, values in enumerate(columns)})
    return frame, np.frombuffer(starts, dtype="int64") + 1, unreadable


def _hopeless(file_name: str, how_many: str, header: list[str], sep: str, why: str) -> str:
    return (f"{file_name}: none of its {how_many} rows could be split into the {len(header)} "
            f"columns of its header ({_show_names(header, 6)}) at {_sep_name(sep)}s: {why}. "
            "Check that it is a CSV export of incidents, saved with one separator and "
            "balanced quotes")


def _csv_line(writer, out: io.StringIO, fields: list[str]) -> str:
    """fields as one clean CSV row (quoted where needed), without its line end."""
    out.seek(0)
    out.truncate()
    writer.writerow(fields)
    return out.getvalue()[:-1]


class _Feed:
    """The lines the csv reader may read: lines[pos:stop], pos advancing as it reads (the
    caller sets both before each record)."""

    def __init__(self, lines: list[str]):
        self.lines, self.pos, self.stop = lines, 0, 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.pos >= self.stop:
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1]


def _quote_is_unbalanced(lines: list[str], first: int, end: int, fields: list[str],
                         sep: str, m: int) -> bool:
    """Whether a record read over lines [first, end) is a quote left open rather than a
    value with line breaks. It is when the record runs MAX_LINES_PER_ROW lines, has the wrong
    number of fields, is not strict CSV (a "closing" quote followed by more text: a stray
    quote met another), or when a line inside the value looks like a row of the table itself
    (the header's number of fields, counting the separators in what the value took of it)."""
    if end - first > MAX_LINES_PER_ROW or len(fields) != m:
        return True
    try:
        next(csv.reader(lines[first:end], delimiter=sep, quotechar='"', strict=True))
    except csv.Error:
        return True
    if m < 3:
        return False
    inside = lines[first + 1:end - 1] + [_before_closing_quote(lines[end - 1])]
    return any(part.count(sep) >= m - 1 for part in inside)


def _before_closing_quote(line: str) -> str:
    """The start of a line that begins inside a quoted value, up to the quote closing it."""
    i = 0
    while True:
        i = line.find('"', i)
        if i < 0 or line[i + 1:i + 2] != '"':
            return line if i < 0 else line[:i]
        i += 2


def _unnamed_tail(header: list[str]) -> int:
    """How many trailing header names are empty (a header line ending in a separator)."""
    n = 0
    for name in reversed(header):
        if name.strip():
            break
        n += 1
    return n


def _fit(fields: list[str], m: int, unnamed_tail: int) -> list[str] | None:
    """fields as m values; None when they do not fit. Lenient only where nothing can shift:
    extra trailing empty fields are dropped, and fields missing under unnamed trailing
    header columns are empty."""
    if len(fields) == m:
        return fields
    if len(fields) > m:
        return fields[:m] if not any(f.strip() for f in fields[m:]) else None
    if m - len(fields) <= unnamed_tail:
        return _pad(fields, m)
    return None


def _pad(fields: list[str], m: int) -> list[str]:
    return (list(fields) + [""] * m)[:m]


def _split_raw(line: str, sep: str, m: int) -> list[str]:
    """A line that could not be read, split at every separator (quotes kept as written) into
    m values; what does not fit stays, joined, in the last one. Shown with the rejected rows."""
    parts = line.rstrip("\r\n").split(sep)
    if len(parts) > m:
        parts = parts[:m - 1] + [sep.join(parts[m - 1:])]
    return _pad(parts, m)
