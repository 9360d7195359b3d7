"""The home's own pretrained base model: pretrain one when there is none or it is outdated.

    pretrained_base        (id, checkpoint) of the active base, pretraining one first if needed
    ensure_pretrained      its id only
    base_layout_is_current whether a base reads the input planes this version builds

Models fine-tuned with base 'pretrained' (service.workflows.train_category) and the study's
pretrained runs (evaluation.study) start from it; the jobs of kind 'pretrain' build it.
"""

from __future__ import annotations

from typing import Any, Callable

from safety_models.modeling import registry
from safety_models.modeling.city import prepare_city
from safety_models.schema import CATEGORIES

ProgressFn = Callable[[dict], None]
StopFn = Callable[[], bool]


def ensure_pretrained(store: Any, on_progress: ProgressFn | None = None,
                      force: bool = False, seed: int = 0, should_stop: StopFn | None = None,
                      pretrain_options: dict | None = None) -> str:
    """The id of the active pretrained base model (see pretrained_base)."""
    return pretrained_base(store, on_progress, force, seed, should_stop, pretrain_options)[0]


def pretrained_base(store: Any, on_progress: ProgressFn | None = None,
                    force: bool = False, seed: int = 0, should_stop: StopFn | None = None,
                    pretrain_options: dict | None = None) -> tuple[str, dict]:
    """(id, checkpoint) of the active pretrained base model, pretraining one first when there
    is none, when its input planes are not this version's (base_layout_is_current), or when
    force. The checkpoint read to check the layout is the one returned: callers that train
    from the base do not read it again. Pretraining uses the simulated cities
    (training.synthetic_count_tensors) plus every category stored here on its own grid, so the
    base has seen this city's scale and rhythms. pretrain_options go to training.pretrain (e.g.
    time_budget_s, max_steps). Raises training.Cancelled when should_stop() turns true;
    nothing is saved then."""
    from safety_models.modeling import training

    existing = registry.active_model_id(store, registry.BASE_CATEGORY)
    if existing is not None and not force:
        checkpoint = registry.load_checkpoint(store, existing)
        if base_layout_is_current(checkpoint):
            return existing, checkpoint
    if on_progress is not None:
        on_progress({"stage": "pretrain-data", "fraction": 0.0})
    tensors = list(training.synthetic_count_tensors(seed=seed))
    for category in CATEGORIES:
        if store.time_range(category) is None:
            continue
        city = prepare_city(store, category)
        tensors.append((city.counts, city.starts, city.mask, city.window_hours))
    checkpoint = training.pretrain(tensors, on_progress=on_progress, seed=seed,
                                   should_stop=should_stop, **(pretrain_options or {}))
    base_id = registry.save_base(store, checkpoint)
    return base_id, registry.load_checkpoint(store, base_id)   # as saved (plain types, model_id)


def base_layout_is_current(checkpoint: dict) -> bool:
    """Whether a base checkpoint reads the input planes this version builds by default.

    Models fine-tuned from a base inherit its layout; after an upgrade that adds planes (for
    instance the log and exponentially weighted planes) an older base would hold new models
    back, so a new base is pretrained once. Older models keep working on their own layout."""
    from safety_models.features import FeatureConfig, channel_names

    saved = checkpoint.get("feature_config")
    if not saved:
        return False
    return channel_names(FeatureConfig.from_dict(saved)) == channel_names(FeatureConfig())
