"""The incident store: the only module that talks to the database.

One `Store` wraps one SQLAlchemy engine (URL from `paths.db_url()` unless given): an SQLite
file under the home folder by default, or PostgreSQL (`postgresql+psycopg://...`; a bare
`postgresql://` gets the psycopg driver too) or any database SAFETY_MODELS_DB_URL names.
The SQL here is portable but for the connection settings and the bulk insert below.

Writers queue, on every database: SQLite connections run in WAL journal mode with a busy
timeout and write transactions begin with BEGIN IMMEDIATE; on PostgreSQL a write
transaction (`Store.begin()`) first takes one transaction-scoped advisory lock. So the
dashboard and a training process can read while another writes, and check-then-write code
(one city per category, one active job per category) holds on both.

Bulk loading: SQLite inserts with executemany and ON CONFLICT DO NOTHING; PostgreSQL COPYs
the rows into a temporary table and inserts the ones with new keys from there. Same rows,
same id order (by time), same counts.

Tables (all on the module-level `metadata`):
  uploads        one row per loaded file, with its counts, column mapping and time range
  incidents      accepted incidents (and their place text, when the file had one); unique
                 (category, source_key); index (category, occurred_at)
  incident_days  each upload's stored incidents counted per day and subtype, written with its
                 incidents and removed with them: the Data page's counts without a pass over
                 every incident (Store.incidents_per_day)
  rejected_rows  the rows of a file that could not be used: row_number, reason, raw row as JSON
  boundaries     district outlines (GeoJSON text) per category, or "*" for every category
  meta           small key/value state (e.g. bootstrap status)

The schema is managed by Alembic migrations (data/migrations/): `Store.__init__` upgrades the
database to the newest revision, so a home or database made by an older version gets the
tables and columns a newer one adds. Other modules (registry.py, jobs.py, accounts.py,
audit.py) define their tables at import time on `safety_models.data.store.metadata` and use
`store.engine` (or `store.begin()` for a write transaction); a new table or column needs a
revision too
(tests/data/test_migrations.py compares the newest revision with `metadata`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import event

from safety_models import paths
from safety_models.data.geo import haversine_km
from safety_models.data import migrations
from safety_models.errors import (CityMismatch, DatabaseDamaged, FileUnusable, HomeNotWritable,
                                  UserError)
from safety_models.files import clean_temporary_files, fsync_dir, write_atomic
from safety_models.schema import CATEGORIES, INCIDENT_COLUMNS, REJECT_COLUMNS, check_category

metadata = sa.MetaData()

_KEY_LEN = 200   # width of incidents.source_key; longer keys are stored as their sha1

uploads = sa.Table(
    "uploads", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("file_name", sa.Text, nullable=False),
    sa.Column("category", sa.String(16), nullable=False),
    sa.Column("checksum", sa.String(64), nullable=False),       # sha256 hex of the file's bytes
    sa.Column("uploaded_at", sa.DateTime, nullable=False),
    sa.Column("rows_read", sa.Integer, nullable=False, default=0),
    sa.Column("accepted", sa.Integer, nullable=False, default=0),    # new incidents stored
    sa.Column("rejected", sa.Integer, nullable=False, default=0),
    sa.Column("duplicates", sa.Integer, nullable=False, default=0),
    sa.Column("mapping", sa.Text, nullable=False, default="{}"),  # JSON of the column mapping
    sa.Column("stored_path", sa.Text),       # the kept original: relative to home (uploads/...)
    sa.Column("is_demo", sa.Boolean, nullable=False, default=False),
    sa.Column("time_min", sa.DateTime),
    sa.Column("time_max", sa.DateTime),
    sa.Column("rejected_reasons", sa.Text, nullable=False, default="{}"),  # JSON {reason: count}
    # Median location of the file's accepted incidents: the city check compares these.
    sa.Column("center_latitude", sa.Float),
    sa.Column("center_longitude", sa.Float),
    sa.Index("ix_uploads_checksum", "checksum", "category"),
    sqlite_autoincrement=True,   # never reuse the id of a removed upload
)

incidents = sa.Table(
    "incidents", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("upload_id", sa.Integer, sa.ForeignKey("uploads.id"), nullable=False),
    sa.Column("category", sa.String(16), nullable=False),
    sa.Column("subtype", sa.Text, nullable=False, default=""),
    sa.Column("occurred_at", sa.DateTime, nullable=False),     # naive, the city's local clock
    sa.Column("latitude", sa.Float, nullable=False),
    sa.Column("longitude", sa.Float, nullable=False),
    sa.Column("source_key", sa.String(_KEY_LEN), nullable=False),
    sa.Column("place", sa.Text),          # block / street / address as the file wrote it, or NULL
    sa.UniqueConstraint("category", "source_key", name="uq_incidents_category_source_key"),
    sa.Index("ix_incidents_category_occurred_at", "category", "occurred_at"),
    sa.Index("ix_incidents_upload_id", "upload_id"),
)

incident_days = sa.Table(
    "incident_days", metadata,
    sa.Column("upload_id", sa.Integer, sa.ForeignKey("uploads.id"), nullable=False),
    sa.Column("day", sa.Date, nullable=False),                # of occurred_at, the local clock
    sa.Column("subtype", sa.Text, nullable=False),
    sa.Column("incidents", sa.Integer, nullable=False),
    sa.PrimaryKeyConstraint("upload_id", "day", "subtype", name="pk_incident_days"),
)

rejected_rows_table = sa.Table(
    "rejected_rows", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("upload_id", sa.Integer, sa.ForeignKey("uploads.id"), nullable=False, index=True),
    sa.Column("row_number", sa.Integer, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw", sa.Text, nullable=False),                  # JSON object of the file's columns
)

boundaries = sa.Table(
    "boundaries", metadata,
    sa.Column("name", sa.String(64), primary_key=True),       # a category, or "*"
    sa.Column("geojson", sa.Text, nullable=False),
    sa.Column("is_demo", sa.Boolean, nullable=False, default=False),
)

meta = sa.Table(
    "meta", metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

CITY_MAX_DISTANCE_KM = 50.0
INSERT_CHUNK_ROWS = 50_000
READ_BATCH_ROWS = 200_000     # Store.incidents converts this many rows at a time
_SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"   # how SQLAlchemy's DateTime stores times in SQLite
# Key of the PostgreSQL advisory lock that write transactions take ("safety_m" in ASCII).
PG_WRITE_LOCK_KEY = 0x7361666574795F6D


@dataclass(frozen=True)
class UploadSummary:
    """What one call loading a file did. `accepted` counts new incidents it stored;
    `duplicates` counts usable rows already stored (or repeated within the file); rows_read =
    accepted + duplicates + rejected. `already_loaded` is True when the same file (same bytes,
    same category, any name) was loaded before: this call added nothing (accepted 0, every
    usable row a duplicate), and upload_id and earlier_upload_id name the upload that holds
    the file. Times are ISO strings of the naive local clock, or None."""

    upload_id: int
    file_name: str
    category: str
    rows_read: int
    accepted: int
    rejected: int
    duplicates: int
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    time_min: str | None = None
    time_max: str | None = None
    already_loaded: bool = False
    earlier_upload_id: int | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rejected_reasons"] = dict(self.rejected_reasons)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> UploadSummary:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def own_uploads(listing: pd.DataFrame, category: str) -> pd.DataFrame:
    """The rows of Store.list_uploads that a category's map is made of: its uploads, not the
    demo's (the demo is another city, removed before a city's own files are loaded)."""
    return listing[(listing["category"] == category) & ~listing["is_demo"]]


def set_wal_mode(cursor, attempts: int = 40, pause_s: float = 0.05) -> None:
    """PRAGMA journal_mode = WAL, tried again while the file is locked.

    On a new database file (still in rollback-journal mode) two connections that switch it
    at once each hold a shared lock and ask for an exclusive one: SQLite sees the deadlock and
    answers one of them "database is locked" at once, without waiting the busy timeout. The
    other one's switch is kept in the file, so the next try finds WAL already set."""
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or attempt == attempts - 1:
                raise
            time.sleep(pause_s)


