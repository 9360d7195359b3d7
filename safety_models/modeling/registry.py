"""Model versions: save, load, list, promote and roll back fine-tuned risk models.

A model version is one checkpoint file ``home/models/<model_id>.pt`` plus one row of the
``models`` table. The checkpoint rebuilds itself (weights, configs, grid, city mask, data
window, metrics, the model it started from); it holds plain types only, so it is always read
with ``torch.load(path, weights_only=True)``.

Statuses, per category:
  candidate  trained, not in use (also a model that was rolled back)
  active     the model the dashboard and ``predict`` use; at most one per category, enforced
             by a partial unique index as well as by the transactions below
  retired    was active, then replaced by a promotion

The first model of a category becomes active; later ones stay candidates until promoted
(``should_promote`` says whether the scores suggest it). The pretrained base model (trained
on synthetic cities and every category, see modeling.pretrained) is a row with
``is_base`` and category ``"*"``; the newest base is active.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from safety_models import paths
from safety_models.errors import GridMismatch, NotReady, UserError
from safety_models.grid import GridSpec
from safety_models.schema import CHECKPOINT_FORMAT, check_category
from safety_models.data.store import Store, metadata
from safety_models.files import fsync_dir, to_jsonable, write_atomic

BASE_CATEGORY = "*"          # category of pretrained base models
STATUSES = ("candidate", "active", "retired")
MODELS_DIR = "models"        # under the home folder

models_table = sa.Table(
    "models", metadata,
    sa.Column("model_id", sa.String(64), primary_key=True),   # "crime-20261128-231500-ab12"
    sa.Column("category", sa.String(16), nullable=False),     # a category, or "*" for a base
    sa.Column("created_at", sa.DateTime, nullable=False),     # local clock of this machine
    sa.Column("activated_at", sa.DateTime),                   # last time it became active
    sa.Column("base_model_id", sa.String(64)),                # pretrained base it descends from
    sa.Column("parent", sa.String(64)),                       # model id it continued from
    sa.Column("status", sa.String(16), nullable=False),       # STATUSES
    sa.Column("is_base", sa.Boolean, nullable=False, default=False),
    sa.Column("grid", sa.JSON),                               # GridSpec.to_dict()
    sa.Column("window_hours", sa.Integer),
    sa.Column("cell_size_m", sa.Float),
    sa.Column("data_start", sa.DateTime),                     # first window start used
    sa.Column("data_end", sa.DateTime),                       # end of the last window used
    sa.Column("train_end", sa.DateTime),                      # training targets before this
    sa.Column("val_end", sa.DateTime),                        # validation targets before this
    sa.Column("train_seconds", sa.Float),
    sa.Column("val_metrics", sa.JSON),
    sa.Column("test_metrics", sa.JSON),
    sa.Column("path", sa.Text, nullable=False),               # relative to the home folder
    sa.Index("ix_models_category_status", "category", "status"),
    # "Exactly one active per category" enforced by the database, not only by this module.
    sa.Index("uq_models_one_active", "category", unique=True,
             sqlite_where=sa.text("status = 'active'"),
             postgresql_where=sa.text("status = 'active'")),
    keep_existing=True,
)


def _ensure_tables(store: Store) -> None:
    store.ensure_table(models_table)


# ---------------------------------------------------------------------------------------------
# Plain types for torch.save / JSON


def to_plain(value: Any) -> Any:
    """Checkpoint-safe copy: numpy arrays -> tensors, numpy scalars -> Python numbers,
    timestamps -> ISO strings, dataclasses with to_dict -> dicts; containers recursively."""
    import torch   # here, not at the top: reading the registry needs no torch (the dashboard)

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pd.Timestamp, datetime)):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, dict):
        return {k if isinstance(k, (str, int)) else str(k): to_plain(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(v) for v in value)
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return to_plain(value.to_dict())
    return value

def _time(value: Any) -> datetime | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return pd.Timestamp(value).to_pydatetime()


# ---------------------------------------------------------------------------------------------
# Saving


def new_model_id(category: str, now: datetime | None = None) -> str:
    """"<category>-YYYYmmdd-HHMMSS-xxxx" (local clock, 4 random hex digits); "base-..." for "*"."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    prefix = "base" if category == BASE_CATEGORY else category
    return f"{prefix}-{stamp}-{secrets.token_hex(2)}"


def _checkpoint_path(model_id: str) -> Path:
    return paths.sub_dir(MODELS_DIR) / f"{model_id}.pt"


def _resolve(path_text: str) -> Path:
    path = Path(path_text)
    return path if path.is_absolute() else paths.home_dir() / path

