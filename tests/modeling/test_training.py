"""training.py: fit on a tiny city, cached frozen features, cancel, predict, pretrain."""

import io

import numpy as np
import pytest
import torch

from safety_models.modeling import training
from safety_models.features import FeatureConfig, SampleBuilder
from safety_models.modeling.models import model_from_checkpoint
from safety_models.modeling.synthetic import simulate_city
from safety_models.modeling.training import (Cancelled, TrainConfig, fit, predict_window, predict_windows, pretrain, split_windows)


# One torch thread and seed 0 for every test here (conftest.py: one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def city():
    return simulate_city(3, rows=16, cols=16, n_windows=160, window_hours=24, events_per_window=6.0)


def _cfg(**kw):
    d = dict(category="crime", epochs=1, steps_per_epoch=2, batch_size=4, val_windows=10,
             test_windows=10)
    d.update(kw)
    return TrainConfig(**d)


@pytest.fixture(scope="module")
def tiny_base(city):
    counts, starts, mask = city
    return pretrain([(counts, starts, mask)], max_steps=2, time_budget_s=60, batch_size=2)


def test_split_is_chronological(city):
    counts, _, _ = city
    first, train_end, val_end, T = split_windows(counts, _cfg(), FeatureConfig())
    assert first < train_end == val_end - 10 and val_end == T - 10 == 150
    d_first, d_train_end, d_val_end, _ = split_windows(np.ones((900, 2, 2)), TrainConfig(), FeatureConfig())
    assert (d_val_end, d_train_end) == (900 - 365, 900 - 365 - 90)


def test_fit_scratch_and_checkpoint_round_trip(city):
    counts, starts, mask = city
    progress = []
    res = fit(counts, starts, mask, _cfg(base="none"), on_progress=progress.append)
    assert any(p["stage"] == "train" and 0 < p["fraction"] <= 1 for p in progress)
    assert {"epoch", "epochs", "batch", "batches", "loss", "eta_s", "elapsed_s"} <= set(progress[1])
    ck = res.checkpoint()
    assert {"format", "state_dict", "model_config", "feature_config", "train_config", "data_window",
            "metrics", "train_seconds"} <= set(ck)
    assert set(ck["data_window"]) == {"start", "end", "train_end", "val_end"}
    assert "roc_auc" in ck["metrics"]["validation"] and "pai_5" in ck["metrics"]["test"]
    buf = io.BytesIO()
    torch.save(ck, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    model = model_from_checkpoint(loaded)
    fcfg = FeatureConfig.from_dict(loaded["feature_config"])
    for t in (100, len(counts)):
        p1, e1 = predict_window(res.model, counts, starts, t, res.feature_config, mask)
        p2, e2 = predict_window(model, counts, starts, t, fcfg, mask)
        assert p1.shape == (16, 16) and np.array_equal(p1, p2) and np.array_equal(e1, e2)
        assert np.all((p1 >= 0) & (p1 <= 1)) and np.all(p1[~mask] == 0)
    probs, _ = predict_windows(model, counts, starts, [100, 101], fcfg, mask)
    np.testing.assert_allclose(probs[0], predict_window(model, counts, starts, 100, fcfg, mask)[0], rtol=1e-5, atol=1e-6)


def _scores_in_order(monkeypatch, step: float) -> None:
    """Validation scores that rise (step > 0) or fall (step < 0) with every evaluation."""
    calls = iter(range(1000))
    monkeypatch.setattr(training, "selection_score", lambda metrics: step * next(calls))


def test_fine_tune_freezes_and_only_trainable_reach_optimizer(city, tiny_base, monkeypatch):
    counts, starts, mask = city
    _scores_in_order(monkeypatch, +1.0)       # the last trained epoch is kept
    res = fit(counts, starts, mask, _cfg(base="pretrained", freeze_up_to="layer1"), base_state=tiny_base)
    assert res.frozen and all(n.split(".")[0] in ("adapter", "stem", "layer1") for n in res.frozen)
    after = res.model.state_dict()
    for k, v in tiny_base["state_dict"].items():
        if k.split(".")[0] in ("adapter", "stem", "layer1"):
            assert torch.equal(v, after[k]), k                   # includes BN running stats
    assert not torch.equal(tiny_base["state_dict"]["layer2.0.conv1.weight"], after["layer2.0.conv1.weight"])


def test_training_that_does_not_help_validation_keeps_the_starting_point(city, tiny_base, monkeypatch):
    """Epoch 0 (the base-rate GLM under a zero head) is a candidate: when every trained epoch
    scores worse on validation, the decoder is the starting one and best_epoch is 0."""
    counts, starts, mask = city
    _scores_in_order(monkeypatch, -1.0)
    res = fit(counts, starts, mask, _cfg(base="pretrained", freeze_up_to="layer1", epochs=2, patience=5),
              base_state=tiny_base)
    assert res.metrics["validation"]["best_epoch"] == 0 and len(res.history) == 2
    after = res.model.state_dict()
    assert torch.count_nonzero(after["head.2.weight"]) == 0     # the new head is still zero
    assert torch.equal(tiny_base["state_dict"]["layer2.0.conv1.weight"], after["layer2.0.conv1.weight"])


def test_cached_frozen_features_give_the_same_first_loss(city, tiny_base):
    counts, starts, mask = city
    losses = {}
    for cache in (True, False):
        seen = []
        fit(counts, starts, mask, _cfg(base="pretrained", freeze_up_to="layer2", cache_frozen=cache,
                                       steps_per_epoch=1), base_state=tiny_base,
            on_progress=lambda p: seen.append(p["loss"]) if p["stage"] == "train" else None)
        losses[cache] = seen[0]
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)