def _install_sqlite_settings(engine: sa.Engine) -> None:
    """WAL + busy timeout on every connection; BEGIN IMMEDIATE for write transactions.

    pysqlite's own transaction handling is switched off (isolation_level=None) so that the
    BEGIN we emit is the one that runs (the SQLAlchemy-documented recipe)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 60000")
        set_wal_mode(cursor)
        # FULL: a committed upload, model or promotion survives a power cut (WAL + NORMAL
        # would keep the file consistent but could lose the last commits).
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA cache_size = -65536")   # 64 MiB: bulk inserts into big indexes
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        immediate = conn.get_execution_options().get("sqlite_begin_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Store:
    """Uploads, incidents, rejected rows, boundaries and small state in one database."""

    def __init__(self, url: str | None = None):
        self.url = url or paths.db_url()
        url = _with_driver(self.url)
        # A server may close idle connections (restart, timeouts); a file cannot.
        self.engine = sa.create_engine(url, pool_pre_ping=url.get_backend_name() != "sqlite")
        self.metadata = metadata
        self.dialect = self.engine.dialect.name
        self.is_sqlite = self.dialect == "sqlite"
        if self.is_sqlite:
            _install_sqlite_settings(self.engine)
            self._write_engine = self.engine.execution_options(sqlite_begin_immediate=True)
        else:
            self._write_engine = self.engine
        self._ensured: set[str] = set()
        self._ensure_lock = threading.Lock()
        self._open()

    def _open(self) -> None:
        """upgrade_schema, turning a damaged database or an unwritable home into a message
        that says what to do; then remove temporary files that killed processes left."""
        try:
            if self.is_sqlite:
                _check_sqlite_file(self.engine.url.database)
            self.upgrade_schema()
        except Exception as err:
            explained = explain_storage_error(err, self.url)
            if explained is None:
                raise
            self.engine.dispose()
            raise explained from err
        clean_home_leftovers()

    def upgrade_schema(self) -> None:
        """Bring the database to the newest migration (see data/migrations): a new database
        gets every table, an older one the tables and columns added since, keeping its rows.
        The check is one read when nothing is to do; otherwise the upgrade runs in a write
        transaction, so two processes opening a new database migrate it once."""
        with self.engine.connect() as conn:
            if migrations.current(conn) == migrations.head():
                return
        with self.begin() as conn:
            migrations.upgrade(conn)

    def create_tables(self) -> None:
        """Create every table on `metadata` that does not exist yet (idempotent). The
        product's tables come from the migrations; this is for tables outside them (tests)."""
        self.metadata.create_all(self.engine)

    def ensure_table(self, table: sa.Table) -> None:
        """Create `table` if missing, once per Store. The migrations create the product's
        tables; this stays for a table that a module (or a test) adds outside them."""
        if table.name in self._ensured:
            return
        with self._ensure_lock:
            table.create(self.engine, checkfirst=True)
            self._ensured.add(table.name)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextlib.contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite, the advisory write lock on
        PostgreSQL): commits on exit, rolls back on error. Writers wait for each other."""
        with self._write_engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_WRITE_LOCK_KEY})")
            yield conn

    # ---------------------------------------------------------------- uploads / incidents

    def add_upload(self, file_name: str, data: bytes | Path, category: str,
                   accepted: pd.DataFrame, rejected: pd.DataFrame, rows_read: int,
                   mapping: dict, is_demo: bool = False,
                   checksum: str | None = None) -> UploadSummary:
        """Store one parsed file atomically and keep its original bytes under home/uploads/.

        data: the file's bytes, or the path of the file on disk with `checksum` (sha256 hex)
        of the bytes that were parsed: the kept copy is then made from the file, and
        FileUnusable is raised (nothing stored) when the copy's bytes differ (the file
        changed since it was read).

        accepted has INCIDENT_COLUMNS (its category column is ignored: `category` wins) and
        may have `place` (block/street/address text, "" for none); rejected has the file's
        columns + row_number + reason. Incidents are de-duplicated by (category, source_key)
        within the file and against the store (ingest numbers the keys of identical rows, so
        multiplicities count). The same bytes loaded again for the same category add nothing
        (summary.already_loaded). Raises CityMismatch when the file's median location is more
        than CITY_MAX_DISTANCE_KM from the incidents already stored for the category. The kept
        file is fsync'd and appears with the committed row. On any error the store and the
        uploads folder are left exactly as they were."""
        category = _user_category(category)
        missing = [c for c in INCIDENT_COLUMNS if c not in accepted.columns]
        if missing:
            raise UserError(f"{file_name}: the accepted table lacks the columns {missing}; "
                            f"expected {list(INCIDENT_COLUMNS)}")
        missing = [c for c in REJECT_COLUMNS if c not in rejected.columns]
        if missing:
            raise UserError(f"{file_name}: the rejected table lacks the columns {missing}")
        if isinstance(data, (str, Path)):
            if checksum is None:
                raise ValueError("add_upload: a path needs the checksum of the bytes parsed")
            source = Path(data)
            write = lambda fh: _copy_checked(source, fh, checksum, file_name)  # noqa: E731
        else:
            checksum = hashlib.sha256(data).hexdigest()
            write = lambda fh: fh.write(data)  # noqa: E731
        earlier = self._find_by_checksum(checksum, category, file_name)
        if earlier is not None:
            return earlier

        new = _clean_accepted(accepted, category)
        reasons = dict(Counter(rejected["reason"].astype(str)).most_common())
        center = (float(new["latitude"].median()), float(new["longitude"].median())) \
            if len(new) else (None, None)
        time_min = new["occurred_at"].min() if len(new) else None
        time_max = new["occurred_at"].max() if len(new) else None

        uploads_dir = paths.sub_dir("uploads")
        try:
            tmp_path = write_atomic(uploads_dir / _safe_name(file_name), write, replace=False)
        except OSError as err:
            raise HomeNotWritable(paths.not_writable_message(uploads_dir, err)) from err
        final_path: Path | None = None
        placed = False
        try:
            with self.begin() as conn:
                if center[0] is not None:
                    self._check_city(conn, file_name, category, center)
                upload_id = conn.execute(uploads.insert().values(
                    file_name=file_name, category=category, checksum=checksum,
                    uploaded_at=datetime.now().replace(microsecond=0), rows_read=int(rows_read),
                    mapping=json.dumps(mapping, default=str), is_demo=bool(is_demo),
                    time_min=_py_time(time_min), time_max=_py_time(time_max),
                    rejected_reasons=json.dumps(reasons),
                    center_latitude=center[0], center_longitude=center[1],
                )).inserted_primary_key[0]
                before = len(new)
                order = insert_order(new)
                inserted = self._insert_incidents(conn, category, upload_id, new, order)
                duplicates = before - inserted
                # every row offered was stored (no key was there already): count them here
                if inserted == len(order):
                    stored = new if len(order) == len(new) else new.iloc[order]
                    count_days(conn, upload_id, stored["occurred_at"], stored["subtype"])
                else:
                    count_days(conn, upload_id)
                self._insert_rejected(conn, upload_id, rejected)
                final_path = uploads_dir / f"{upload_id}-{_safe_name(file_name)}"
                conn.execute(uploads.update().where(uploads.c.id == upload_id).values(
                    accepted=inserted, rejected=len(rejected), duplicates=duplicates,
                    stored_path=_home_relative(final_path)))
                # In place before the commit: a committed upload always has its file.
                os.replace(tmp_path, final_path)
                placed = True
                fsync_dir(uploads_dir)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            if placed:
                final_path.unlink(missing_ok=True)
            raise
        return UploadSummary(
            upload_id=int(upload_id), file_name=file_name, category=category,
            rows_read=int(rows_read), accepted=inserted, rejected=len(rejected),
            duplicates=duplicates, rejected_reasons=reasons,
            time_min=_iso(time_min), time_max=_iso(time_max))

    def find_upload(self, data: bytes, category: str,
                    file_name: str | None = None) -> UploadSummary | None:
        """What loading these exact bytes for category again does, or None when they are not
        stored: nothing added (already_loaded, accepted 0, every usable row a duplicate, the
        same rejected rows), pointing to the earlier upload (upload_id, earlier_upload_id).
        file_name is this call's name for the file (default: the earlier one's). Lets a
        caller skip parsing a file that is already stored."""
        return self._find_by_checksum(hashlib.sha256(data).hexdigest(), category, file_name)

    def _find_by_checksum(self, checksum: str, category: str,
                          file_name: str | None = None) -> UploadSummary | None:
        """find_upload by the sha256 hex of the bytes."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(uploads).where(uploads.c.checksum == checksum,
                                         uploads.c.category == category)
                .order_by(uploads.c.id).limit(1)).mappings().first()
        if row is None:
            return None
        earlier = _summary_from_row(row)
        return UploadSummary(
            upload_id=earlier.upload_id, file_name=file_name or earlier.file_name,
            category=earlier.category, rows_read=earlier.rows_read, accepted=0,
            rejected=earlier.rejected, duplicates=earlier.accepted + earlier.duplicates,
            rejected_reasons=earlier.rejected_reasons, time_min=earlier.time_min,
            time_max=earlier.time_max, already_loaded=True, earlier_upload_id=earlier.upload_id)

    def _check_city(self, conn: sa.Connection, file_name: str, category: str,
                    center: tuple[float, float]) -> None:
        """Refuse a file centred far from the city this home already holds for `category`.

        The stored city's centre is the median of the stored uploads' centres, weighted by
        their incident counts (the median of all stored incidents, without reading them)."""
        rows = conn.execute(
            sa.select(uploads.c.id, uploads.c.file_name, uploads.c.is_demo,
                      uploads.c.center_latitude, uploads.c.center_longitude, uploads.c.accepted)
            .where(uploads.c.category == category, uploads.c.accepted > 0,
                   uploads.c.center_latitude.is_not(None))).all()
        if not rows:
            return
        weights = np.array([r.accepted for r in rows], dtype=float)
        stored = (_weighted_median([r.center_latitude for r in rows], weights),
                  _weighted_median([r.center_longitude for r in rows], weights))
        distance_km = haversine_km(center[0], center[1], stored[0], stored[1])
        if distance_km <= CITY_MAX_DISTANCE_KM:
            return
        listed = ", ".join(f"#{r.id} {r.file_name}{' (demo)' if r.is_demo else ''}"
                           for r in rows[:5]) + (" ..." if len(rows) > 5 else "")
        raise CityMismatch(
            f"{file_name}: its {category} incidents are centred at {center[0]:.3f}, "
            f"{center[1]:.3f}, {distance_km:,.0f} km from the {category} data already stored "
            f"in this home (centred at {stored[0]:.3f}, {stored[1]:.3f}; uploads {listed}). "
            f"One home holds one city per category. To load this city instead, remove those "
            f"uploads first (`python -m safety_models remove-upload ID`, or "
            f"`python -m safety_models demo --remove` for the demo data, or the Data page), "
            f"or use another home folder by setting SAFETY_MODELS_HOME.")

    def _stored_keys(self, conn: sa.Connection, category: str, keys: list[str]) -> set[str]:
        """The subset of keys already stored for category.

        One SELECT of every stored key when the store is not much bigger than the file
        (cheapest for the usual case); otherwise lookups in chunks of IN (...). Plain Python
        sets throughout: pandas' isin on arrow strings is orders of magnitude slower here."""
        c = incidents.c
        n_stored = conn.execute(sa.select(sa.func.count()).where(c.category == category)
                                ).scalar_one()
        if n_stored == 0 or not keys:
            return set()
        if n_stored <= 20 * len(keys):
            if self.is_sqlite:   # raw cursor: no per-row result processing
                cursor = conn.connection.driver_connection.cursor()
                try:
                    stored = cursor.execute("SELECT source_key FROM incidents WHERE category = ?",
                                            (category,)).fetchall()
                finally:
                    cursor.close()
                stored_keys = {row[0] for row in stored}
            else:
                stored_keys = set(conn.execute(sa.select(c.source_key)
                                               .where(c.category == category)).scalars())
            return stored_keys.intersection(keys)
        found: set[str] = set()
        step = 900   # below SQLite's historical 999-parameter limit
        for i in range(0, len(keys), step):
            found.update(conn.execute(
                sa.select(c.source_key).where(c.category == category,
                                              c.source_key.in_(keys[i:i + step]))).scalars())
        return found

    def _insert_incidents(self, conn: sa.Connection, category: str, upload_id: int,
                          new: pd.DataFrame, order: np.ndarray | None = None) -> int:
        """Bulk insert of the incidents whose (category, source_key) is not stored yet, the
        rows `new.iloc[order]` (default: all, in their order) one chunk at a time; returns how
        many were inserted.

        SQLite: executemany over plain tuples, in chunks, skipping stored keys in the INSERT
        itself (ON CONFLICT DO NOTHING on the unique constraint: no key read, and safe
        against a concurrent writer). PostgreSQL: COPY (see _copy_incidents). Other
        databases look the keys up first, then insert through Core."""
        if order is None:
            order = np.arange(len(new))
        if not len(order):
            return 0
        columns = ["upload_id", "category", "subtype", "occurred_at", "latitude", "longitude",
                   "source_key", "place"]
        if self.dialect == "postgresql":
            return self._copy_incidents(conn, upload_id, new, order)
        if not self.is_sqlite:
            new = new.iloc[order]
            keys = new["source_key"].tolist()
            stored = self._stored_keys(conn, category, keys)
            if stored:
                new = new[np.fromiter((k not in stored for k in keys), dtype=bool,
                                      count=len(keys))]
            times = new["occurred_at"].dt.to_pydatetime().tolist()
            records = [dict(zip(columns, row)) for row in zip(
                [int(upload_id)] * len(new), new["category"].tolist(), new["subtype"].tolist(),
                times, new["latitude"].tolist(), new["longitude"].tolist(),
                new["source_key"].tolist(), _place_values(new))]
            for i in range(0, len(records), INSERT_CHUNK_ROWS):
                conn.execute(incidents.insert(), records[i:i + INSERT_CHUNK_ROWS])
            return len(records)
        sql = (f"INSERT INTO incidents ({', '.join(columns)}) "
               f"VALUES ({', '.join('?' * len(columns))}) "
               "ON CONFLICT (category, source_key) DO NOTHING")
        return sum(self._execute_many(conn, sql, chunk)
                   for chunk in _insert_rows(new, upload_id, INSERT_CHUNK_ROWS, order))

    @staticmethod
    def _copy_incidents(conn: sa.Connection, upload_id: int, new: pd.DataFrame,
                        order: np.ndarray) -> int:
        """PostgreSQL: COPY the rows into a temporary table, then one INSERT ... SELECT, in
        the rows' order, of those whose (category, source_key) is not stored yet; returns
        how many were inserted. The temporary table lives only inside the caller's
        transaction (dropped here, and by a rollback).

        COPY streams the rows in one statement (no per-row round trip or statement); times
        go as text in the form PostgreSQL reads for `timestamp`. Stored keys are skipped by
        an anti-join rather than ON CONFLICT DO NOTHING, whose per-row speculative insertion
        made the INSERT about 1.5x slower; that is safe because the caller holds the write
        lock (Store.begin), so no other writer adds keys meanwhile."""
        columns = ", ".join(("upload_id", "category", "subtype", "occurred_at", "latitude",
                             "longitude", "source_key", "place"))
        cursor = conn.connection.driver_connection.cursor()   # psycopg 3
        try:
            cursor.execute(
                "CREATE TEMPORARY TABLE incidents_load (upload_id integer, category text, "
                "subtype text, occurred_at timestamp, latitude double precision, "
                "longitude double precision, source_key text, place text, position bigint) "
                "ON COMMIT DROP")
            with cursor.copy(f"COPY incidents_load ({columns}, position) FROM STDIN") as copy:
                position = 0
                for chunk in _insert_rows(new, upload_id, INSERT_CHUNK_ROWS, order):
                    for row in chunk:
                        copy.write_row((*row, position))
                        position += 1
            cursor.execute(
                f"INSERT INTO incidents ({columns}) SELECT {columns} FROM incidents_load AS l "
                "WHERE NOT EXISTS (SELECT 1 FROM incidents AS i WHERE i.category = l.category "
                "AND i.source_key = l.source_key) ORDER BY position")
            inserted = cursor.rowcount
            cursor.execute("DROP TABLE incidents_load")
        finally:
            cursor.close()
        return int(inserted)

    def _execute_many(self, conn: sa.Connection, sql: str, rows: list[tuple]) -> int:
        """executemany on the driver; returns the rows it inserted (SQLite)."""
        driver = conn.connection.driver_connection
        before = driver.total_changes
        conn.exec_driver_sql(sql, rows)
        return driver.total_changes - before

    def _insert_rejected(self, conn: sa.Connection, upload_id: int,
                         rejected: pd.DataFrame) -> None:
        if not len(rejected):
            return
        file_columns = [c for c in rejected.columns if c not in REJECT_COLUMNS]
        raw = rejected[file_columns].astype(object)
        raw = raw.where(raw.notna(), None)
        records = [
            {"upload_id": int(upload_id), "row_number": int(n), "reason": str(reason),
             "raw": json.dumps(dict(zip(file_columns, values)), default=str)}
            for n, reason, values in zip(rejected["row_number"].tolist(),
                                         rejected["reason"].tolist(),
                                         raw.itertuples(index=False, name=None))]
        for i in range(0, len(records), INSERT_CHUNK_ROWS):
            conn.execute(rejected_rows_table.insert(), records[i:i + INSERT_CHUNK_ROWS])

    def list_uploads(self) -> pd.DataFrame:
        """One row per upload, oldest first: upload_id, file_name, category, checksum,
        uploaded_at, rows_read, accepted, rejected, duplicates, is_demo, time_min, time_max,
        rejected_reasons (dict), stored_path, only_types (the incident types it kept, [] for
        every type)."""
        u = uploads.c
        stmt = sa.select(u.id.label("upload_id"), u.file_name, u.category, u.checksum,
                         u.uploaded_at, u.rows_read, u.accepted, u.rejected, u.duplicates,
                         u.is_demo, u.time_min, u.time_max, u.rejected_reasons,
                         u.stored_path, u.mapping).order_by(u.id)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        columns = list(stmt.selected_columns.keys())
        df = pd.DataFrame([dict(r) for r in rows], columns=columns)
        df["stored_path"] = [None if p is None else str(home_file(p)) for p in df["stored_path"]]
        df["rejected_reasons"] = [json.loads(s or "{}") for s in df["rejected_reasons"]]
        df["only_types"] = [json.loads(m or "{}").get("only_types") or [] for m in df.pop("mapping")]
        for name in ("uploaded_at", "time_min", "time_max"):
            df[name] = pd.to_datetime(df[name])
        for name in ("upload_id", "rows_read", "accepted", "rejected", "duplicates"):
            df[name] = df[name].astype("int64")
        df["is_demo"] = df["is_demo"].astype(bool)
        return df

    def upload(self, upload_id: int) -> UploadSummary:
        """The summary of one stored upload; UserError when there is none with that id."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(uploads).where(uploads.c.id == int(upload_id))
                               ).mappings().first()
        if row is None:
            raise UserError(_no_upload(upload_id))
        return _summary_from_row(row)

    def upload_mapping(self, upload_id: int) -> dict:
        """The column mapping an upload was parsed with (ColumnMapping.to_dict, plus
        "only_types" when only some incident types were loaded); {} for an unknown id."""
        with self.engine.connect() as conn:
            text = conn.execute(sa.select(uploads.c.mapping).where(uploads.c.id == int(upload_id))
                                ).scalar_one_or_none()
        return json.loads(text or "{}")

    def remove_upload(self, upload_id: int) -> int:
        """Delete an upload with its incidents and rejected rows (one transaction) and its
        kept file; returns the number of incidents removed. UserError for an unknown id."""
        upload_id = int(upload_id)
        with self.begin() as conn:
            stored_path = conn.execute(sa.select(uploads.c.stored_path)
                                       .where(uploads.c.id == upload_id)).first()
            if stored_path is None:
                raise UserError(_no_upload(upload_id))
            conn.execute(incident_days.delete().where(incident_days.c.upload_id == upload_id))
            removed = conn.execute(incidents.delete()
                                   .where(incidents.c.upload_id == upload_id)).rowcount
            conn.execute(rejected_rows_table.delete()
                         .where(rejected_rows_table.c.upload_id == upload_id))
            conn.execute(uploads.delete().where(uploads.c.id == upload_id))
        if stored_path[0]:
            home_file(stored_path[0]).unlink(missing_ok=True)
        return int(removed)

    def remove_demo(self) -> int:
        """Remove every demo upload and the demo boundaries; returns incidents removed."""
        with self.engine.connect() as conn:
            ids = conn.execute(sa.select(uploads.c.id).where(uploads.c.is_demo)).scalars().all()
        removed = sum(self.remove_upload(i) for i in ids)
        with self.begin() as conn:
            conn.execute(boundaries.delete().where(boundaries.c.is_demo))
        return removed

    def rejected_rows(self, upload_id: int) -> pd.DataFrame:
        """The rejected rows of an upload: the file's own columns, then row_number and reason,
        in file order. UserError for an unknown upload id."""
        upload_id = int(upload_id)
        r = rejected_rows_table.c
        with self.engine.connect() as conn:
            if conn.execute(sa.select(uploads.c.id).where(uploads.c.id == upload_id)).first() \
                    is None:
                raise UserError(_no_upload(upload_id))
            rows = conn.execute(sa.select(r.row_number, r.reason, r.raw)
                                .where(r.upload_id == upload_id).order_by(r.row_number, r.id)
                                ).all()
        raws = [json.loads(row.raw) for row in rows]
        file_columns = list(dict.fromkeys(k for raw in raws for k in raw))
        df = pd.DataFrame(raws, columns=file_columns)
        df["row_number"] = np.array([row.row_number for row in rows], dtype="int64")
        df["reason"] = pd.Series([row.reason for row in rows], dtype="str")
        return df

    def incidents(self, category: str, start=None, end=None) -> pd.DataFrame:
        """Incidents of a category, sorted by time: occurred_at (datetime64[ns], naive local),
        latitude, longitude (float64), subtype (str). start is inclusive, end exclusive;
        either may be None (open)."""
        category = check_category(category)
        start = None if start is None else pd.Timestamp(start).to_pydatetime()
        end = None if end is None else pd.Timestamp(end).to_pydatetime()
        with self.engine.connect() as conn:
            if self.is_sqlite:
                batches = self._sqlite_incident_rows(conn, category, start, end)
            else:
                c = incidents.c
                stmt = sa.select(c.occurred_at, c.latitude, c.longitude, c.subtype).where(
                    c.category == category)
                if start is not None:
                    stmt = stmt.where(c.occurred_at >= start)
                if end is not None:
                    stmt = stmt.where(c.occurred_at < end)
                # a server-side cursor: the server sends READ_BATCH_ROWS rows at a time
                batches = conn.execution_options(stream_results=True).execute(
                    stmt.order_by(c.occurred_at, c.id)).partitions(READ_BATCH_ROWS)
            parts = [_incident_arrays(batch) for batch in batches]
        if not parts:
            parts = [_incident_arrays([])]
        return pd.DataFrame({
            "occurred_at": pd.DatetimeIndex(np.concatenate([p[0] for p in parts])),
            "latitude": np.concatenate([p[1] for p in parts]),
            "longitude": np.concatenate([p[2] for p in parts]),
            "subtype": pd.concat([pd.Series(p[3]) for p in parts], ignore_index=True).array,
        })

    @staticmethod
    def _sqlite_incident_rows(conn: sa.Connection, category: str, start, end) -> Iterator[list[tuple]]:
        """One SELECT on the raw sqlite3 cursor, READ_BATCH_ROWS rows at a time: no per-row
        SQLAlchemy processing (a long read is dominated by building Python tuples; this
        keeps it to that, and to one batch of them at a time)."""
        sql = ("SELECT occurred_at, latitude, longitude, subtype FROM incidents "
               "WHERE category = ?")
        params: list = [category]
        if start is not None:
            sql += " AND occurred_at >= ?"
            params.append(start.strftime(_SQLITE_TIME_FORMAT))
        if end is not None:
            sql += " AND occurred_at < ?"
            params.append(end.strftime(_SQLITE_TIME_FORMAT))
        sql += " ORDER BY occurred_at, id"
        cursor = conn.connection.driver_connection.cursor()
        try:
            cursor.execute(sql, params)
            while batch := cursor.fetchmany(READ_BATCH_ROWS):
                yield batch
        finally:
            cursor.close()

    def incidents_per_day(self, category: str) -> pd.DataFrame:
        """Incidents of a category counted per day and subtype: occurred_at (the day's
        midnight, datetime64[ns]), subtype (str), incidents (int64), by day then subtype.
        What tables.incidents_per_period counts, from the uploads' per-day counts
        (incident_days: a few thousand rows where the incidents are millions)."""
        category = check_category(category)
        d = incident_days.c
        stmt = (sa.select(d.day, d.subtype, sa.func.sum(d.incidents).label("n"))
                .select_from(incident_days.join(uploads, uploads.c.id == d.upload_id))
                .where(uploads.c.category == category).group_by(d.day, d.subtype)
                .order_by(d.day, d.subtype))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        days, subtypes, counts = zip(*rows) if rows else ((), (), ())
        return pd.DataFrame({
            "occurred_at": pd.to_datetime([str(d) for d in days], format="%Y-%m-%d")
                             .astype("datetime64[ns]"),
            "subtype": pd.array([s or "" for s in subtypes], dtype="str"),
            "incidents": np.array(counts, dtype="int64"),
        })

    def data_version(self) -> str:
        """Changes whenever incidents are added or removed, read in one small query of the
        uploads table (not the incidents): every load is an upload row, ids are never
        reused, and a removal deletes its row; the accepted counts follow a row's update."""
        u = uploads.c
        with self.engine.connect() as conn:
            newest, n, accepted = conn.execute(
                sa.select(sa.func.max(u.id), sa.func.count(), sa.func.sum(u.accepted))).one()
        return f"{newest or 0}:{n}:{accepted or 0}"

    def incident_counts(self) -> dict[str, int]:
        """Stored incidents per category; every category is present, 0 when none. Summed
        from the uploads' per-day counts (incident_days), not counted over every incident."""
        d = incident_days.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(uploads.c.category, sa.func.sum(d.incidents))
                                .select_from(incident_days.join(uploads,
                                                                uploads.c.id == d.upload_id))
                                .group_by(uploads.c.category)).all()
        counts = {name: 0 for name in CATEGORIES}
        counts.update({name: int(n) for name, n in rows})
        return counts

    def incident_places(self, category: str) -> pd.DataFrame:
        """The incidents of a category that have a place text: latitude, longitude (float64),
        place (str); empty when the files named no place column."""
        category = check_category(category)
        c = incidents.c
        parts = []
        with self.engine.connect() as conn:
            # READ_BATCH_ROWS rows at a time, as Store.incidents: one batch of tuples at once
            batches = conn.execution_options(stream_results=True).execute(
                sa.select(c.latitude, c.longitude, c.place)
                .where(c.category == category, c.place.is_not(None), c.place != "")
            ).partitions(READ_BATCH_ROWS)
            for batch in batches:
                lats, lons, places = zip(*batch)
                parts.append((np.array(lats, dtype="float64"), np.array(lons, dtype="float64"),
                              pd.Series(pd.array(places, dtype="str"))))
        if not parts:
            parts = [(np.zeros(0), np.zeros(0), pd.Series(pd.array([], dtype="str")))]
        return pd.DataFrame({"latitude": np.concatenate([p[0] for p in parts]),
                             "longitude": np.concatenate([p[1] for p in parts]),
                             "place": pd.concat([p[2] for p in parts], ignore_index=True).array})

    def time_range(self, category: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """First and last occurred_at of a category; None when it has no incidents."""
        category = check_category(category)
        c = incidents.c
        # Two subqueries: each is one step down the (category, occurred_at) index, where
        # min and max in one SELECT made SQLite walk the category's whole range.
        ends = [sa.select(fn(c.occurred_at)).where(c.category == category).scalar_subquery()
                for fn in (sa.func.min, sa.func.max)]
        with self.engine.connect() as conn:
            low, high = conn.execute(sa.select(*ends)).one()
        if low is None:
            return None
        return pd.Timestamp(low), pd.Timestamp(high)

    # ---------------------------------------------------------------- boundaries, meta

    def set_boundary(self, name: str, geojson: dict, is_demo: bool = False) -> None:
        """Store district outlines for a category (or "*" for all), replacing earlier ones."""
        if not isinstance(geojson, dict) or "type" not in geojson:
            raise UserError(f"the boundary for {name!r} is not GeoJSON (a dict with a 'type')")
        text = json.dumps(geojson, separators=(",", ":"))
        with self.begin() as conn:
            conn.execute(boundaries.delete().where(boundaries.c.name == name))
            conn.execute(boundaries.insert().values(name=name, geojson=text,
                                                    is_demo=bool(is_demo)))

    def boundary(self, name: str = "*") -> dict | None:
        """The outlines stored under name (a category), else those under "*", else None."""
        with self.engine.connect() as conn:
            rows = dict(conn.execute(sa.select(boundaries.c.name, boundaries.c.geojson)
                                     .where(boundaries.c.name.in_([name, "*"]))).all())
        text = rows.get(name) or rows.get("*")
        return json.loads(text) if text else None

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()

    def set_meta(self, key: str, value: str) -> None:
        with self.begin() as conn:
            conn.execute(meta.delete().where(meta.c.key == key))
            conn.execute(meta.insert().values(key=key, value=str(value)))


# -------------------------------------------------------------------- helpers


def count_days(conn: sa.Connection, upload_id: int, occurred_at: pd.Series | None = None,
               subtype: pd.Series | None = None) -> None:
    """Write incident_days for one upload's incidents (add_upload, in its transaction).

    occurred_at, subtype: the times and subtypes of the upload's rows exactly as they were
    stored (_clean_accepted's columns), when the caller knows that every row it offered
    was; they are counted here (seconds at ten million rows). Otherwise a GROUP BY in the database over the upload's stored rows, so
    that rows the load skipped as duplicates are not counted (20 s on SQLite at ten million).
    Revision 0005 filled the table with that GROUP BY for the uploads before it."""
    if occurred_at is not None:
        # (day, subtype) pairs as one integer key each: a sort of int64s, not a groupby
        days = occurred_at.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64)
        codes, names = pd.factorize(subtype, sort=True)
        keys, counts = np.unique(days * len(names) + codes, return_counts=True)
        rows = [{"upload_id": int(upload_id),
                 "day": np.datetime64(int(key) // len(names), "D").item(),
                 "subtype": str(names[int(key) % len(names)]), "incidents": int(n)}
                for key, n in zip(keys.tolist(), counts.tolist())]
        for i in range(0, len(rows), INSERT_CHUNK_ROWS):
            conn.execute(incident_days.insert(), rows[i:i + INSERT_CHUNK_ROWS])
        return
    c = incidents.c
    if conn.dialect.name == "sqlite":   # stored as "YYYY-MM-DD HH:MM:SS.ffffff" text, as Date
        day = sa.func.substr(c.occurred_at, 1, 10)
    else:
        day = sa.cast(c.occurred_at, sa.Date)
    stmt = (sa.select(c.upload_id, day, c.subtype, sa.func.count())
            .where(c.upload_id == int(upload_id)).group_by(c.upload_id, day, c.subtype))
    conn.execute(incident_days.insert().from_select(
        ["upload_id", "day", "subtype", "incidents"], stmt))


def _with_driver(url: str) -> sa.URL:
    """`postgresql://` means psycopg 3 here (SQLAlchemy's default would be psycopg2, which
    is not installed); any other URL as given."""
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    return parsed


def _copy_checked(source: Path, fh, checksum: str, file_name: str) -> None:
    """Copy a file into fh a block at a time; FileUnusable when its sha256 is not checksum."""
    digest = hashlib.sha256()
    with open(source, "rb") as src:
        while block := src.read(1 << 24):
            digest.update(block)
            fh.write(block)
    if digest.hexdigest() != checksum:
        raise FileUnusable(f"{file_name}: the file changed while it was being loaded (its "
                           "bytes differ from those read); nothing was stored. Load it again "
                           "once whatever writes it has finished")


def _weighted_median(values, weights: np.ndarray) -> float:
    order = np.argsort(values)
    v = np.asarray(values, dtype=float)[order]
    cum = np.cumsum(weights[order])
    return float(v[np.searchsorted(cum, cum[-1] / 2)])


def _user_category(category: str) -> str:
    try:
        return check_category(category)
    except ValueError as err:
        raise UserError(str(err)) from None


def _clean_accepted(accepted: pd.DataFrame, category: str) -> pd.DataFrame:
    """INCIDENT_COLUMNS with storable types; keys over the column width are hashed."""
    optional = [c for c in ("place",) if c in accepted.columns]
    # no .copy(): every column is reassigned below, and copy-on-write copies only those
    df = accepted.loc[:, [*INCIDENT_COLUMNS, *optional]]
    if optional:
        df["place"] = df["place"].fillna("").astype(str)
    df["category"] = category
    df["subtype"] = df["subtype"].fillna("").astype(str)
    df["occurred_at"] = pd.to_datetime(df["occurred_at"])
    df["latitude"] = df["latitude"].astype("float64")
    df["longitude"] = df["longitude"].astype("float64")
    keys = df["source_key"].astype(str)
    long_keys = keys.str.len() > _KEY_LEN
    if long_keys.any():
        keys = keys.where(~long_keys, keys[long_keys].map(
            lambda k: "sha1:" + hashlib.sha1(k.encode()).hexdigest()))
    df["source_key"] = keys
    bad = df["occurred_at"].isna() | df["latitude"].isna() | df["longitude"].isna()
    if bad.any():
        raise UserError(f"{int(bad.sum())} accepted rows lack a time or coordinates; "
                        "they should have been rejected by ingest")
    return df


def insert_order(new: pd.DataFrame) -> np.ndarray:
    """The positions of `new`'s rows to insert, in insert order: the first row of each
    source_key (a later one is a duplicate), by time, ties in file order. Time order keeps
    the (category, occurred_at) index local while inserting and makes later time-ordered
    reads walk the table nearly sequentially. Positions rather than a sorted, de-duplicated
    copy of the frame: that copy was a whole second table at ten million rows."""
    codes, _ = pd.factorize(new["source_key"], sort=False)
    first = np.zeros(len(new), dtype=bool)
    first[np.unique(codes, return_index=True)[1]] = True
    del codes
    keep = np.flatnonzero(first)
    times = new["occurred_at"].to_numpy(dtype="datetime64[ns]")[keep]
    return keep[np.argsort(times, kind="stable")]


def _insert_rows(new: pd.DataFrame, upload_id: int, chunk_rows: int,
                 order: np.ndarray | None = None) -> Iterator[list[tuple]]:
    """The rows `new.iloc[order]` (_clean_accepted's columns; default all, in order) as the
    incidents table's insert tuples (upload_id, category, subtype, occurred_at, latitude,
    longitude, source_key, place), chunk_rows at a time. Times are text in the form
    SQLAlchemy's SQLite DateTime stores (and PostgreSQL reads for `timestamp`), which
    bypasses per-value type processing; a place of "" is None. Built chunk by chunk: Python
    lists of every column of ten million rows at once took more memory than the rest of a
    load."""
    upload_id = int(upload_id)
    if order is None:
        order = np.arange(len(new))
    for first in range(0, len(order), chunk_rows):
        part = new.iloc[order[first:first + chunk_rows]]
        yield list(zip([upload_id] * len(part), part["category"].tolist(),
                       part["subtype"].tolist(),
                       part["occurred_at"].dt.strftime(_SQLITE_TIME_FORMAT).tolist(),
                       part["latitude"].tolist(), part["longitude"].tolist(),
                       part["source_key"].tolist(), _place_values(part)))


def _place_values(df: pd.DataFrame) -> list:
    """The place text of each row for the database: None where there is none."""
    if "place" not in df:
        return [None] * len(df)
    return [p or None for p in df["place"].tolist()]


def _incident_arrays(rows: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """Rows of (occurred_at, latitude, longitude, subtype) -> (datetime64[ns], float64,
    float64 arrays, a pandas "str" array); Store.incidents concatenates them batch by batch, so that only
    one batch of Python tuples exists at a time (ten million at once took gigabytes)."""
    times, lats, lons, subtypes = zip(*rows) if rows else ((), (), (), ())
    return (np.asarray(_to_datetime(times), dtype="datetime64[ns]"),
            np.array(lats, dtype="float64"), np.array(lons, dtype="float64"),
            pd.array(subtypes, dtype="str"))


def _to_datetime(values) -> pd.DatetimeIndex:
    """datetime64[ns] from stored times: SQLite's "YYYY-MM-DD HH:MM:SS.ffffff" strings
    (numpy parses these in C, ~10x faster than pandas) or the driver's datetimes."""
    if len(values) and isinstance(values[0], str):
        try:
            return pd.DatetimeIndex(np.array(values, dtype="datetime64[ns]"))
        except ValueError:
            return pd.DatetimeIndex(pd.to_datetime(list(values), format="ISO8601")
                                    ).astype("datetime64[ns]")
    return pd.DatetimeIndex(pd.to_datetime(list(values))).astype("datetime64[ns]")


def _py_time(value) -> datetime | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()


def _iso(value) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def home_file(stored: str) -> Path:
    """A path stored in the database: relative to the home folder (absolute ones, written
    before paths were stored relative, as they are)."""
    path = Path(stored)
    return path if path.is_absolute() else paths.home_dir() / path


def _home_relative(path: Path) -> str:
    try:
        return path.relative_to(paths.home_dir()).as_posix()
    except ValueError:
        return str(path)


# Folders of the home where write_atomic leaves temporary files while it writes.
HOME_FOLDERS_WITH_FILES = ("uploads", "models", "evaluations", "studies", "boundaries", "jobs",
                           "cities")


def clean_home_leftovers() -> list[Path]:
    """Remove temporary files that processes killed while writing left in the home (files.
    clean_temporary_files: a file still being written by a running process stays)."""
    home = paths.home_dir(create=False)
    removed = clean_temporary_files(home)
    for name in HOME_FOLDERS_WITH_FILES:
        removed += clean_temporary_files(home / name)
    return removed


# Words of SQLite's errors for a file that is not (or no longer) a whole database.
_DAMAGED = ("file is not a database", "malformed", "database corrupt", "not a database",
            "file is encrypted")
_NOT_WRITABLE = ("readonly database", "read-only", "unable to open database file",
                 "attempt to write a readonly")


def explain_storage_error(err: BaseException, url: str | None = None) -> UserError | None:
    """A UserError saying what to do for a database or home-folder failure, or None when err
    is something else. Used where the store is opened and by the command line, so that a
    damaged database or an unwritable home gets a paragraph instead of a traceback."""
    if isinstance(err, UserError):
        return err
    url = url or paths.db_url()
    location = _database_location(url)
    text = str(getattr(err, "orig", None) or err)
    lowered = text.lower()
    if isinstance(err, (sa.exc.DBAPIError, sqlite3.DatabaseError)) or "sqlite" in lowered:
        if any(word in lowered for word in _DAMAGED):
            return DatabaseDamaged(damaged_message(location, text))
        if any(word in lowered for word in _NOT_WRITABLE):
            folder = Path(location).parent if location.startswith("/") else paths.home_dir(False)
            return HomeNotWritable(paths.not_writable_message(folder, _first_line(text)))
        if "disk i/o error" in lowered or "database or disk is full" in lowered:
            return UserError(
                f"the database {location} could not be written ({_first_line(text)}): "
                "the disk may be full or failing; free some space or check the disk, then run "
                "`python -m safety_models check`.")
        return None
    if isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS,
                                                  errno.ENOSPC, errno.EDQUOT):
        home = paths.home_dir(create=False)
        target = Path(os.fsdecode(err.filename)) if err.filename else home
        if target != home and home not in target.resolve().parents:
            return None    # another file (an --out path): its own message says which
        return HomeNotWritable(paths.not_writable_message(target, err))
    return None


def damaged_message(location: str, detail: str) -> str:
    return (f"the database {location} is damaged ({_first_line(detail)}): it was probably "
            "overwritten, truncated or only partly copied. Nothing was changed. Run "
            "`python -m safety_models check` to see what is wrong, then `python -m "
            "safety_models restore BACKUP` to put back the last backup made with `python -m "
            "safety_models backup FILE`; without a backup, move the database file aside and load "
            "your files again (they are kept in the home's uploads folder).")


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["no detail"])[0]