def _insert_row(conn: sa.Connection, row: dict) -> None:
    """The DB half of a save (a seam for tests that make it fail)."""
    conn.execute(models_table.insert().values(**row))


def _grid_of(checkpoint: dict) -> dict | None:
    grid = checkpoint.get("grid")
    if grid is None:
        return None
    return grid.to_dict() if isinstance(grid, GridSpec) else dict(grid)


def _save(store: Store, checkpoint: dict, category: str, base_model_id: str | None,
          is_base: bool, activate: str) -> str:
    """Write the checkpoint and its row as one step; activate: 'if-first' | 'always' | 'never'."""
    _ensure_tables(store)
    model_id = new_model_id(category)
    created_at = datetime.now()
    ckpt = to_plain(dict(checkpoint))
    ckpt.setdefault("format", CHECKPOINT_FORMAT)
    ckpt.update(model_id=model_id, category=category, base_model_id=base_model_id,
                created_at=created_at.isoformat())
    ckpt.setdefault("parent", None)
    grid = _grid_of(ckpt)
    if grid is not None:
        ckpt["grid"] = grid
    window = ckpt.get("data_window") or {}
    metrics = ckpt.get("metrics") or {}
    feature_cfg = ckpt.get("feature_config") or {}
    train_cfg = ckpt.get("train_config") or {}
    window_hours = feature_cfg.get("window_hours", train_cfg.get("window_hours"))
    final_path = _checkpoint_path(model_id)
    row = dict(
        model_id=model_id, category=category, created_at=created_at,
        base_model_id=base_model_id, parent=ckpt.get("parent"), status="candidate",
        is_base=is_base, grid=grid,
        window_hours=None if window_hours is None else int(window_hours),
        cell_size_m=None if grid is None else float(grid["cell_size_m"]),
        data_start=_time(window.get("start")), data_end=_time(window.get("end")),
        train_end=_time(window.get("train_end")), val_end=_time(window.get("val_end")),
        train_seconds=(None if ckpt.get("train_seconds") is None
                       else float(ckpt["train_seconds"])),
        val_metrics=to_jsonable(metrics.get("validation")),
        test_metrics=to_jsonable(metrics.get("test")),
        path=str(final_path.relative_to(paths.home_dir())),
    )
    import torch

    tmp_path = write_atomic(final_path, lambda fh: torch.save(ckpt, fh), replace=False)
    placed = False
    try:
        with store.begin() as conn:
            _insert_row(conn, row)
            m = models_table.c
            if activate == "always":
                conn.execute(models_table.update()
                             .where(m.category == category, m.status == "active")
                             .values(status="retired"))
            # One statement: becomes active only if the category has no active model, so two
            # processes saving a first model at once cannot both activate theirs.
            others_active = sa.exists().where(
                m.category == category, m.status == "active", m.model_id != model_id)
            if activate != "never":
                conn.execute(models_table.update()
                             .where(m.model_id == model_id, ~others_active)
                             .values(status="active",
                                     activated_at=_activation_time(conn, category)))
            os.replace(tmp_path, final_path)
            placed = True
            fsync_dir(final_path.parent)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        if placed:
            final_path.unlink(missing_ok=True)
        raise
    return model_id


def save_model(store: Store, checkpoint: dict, category: str,
               base_model_id: str | None = None, activate: str = "if-first") -> str:
    """Store a trained checkpoint as a new version of category; returns its model_id.

    checkpoint: training's TrainResult.checkpoint() plus "grid" (GridSpec or its dict),
    "mask" ((rows, cols) bool) and optionally "parent" (the model id it continued from).
    numpy arrays and timestamps are converted to plain types. The first model of a category
    becomes active; later ones are candidates until promote(). The file and the row are
    written as one step: if the database insert fails, no file is left behind. activate
    "never" keeps it a candidate even then (a horizon model: it serves `predict --horizon`,
    never the next-window map).
    """
    category = check_category(category)
    return _save(store, checkpoint, category, base_model_id, is_base=False, activate=activate)


def save_base(store: Store, checkpoint: dict) -> str:
    """Store a pretrained base model; it becomes the active base (earlier ones retire)."""
    return _save(store, checkpoint, BASE_CATEGORY, None, is_base=True, activate="always")


# ---------------------------------------------------------------------------------------------
# Loading


def _row(store: Store, model_id: str) -> dict:
    _ensure_tables(store)
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(models_table).where(models_table.c.model_id == model_id)
                           ).mappings().first()
    if row is None:
        raise NotReady(f"there is no model {model_id!r} in this home; "
                       "`python -m safety_models models` lists them")
    return dict(row)


