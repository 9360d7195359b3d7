"""Where state lives: one home folder (SAFETY_MODELS_HOME) and one database URL.

Everything the product writes (database, kept upload files, model checkpoints, job logs,
boundary files) lives under the home folder so that a second city is just a second home.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from safety_models.errors import HomeNotWritable

HOME_ENV = "SAFETY_MODELS_HOME"
DB_URL_ENV = "SAFETY_MODELS_DB_URL"


def home_dir(create: bool = True) -> Path:
    """The home folder (created if missing, unless create=False); default ./data in the
    working directory. HomeNotWritable when it cannot be created."""
    home = _resolved(os.environ.get(HOME_ENV) or "data", os.getcwd())
    if create and not home.is_dir():
        _make_dir(home)
    return home


@functools.lru_cache(maxsize=16)
def _resolved(path: str, cwd: str) -> Path:
    """Path(path).resolve() from cwd, once per process: the dashboard asks for the home many
    times per page, and resolving walks every component of the path."""
    return (Path(cwd) / path).resolve()


def sub_dir(name: str) -> Path:
    """A folder under home (uploads, models, jobs, boundaries, studies), created if missing."""
    path = home_dir() / name
    _make_dir(path)
    return path


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise HomeNotWritable(not_writable_message(path, err)) from err


def not_writable_message(path: Path, err: BaseException | str) -> str:
    """One paragraph for a home (or a folder or file in it) that cannot be written."""
    why = getattr(err, "strerror", None) or str(err)
    return (f"cannot write to {path} ({why}). The home folder "
            f"({os.environ.get(HOME_ENV) or './data'}) holds the database, kept uploads and "
            f"models, so this user must be able to write to it: give it write access (chown or "
            f"chmod the folder), free some disk space if it is full, or set {HOME_ENV} to a "
            "writable folder.")


def db_url() -> str:
    """SQLAlchemy URL: SAFETY_MODELS_DB_URL, else an SQLite file in the home folder."""
    return os.environ.get(DB_URL_ENV) or f"sqlite:///{home_dir() / 'safety_models.db'}"
