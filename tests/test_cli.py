"""The command line: exit codes, --json output, messages without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from safety_models import cli

SUMMARY_KEYS = {"upload_id", "file_name", "category", "rows_read", "accepted", "rejected",
                "duplicates", "rejected_reasons", "time_min", "time_max", "already_loaded"}
REPO = Path(__file__).resolve().parent.parent

# 7 rows: 4 usable incidents, one repeated id, one bad time, one without coordinates.
TINY_CSV = """id,datetime,latitude,longitude,type
A1,2019-03-01 08:15,41.881,-87.631,theft
A2,2019-03-01 09:30,41.882,-87.629,assault
A3,2019-03-02 22:05,41.879,-87.633,theft
A4,2019-03-04 01:00,41.885,-87.640,robbery
A4,2019-03-04 01:00,41.885,-87.640,robbery
A5,not a date,41.880,-87.630,theft
A6,2019-03-05 12:00,,,theft
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFETY_MODELS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SAFETY_MODELS_DB_URL", raising=False)
    return tmp_path / "home"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run_json(capsys, argv: list[str]):
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_ingest_json_has_the_summary_keys_and_counts(home, tmp_path, capsys):
    path = write(tmp_path, "tiny.csv", TINY_CSV)
    out = run_json(capsys, ["ingest", str(path), "--category", "crime", "--json"])
    assert set(out) == SUMMARY_KEYS
    assert (out["rows_read"], out["accepted"], out["rejected"], out["duplicates"]) == (7, 4, 2, 1)
    assert out["rejected_reasons"] == {"unparseable time": 1, "missing coordinates": 1}
    assert (out["time_min"], out["time_max"]) == ("2019-03-01T08:15:00", "2019-03-04T01:00:00")
    assert out["file_name"] == "tiny.csv" and out["already_loaded"] is False


def test_ingest_text_summary_and_same_file_twice(home, tmp_path, capsys):
    path = write(tmp_path, "tiny.csv", TINY_CSV)
    assert cli.main(["ingest", str(path), "--category", "crime"]) == 0
    text = capsys.readouterr().out
    assert "4 accepted, 2 rejected, 1 duplicates" in text
    assert "unparseable time 1" in text and "2019-03-01 08:15 to 2019-03-04 01:00" in text
    assert cli.main(["ingest", str(path), "--category", "crime"]) == 0
    assert "already loaded as upload #1" in capsys.readouterr().out