def load_checkpoint(store: Store, model_id: str) -> dict:
    """The checkpoint dict of a model version (weights_only load; tensors on the CPU)."""
    row = _row(store, model_id)
    path = _resolve(row["path"])
    if not path.exists():
        raise NotReady(f"the checkpoint file of model {model_id} is missing ({path}); "
                       "delete the model and train again")
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


_CACHE_SIZE = 8
_cache: OrderedDict[tuple[str, str], tuple[Any, dict]] = OrderedDict()
_cache_lock = threading.Lock()


def _cache_key(store: Store, model_id: str) -> tuple[str, str]:
    # Two homes may hold the same id (ids are only unique per home); the URL tells them apart.
    return (str(store.engine.url), model_id)


def load_model(store: Store, model_id: str) -> tuple[Any, dict]:
    """(model in eval mode, checkpoint) for a model version.

    Kept in a small in-process cache keyed by (database, model_id): a version never changes
    after it is saved, so the cached model is always the right one. Callers must treat the
    model as read-only (it may be shared by every dashboard session of this process).
    """
    key = _cache_key(store, model_id)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    from safety_models.modeling.models import model_from_checkpoint

    checkpoint = load_checkpoint(store, model_id)
    model = model_from_checkpoint(checkpoint)
    model.eval()
    with _cache_lock:
        _cache[key] = (model, checkpoint)
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return model, checkpoint


def clear_cache() -> None:
    """Forget every cached model (tests; after deleting checkpoint files by hand)."""
    with _cache_lock:
        _cache.clear()


# ---------------------------------------------------------------------------------------------
# Listing and status


def list_models(store: Store, category: str | None = None) -> pd.DataFrame:
    """Model versions, newest first: every column of the models table; grid and metrics as
    dicts (None when absent). category=None lists every category and the base models."""
    _ensure_tables(store)
    stmt = sa.select(models_table).order_by(models_table.c.created_at.desc(),
                                            models_table.c.model_id.desc())
    if category is not None:
        stmt = stmt.where(models_table.c.category == category)
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
    df = pd.DataFrame(rows, columns=[c.name for c in models_table.columns])
    for name in ("created_at", "activated_at", "data_start", "data_end", "train_end", "val_end"):
        df[name] = pd.to_datetime(df[name])
    df["is_base"] = df["is_base"].astype(bool)
    return df


def model_info(store: Store, model_id: str) -> dict:
    """The models-table row of one version as a dict; NotReady when unknown."""
    return _row(store, model_id)


def active_model_id(store: Store, category: str) -> str | None:
    """The active model of a category (or of "*" for the base), None when there is none."""
    _ensure_tables(store)
    m = models_table.c
    with store.engine.connect() as conn:
        return conn.execute(sa.select(m.model_id)
                            .where(m.category == category, m.status == "active")).scalar()


def _activation_time(conn: sa.Connection, category: str) -> datetime:
    """Now, but strictly after every earlier activation in the category: rollback orders by
    it, and two promotions within one clock tick must still have an order."""
    now = datetime.now()
    latest = conn.execute(sa.select(sa.func.max(models_table.c.activated_at))
                          .where(models_table.c.category == category)).scalar()
    if latest is not None and pd.Timestamp(latest).to_pydatetime() >= now:
        return pd.Timestamp(latest).to_pydatetime() + timedelta(microseconds=1)
    return now


def promote(store: Store, model_id: str) -> None:
    """Make model_id the active model of its category, in one transaction; the previously
    active one becomes 'retired'. Promoting the active model is a no-op."""
    _ensure_tables(store)
    m = models_table.c
    with store.begin() as conn:
        row = conn.execute(sa.select(m.category, m.status, m.val_metrics).where(m.model_id == model_id)).first()
        if row is None:
            raise NotReady(f"there is no model {model_id!r} in this home; "
                           "`python -m safety_models models` lists them")
        if horizon_days_of(row.val_metrics):
            raise UserError(f"{model_id} forecasts the next {horizon_days_of(row.val_metrics)} days; it serves "
                            f"`predict --horizon` and cannot replace the {row.category} model of the next window")
        if row.status == "active":
            return
        # Retire first: the unique index allows one active row at every statement boundary.
        conn.execute(models_table.update().where(m.category == row.category, m.status == "active")
                     .values(status="retired"))
        conn.execute(models_table.update().where(m.model_id == model_id)
                     .values(status="active", activated_at=_activation_time(conn, row.category)))


