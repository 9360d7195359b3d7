"""text: times, durations, percents, names, job progress, upload outcomes, model descriptions."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from safety_models.presentation import text


@pytest.mark.parametrize("value, dashboard, terminal", [
    ("2026-11-28 14:05:59", "28 Nov 2026 14:05", "2026-11-28 14:05"),
    (pd.Timestamp("2026-11-28"), "28 Nov 2026", "2026-11-28"),         # midnight: date only
    (pd.Timestamp("2026-11-28 00:00:30"), "28 Nov 2026 00:00", "2026-11-28 00:00"),
    (None, "–", "-"), (pd.NaT, "–", "-"), (float("nan"), "–", "-"),
])
def test_when_for_the_dashboard_and_the_terminal(value, dashboard, terminal):
    assert text.when(value) == dashboard
    assert text.when_iso(value) == terminal


@pytest.mark.parametrize("seconds, expected", [(12, "12 s"), (59.6, "1 min 0 s"),
                                               (125, "2 min 5 s"), (4000, "1 h 6 min"),
                                               (None, "–"), (float("nan"), "–")])
def test_duration(seconds, expected):
    assert text.duration(seconds) == expected


def test_percent_has_fixed_digits_and_short_percent_drops_zeros():
    assert text.percent(0.9234) == "92.3 %"
    assert text.percent(0.5, digits=0) == "50 %"
    assert text.percent(None) == text.percent(float("nan")) == "–"
    assert [text.short_percent(p) for p in (0.3, 0.1234, 0.0042, 0.0, None, math.inf)] == \
        ["30 %", "12.3 %", "0.42 %", "0 %", "–", "–"]


def test_window_and_category_and_forecaster_names():
    assert [text.window_label(h) for h in (24, 168, 6, None)] == \
        ["day", "week", "6-hour window", "window"]
    assert text.category_label("traffic") == "Traffic accidents"
    assert text.category_label("noise") == "Noise"
    assert text.baseline_label("kde") == "kernel density (KDE)"
    assert text.baseline_label("model") == "this model"
    assert text.baseline_label("some_new_one") == "some new one"


def test_read_progress_picks_and_cleans_the_fields():
    p = text.read_progress({"stage": "train", "fraction": 1.7, "epoch": 2, "epochs": 5,
                            "loss": 0.31, "category": "crime", "eta_s": 18})
    assert (p.stage, p.fraction, p.epoch, p.epochs, p.loss, p.category, p.eta_s) == \
        ("train", 1.0, 2, 5, 0.31, "crime", 18.0)
    # An epoch without a total is not shown; a fraction that is not a number counts as 0.
    p = text.read_progress({"fraction": "soon", "epoch": 3})
    assert (p.stage, p.fraction, p.epoch, p.epochs) == ("", 0.0, None, None)
    assert text.read_progress(None) == text.Progress()
    assert text.read_progress({"fraction": float("nan")}).fraction == 0.0


def test_job_progress_text_for_people():
    job = {"kind": "train", "category": "crime", "status": "running",
           "progress": {"stage": "train", "category": "crime", "fraction": 0.4, "epoch": 2,
                        "epochs": 5, "loss": 0.31, "elapsed_s": 12, "eta_s": 125}}
    assert text.job_title(job) == "Training – Crime"
    assert text.job_fraction(job) == 0.4
    assert text.job_progress_text(job) == \
        "training · Crime · epoch 2 of 5 · loss 0.3100 · 12 s elapsed · about 2 min 5 s left"
    queued = {"kind": "bootstrap", "status": "queued", "progress": None}
    assert text.job_title(queued) == "Preparing the first models"
    assert text.job_progress_text(queued) == "waiting for the training process to start…"
    for_worker = {**queued, "queue_job_id": 3}
    assert text.job_progress_text(for_worker) == \
        "queued: waiting for a worker (python -m safety_models worker) to take it…"
    assert text.job_progress_text(for_worker, workers_alive=0) == \
        "queued, but no worker is running: start one with python -m safety_models worker"
    assert text.job_progress_text(for_worker, workers_alive=2) == \
        text.job_progress_text(for_worker)
    assert text.job_started_text({"job_id": 7, "queue_job_id": None}) == \
        "Training started (job 7)."
    assert text.job_started_text({"job_id": 7, "queue_job_id": 3}).startswith(
        "Training queued (job 7): a worker runs it")
    # Without a stage the status speaks.
    assert text.job_progress_text({"status": "running", "progress": {"fraction": 0.1}}) == \
        "running"


def test_progress_bar_line_reads_the_same_fields_for_the_terminal():
    line = text.progress_bar_line({"stage": "train", "fraction": 0.25, "epoch": 2, "epochs": 8,
                                   "loss": 0.31, "val_score": 0.25, "eta_s": 12.4}, width=8)
    assert line == "train       [##......]   25%  epoch 2/8  loss 0.3100  val 0.250  eta 12s"
    assert text.progress_bar_line({"stage": "save", "fraction": 1}, width=4) == \
        "save        [####]  100%"


def test_job_outcome_text_only_for_recently_finished_jobs():
    now = pd.Timestamp("2026-11-28 14:00")
    job = {"job_id": 7, "kind": "train", "category": "health", "status": "failed",
           "finished_at": pd.Timestamp("2026-11-28 12:30"), "message": "no data"}
    assert text.job_outcome_text(job, now) == \
        "Training – Public health (job 7, 28 Nov 2026 12:30) failed: no data"
    done = {**job, "status": "succeeded", "model_id": "health-1"}
    assert text.job_outcome_text(done, now).endswith(
        "finished: health-1 is saved. Compare and promote it under **Versions**.")
    assert text.job_outcome_text({**job, "status": "cancelled"}, now).endswith(
        "was cancelled; nothing was changed.")
    assert text.job_outcome_text(job, now + pd.Timedelta(hours=7)) is None
    assert text.job_outcome_text({**job, "status": "running", "finished_at": None}, now) is None


SUMMARY = {"upload_id": 4, "file_name": "tiny.csv", "category": "crime", "rows_read": 1207,
           "accepted": 1200, "rejected": 5, "duplicates": 2, "already_loaded": False,
           "rejected_reasons": {"missing coordinates": 1, "unparseable time": 4},
           "time_min": "2019-03-01T08:15:00", "time_max": "2019-03-04T00:00:00"}


def test_upload_summary_for_the_dashboard_and_the_terminal():
    assert text.upload_result_text(SUMMARY) == (
        "**tiny.csv** → Crime: 1,200 incidents added, 2 duplicates skipped, 5 rows rejected "
        "(of 1,207 read). Incidents from 01 Mar 2019 08:15 to 04 Mar 2019.")
    assert text.rejected_reasons_text(SUMMARY) == "unparseable time: 4, missing coordinates: 1"
    assert text.upload_summary_lines(SUMMARY).splitlines() == [
        "tiny.csv (crime): upload #4",
        "  read 1,207 rows: 1,200 accepted, 5 rejected, 2 duplicates",
        "  rejected: unparseable time 4, missing coordinates 1 "
        "(python -m safety_models rejected 4 --out FILE.csv)",
        "  time range 2019-03-01 08:15 to 2019-03-04",
    ]
    # Loading it again adds nothing and points to the earlier upload (#4).
    again = {**SUMMARY, "upload_id": None, "earlier_upload_id": 4, "already_loaded": True,
             "accepted": 0, "duplicates": 1200}
    assert text.upload_result_text(again) == \
        "**tiny.csv** was loaded before (upload #4); nothing was added."
    assert text.upload_summary_lines(again) == (
        "tiny.csv (crime): already loaded as upload #4; nothing added (its 1,200 incidents "
        "are stored, 5 rows were rejected then: python -m safety_models uploads)")
    assert text.upload_label(SUMMARY) == "#4 tiny.csv (crime, 1,200 incidents)"


def test_model_description_names_data_grid_base_and_freezing():
    info = {"created_at": pd.Timestamp("2026-11-28 14:05"), "train_seconds": 125,
            "data_start": "2020-01-01", "data_end": "2024-01-01", "train_end": "2023-01-01",
            "val_end": "2023-06-01", "window_hours": 168,
            "grid": {"n_rows": 30, "n_cols": 40, "cell_size_m": 500.0, "crs": "EPSG:32616"}}
    configs = {"train_config": {"base": "pretrained", "freeze_up_to": "layer2"},
               "model_config": {"backbone": "resnet18"},
               "metrics": {"validation": {"best_epoch": 3}}, "history": [{}] * 5}
    assert text.model_description("health-1", info, configs).splitlines() == [
        "- Model `health-1`, trained 28 Nov 2026 14:05 in 2 min 5 s",
        "- Data: incidents from **01 Jan 2020** to **01 Jan 2024**; trained on windows before "
        "01 Jan 2023, tuned on those until 01 Jun 2023, tested on the windows after that",
        "- Grid: 30 × 40 cells of 500 m (EPSG:32616); one week per prediction",
        "- Started from the product's base model, pretrained on simulated cities (resnet18); "
        "layers up to **layer2** kept frozen",
        "- Kept: epoch 3 of 5, the best on the validation windows",
    ]
    scratch = text.model_description("m", {}, {"train_config": {"base": "crime-2",
                                                                "freeze_up_to": "none"}})
    assert "- Started from the earlier model `crime-2`; every layer retrained" in scratch


def test_model_description_says_which_training_epoch_was_kept():
    assert text.training_kept({"metrics": {"validation": {"best_epoch": 3}},
                               "history": [{}] * 5}) == \
        "Kept: epoch 3 of 5, the best on the validation windows"
    kept = text.training_kept({"metrics": {"validation": {"best_epoch": 0}},
                               "history": [{}, {}]})
    assert kept.startswith("Kept: the starting forecast") and \
        "None of the 2 trained epochs" in kept
    assert text.training_kept({"metrics": {}, "history": []}) is None


@pytest.mark.parametrize("run, label", [
    ({"base": "none", "freeze_up_to": "none"}, "scratch"),
    ({"base": "pretrained", "freeze_up_to": "none", "history_days": 90.0},
     "fine-tuned, none frozen, 90 d"),
    ({"base": "pretrained", "freeze_up_to": "layer2", "history_days": float("nan"),
      "stage": "learning rate", "optimizer": "sgd", "lr": 0.01}, "frozen to layer2, sgd 0.01"),
])
def test_study_run_label(run, label):
    assert text.study_run_label(run) == label


def test_evaluation_texts():
    evaluation = {"test_start": "2024-09-01", "test_end": "2024-09-30", "window_hours": 24,
                  "n_windows": 30, "n_test_events": 1234, "cell_size_m": 500.0,
                  "results": {"model": {}, "baselines": {"naive": {}, "kde": {}}}}
    assert text.evaluation_period_text(evaluation) == (
        "Test period **01 Sep 2024 – 30 Sep 2024**: 30 days, 1,234 incidents, cells of 500 m.")
    assert text.headline_caption(evaluation).startswith(
        "Scored on 01 Sep 2024 – 30 Sep 2024 (after its training data), against the best of "
        "2 baselines;")


def test_which_forecaster_and_since_when():
    now = pd.Timestamp("2026-12-01 15:00")
    assert text.since("2026-12-01 14:05", now) == "today 14:05"
    assert text.since("2026-11-30 09:12", now) == "yesterday 09:12"
    assert text.since("2026-11-02 09:12", now) == "02 Nov 2026 09:12"
    line = text.forecaster_line("linear", "crime-1", "2026-12-01 14:05", now=now)
    assert line.startswith("Forecast by **the starting forecast** (a linear model")
    assert "`crime-1`" in line and line.endswith("in use since **today 14:05**.")
    training = text.forecaster_line("linear", "crime-1", "2026-12-01 14:05",
                                    training={"progress": {"fraction": 0.42}}, now=now)
    assert "being trained (42 % of the job)" in training
    assert "only if it scores better on the validation windows" in training
    assert "**the fine-tuned network**" in text.forecaster_line("network", "m", None)
    assert text.forecaster_label("linear") == "the starting forecast"


def test_a_horizon_says_which_forecaster_and_since_when_as_the_next_window_does():
    now = pd.Timestamp("2026-12-01 15:00")
    line = text.horizon_line("7-day period", "linear", "crime-7d", "2026-12-01 14:05", now=now)
    assert line.startswith("Forecast of each **7-day period** by **the starting forecast** "
                           "(a linear model")
    assert "model `crime-7d`, trained for this period)" in line
    assert "in use since **today 14:05**:" in line
    assert line.endswith("the expected number over the whole period.")
    blended = text.horizon_line("30-day period", "network", "m", None,
                                blend={"network": 0.6, "kde": 0.4})
    assert "**the fine-tuned network**" in blended
    assert "as chosen on the validation windows: the network 60 % + kernel density" in blended
    # The same words for the same forecaster as the next window's line.
    said = "**the starting forecast** (" + text.FORECASTER_HELP["linear"]
    assert said in line and said in text.forecaster_line("linear", "m", None)


def test_lookback_summary():
    table = pd.DataFrame({"rank": range(1, 41), "happened": [2] + [0] * 29 + [1] * 3 + [0] * 7})
    assert text.lookback_summary(table, "day") == (
        "5 incidents happened, 2 of them (40 %) in the 5 % of cells ranked highest")
    assert text.lookback_summary(table.assign(happened=0), "week") == \
        "no incidents happened that week"


def test_a_quick_first_evaluation_says_so():
    evaluation = {"test_start": "2024-12-01", "test_end": "2024-12-29", "window_hours": 24,
                  "n_windows": 28, "n_test_events": 100, "cell_size_m": 500.0,
                  "results": {"model": {}, "baselines": {}}}
    assert text.is_quick_evaluation(evaluation, "2024-01-01")
    assert not text.is_quick_evaluation(evaluation, "2024-12-01")
    assert not text.is_quick_evaluation(evaluation, None)
    assert text.evaluation_period_text(evaluation, quick=True).endswith(
        "A quick first evaluation of the starting forecast, on its latest 28 days only.")
    assert "a quick first evaluation" in text.headline_caption(evaluation, quick=True)


def test_bootstrap_progress_names_its_step():
    job = {"kind": "bootstrap", "status": "running",
           "progress": {"stage": "base_rate", "step": "starting forecast", "category": "crime",
                        "fraction": 0.1}}
    assert text.job_progress_text(job).startswith("starting forecast · fitting the long-run "
                                                  "rates · Crime")


def test_a_versions_validation_chosen_mix_in_words():
    assert text.blend_text({}) == ""
    assert text.blend_text({"base_rate": 1.0}) == "its linear base-rate part alone"
    assert text.blend_text({"kde": 0.4, "network": 0.6}) == (
        "the network 60 % + kernel density (KDE) 40 %")
    line = text.forecaster_line("network", "m", None, blend={"network": 0.7, "kde": 0.3})
    assert "as chosen on the validation windows: the network 70 % + kernel density (KDE) 30 %" in line


def test_what_a_forecast_covers_in_words():
    assert text.horizon_option_label(None, 24) == "Next day"
    assert text.horizon_option_label(None, 168) == "Next week"
    assert text.horizon_option_label("30d", 24) == "Next 30 days"
    assert text.period_label(24) == "day"
    assert text.period_label(24, 7) == "7-day period"
    assert text.period_label(168, 4) == "4-week period"
    assert text.period_label(6, 4) == "1-day period"
    assert text.period_label(6, 3) == "18-hour period"


def test_a_difference_with_its_interval():
    comparison = {"mean_difference": 0.412, "ci95": [0.118, 0.7]}
    assert text.interval_text(comparison) == "+0.41 [+0.12, +0.70]"
    assert text.interval_text({"mean_difference": -0.02, "ci95": [-0.031, 0.004]}, 100, 1) == \
        "-2.0 [-3.1, +0.4]"
    assert text.interval_text({"mean_difference": 0.5, "ci95": [math.nan, math.nan]}) == "+0.50"
    assert text.interval_text({"mean_difference": math.nan}) == "–"
    assert text.interval_text(None) == "–"


def test_kept_types_label_names_the_types_a_map_is_made_of():
    listing = pd.DataFrame({"category": ["crime", "crime", "traffic", "crime"],
                            "is_demo": [False, False, False, True],
                            "only_types": [["burglary"], ["burglary"], [], ["assault"]]})
    assert text.kept_types_label(listing, "crime") == "burglary only"     # the demo's choice aside
    assert text.kept_types_label(listing, "traffic") is None             # every type
    assert text.kept_types_label(listing, "health") is None
    assert text.kept_types_label(listing.iloc[:0], "crime") is None
