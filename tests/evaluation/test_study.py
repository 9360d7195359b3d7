"""The fine-tuning study: its design (which runs), its summary (hand-made tables) and, on a
tiny synthetic city, the quick study end to end."""

from __future__ import annotations

import pandas as pd

from safety_models.evaluation import study


def run_row(stage, base, freeze, val_pai, test_pai, optimizer="adamw", lr=1e-3, history=None,
            kept_epoch=2) -> dict:
    return {
        "stage": stage, "base": base, "freeze_up_to": freeze, "history_days": history,
        "optimizer": optimizer, "lr": lr, "epochs": 3, "kept_epoch": kept_epoch, "train_seconds": 10.0,
        "val_pai_5": val_pai, "val_hit_rate_5": val_pai * 0.05, "val_roc_auc": 0.7,
        "test_roc_auc": 0.75, "test_pai_5": test_pai, "test_hit_rate_5": test_pai * 0.05,
        "best_baseline": "kde", "baseline_roc_auc": 0.72, "baseline_pai_5": 4.0, "baseline_hit_rate_5": 0.2,
    }


def hand_table() -> pd.DataFrame:
    rows = [
        run_row("freezing", "none", "none", 4.0, 3.9),
        run_row("freezing", "pretrained", "none", 4.2, 4.1),
        run_row("freezing", "pretrained", "stem", 4.3, 4.2),
        run_row("freezing", "pretrained", "layer1", 4.4, 4.3),
        run_row("freezing", "pretrained", "layer2", 4.6, 4.5),   # best on validation
        run_row("freezing", "pretrained", "layer3", 4.5, 4.7),   # best on test: must not be chosen
        run_row("learning rate", "pretrained", "layer2", 4.1, 4.0, "sgd", 1e-4),
        run_row("learning rate", "pretrained", "layer2", 4.8, 4.6, "sgd", 1e-3),
        run_row("learning rate", "pretrained", "layer2", 3.0, 3.1, "sgd", 1e-2),
        run_row("history", "pretrained", "layer2", 4.0, 3.8, "sgd", 1e-3, history=90),
        run_row("history", "none", "none", 3.0, 2.9, history=90),
    ]
    return study._typed(pd.DataFrame(rows, columns=list(study.COLUMNS)))


def test_full_design_plans_each_freezing_depth_then_rates_then_history():
    freezing = study.freezing_runs(epochs=3)
    assert [(r.base, r.freeze_up_to) for r in freezing] == [
        ("none", "none"), ("pretrained", "none"), ("pretrained", "stem"), ("pretrained", "layer1"),
        ("pretrained", "layer2"), ("pretrained", "layer3")]
    best = [freezing[0], freezing[4]]
    rates = study.learning_rate_runs(best)
    assert [(r.optimizer, r.lr) for r in rates[:4]] == [("sgd", 1e-4), ("sgd", 1e-3), ("sgd", 1e-2), ("adamw", 1e-3)]
    assert {r.freeze_up_to for r in rates} == {"none", "layer2"}
    # The adamw 1e-3 run of a best setting is the freezing run again: trained once.
    assert rates[3].key() == freezing[0].key()
    assert [r.history_days for r in study.history_runs(best[:1], 24)] == [90, 365, None]
    assert [r.history_days for r in study.history_runs(best[:1], 168)] == [365, 730, None]


def test_quick_design_is_three_runs():
    quick = study.quick_runs()
    assert [(r.base, r.freeze_up_to, r.epochs) for r in quick] == [
        ("none", "none", 1), ("pretrained", "none", 1), ("pretrained", "layer2", 1)]


def test_summary_chooses_on_validation_and_quotes_test_numbers():
    lines = study.summarise_study(hand_table())
    text = "\n".join(lines)
    assert lines[0].startswith("Layers to freeze: up to layer2 (validation PAI@5 4.60")
    assert "test PAI@5 4.50" in lines[0]
    assert any(line.startswith("Learning rate for fine-tuning: sgd 0.001") for line in lines)
    # Best fine-tuned on validation = sgd 1e-3 layer2 (test 4.60); best scratch = freezing run (3.90).
    verdict = next(line for line in lines if line.startswith("Fine-tuning"))
    assert verdict.startswith("Fine-tuning beats training from scratch")
    assert "(difference in PAI@5 +0.70)" in verdict
    assert "90 days: fine-tuned 3.80 vs scratch 2.90; all history: fine-tuned 4.60 vs scratch 3.90" in text
    assert "Best baseline (kde): test PAI@5 4.00" in text


