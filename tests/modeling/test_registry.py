"""Registry: save/load round trips, the one-active-model invariant, atomic saves, grid checks."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import torch

from safety_models.modeling import registry
from safety_models.errors import GridMismatch, NotReady, UserError
from safety_models.grid import GridSpec

from conftest import FAKE_GRID as GRID, fake_checkpoint, tiny_net

# `store` (conftest.py): a Store on a fresh, empty home.


def statuses(store, category="crime") -> dict[str, str]:
    df = registry.list_models(store, category)
    return dict(zip(df["model_id"], df["status"]))


def test_checkpoint_round_trip_has_plain_types_and_a_row(store):
    model_id = registry.save_model(store, fake_checkpoint(), "crime")
    ckpt = registry.load_checkpoint(store, model_id)  # weights_only=True inside
    assert ckpt["model_id"] == model_id and ckpt["category"] == "crime"
    assert ckpt["grid"] == GRID.to_dict()
    assert ckpt["mask"].dtype == torch.bool and tuple(ckpt["mask"].shape) == GRID.shape
    assert isinstance(ckpt["metrics"]["validation"]["loss"], float)
    row = registry.list_models(store).iloc[0]
    assert row["model_id"] == model_id and row["window_hours"] == 24
    assert row["cell_size_m"] == 500.0 and row["val_metrics"]["hit_rate_5"] == 0.5
    assert str(row["train_end"]) == "2026-02-01 00:00:00"
    assert (registry.paths.home_dir() / row["path"]).is_file()


def test_first_model_is_active_later_ones_are_candidates(store):
    first = registry.save_model(store, fake_checkpoint(), "crime")
    second = registry.save_model(store, fake_checkpoint(), "crime")
    other = registry.save_model(store, fake_checkpoint(), "traffic")
    assert statuses(store) == {first: "active", second: "candidate"}
    assert registry.active_model_id(store, "crime") == first
    assert registry.active_model_id(store, "traffic") == other
    assert registry.active_model_id(store, "health") is None


def test_promote_and_rollback_keep_exactly_one_active(store):
    a, b, c = (registry.save_model(store, fake_checkpoint(), "crime") for _ in range(3))
    registry.promote(store, b)
    assert statuses(store) == {a: "retired", b: "active", c: "candidate"}
    registry.promote(store, c)
    assert statuses(store) == {a: "retired", b: "retired", c: "active"}
    # Rollback walks back through the activation history, it does not toggle.
    assert registry.rollback(store, "crime") == b
    assert statuses(store) == {a: "retired", b: "active", c: "candidate"}
    assert registry.rollback(store, "crime") == a
    assert statuses(store) == {a: "active", b: "candidate", c: "candidate"}
    with pytest.raises(NotReady, match="no earlier crime model"):
        registry.rollback(store, "crime")
    registry.promote(store, a)  # promoting the active one changes nothing
    assert list(statuses(store).values()).count("active") == 1


def test_database_refuses_a_second_active_model(store):
    registry.save_model(store, fake_checkpoint(), "crime")
    second = registry.save_model(store, fake_checkpoint(), "crime")
    m = registry.models_table.c
    with pytest.raises(sa.exc.IntegrityError):
        with store.begin() as conn:
            conn.execute(registry.models_table.update().where(m.model_id == second)
                         .values(status="active"))


def test_failed_insert_leaves_no_file_and_no_row(store, monkeypatch):
    def broken_insert(conn, row):
        raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(registry, "_insert_row", broken_insert)
    with pytest.raises(sa.exc.OperationalError):
        registry.save_model(store, fake_checkpoint(), "crime")
    assert list(registry.paths.sub_dir("models").iterdir()) == []
    assert registry.list_models(store).empty


def test_loaded_model_predicts_exactly_what_the_saved_one_did(store):
    net = tiny_net(seed=3)
    ckpt = fake_checkpoint(seed=3)
    x = torch.rand(2, 3, *GRID.shape)  # (batch, channels, rows, cols)
    model_id = registry.save_model(store, ckpt, "crime")
    model, loaded = registry.load_model(store, model_id)
    assert loaded["model_id"] == model_id and not model.training
    with torch.no_grad():
        want_any, want_rate = net(x)
        got_any, got_rate = model(x)
    assert want_any.abs().sum() > 0  # a real prediction, not the zero-initialised head
    assert torch.equal(got_any, want_any) and torch.equal(got_rate, want_rate)
    assert registry.load_model(store, model_id)[0] is model  # cached by model id


def test_delete_refuses_the_active_model_and_removes_others(store):
    active = registry.save_model(store, fake_checkpoint(), "crime")
    spare = registry.save_model(store, fake_checkpoint(), "crime")
    with pytest.raises(UserError, match="active crime model"):
        registry.delete_model(store, active)
    registry.delete_model(store, spare)
    assert list(statuses(store)) == [active]
    assert [p.name for p in registry.paths.sub_dir("models").iterdir()] == [f"{active}.pt"]
    with pytest.raises(NotReady):
        registry.load_checkpoint(store, spare)


def test_base_models_newest_is_active(store):
    assert registry.base_checkpoint(store) is None
    first = registry.save_base(store, fake_checkpoint(seed=1))
    second = registry.save_base(store, fake_checkpoint(seed=2))
    assert first.startswith("base-")
    assert registry.base_checkpoint(store)["model_id"] == second
    assert statuses(store, registry.BASE_CATEGORY) == {first: "retired", second: "active"}
    assert registry.active_model_id(store, "crime") is None  # bases are not category models


def test_should_promote_compares_validation_scores():
    better = {"validation": {"hit_rate_5": 0.6}}
    worse = {"validation": {"hit_rate_5": 0.4}}
    assert registry.should_promote(better, worse) == (
        True, "better validation hit_rate_5: 0.6 vs 0.4 for the active model")
    assert registry.should_promote(worse, better)[0] is False
    assert registry.should_promote(better, None)[0] is True
    # Lower-is-better scores count the other way; NaN scores are skipped.
    assert registry.should_promote({"loss": 0.2, "hit_rate_5": float("nan")},
                                   {"loss": 0.3, "hit_rate_5": 0.9})[0] is True
    ok, reason = registry.should_promote({"validation": {"x": 1}}, {"validation": {"y": 1}})
    assert not ok and "no validation score" in reason


def test_should_promote_does_not_compare_hot_spots_across_conventions():
    # A model saved before metrics.ranking_scores (round(0.05 n) cells, no cells_flagged_5)
    # against a new one: the hit rates are not comparable, ROC-AUC decides.
    old = {"validation": {"hit_rate_5": 0.5, "pai_5": 10.0, "roc_auc": 0.8}}
    new = {"validation": {"hit_rate_5": 0.7, "pai_5": 11.0, "roc_auc": 0.7, "cells_flagged_5": 3}}
    assert registry.should_promote(new, old) == (
        False, "worse validation roc_auc: 0.7 vs 0.8 for the active model")
    assert registry.should_promote(old, new)[0] is True
    # Both new: the hit rate decides, as before.
    newer = {"validation": {**new["validation"], "hit_rate_5": 0.75}}
    assert registry.should_promote(newer, new) == (
        True, "better validation hit_rate_5: 0.75 vs 0.7 for the active model")


def test_check_grid_names_the_difference_and_the_way_out():
    ckpt = {"model_id": "crime-20261128-231500-ab12", "grid": GRID.to_dict()}
    registry.check_grid(ckpt, GRID)  # same grid: fine
    finer = GridSpec(GRID.crs, GRID.origin_x_m, GRID.origin_y_m, 250.0, 8, 10)
    with pytest.raises(GridMismatch) as err:
        registry.check_grid(ckpt, finer)
    message = str(err.value)
    assert "cell size 500 m vs 250 m" in message and "shape 4 x 5 vs 8 x 10" in message
    assert "train from 'pretrained' instead of crime-20261128-231500-ab12" in message
    assert "keep the model's grid (cell size 500 m)" in message
    moved = GridSpec(GRID.crs, GRID.origin_x_m + 500.0, GRID.origin_y_m, 500.0, 4, 5)
    with pytest.raises(GridMismatch, match="origin"):
        registry.check_grid(ckpt, moved.to_dict())
