"""Backups of a home, restoring one, and checking that a home is whole.

A backup is one tar archive (gzip-compressed when its name ends in .gz or .tgz) holding
  MANIFEST.json        what it holds: format, when, the database kind, counts, files
  safety_models.db     a consistent snapshot of an SQLite database (sqlite3's online backup
                       API: the dashboard and jobs may keep reading and writing meanwhile), or
  database.pgdump      pg_dump's custom format of a PostgreSQL database
  uploads/ models/ evaluations/ studies/ boundaries/   the home's kept files
The snapshot is taken first and the files copied after it; every file the snapshot refers to
(kept uploads, model checkpoints) is checked to be in the archive, and the whole backup is
taken again (a few times) when one was removed meanwhile.

`restore_home` puts an archive back: the database and those folders are replaced, and what
they held is moved to `home/replaced-<time>/` (nothing is deleted). Stop the dashboard and
jobs first: processes that keep the old database open keep seeing it.

`check_home` reads without changing anything (it does not open a Store, which would create
missing tables): the database (PRAGMA integrity_check, the tables and their columns), every
registered model checkpoint (present, loads with weights_only, rebuilds its model) and the
kept upload files. Each problem comes with what to do.

The PostgreSQL paths call pg_dump / pg_restore; they are not exercised by the tests.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Callable

import sqlalchemy as sa

from safety_models import paths
from safety_models.errors import UserError
from safety_models.files import fsync_dir, write_atomic

ARCHIVE_FORMAT = 1
MANIFEST_NAME = "MANIFEST.json"
SQLITE_MEMBER = "safety_models.db"
POSTGRES_MEMBER = "database.pgdump"
# The home's folders of files worth keeping (jobs/ holds logs of finished work: left out).
BACKED_UP_FOLDERS = ("uploads", "models", "evaluations", "studies", "boundaries")
# Tables the store itself creates; the modules above it add theirs (models, jobs) when used.
CORE_TABLES = ("uploads", "incidents", "rejected_rows", "boundaries", "meta")
BACKUP_ATTEMPTS = 3


class BackupError(UserError):
    """A backup that cannot be written or an archive that cannot be restored."""


@dataclass(frozen=True)
class BackupReport:
    """What a backup holds: the archive, the database kind, counts of its rows, the files."""

    archive: Path
    database: str                    # "sqlite" or "postgresql"
    uploads: int
    incidents: int
    models: int
    files: int
    bytes: int                       # size of the archive

    def to_dict(self) -> dict:
        return {**self.__dict__, "archive": str(self.archive)}


@dataclass(frozen=True)
class RestoreReport:
    archive: Path
    database: str
    uploads: int
    models: int
    files: int
    created_at: str                  # when the backup was made (local clock, ISO)
    replaced: Path | None            # where the state it replaced was moved, if there was one

    def to_dict(self) -> dict:
        return {**self.__dict__, "archive": str(self.archive),
                "replaced": None if self.replaced is None else str(self.replaced)}


@dataclass(frozen=True)
class CheckReport:
    """checked: one line per thing looked at; problems: one paragraph each, with the fix."""

    database: str
    checked: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"database": self.database, "ok": self.ok, "checked": list(self.checked),
                "problems": list(self.problems)}


# ---------------------------------------------------------------------------------------------
# Backup


def backup_home(archive: str | Path, url: str | None = None,
                on_progress: Callable[[dict], None] | None = None) -> BackupReport:
    """Write a consistent backup of the home (and its database) to `archive`, atomically.

    Safe while the dashboard and jobs run. Raises BackupError when the database is missing or
    damaged (`check` says more), or the archive cannot be written.
    """
    url = url or paths.db_url()
    home = paths.home_dir()
    archive = Path(archive).expanduser().resolve()
    kind = _kind(url)
    if archive.is_dir():
        raise BackupError(f"{archive} is a folder; give the backup a file name, e.g. "
                          f"{archive / 'safety_models-backup.tar.gz'}")
    for attempt in range(BACKUP_ATTEMPTS):
        with tempfile.TemporaryDirectory(prefix=".backup-", dir=_scratch_dir(archive)) as tmp:
            _progress(on_progress, "database", 0.0)
            snapshot = Path(tmp) / (SQLITE_MEMBER if kind == "sqlite" else POSTGRES_MEMBER)
            if kind == "sqlite":
                _sqlite_snapshot(_sqlite_path(url), snapshot)
                referenced, counts = _referenced_files(f"sqlite:///{snapshot}")
            else:
                _pg_dump(url, snapshot)
                referenced, counts = _referenced_files(url)
            _progress(on_progress, "files", 0.3)
            files = _home_files(home)
            missing = sorted(set(referenced) - set(files))
            if missing and attempt < BACKUP_ATTEMPTS - 1 and _vanished(home, missing):
                continue    # removed since the snapshot (a model deleted): take it again
            manifest = {
                "format": ARCHIVE_FORMAT, "created_at": datetime.now().isoformat(timespec="seconds"),
                "home": str(home), "database": kind, "database_member": snapshot.name,
                **counts, "files": files, "missing_files": missing,
            }
            try:
                write_atomic(archive, lambda fh: _write_tar(fh, archive, manifest, snapshot,
                                                            home, files))
            except OSError as err:
                raise BackupError(f"{archive}: the backup could not be written "
                                  f"({err.strerror or err}); choose a writable folder with "
                                  "enough free space") from err
            _progress(on_progress, "done", 1.0)
            return BackupReport(archive=archive, database=kind, uploads=counts["uploads"],
                                incidents=counts["incidents"], models=counts["models"],
                                files=len(files), bytes=archive.stat().st_size)
    raise AssertionError("unreachable")  # pragma: no cover


def _progress(on_progress, stage: str, fraction: float) -> None:
    if on_progress:
        on_progress({"stage": stage, "fraction": fraction})


def _scratch_dir(archive: Path) -> Path:
    folder = archive.parent
    if not folder.is_dir():
        raise BackupError(f"{archive}: the folder {folder} does not exist")
    return folder


def _kind(url: str) -> str:
    name = sa.engine.make_url(url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise BackupError(f"backups support SQLite and PostgreSQL databases, not {name}")
    return name


def _sqlite_path(url: str) -> Path:
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"{url}: an in-memory database cannot be backed up")
    path = Path(database).resolve()
    if not path.exists():
        raise BackupError(f"there is no database at {path} yet: nothing to back up "
                          "(load some data first, or check SAFETY_MODELS_HOME)")
    return path


def _sqlite_snapshot(source: Path, target: Path) -> None:
    """sqlite3's online backup: one consistent copy, while other connections keep writing."""
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=60)
    except sqlite3.Error:   # a read-only open needs the -shm file; fall back to a normal one
        src = sqlite3.connect(str(source), timeout=60)
    try:
        dst = sqlite3.connect(str(target))
        try:
            src.backup(dst)
            problems = dst.execute("PRAGMA integrity_check").fetchall()
        finally:
            dst.close()
    except sqlite3.DatabaseError as err:
        if _UNOPENABLE in str(err):
            raise BackupError(f"the database {source} cannot be opened ({err}): this user must be "
                              "able to write to its folder (SQLite keeps its -wal and -shm files "
                              "beside it)") from err
        raise BackupError(f"the database {source} could not be read ({err}); it may be "
                          "damaged: run `python -m safety_models check`") from err
    finally:
        src.close()
    if [tuple(p) for p in problems] != [("ok",)]:
        raise BackupError(f"the database {source} is damaged ({problems[0][0]}); a backup of it "
                          "would not restore: run `python -m safety_models check`")


