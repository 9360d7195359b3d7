"""Plain JSON values and atomic, durable file writes: the one definition of each.

Every JSON the product writes (saved evaluations, job progress in the database, the CLI's
``--json``, GeoJSON exports, model metrics) goes through ``to_jsonable``; every file it
replaces in place (checkpoints, evaluations, kept uploads) goes through ``write_atomic``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd


def to_jsonable(value: Any) -> Any:
    """A copy of value made of JSON's own types.

    dict keys -> str; tuples, sets and numpy arrays -> lists; numpy / torch scalars -> Python
    numbers; NaN, +-inf, None, NaT and pd.NA -> None (JSON has no NaN); timestamps, datetimes
    and dates -> ISO 8601 strings; Paths -> str; objects with ``to_dict()`` and dataclasses
    -> their dicts. Tensors (anything with ``detach``) become nested lists.
    """
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if hasattr(value, "detach") and hasattr(value, "tolist"):      # a torch tensor
        return to_jsonable(value.detach().cpu().tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (pd.Timestamp, datetime, date, np.datetime64)):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return to_jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if hasattr(value, "item"):                                       # other numpy-like scalars
        return to_jsonable(value.item())
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """Strict JSON text of to_jsonable(value) (never NaN)."""
    return json.dumps(to_jsonable(value), allow_nan=False, **kwargs)


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in folder survive power loss (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, write: Callable[[IO[bytes]], None], *, replace: bool = True,
                 mode: int = 0o644) -> Path:
    """Write a file so that a reader sees the old one or the whole new one, never half.

    ``write(fh)`` fills a temporary file in the same folder, which is flushed and fsync'd.
    With replace=True it is renamed onto path (os.replace, atomic on one file system) and the
    folder fsync'd, and path is returned. With replace=False the temporary file's path is
    returned and the caller renames it when its own transaction commits (a model checkpoint
    becomes visible only with its database row). A failure removes the temporary file; one
    left by a killed process is removed by clean_temporary_files (its name is
    ".<name>.<host>-<pid>.<random>.tmp", which tells whether its writer is still running).
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{_writer_tag()}.", suffix=".tmp",
                                    dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)   # mkstemp makes 0600; readers (a dashboard service) may be others
        if not replace:
            return tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _writer_tag() -> str:
    return f"{_host_tag()}-{os.getpid()}"


# write_atomic's names, and the ".tmp-<uuid>" of kept uploads written before it was used.
_TEMPORARY = re.compile(r"^\..+\.tmp$|^\.tmp-[0-9a-f]{32}$")
_WRITER = re.compile(r"\.([0-9a-f]{8})-(\d+)\.[^.]+\.tmp$")
# A temporary file of another machine (a home on a shared disk) is left alone this long ...
FOREIGN_TEMPORARY_MAX_AGE_S = 24 * 3600.0
# ... and one whose name does not say who writes it, this long.
UNNAMED_TEMPORARY_MAX_AGE_S = 3600.0


def clean_temporary_files(folder: Path) -> list[Path]:
    """Remove write_atomic's temporary files that no running writer will finish; returns them.

    A temporary file ("." + name + ".tmp") is removed when the process that wrote it (named
    in the file name) is no longer running on this machine; one from another machine when
    older than FOREIGN_TEMPORARY_MAX_AGE_S, one without a writer in its name when older than
    UNNAMED_TEMPORARY_MAX_AGE_S. So a load killed halfway leaves no 16 MB file behind, and a
    concurrent process's file in progress is never taken from under it. Missing folders and
    files that vanish meanwhile are fine.
    """
    folder = Path(folder)
    try:
        names = [entry.name for entry in os.scandir(folder) if entry.is_file(follow_symlinks=False)]
    except OSError:
        return []
    removed = []
    host, now = _host_tag(), time.time()
    for name in names:
        if not _TEMPORARY.match(name):
            continue
        path = folder / name
        writer = _WRITER.search(name)
        try:
            if writer and writer.group(1) == host:
                if _process_running(int(writer.group(2))):
                    continue
            else:
                max_age = FOREIGN_TEMPORARY_MAX_AGE_S if writer else UNNAMED_TEMPORARY_MAX_AGE_S
                if now - path.stat().st_mtime < max_age:
                    continue
            path.unlink()
            removed.append(path)
        except OSError:
            continue
    return removed


def _process_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True      # exists, owned by another user (or cannot tell: keep the file)
    return True


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    return write_atomic(path, lambda fh: fh.write(data))


def write_text_atomic(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj: Any) -> Path:
    """Strict JSON (NaN -> null, see to_jsonable) to path, atomically."""
    return write_text_atomic(path, dumps(obj, indent=1))