def test_summary_says_when_fine_tuning_does_not_help():
    table = pd.DataFrame([run_row("quick", "none", "none", 5.0, 5.0),
                          run_row("quick", "pretrained", "none", 4.0, 4.4)], columns=list(study.COLUMNS))
    verdict = next(line for line in study.summarise_study(table) if line.startswith("Fine-tuning"))
    assert verdict.startswith("Fine-tuning does not beat training from scratch")
    assert "(difference in PAI@5 -0.60)" in verdict
    assert study.summarise_study(table.iloc[0:0]) == []


def test_summary_counts_runs_that_kept_the_starting_forecast():
    table = pd.DataFrame([run_row("quick", "none", "none", 5.0, 5.0, kept_epoch=0),
                          run_row("quick", "pretrained", "none", 5.0, 5.0, kept_epoch=0),
                          run_row("quick", "pretrained", "layer2", 5.2, 5.1, kept_epoch=3)],
                         columns=list(study.COLUMNS))
    text = "\n".join(study.summarise_study(table))
    assert "In 2 of 3 runs no trained epoch beat the starting forecast" in text
    assert "no trained epoch" not in "\n".join(study.summarise_study(table.iloc[2:]))


def test_saved_study_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFETY_MODELS_HOME", str(tmp_path))
    assert study.load_study("crime") is None
    table = hand_table()
    study.save_study("crime", table)
    loaded = study.load_study("crime")
    pd.testing.assert_frame_equal(loaded, table)
    assert (tmp_path / "studies" / "crime.json").exists()


# ---------------------------------------------------------------------------------------------
# End to end on a tiny synthetic city (13 x 13 cells of 1 km, 420 days; 1 epoch of 2 batches)

QUICK_OVERRIDES = {"cell_size_m": 1000.0, "val_windows": 30, "test_windows": 60, "batch_size": 8,
                   "steps_per_epoch": 2}


def test_quick_study_on_a_tiny_city(tmp_path):
    from conftest import synthetic_incidents_csv, use_home

    from safety_models.data import ingest
    from safety_models.modeling import registry, training
    from safety_models.modeling.city import prepare_city
    from safety_models.data.store import Store

    with use_home(tmp_path):
        store = Store()
        ingest.ingest_bytes(store, synthetic_incidents_csv("crime"), "crime.csv", "crime")
        # A tiny base (2 steps) stands in for the product's pretrained one, so that the study
        # finds a cached base instead of pretraining for minutes.
        city = prepare_city(store, "crime", cell_size_m=1000.0)
        base = training.pretrain([(city.counts, city.starts, city.mask, 24)], max_steps=2, holdout_days=90)
        registry.save_base(store, base)

        reports: list[dict] = []
        table = study.run_study(store, "crime", on_progress=reports.append, quick=True,
                                train_overrides=QUICK_OVERRIDES)
        assert list(table.columns) == list(study.COLUMNS)
        assert [(r.base, r.freeze_up_to, r.epochs) for r in table.itertuples()] == [
            ("none", "none", 1), ("pretrained", "none", 1), ("pretrained", "layer2", 1)]
        assert (table["stage"] == "quick").all()
        for column in ("test_roc_auc", "test_pai_5", "test_hit_rate_5", "val_pai_5", "baseline_pai_5"):
            assert table[column].notna().all(), column
        # One best baseline for every run: the baselines were scored once, on the same windows.
        assert table["best_baseline"].nunique() == 1
        assert table["baseline_pai_5"].nunique() == 1
        fractions = [r["fraction"] for r in reports]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
        assert {r["run"] for r in reports if "row" in r} == {1, 2, 3}

        loaded = study.load_study("crime")
        pd.testing.assert_frame_equal(loaded, table)
        lines = study.summarise_study(loaded)
        assert any(line.startswith("Fine-tuning") for line in lines)
        store.close()


