"""The home's pretrained base: reused while current, pretrained again after a layout change."""

from __future__ import annotations

from conftest import fake_checkpoint

from safety_models.features import FeatureConfig
from safety_models.modeling import pretrained, registry, training

# `crime_store` (conftest.py): a fresh home with 300 synthetic crime incidents, no model.


def test_a_base_with_an_older_input_layout_is_pretrained_again(crime_store, monkeypatch):
    """After an upgrade that adds input planes, the old base (29 planes) is replaced once;
    a base with this version's layout is reused."""
    store = crime_store
    current = FeatureConfig().to_dict()
    older = {k: v for k, v in current.items() if k not in ("log_all_history", "ewma_half_life_days")}
    old_id = registry.save_base(store, {**fake_checkpoint(), "feature_config": older})
    assert not pretrained.base_layout_is_current({"feature_config": older})
    calls = []

    def fake_pretrain(tensors, **kwargs):
        calls.append(len(tensors))
        return {**fake_checkpoint(), "feature_config": current}

    monkeypatch.setattr(training, "pretrain", fake_pretrain)
    new_id = pretrained.ensure_pretrained(store)
    assert new_id != old_id and len(calls) == 1
    assert registry.active_model_id(store, registry.BASE_CATEGORY) == new_id
    assert pretrained.ensure_pretrained(store) == new_id and len(calls) == 1