def test_should_stop_cancels(city):
    counts, starts, mask = city
    with pytest.raises(Cancelled):
        fit(counts, starts, mask, _cfg(base="none"), should_stop=lambda: True)


def test_sgd_and_imagenet_missing(city, tmp_path, monkeypatch):
    counts, starts, mask = city
    res = fit(counts, starts, mask, _cfg(base="none", optimizer="sgd"))
    assert res.history and np.isfinite(res.history[0]["loss"])
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    from safety_models.errors import WeightsMissing
    with pytest.raises(WeightsMissing):
        fit(counts, starts, mask, _cfg(base="imagenet"))


def test_pretrain_checkpoint_is_a_base(tiny_base):
    assert tiny_base["category"] == "*" and tiny_base["format"] == 1
    buf = io.BytesIO()
    torch.save(tiny_base, buf)
    buf.seek(0)
    assert model_from_checkpoint(torch.load(buf, weights_only=True)) is not None


def test_train_config_round_trip():
    cfg = TrainConfig(category="health", base="imagenet", freeze_up_to="layer3", lr=3e-4)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.hours == 168


def test_base_path_glm_fit_and_refit_under_a_trained_head(city):
    from safety_models.modeling.models import ModelConfig, create_model
    from safety_models.features import n_channels
    counts, starts, mask = city
    fcfg = FeatureConfig()
    b = SampleBuilder(counts, starts, fcfg, mask)
    model = create_model(ModelConfig(in_channels=n_channels(fcfg), decoder_width=16, full_res_width=8))
    training.new_head(model)
    training.fit_base_path(model, b, np.arange(10, 120), max_rows=5000)
    w1 = model.base_path.weight.detach().clone()
    assert w1.abs().sum() > 0 and torch.isfinite(w1).all()
    with torch.no_grad():
        model.head[-1].weight.normal_(0, 0.01)            # a trained head: refit under its offset
    training.fit_base_path(model, b, np.arange(10, 150), max_rows=5000)
    assert torch.isfinite(model.base_path.weight).all() and not torch.equal(w1, model.base_path.weight)


def test_a_short_history_is_split_in_order_and_too_short_a_one_says_so():
    # 60 daily windows: a quarter (15) for test, a sixth (10) for validation, the rest to train.
    from safety_models.errors import NotReady
    from safety_models.features import FeatureConfig
    from safety_models.modeling.training import TrainConfig, split_windows

    fcfg = FeatureConfig(window_hours=24)
    counts = np.ones((60, 4, 4), np.float32)
    first, train_end, val_end, T = split_windows(counts, TrainConfig(category="crime"), fcfg)
    assert (T - val_end, val_end - train_end) == (15, 10)
    assert first < train_end
    with pytest.raises(NotReady, match="not enough history"):
        split_windows(np.ones((8, 4, 4), np.float32), TrainConfig(category="crime"), fcfg)