def test_full_study_plans_from_validation_and_shares_the_test_windows(tmp_path, monkeypatch):
    """The full design's orchestration with training stubbed out: a 'model' whose forecast is
    the 28-day mean blurred by noise, least for pretrained + layer2 + sgd 1e-3. 16 runs; the
    later stages start from the settings that won on validation; history runs start training
    later (data_window start moves) but share the validation and test windows."""
    import numpy as np
    from conftest import synthetic_incidents_csv, use_home

    from safety_models.evaluation import backtest as evaluation
    from safety_models.data import ingest
    from safety_models.modeling import pretrained, training
    from safety_models.data.store import Store

    noise = {("pretrained", "layer2"): 0.0, ("pretrained", "layer1"): 0.3}
    fits: list = []

    class Fitted:
        def __init__(self, cfg, first):
            self.model, self.train_seconds = cfg, 0.5
            self.cfg, self.first = cfg, first

        def checkpoint(self):
            return {"feature_config": {"window_hours": 24}, "train_seconds": 0.5,
                    "data_window": {"start": str(self.first), "end": "2025-02-24",
                                    "train_end": "2024-11-26", "val_end": "2024-12-26"}}

    def fake_fit(counts, starts, mask, cfg, base_state=None, on_progress=None, should_stop=None):
        fits.append(cfg)
        assert (base_state is not None) == (cfg.base == "pretrained")
        first = starts[0] if cfg.history_days is None else pd.Timestamp("2024-11-26") - pd.Timedelta(days=cfg.history_days)
        return Fitted(cfg, first)

    def fake_probabilities(cfg, ckpt, city, t_indices, on_batch=None):
        sigma = noise.get((cfg.base, cfg.freeze_up_to), 1.0) + (0.0 if (cfg.optimizer, cfg.lr) == ("sgd", 1e-3) else 0.05)
        rng = np.random.default_rng(len(fits))
        rate = np.stack([city.counts[max(0, t - 28):t].mean(axis=0) for t in t_indices])
        return 1 - np.exp(-(rate + sigma * rng.random(rate.shape)))

    monkeypatch.setattr(training, "fit", fake_fit)
    monkeypatch.setattr(evaluation, "model_probabilities", fake_probabilities)
    # The fake scores above were tuned on the fitted grid's counts; where a new grid's lines
    # fall is modeling.city's concern (tests/modeling/test_city.py), not the study's.
    from safety_models.modeling import city as citylib
    monkeypatch.setattr(citylib, "GRID_OFFSETS_CELLS", ((0.0, 0.0),))
    with use_home(tmp_path):
        store = Store()
        ingest.ingest_bytes(store, synthetic_incidents_csv("crime"), "crime.csv", "crime")
        monkeypatch.setattr(pretrained, "pretrained_base", lambda store: ("base-1", {"model_id": "base-1"}))
        table = study.run_study(store, "crime", train_overrides={"cell_size_m": 1000.0})
        store.close()
    assert len(table) == len(fits) == 16
    assert table["stage"].value_counts().to_dict() == {"freezing": 6, "learning rate": 6, "history": 4}
    rates = table[table["stage"] == "learning rate"]
    assert set(zip(rates["base"], rates["freeze_up_to"])) == {("none", "none"), ("pretrained", "layer2")}
    history = table[table["stage"] == "history"]
    assert set(history["history_days"]) == {90, 365}
    assert set(zip(history["base"], history["optimizer"], history["lr"])) == {
        ("pretrained", "sgd", 1e-3), ("none", "sgd", 1e-3)}
    assert table["baseline_pai_5"].nunique() == 1  # one scoring of the baselines for all runs
    assert all(cfg.steps_per_epoch == study.STUDY_STEPS_PER_EPOCH for cfg in fits)
    lines = study.summarise_study(table)
    assert lines[0].startswith("Layers to freeze: up to layer2")