def rollback(store: Store, category: str) -> str:
    """Reactivate the model that was active before the current one; returns its id.

    The current active model goes back to 'candidate' (it can be promoted again later, and a
    second rollback goes one step further back instead of toggling). NotReady when there is
    no earlier active model.
    """
    _ensure_tables(store)
    m = models_table.c
    with store.begin() as conn:
        current = conn.execute(sa.select(m.model_id)
                               .where(m.category == category, m.status == "active")).scalar()
        previous = conn.execute(
            sa.select(m.model_id)
            .where(m.category == category, m.status == "retired", m.model_id != current)
            .order_by(m.activated_at.desc(), m.created_at.desc()).limit(1)).scalar()
        if previous is None:
            raise NotReady(f"no earlier {category} model to roll back to: no model of this "
                           "category was active before the current one")
        if current is not None:
            conn.execute(models_table.update().where(m.model_id == current)
                         .values(status="candidate"))
        conn.execute(models_table.update().where(m.model_id == previous)
                     .values(status="active", activated_at=_activation_time(conn, category)))
    return previous


def _horizon_meta_key(category: str, horizon: str) -> str:
    return f"horizon:{category}:{horizon}"


def set_horizon_model(store: Store, category: str, horizon_days: int, model_id: str) -> None:
    """Make model_id the category's model for the next horizon_days days (schema.HORIZONS)."""
    from safety_models.schema import horizon_days as days_of

    days_of(f"{int(horizon_days)}d")             # one of HORIZONS, else ValueError
    store.set_meta(_horizon_meta_key(check_category(category), f"{int(horizon_days)}d"), model_id)


def _exists(store: Store, model_id: str) -> bool:
    try:
        _row(store, model_id)
    except NotReady:
        return False
    return True


def horizon_model_id(store: Store, category: str, horizon: str) -> str:
    """The category's model for a horizon ("7d", "14d", "30d", "60d", "90d"): the one last set by
    set_horizon_model (training sets the newest). NotReady, saying how to train one, when
    there is none; ValueError for a horizon not in schema.HORIZONS."""
    from safety_models.schema import horizon_days as days_of

    category = check_category(category)
    days = days_of(horizon)
    model_id = store.get_meta(_horizon_meta_key(category, f"{days}d"))
    if model_id is None or not _exists(store, model_id):
        raise NotReady(f"there is no {category} model for the next {days} days yet; train one with "
                       f"`python -m safety_models train --category {category} --horizon {days}d`")
    return model_id


def available_horizons(store: Store, category: str) -> list[str]:
    """The horizons of schema.HORIZONS the category has a model for, shortest first (the next
    window, which the active model serves, is not listed)."""
    from safety_models.schema import HORIZONS

    category = check_category(category)
    return [h for h in HORIZONS
            if (mid := store.get_meta(_horizon_meta_key(category, h))) is not None and _exists(store, mid)]


def horizon_days_of(val_metrics: dict | None) -> int | None:
    """The horizon in days a model version was trained for (its validation metrics say so),
    None for a model of the next window."""
    days = (val_metrics or {}).get("horizon_days") if isinstance(val_metrics, dict) else None
    return int(days) if days else None


def delete_model(store: Store, model_id: str) -> None:
    """Delete a model version (row, then file). The active model cannot be deleted: promote
    another one or roll back first."""
    row = _row(store, model_id)
    if row["status"] == "active":
        what = "base model" if row["is_base"] else f"{row['category']} model"
        raise UserError(f"{model_id} is the active {what}; promote another model or roll back "
                        "before deleting it")
    m = models_table.c
    with store.begin() as conn:
        conn.execute(models_table.delete().where(m.model_id == model_id))
    _resolve(row["path"]).unlink(missing_ok=True)
    with _cache_lock:
        _cache.pop(_cache_key(store, model_id), None)


def base_checkpoint(store: Store) -> dict | None:
    """The active pretrained base model's checkpoint, None when none was pretrained yet."""
    model_id = active_model_id(store, BASE_CATEGORY)
    return None if model_id is None else load_checkpoint(store, model_id)


# ---------------------------------------------------------------------------------------------
# Comparing and checking

# Scores looked for in a metrics dict, in order of preference; the first one both models
# have decides. Higher is better for these ...
HIGHER_IS_BETTER = ("hit_rate_5", "hit_rate", "pai_5", "pai", "average_precision", "pr_auc",
                    "roc_auc", "accuracy")