def test_ingest_several_files_prints_one_json_line_each(home, tmp_path, capsys):
    first = write(tmp_path, "a.csv", TINY_CSV)
    second = write(tmp_path, "b.csv", TINY_CSV.replace("A", "B"))
    assert cli.main(["ingest", str(first), str(second), "--category", "traffic", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["accepted"] for line in lines] == [4, 4]


def test_column_options_name_unrecognised_columns(home, tmp_path, capsys):
    path = write(tmp_path, "odd.csv", "when,north,east\n2019-03-01 08:15,41.881,-87.631\n"
                                      "2019-03-02 10:00,41.882,-87.632\n")
    out = run_json(capsys, ["ingest", str(path), "--category", "health", "--time-column", "when",
                            "--lat-column", "north", "--lon-column", "east", "--json"])
    assert out["accepted"] == 2


def test_unusable_files_exit_2_with_a_message_and_no_traceback(home, tmp_path):
    empty = write(tmp_path, "empty.csv", "")
    wrong = write(tmp_path, "wrong.csv", "colour,size\nred,3\nblue,4\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for path in (empty, wrong):
        done = subprocess.run([sys.executable, "-m", "safety_models", "ingest", str(path),
                               "--category", "crime"], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=120)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert path.name in done.stderr and done.stdout == ""
    assert "colour" in done.stderr     # the wrong-columns message lists what it found


def test_a_bad_file_among_good_ones_is_skipped(home, tmp_path, capsys):
    good = write(tmp_path, "good.csv", TINY_CSV)
    empty = write(tmp_path, "empty.csv", "")
    assert cli.main(["ingest", str(empty), str(good), "--category", "crime", "--json"]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["accepted"] == 4
    assert "empty.csv" in captured.err


def test_status_uploads_rejected_and_remove(home, tmp_path, capsys):
    status = run_json(capsys, ["status", "--json"])
    assert status == {"incidents": {"crime": 0, "traffic": 0, "health": 0}, "uploads": 0,
                      "home": str(home.resolve()),
                      "time_range": {"crime": None, "traffic": None, "health": None}}
    path = write(tmp_path, "tiny.csv", TINY_CSV)
    upload_id = run_json(capsys, ["ingest", str(path), "--category", "crime", "--json"])["upload_id"]
    status = run_json(capsys, ["status", "--json"])
    assert status["incidents"]["crime"] == 4 and status["uploads"] == 1
    assert status["time_range"]["crime"] == {"start": "2019-03-01T08:15:00",
                                             "end": "2019-03-04T01:00:00"}
    uploads = run_json(capsys, ["uploads", "--json"])
    assert [(u["upload_id"], u["file_name"], u["accepted"]) for u in uploads] == \
        [(upload_id, "tiny.csv", 4)]
    assert cli.main(["uploads"]) == 0 and "tiny.csv" in capsys.readouterr().out

    out = tmp_path / "rejected.csv"
    assert cli.main(["rejected", str(upload_id), "--out", str(out)]) == 0
    rejected = pd.read_csv(out, dtype=str)
    assert rejected["reason"].tolist() == ["unparseable time", "missing coordinates"]
    assert rejected["id"].tolist() == ["A5", "A6"] and rejected["row_number"].tolist() == ["6", "7"]

    assert cli.main(["remove-upload", str(upload_id)]) == 0
    assert "4 incidents" in capsys.readouterr().out
    assert run_json(capsys, ["status", "--json"])["incidents"]["crime"] == 0
    assert cli.main(["remove-upload", str(upload_id)]) == 2
    assert f"no upload #{upload_id}" in capsys.readouterr().err


def test_another_city_is_refused_with_exit_2(home, tmp_path, capsys):
    chicago = write(tmp_path, "chicago.csv", TINY_CSV)
    barcelona = write(tmp_path, "barcelona.csv", TINY_CSV.replace("41.88", "41.39")
                      .replace("-87.6", "2.1").replace("A", "X"))
    assert cli.main(["ingest", str(chicago), "--category", "crime"]) == 0
    assert cli.main(["ingest", str(barcelona), "--category", "crime"]) == 2
    err = capsys.readouterr().err
    assert "km" in err and "remove-upload" in err
    assert cli.main(["ingest", str(barcelona), "--category", "traffic"]) == 0


def test_freeze_choices_are_the_model_stages():
    from safety_models.modeling.models import STAGES

    assert cli.FREEZE_CHOICES == ("none",) + tuple(STAGES)


def test_models_predict_and_evaluate_on_a_home_with_models(tiny_home_with_models, tmp_path,
                                                           monkeypatch, capsys):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(tiny_home_with_models, home)
    monkeypatch.setenv("SAFETY_MODELS_HOME", str(home))
    from safety_models.modeling import registry
    registry.clear_cache()

    assert cli.main(["models", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)
    active = {m["category"]: m["model_id"] for m in models if m["status"] == "active"}
    assert {"crime", "traffic", "health"} <= set(active)

    out = tmp_path / "crime.geojson"
    assert cli.main(["predict", "--category", "crime", "--out", str(out)]) == 0
    features = json.loads(out.read_text())["features"]
    ranks = sorted(f["properties"]["rank"] for f in features)
    assert ranks == list(range(1, len(features) + 1))
    assert {f["properties"]["model_id"] for f in features} == {active["crime"]}
    assert len(features[0]["geometry"]["coordinates"][0]) == 5      # a closed cell outline
    capsys.readouterr()

    assert cli.main(["evaluate", "--category", "crime", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model_id"] == active["crime"]
    assert {"naive", "historical_average", "kde", "prospective_hotspot"} <= set(
        result["results"]["baselines"])
    for name in ("accuracy", "always_no_event_accuracy", "balanced_accuracy", "roc_auc",
                 "pr_auc", "brier"):
        assert name in result["results"]["model"]
    assert set(result["results"]["model"]["pai"]) == {"1", "5", "10", "20"}

    # flagged areas (1 km cells here): keyed by the strings given, for model and baselines
    assert cli.main(["evaluate", "--category", "crime", "--json", "--flag-area", "0.75sqmi",
                     "--flag-area", "2km2"]) == 0
    result = json.loads(capsys.readouterr().out)
    for m in [result["results"]["model"], *result["results"]["baselines"].values()]:
        for key in ("pai_area", "hit_rate_area", "pei_area"):
            assert set(m[key]) == {"0.75sqmi", "2km2"}
        assert m["cells_flagged_area"] == {"0.75sqmi": 1, "2km2": 2}
    assert cli.main(["evaluate", "--category", "crime", "--flag-area", "2km2"]) == 0
    assert "2km2" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", "--category", "crime", "--flag-area", "2 acres"])
    assert exit_info.value.code == 2 and "2 acres" in capsys.readouterr().err

    assert cli.main(["predict", "--category", "crime", "--out", str(tmp_path / "x.txt")]) == 2
    assert ".csv or .geojson" in capsys.readouterr().err


def test_horizon_options_parse():
    parser = cli.build_parser()
    assert parser.parse_args(["predict", "--category", "crime", "--horizon", "30d", "--out", "x.csv"]).horizon == "30d"
    assert parser.parse_args(["evaluate", "--category", "crime", "--horizon", "7d"]).horizon == "7d"
    assert parser.parse_args(["train", "--category", "crime", "--horizon", "90d"]).horizon == "90d"
    with pytest.raises(SystemExit):
        parser.parse_args(["predict", "--category", "crime", "--horizon", "5d", "--out", "x.csv"])