def _database_location(url: str) -> str:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return url
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return str(Path(parsed.database).resolve())
    return parsed.render_as_string(hide_password=True)


def _check_sqlite_file(database: str | None) -> None:
    """Refuse an SQLite file that is not a database, or that is empty while the home holds
    kept uploads or models: SQLite would treat a truncated (0-byte) file as a new, empty
    database and the data would be gone without a word."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(16)
    except FileNotFoundError:
        return
    except OSError as err:
        raise explain_storage_error(err) or err
    home = paths.home_dir(create=False)
    if size == 0 and path.resolve().parent == home:
        kept = [p for name in ("uploads", "models") if (home / name).is_dir()
                for p in (home / name).iterdir() if not p.name.startswith(".")]
        if kept:
            raise DatabaseDamaged(damaged_message(
                str(path.resolve()), f"the file is empty, but the home holds {len(kept)} files in "
                "uploads/ and models/"))
    if size and head != b"SQLite format 3\x00":
        raise DatabaseDamaged(damaged_message(str(path.resolve()),
                                              "file is not a database: its header is not SQLite's"))


def _safe_name(file_name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(file_name).name).strip("._")
    return name[:120] or "upload"


def _no_upload(upload_id) -> str:
    return (f"there is no upload #{upload_id} in this home; "
            "`python -m safety_models uploads` lists them")


def _summary_from_row(row, already_loaded: bool = False) -> UploadSummary:
    return UploadSummary(
        upload_id=int(row["id"]), file_name=row["file_name"], category=row["category"],
        rows_read=int(row["rows_read"]), accepted=int(row["accepted"]),
        rejected=int(row["rejected"]), duplicates=int(row["duplicates"]),
        rejected_reasons=json.loads(row["rejected_reasons"] or "{}"),
        time_min=_iso(row["time_min"]), time_max=_iso(row["time_max"]),
        already_loaded=already_loaded)