def _libpq_url(url: str) -> str:
    """postgresql+psycopg://... -> postgresql://... (what pg_dump and pg_restore read)."""
    parsed = sa.engine.make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def _run_pg(command: list[str], what: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=24 * 3600)
    except FileNotFoundError as err:
        raise BackupError(f"{command[0]} is not installed; install the PostgreSQL client tools "
                          f"(e.g. apt-get install postgresql-client) to {what}") from err
    if done.returncode != 0:
        raise BackupError(f"{command[0]} failed to {what}: {done.stderr.strip()[:2000]}")


def _pg_dump(url: str, target: Path) -> None:
    _run_pg(["pg_dump", "--format=custom", "--no-owner", f"--file={target}",
             f"--dbname={_libpq_url(url)}"], "back up the database")


def _referenced_files(url: str) -> tuple[list[str], dict[str, int]]:
    """(home-relative paths of the files the database refers to, row counts)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            counts = {name: 0 for name in ("uploads", "incidents", "models")}
            referenced: list[str] = []
            for name in counts:
                if name in tables:
                    counts[name] = int(conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar())
            if "uploads" in tables:
                referenced += [_relative(p) for (p,) in conn.execute(sa.text(
                    "SELECT stored_path FROM uploads WHERE stored_path IS NOT NULL"))]
            if "models" in tables:
                referenced += [_relative(p) for (p,) in conn.execute(sa.text(
                    "SELECT path FROM models"))]
    finally:
        engine.dispose()
    return [p for p in referenced if p], counts


def _relative(stored: str) -> str | None:
    """A stored path as home-relative POSIX text (absolute ones under the home too)."""
    path = Path(stored)
    if path.is_absolute():
        try:
            path = path.relative_to(paths.home_dir())
        except ValueError:
            return None
    return path.as_posix()


def _home_files(home: Path) -> list[str]:
    """Home-relative paths of the regular files in BACKED_UP_FOLDERS (temporary files and
    other hidden names left out), sorted."""
    files = []
    for folder in BACKED_UP_FOLDERS:
        base = home / folder
        if not base.is_dir():
            continue
        for root, dirs, names in os.walk(base):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in names:
                path = Path(root) / name
                if name.startswith(".") or not path.is_file() or path.is_symlink():
                    continue
                files.append(path.relative_to(home).as_posix())
    return sorted(files)


def _vanished(home: Path, missing: list[str]) -> bool:
    return any(not (home / name).exists() for name in missing)


def _write_tar(fh, archive: Path, manifest: dict, snapshot: Path, home: Path,
               files: list[str]) -> None:
    # Checkpoints are float weights that hardly compress: the fastest level does as well.
    compressed = archive.name.endswith((".gz", ".tgz"))
    options = {"mode": "w:gz", "compresslevel": 1} if compressed else {"mode": "w"}
    with tarfile.open(fileobj=fh, **options) as tar:
        data = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo(MANIFEST_NAME)
        info.size, info.mtime, info.mode = len(data), int(datetime.now().timestamp()), 0o644
        tar.addfile(info, io.BytesIO(data))
        tar.add(snapshot, arcname=snapshot.name, recursive=False)
        for name in files:
            try:
                tar.add(home / name, arcname=name, recursive=False)
            except FileNotFoundError:   # removed meanwhile; the manifest lists it
                continue


# ---------------------------------------------------------------------------------------------
# Restore


def restore_home(archive: str | Path, url: str | None = None) -> RestoreReport:
    """Replace the home's database and kept files by those of a backup archive.

    The archive is checked (manifest, names, the database's integrity) in a staging folder
    before anything is touched; then the current database and folders move to
    `home/replaced-<time>/` and the backup's take their place. Raises BackupError for an
    archive that is not a backup of this product or is damaged, or a database kind other than
    the one configured (an SQLite backup into a PostgreSQL home or the reverse).
    """
    url = url or paths.db_url()
    kind = _kind(url)
    home = paths.home_dir()
    archive = Path(archive).expanduser().resolve()
    if not archive.is_file():
        raise BackupError(f"{archive}: there is no such backup file")
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=home))
    try:
        manifest = _extract(archive, staging)
        if manifest.get("database") != kind:
            raise BackupError(
                f"{archive} holds a {manifest.get('database')} database and this home uses "
                f"{kind} ({paths.DB_URL_ENV}); restore it with the same kind of database")
        member = staging / manifest["database_member"]
        if kind == "sqlite":
            _check_restored_sqlite(member, archive)
            _rebase_upload_paths(member, manifest.get("home"))
        replaced = _move_aside(home, url if kind == "sqlite" else None)
        if kind == "sqlite":
            target = _sqlite_path_for(url)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(member, target)
            fsync_dir(target.parent)
        else:
            _run_pg(["pg_restore", "--clean", "--if-exists", "--no-owner",
                     f"--dbname={_libpq_url(url)}", str(member)], "restore the database")
        for folder in BACKED_UP_FOLDERS:
            if (staging / folder).is_dir():
                os.replace(staging / folder, home / folder)
        fsync_dir(home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return RestoreReport(archive=archive, database=kind, uploads=int(manifest.get("uploads", 0)),
                         models=int(manifest.get("models", 0)),
                         files=len(manifest.get("files", [])),
                         created_at=str(manifest.get("created_at")), replaced=replaced)


def _extract(archive: Path, staging: Path) -> dict:
    """Unpack a backup into staging, checking every name on the way (one pass, so a
    compressed archive is read once); returns its manifest."""
    not_backup = (f"{archive} is not a backup made by `python -m safety_models backup` "
                  "(or it is damaged)")
    manifest = None
    top_level = {MANIFEST_NAME, SQLITE_MEMBER, POSTGRES_MEMBER}
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if not member.isfile() or ".." in parts or member.name.startswith("/") or not (
                        member.name in top_level
                        or (len(parts) >= 2 and parts[0] in BACKED_UP_FOLDERS)):
                    raise BackupError(f"{not_backup}: unexpected member {member.name!r}")
                if member.name == MANIFEST_NAME:
                    manifest = json.loads(tar.extractfile(member).read())
                else:
                    tar.extract(member, staging, filter="data")
    except (tarfile.TarError, EOFError, OSError, json.JSONDecodeError, UnicodeDecodeError,
            zlib.error) as err:
        raise BackupError(f"{not_backup}: {err}") from err
    if not isinstance(manifest, dict):
        raise BackupError(f"{not_backup}: it has no {MANIFEST_NAME}")
    if manifest.get("format") != ARCHIVE_FORMAT:
        raise BackupError(f"{not_backup}: unknown format {manifest.get('format')!r}")
    if not (staging / str(manifest.get("database_member"))).is_file():
        raise BackupError(f"{not_backup}: the database is missing from it")
    return manifest


def _check_restored_sqlite(member: Path, archive: Path) -> None:
    try:
        con = sqlite3.connect(str(member))
        try:
            result = con.execute("PRAGMA integrity_check").fetchall()
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
    except sqlite3.DatabaseError as err:
        raise BackupError(f"{archive}: the database in it is damaged ({err})") from err
    if [tuple(r) for r in result] != [("ok",)] or not set(CORE_TABLES) <= tables:
        raise BackupError(f"{archive}: the database in it is damaged or incomplete")


def _rebase_upload_paths(member: Path, old_home: str | None) -> None:
    """Kept-upload paths stored absolute (older versions) become home-relative, so that the
    restored home may live anywhere."""
    con = sqlite3.connect(str(member))
    try:
        rows = con.execute("SELECT id, stored_path FROM uploads WHERE stored_path LIKE '/%'").fetchall()
        for upload_id, stored in rows:
            path = Path(stored)
            relative = None
            if old_home:
                try:
                    relative = path.relative_to(old_home).as_posix()
                except ValueError:
                    relative = None
            con.execute("UPDATE uploads SET stored_path = ? WHERE id = ?",
                        (relative or f"uploads/{path.name}", upload_id))
        con.commit()
    finally:
        con.close()


def _sqlite_path_for(url: str) -> Path:
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"{url}: cannot restore into an in-memory database")
    return Path(database).resolve()


def _move_aside(home: Path, sqlite_url: str | None) -> Path | None:
    """Move the current database files and folders to home/replaced-<time>/; None when the
    home held none of them."""
    current: list[Path] = []
    if sqlite_url is not None:
        db = _sqlite_path_for(sqlite_url)
        current += [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-journal"))
                    if p.exists()]
    current += [home / f for f in BACKED_UP_FOLDERS if (home / f).exists()]
    if not current:
        return None
    aside = home / f"replaced-{datetime.now():%Y%m%d-%H%M%S}"
    n = 1
    while aside.exists():
        n += 1
        aside = home / f"replaced-{datetime.now():%Y%m%d-%H%M%S}-{n}"
    aside.mkdir()
    for path in current:
        shutil.move(str(path), str(aside / path.name))
    fsync_dir(home)
    return aside


# ---------------------------------------------------------------------------------------------
# Check


def check_home(url: str | None = None, load_models: bool = True) -> CheckReport:
    """Look at the database, the model checkpoints and the kept uploads; change nothing."""
    url = url or paths.db_url()
    kind = sa.engine.make_url(url).get_backend_name()
    checked: list[str] = []
    problems: list[str] = []
    restore = ("put back the last backup with `python -m safety_models restore BACKUP` (stop "
               "the dashboard and jobs first)")
    if kind == "sqlite":
        path = _sqlite_path_for(url)
        if not path.exists():
            return CheckReport(kind, (f"database {path}: not created yet (a new home)",))
        problem = _sqlite_integrity(path)
        if problem and _UNOPENABLE in problem:
            problems.append(f"the database {path} cannot be opened ({problem}): this user must "
                            "be able to write to its folder (SQLite keeps its -wal and -shm files "
                            "beside it); give it write access, or set SAFETY_MODELS_HOME to a "
                            "writable copy of the home.")
            return CheckReport(kind, tuple(checked), tuple(problems))
        if problem:
            problems.append(f"the database {path} is damaged: {problem}. To repair it, {restore}; "
                            "without a backup, move it aside and load your files again (they "
                            "are kept in the home's uploads folder).")
            return CheckReport(kind, tuple(checked), tuple(problems))
        checked.append(f"database {path}: integrity ok")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            table_problems, present = _table_problems(conn)
            problems += [f"{p}; {restore}." for p in table_problems]
            checked.append(f"tables: {', '.join(sorted(present))}")
            if "uploads" in present and not table_problems:
                checked_uploads, upload_problems = _upload_file_problems(conn)
                checked.append(checked_uploads)
                problems += upload_problems
            if "models" in present and not table_problems:
                checked_models, model_problems = _model_problems(conn, load_models)
                checked.append(checked_models)
                problems += model_problems
    except sa.exc.DBAPIError as err:
        detail = (str(err.orig or err).strip().splitlines() or ["no detail"])[0]
        problems.append(f"the database could not be read ({detail}); "
                        f"{restore}.")
    finally:
        engine.dispose()
    return CheckReport(kind, tuple(checked), tuple(problems))


_UNOPENABLE = "unable to open database file"


def _sqlite_integrity(path: Path) -> str | None:
    """None when PRAGMA integrity_check says ok; else what it (or opening the file) said."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as err:
        return f"it cannot be read ({err.strerror or err})"
    if path.stat().st_size == 0:
        home = paths.home_dir(create=False)
        kept = any(p for name in ("uploads", "models") if (home / name).is_dir()
                   for p in (home / name).iterdir() if not p.name.startswith("."))
        return "the file is empty (truncated)" if kept else None
    if head != b"SQLite format 3\x00":
        return "it is not an SQLite database any more (its header was overwritten)"
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
        try:
            rows = con.execute("PRAGMA integrity_check").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as err:
        return str(err)
    messages = [r[0] for r in rows]
    if messages == ["ok"]:
        return None
    return "; ".join(messages[:5]) + (f" and {len(messages) - 5} more" if len(messages) > 5 else "")


def _table_problems(conn: sa.Connection) -> tuple[list[str], set[str]]:
    """Missing core tables, and columns missing from any table the product knows."""
    from safety_models.data.store import metadata
    from safety_models.modeling import registry  # noqa: F401 - registers the models table
    from safety_models.service import jobs        # noqa: F401 - registers the jobs table

    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names())
    problems = [f"the table {name} is missing from the database"
                for name in CORE_TABLES if name not in present]
    for table in metadata.sorted_tables:
        if table.name not in present:
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        lacking = [c.name for c in table.columns if c.name not in have]
        if lacking:
            problems.append(f"the table {table.name} lacks the columns {', '.join(lacking)}")
    return problems, present


