"""Property tests (hypothesis): whatever bytes or table a user loads, the reader raises only the
product's own UserError kinds, and every row of the input ends up stored, a duplicate, or
rejected with a reason."""

from __future__ import annotations

import csv
import io
import os
import tempfile

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safety_models.data.ingest import ingest_bytes, read_incident_file
from safety_models.data.reading import read_rows
from safety_models.errors import UserError

# 80 examples keep the default run fast; SAFETY_MODELS_PROPERTY_EXAMPLES=2000 searches deeper.
FAST = settings(max_examples=int(os.environ.get("SAFETY_MODELS_PROPERTY_EXAMPLES", 80)),
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

# Pieces that make random bytes look like an export often enough to get past the first checks.
CHUNKS = [b",", b";", b"\t", b"|", b"\n", b"\r\n", b"\r", b'"', b'""', b" ", b"date", b"lat",
          b"lon", b"id", b"type", b"2019-03-01 10:00", b"03/01/2019", b"41.88", b"-87.63",
          b"41,88", b"POINT (-87.63 41.88)", b"(41.88, -87.63)", b"NA", b"-1", b"0",
          b"\xe9", b"\xc3\xa9", b"\xef\xbb\xbf", b"\x1f\x8b", b"PK\x03\x04", b"\x00", b"\xff\xfe",
          b"1900-01-01", b"2200-01-01", b"33.749,-84.388"]


def check_parsed(parsed) -> None:
    assert parsed.rows_read == len(parsed.accepted) + len(parsed.rejected)
    assert parsed.rejected["reason"].map(bool).all()


@FAST
@given(st.one_of(st.binary(max_size=3000),
                 st.lists(st.sampled_from(CHUNKS), max_size=300).map(b"".join)))
def test_random_bytes_raise_only_user_errors(data):
    for category in ("crime", "health"):
        try:
            parsed = read_incident_file(data, "random.csv", category)
        except UserError:
            continue
        check_parsed(parsed)


# --- random CSV-like tables -------------------------------------------------------------------

NAMES = {"time": ["date", "Date", "created", "date_single", "CRASH DATE", "fecha"],
         "lat": ["latitude", "lat", "Latitude", "LAT"], "lon": ["longitude", "lon", "Longitude"],
         "id": ["id", "ID", "case_number"], "text": ["type", "Primary Type", "note", "comuna", "x"]}
TEXT = st.text(alphabet=st.sampled_from(list("abcXYZ019 .-:/,;|\téñÜ中😀")), max_size=12)


def cell(kind: str):
    """A value for a column of a kind."""
    return {
        "time": st.datetimes(min_value=pd.Timestamp("1890-01-01").to_pydatetime(),
                             max_value=pd.Timestamp("2250-01-01").to_pydatetime()).map(
            lambda t: t.strftime("%Y-%m-%d %H:%M")),
        "lat": st.floats(41.6, 42.1).map(lambda v: f"{v:.5f}") | st.just("33.749"),
        "lon": st.floats(-87.95, -87.5).map(lambda v: f"{v:.5f}") | st.just("-84.388"),
        "id": st.integers(0, 30).map(lambda i: f"R{i}"),
        "text": TEXT,
    }[kind]


JUNK = TEXT | st.sampled_from(["", "NA", "-1", "0", "1900-01-01", "0,0", "2019-02-30 10:00"])


@st.composite
def tables(draw):
    """(bytes of a table, number of its non-blank data lines, how it was written)."""
    extra = draw(st.lists(st.sampled_from(["time", "id", "text"]), max_size=4))
    kinds = draw(st.permutations(["time", "lat", "lon", *extra]))
    usually = st.sampled_from([True] * 9 + [False])
    if not draw(usually):                 # now and then a table without coordinates
        kinds = [k for k in kinds if k != "lat"]
    header = [draw(st.sampled_from(NAMES[k]) if draw(usually) else TEXT) for k in kinds]
    n_rows = draw(st.integers(1, 40))
    rows = [[draw(cell(k)) for k in kinds] for _ in range(n_rows)]
    for _ in range(draw(st.integers(0, max(1, n_rows // 4)))):    # bad values here and there
        rows[draw(st.integers(0, n_rows - 1))][draw(st.integers(0, len(kinds) - 1))] = draw(JUNK)
    repeat = draw(st.integers(0, 3))       # identical rows: separate events
    rows += rows[:1] * repeat
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    mode = draw(st.sampled_from(["csv", "raw"]))
    if mode == "csv":    # valid CSV: values with the separator are quoted, quotes doubled
        rows = [[c + draw(st.sampled_from(["", '"', ' "quoted" '])) if k == "text" else c
                 for c, k in zip(r, kinds)] for r in rows]
        out = io.StringIO()
        writer = csv.writer(out, delimiter=sep, lineterminator="\n")
        lines = []
        for r in [header, *rows]:
            out.seek(0)
            out.truncate()
            writer.writerow(r)
            lines.append(out.getvalue()[:-1])
    else:                # as badly written exports are: joined, whatever the values hold
        lines = [sep.join(r) for r in [header, *rows]]
        if draw(st.booleans()):          # one stray quote opening a value
            k = draw(st.integers(1, len(lines) - 1))
            cells = lines[k].split(sep)
            j = draw(st.integers(0, len(cells) - 1))
            cells[j] = '"' + cells[j]
            lines[k] = sep.join(cells)
    for _ in range(draw(st.integers(0, 2))):    # blank lines among the rows
        lines.insert(draw(st.integers(2, len(lines))), "")
    data_lines = sum(1 for line in lines[1:] if line.strip())
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    encodings = draw(st.sampled_from(["utf-8", "latin-1", "mixed"]))
    chunks = []
    for i, line in enumerate(lines):
        encoding = encodings if encodings != "mixed" else ("latin-1" if i % 2 else "utf-8")
        try:
            chunks.append((line + newline).encode(encoding))
        except UnicodeEncodeError:
            chunks.append((line + newline).encode("utf-8"))
    return b"".join(chunks), data_lines, (mode, sep, encodings, header, rows)


@pytest.fixture(scope="module")
def scratch_home():
    with tempfile.TemporaryDirectory() as folder:
        yield folder


@settings(FAST, max_examples=max(1, FAST.max_examples * 5 // 8))   # a store per example
@given(tables())
def test_every_row_of_a_random_table_is_stored_a_duplicate_or_rejected(scratch_home, table):
    data, data_lines, (mode, sep, encoding, header, rows) = table
    from safety_models.data.store import Store

    with tempfile.TemporaryDirectory(dir=scratch_home) as home:
        os.environ["SAFETY_MODELS_HOME"] = home
        os.environ.pop("SAFETY_MODELS_DB_URL", None)
        store = Store()
        try:
            try:
                summary = ingest_bytes(store, data, "table.csv", "crime")
            except UserError:
                return
            # Every line of the input is one row (no value in these tables holds a line
            # break), and every row is accounted for.
            assert summary.rows_read == data_lines
            assert summary.accepted + summary.duplicates + summary.rejected == data_lines
            assert store.incident_counts()["crime"] == summary.accepted
            assert len(store.rejected_rows(summary.upload_id)) == summary.rejected
            again = ingest_bytes(store, data + b"\n", "again.csv", "crime")   # other bytes
            assert again.accepted == 0 and not again.already_loaded
        finally:
            store.close()
            os.environ.pop("SAFETY_MODELS_HOME", None)


@FAST
@given(tables())
def test_valid_csv_reads_back_cell_for_cell(table):
    data, data_lines, (mode, sep, encoding, header, rows) = table
    if mode != "csv":
        return
    try:
        got = read_rows(data, "table.csv")
    except UserError:
        return
    if got.frame.attrs["separator"] != sep or len(header) != got.frame.shape[1]:
        return    # the separator is sniffed: values full of another one may mislead it
    assert got.unreadable == {}
    assert got.frame.values.tolist() == [[c.strip() for c in r] for r in rows]
    assert len(got.row_numbers) == data_lines and list(got.row_numbers) == sorted(got.row_numbers)