def test_the_glm_by_newton_minimises_what_fit_base_path_minimises(city):
    from safety_models.modeling.models import create_model, ModelConfig

    counts, starts, mask = city
    fcfg = FeatureConfig()
    builder = SampleBuilder(counts, starts, fcfg, mask)
    t_train = np.arange(30, 120)
    x = training.city_rows(builder, t_train)                       # (rows, C)
    y = counts[t_train][:, mask].reshape(-1)
    weight, bias = training.fit_glm(x, y)

    def objective(w, b):
        z = x @ w.T + b                                            # (rows, 2)
        bce = np.mean(np.logaddexp(0, z[:, 0]) - (y > 0) * z[:, 0])
        poisson = np.mean(np.exp(z[:, 1]) - y * z[:, 1])
        return bce + poisson + training.GLM_L2 * np.sum(w ** 2)

    model = create_model(ModelConfig(in_channels=x.shape[1], decoder_width=8, full_res_width=8))
    training.new_head(model)
    training.fit_base_path(model, builder, t_train, seed=0)
    lbfgs = (model.base_path.weight.detach().numpy().reshape(2, -1),
             model.base_path.bias.detach().numpy())
    assert objective(weight, bias) <= objective(*lbfgs) + 1e-6
    # Continuing from the solution changes nothing.
    again = training.fit_glm(x, y, start=(weight, bias))
    np.testing.assert_allclose(again[0], weight, atol=1e-4)


def test_a_glm_under_a_constant_offset_moves_only_its_intercepts():
    # Exact: adding c to the linear predictor is undone by an intercept lower by c.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3)).astype(np.float32)
    y = rng.poisson(np.exp(0.3 * x[:, 0] - 1.0)).astype(np.float32)
    weight, bias = training.fit_glm(x, y)
    shift = np.tile(np.array([[0.5, -0.7]], np.float32), (len(x), 1))   # (rows, 2)
    shifted_weight, shifted_bias = training.fit_glm(x, y, offset=shift)
    np.testing.assert_allclose(shifted_weight, weight, atol=1e-4)
    np.testing.assert_allclose(shifted_bias, bias - np.array([0.5, -0.7]), atol=1e-4)


def test_the_starting_forecast_is_fits_epoch_zero_on_the_same_split(city):
    counts, starts, mask = city
    cfg = _cfg(base="none")
    result = training.fit_starting_forecast(counts, starts, mask, cfg)
    assert result.model.cfg.backbone == "none" and result.history == []
    validation = result.metrics["validation"]
    assert validation["best_epoch"] == 0 and 0 <= validation["hit_rate_5"] <= 1
    assert "test" not in result.metrics
    first, train_end, val_end, _ = split_windows(counts, cfg, FeatureConfig())
    times = SampleBuilder(counts, starts, FeatureConfig(), mask).times
    assert result.data_window["train_end"] == str(np.datetime64(times[train_end], "s")).replace(" ", "T")
    prob, _ = predict_window(result.model, counts, starts, len(counts), result.feature_config, mask)
    assert prob.shape == mask.shape and (prob[~mask] == 0).all() and prob[mask].max() < 1


def test_a_silent_network_is_skipped_at_prediction(city):
    from safety_models.modeling.models import ModelConfig, create_model

    counts, starts, mask = city
    fcfg = FeatureConfig()
    from safety_models.features import n_channels

    model = create_model(ModelConfig(in_channels=n_channels(fcfg), decoder_width=8,
                                     full_res_width=8)).eval()
    assert training.network_is_silent(model)               # a new head: all zero
    fast = predict_windows(model, counts, starts, [100, 101], fcfg, mask)
    x = torch.from_numpy(SampleBuilder(counts, starts, fcfg, mask).inputs([100, 101]))
    with torch.no_grad():
        logit, _ = model(x)                                  # the whole network, for once
    np.testing.assert_allclose(fast[0], torch.sigmoid(logit).numpy() * mask, atol=1e-6)
    with torch.no_grad():
        model.head[-1].bias.fill_(0.1)
    assert not training.network_is_silent(model)


def test_a_horizon_model_learns_the_events_of_the_next_days(city):
    """horizon_days=7: validation is 6 windows longer, every target's 7 days lie inside its
    own period, and the checkpoint says what a forecast covers."""
    counts, starts, mask = city
    cfg = _cfg(base="none", horizon_days=7, val_windows=None)
    first, train_end, val_end, T = split_windows(counts, cfg, FeatureConfig())
    assert val_end - train_end == split_windows(counts, _cfg(val_windows=None), FeatureConfig())[2] - \
        split_windows(counts, _cfg(val_windows=None), FeatureConfig())[1] + 6
    res = fit(counts, starts, mask, cfg)
    ck = res.checkpoint()
    assert ck["horizon"] == {"days": 7, "windows": 7}
    assert ck["metrics"]["validation"]["horizon_days"] == 7
    # the test forecasts start at val_end and stop 7 windows before the end of the data
    assert ck["metrics"]["test"]["n_windows"] == 10 - 7 + 1
    # P(>= 1 event in 7 days) is higher than in one day for the same cells
    daily = fit(counts, starts, mask, _cfg(base="none", val_windows=None))
    p7 = predict_window(res.model, counts, starts, 150, res.feature_config, mask)[0]
    p1 = predict_window(daily.model, counts, starts, 150, daily.feature_config, mask)[0]
    assert p7[mask].mean() > 2 * p1[mask].mean()