# ... and lower is better for these.
LOWER_IS_BETTER = ("poisson_deviance", "nll", "loss", "brier", "mae", "rmse")
PROMOTE_MIN_GAIN = 0.0   # any strict improvement suggests promotion
# Models saved before evaluation.metrics.ranking_scores flagged round(0.05 n) cells, not
# ceil, and divided PAI by 0.05, not by the share flagged; their validation scores lack
# "cells_flagged_5". An old and a new model are not compared on these (ceil can flag one cell
# more, which raises the hit rate by itself): the next score both report decides.
HOT_SPOT_SCORES = ("hit_rate_5", "hit_rate", "pai_5", "pai")


def _score_dict(metrics: dict | None) -> dict:
    """The validation scores of a metrics dict ({'validation': {...}, 'test': {...}} or flat)."""
    if not metrics:
        return {}
    for key in ("validation", "val"):
        if isinstance(metrics.get(key), dict):
            return metrics[key]
    return metrics


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def should_promote(new_metrics: dict | None, active_metrics: dict | None) -> tuple[bool, str]:
    """Suggest whether a new model should replace the active one: (yes?, reason for people).

    Compares the validation scores (the first of HIGHER_IS_BETTER, then LOWER_IS_BETTER, that
    both models report; hot-spot scores only when both were computed the same way, see
    HOT_SPOT_SCORES). No active model -> yes. No common score -> no, with the reason.
    Models trained on different data periods were validated on different windows, so this
    is a suggestion; evaluation.evaluate_category backtests both on the same windows.
    """
    if not active_metrics:
        return True, "there is no active model to compare with"
    new, old = _score_dict(new_metrics), _score_dict(active_metrics)
    hot_spots_comparable = ("cells_flagged_5" in new) == ("cells_flagged_5" in old)
    for name, sign in [(n, 1.0) for n in HIGHER_IS_BETTER] + [(n, -1.0) for n in LOWER_IS_BETTER]:
        if name in HOT_SPOT_SCORES and not hot_spots_comparable:
            continue
        a, b = _finite(new.get(name)), _finite(old.get(name))
        if a is None or b is None:
            continue
        gain = sign * (a - b)
        if gain > PROMOTE_MIN_GAIN:
            return True, f"better validation {name}: {a:.4g} vs {b:.4g} for the active model"
        if gain == 0:
            return False, f"same validation {name} as the active model ({a:.4g})"
        return False, f"worse validation {name}: {a:.4g} vs {b:.4g} for the active model"
    return False, "the two models share no validation score to compare; compare them by hand"


def _describe_grid(grid: GridSpec) -> str:
    return (f"{grid.cell_size_m:g} m cells, {grid.n_rows} x {grid.n_cols}, origin "
            f"({grid.origin_x_m:.0f}, {grid.origin_y_m:.0f}) in {grid.crs}")


def check_grid(checkpoint: dict, grid_spec: GridSpec | dict) -> None:
    """Raise GridMismatch when a checkpoint was trained on another grid than grid_spec.

    The message says what differs (CRS, cell size, origin, shape) and how to proceed.
    """
    want = grid_spec if isinstance(grid_spec, GridSpec) else GridSpec.from_dict(grid_spec)
    model_id = checkpoint.get("model_id", "the model")
    if checkpoint.get("grid") is None:
        raise GridMismatch(f"{model_id} records no grid, so it cannot be continued or used on "
                           "this city's grid; train from 'pretrained' instead")
    have = _grid_of(checkpoint)
    have = GridSpec.from_dict(have)
    diffs = []
    if have.crs != want.crs:
        diffs.append(f"CRS {have.crs} vs {want.crs}")
    if not np.isclose(have.cell_size_m, want.cell_size_m):
        diffs.append(f"cell size {have.cell_size_m:g} m vs {want.cell_size_m:g} m")
    if not (np.isclose(have.origin_x_m, want.origin_x_m)
            and np.isclose(have.origin_y_m, want.origin_y_m)):
        diffs.append(f"origin ({have.origin_x_m:.0f}, {have.origin_y_m:.0f}) vs "
                     f"({want.origin_x_m:.0f}, {want.origin_y_m:.0f})")
    if have.shape != want.shape:
        diffs.append(f"shape {have.n_rows} x {have.n_cols} vs {want.n_rows} x {want.n_cols}")
    if not diffs:
        return
    raise GridMismatch(
        f"{model_id} was trained on another grid ({_describe_grid(have)}) than the one asked "
        f"for ({_describe_grid(want)}): {'; '.join(diffs)}. To proceed, either train from "
        f"'pretrained' instead of {model_id} (a new model on the new grid), or keep the "
        f"model's grid (cell size {have.cell_size_m:g} m)."
    )