def _upload_file_problems(conn: sa.Connection) -> tuple[str, list[str]]:
    from safety_models.data.store import home_file

    rows = conn.execute(sa.text("SELECT id, file_name, stored_path FROM uploads ORDER BY id")).all()
    problems = []
    for upload_id, file_name, stored in rows:
        if stored and not home_file(stored).is_file():
            problems.append(
                f"upload #{upload_id} ({file_name}): its kept file {home_file(stored)} is missing. "
                "Its incidents are stored; the file is only needed to back it up or load it "
                "again. Put the file back there, or restore a backup.")
    return f"kept uploads: {len(rows) - len(problems)} of {len(rows)} present", problems


def _model_problems(conn: sa.Connection, load_models: bool) -> tuple[str, list[str]]:
    rows = conn.execute(sa.text("SELECT model_id, status, path FROM models ORDER BY model_id")).all()
    problems = []
    for model_id, status, stored in rows:
        path = Path(stored)
        path = path if path.is_absolute() else paths.home_dir() / path
        fix = ("retrain it (`python -m safety_models train`)"
               + (", or promote another version first" if status == "active" else "")
               + ", or restore a backup")
        if not path.is_file():
            problems.append(f"model {model_id} ({status}): its checkpoint {path} is missing; {fix}.")
            continue
        if not load_models:
            continue
        why = _checkpoint_problem(path)
        if why:
            problems.append(f"model {model_id} ({status}): its checkpoint {path} does not load "
                            f"({why}); {fix}.")
    how = "present and load" if load_models else "present"
    return f"models: {len(rows) - len(problems)} of {len(rows)} checkpoints {how}", problems


def _checkpoint_problem(path: Path) -> str | None:
    import torch

    from safety_models.modeling.models import model_from_checkpoint

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        model_from_checkpoint(checkpoint)
    except Exception as err:  # noqa: BLE001 - any failure is the answer to "does it load"
        detail = (str(err).strip().splitlines() or [""])[0][:300]
        return f"{type(err).__name__}: {detail}"
    return None