def test_crops_sit_on_the_network_stride_cover_the_grid_and_skip_empty_squares():
    mask = np.zeros((70, 40), bool)
    mask[:, :20] = True                    # the city is the western half
    crops = training.crop_origins(mask, 32)
    # rows pad to 96: origins 0, 32, 64; cols pad to 64: 0 and 32, but col 32.. holds no city cell
    assert crops == [(0, 0, 32), (32, 0, 32), (64, 0, 32)]
    covered = np.zeros_like(mask)
    for r, c, size in training.crop_origins(np.ones((70, 40), bool), 32):
        covered[r:r + size, c:c + size] = True
    assert covered.all()
    assert training.crop_origins(mask, 128) is None                # the grid fits one crop
    assert training.crop_origins(mask, None) is None
    with pytest.raises(ValueError, match="multiple of 32"):
        training.crop_origins(mask, 40)


def test_a_step_on_a_crop_trains_on_that_square_only():
    counts, starts, mask = simulate_city(5, rows=40, cols=40, n_windows=60, window_hours=24, events_per_window=8.0)
    from safety_models.modeling.models import ModelConfig, create_model
    from safety_models.features import n_channels

    fcfg = FeatureConfig()
    builder = SampleBuilder(counts, starts, fcfg, mask)
    model = create_model(ModelConfig(in_channels=n_channels(fcfg), decoder_width=8, full_res_width=8)).train()
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    before = model.head[-1].weight.detach().clone()            # zero at first; the step moves it
    loss = training.train_step(model, optimizer, builder, np.array([30, 31]), torch.from_numpy(mask),
                               crop=(32, 0, 32))
    assert np.isfinite(loss) and seen == [(8, 32)]                 # rows 32..39 (cut at the edge), cols 0..31
    assert not torch.equal(before, model.head[-1].weight)


def test_fit_on_a_grid_larger_than_a_crop_trains_on_crops(city):
    counts, starts, mask = simulate_city(6, rows=40, cols=40, n_windows=160, window_hours=24, events_per_window=8.0)
    res = fit(counts, starts, mask, _cfg(base="none", crop_cells=32))
    assert res.history and np.isfinite(res.history[0]["loss"])
    prob, _ = predict_window(res.model, counts, starts, len(counts), res.feature_config, mask)
    assert prob.shape == (40, 40)                                   # predictions are whole-city


def test_a_horizons_starting_forecast_learns_the_events_over_the_horizon(city):
    """fit_starting_forecast with horizon_days=7: a horizon model (its metrics say so) whose
    chance of at least one event over 7 days is well above the one-day forecast's."""
    counts, starts, mask = city
    week = training.fit_starting_forecast(counts, starts, mask, _cfg(base="none", horizon_days=7,
                                                                      val_windows=None))
    day = training.fit_starting_forecast(counts, starts, mask, _cfg(base="none", val_windows=None))
    assert week.metrics["validation"]["horizon_days"] == 7
    assert "horizon_days" not in day.metrics["validation"]
    assert week.checkpoint()["horizon"] == {"days": 7, "windows": 7}
    p7 = predict_window(week.model, counts, starts, 150, week.feature_config, mask)[0]
    p1 = predict_window(day.model, counts, starts, 150, day.feature_config, mask)[0]
    assert p7[mask].mean() > 2 * p1[mask].mean()


def test_the_stacks_fit_sample_follows_the_train_config(city):
    """stack_fit_rows caps the city cell-windows the stack's fit reads (the first start's maps
    use a smaller sample than training): ten windows' worth of rows are ten windows."""
    from safety_models.grid import GridSpec
    from safety_models.modeling import stack

    counts, _starts, mask = city
    n_cells = int(mask.sum())
    grid = GridSpec(crs="EPSG:32616", origin_x_m=0.0, origin_y_m=0.0, cell_size_m=500.0, n_rows=16, n_cols=16)
    t_train = np.arange(30, 140)
    fitted = {rows: stack.StackModel.from_dict(training.fit_stack(
        counts, t_train, mask, grid, _cfg(stack_fit_rows=rows), FeatureConfig())[stack.STACK]["model"])
        for rows in (10 * n_cells, None)}
    assert fitted[10 * n_cells].n_fit_rows == 10 * n_cells
    assert fitted[None].n_fit_rows == len(t_train) * n_cells       # FIT_ROWS: every window here
