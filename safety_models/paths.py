"""Where state lives: one home folder (SAFETY_MODELS_HOME) and one database URL.

Everything the product writes (database, kept upload files, model checkpoints, job logs,
boundary files) lives under the home folder so that a second city is just a second home.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "SAFETY_MODELS_HOME"
DB_URL_ENV = "SAFETY_MODELS_DB_URL"


def home_dir() -> Path:
    """The home folder (created if missing); default ./data in the working directory."""
    home = Path(os.environ.get(HOME_ENV) or "data").resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def sub_dir(name: str) -> Path:
    """A folder under home (uploads, models, jobs, boundaries, studies), created if missing."""
    path = home_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def db_url() -> str:
    """SQLAlchemy URL: SAFETY_MODELS_DB_URL, else an SQLite file in the home folder."""
    return os.environ.get(DB_URL_ENV) or f"sqlite:///{home_dir() / 'safety_models.db'}"
