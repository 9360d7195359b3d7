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
                "duplicates", "rejected_reasons", "time_min", "time_max", "already_loaded",
                "earlier_upload_id"}
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


# `home` (conftest.py): a fresh, empty home set as SAFETY_MODELS_HOME.


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


def test_ingest_only_types_takes_types_with_commas_and_says_which_were_kept(home, tmp_path, capsys):
    """Los Angeles-style offence names hold commas: each --only-types is one whole type."""
    rows = ["DATE OCC,Crm Cd Desc,LAT,LON",
            "2019-03-01 08:15,\"ASSAULT WITH DEADLY WEAPON, AGGRAVATED ASSAULT\",34.05,-118.25",
            "2019-03-01 09:15,BURGLARY,34.06,-118.24",
            "2019-03-02 10:15,VEHICLE - STOLEN,34.04,-118.26",
            "2019-03-02 11:15,BURGLARY,34.05,-118.27"]
    path = write(tmp_path, "la.csv", "\n".join(rows) + "\n")
    out = run_json(capsys, ["ingest", str(path), "--category", "crime", "--json",
                            "--only-types", "assault with deadly weapon, aggravated assault",
                            "--only-types", "Burglary"])
    assert (out["accepted"], out["rejected_reasons"]) == (3, {"not one of the incident types asked for": 1})
    assert cli.main(["uploads"]) == 0
    assert "assault with deadly weapon, aggravated assault, burglary" in capsys.readouterr().out


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
    from conftest import copy_home

    home = tmp_path / "home"
    copy_home(tiny_home_with_models, home)
    monkeypatch.setenv("SAFETY_MODELS_HOME", str(home))
    from safety_models.modeling import registry
    registry.clear_cache()

    assert cli.main(["models", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)
    active = {m["category"]: m["model_id"] for m in models if m["status"] == "active"}
    assert {"crime", "traffic", "health"} <= set(active)
    assert cli.main(["models", "--category", "crime"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["model_id", "category", "status", "created", "base", "train_s",
                              "val_auc", "val_pai_5", "test_auc", "test_pai_5"]
    # (the home's crime also has a newer model for the next 7 days, a candidate)
    [row] = [r for r in rows if r.split() and r.split()[0] == active["crime"]]
    assert all(float(score) >= 0 for score in row.split()[-4:]), "every score is shown"

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


def test_progress_bar_redraws_one_line_and_starts_a_new_one_per_stage():
    import io

    stream = io.StringIO()
    bar = cli.ProgressBar(stream=stream)
    bar({"stage": "prepare", "fraction": 0.0})
    bar({"stage": "train", "fraction": 0.5, "epoch": 1, "epochs": 4, "loss": 0.5, "eta_s": 12})
    bar({"stage": "train", "fraction": 1.0, "epoch": 4, "epochs": 4, "loss": 0.1})
    bar.close()
    assert stream.getvalue().split("\n") == [
        "\rprepare     [........................]    0%    ",
        "\rtrain       [############............]   50%  epoch 1/4  loss 0.5000  eta 12s    "
        "\rtrain       [########################]  100%  epoch 4/4  loss 0.1000    ",
        "",
    ]


# --- issue 12: nothing lost, nothing silently wrong -------------------------------------------

def test_loading_the_same_file_again_says_nothing_was_added_and_where_it_is(home, tmp_path,
                                                                            capsys):
    path = write(tmp_path, "tiny.csv", TINY_CSV)
    first = run_json(capsys, ["ingest", str(path), "--category", "crime", "--json"])
    copy = write(tmp_path, "tiny-copy.csv", TINY_CSV)
    again = run_json(capsys, ["ingest", str(copy), "--category", "crime", "--json"])
    assert again["already_loaded"] is True and again["accepted"] == 0
    assert again["earlier_upload_id"] == first["upload_id"] and again["file_name"] == "tiny-copy.csv"
    assert (again["duplicates"], again["rejected"]) == (5, 2)
    assert cli.main(["ingest", str(path), "--category", "crime"]) == 0
    assert f"already loaded as upload #{first['upload_id']}; nothing added" in capsys.readouterr().out


def test_earliest_option_rejects_older_incidents(home, tmp_path, capsys):
    path = write(tmp_path, "tiny.csv", TINY_CSV)
    out = run_json(capsys, ["ingest", str(path), "--category", "crime", "--earliest", "2019-03-02",
                            "--json"])
    assert out["rejected_reasons"]["time outside the plausible range"] == 2
    assert cli.main(["ingest", str(path), "--category", "crime", "--earliest", "soon"]) == 2
    assert "--earliest 'soon' is not a date" in capsys.readouterr().err


def run_cli(args: list[str], home: Path, cwd: Path, prefix: list[str] = ()) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), SAFETY_MODELS_HOME=str(home))
    env.pop("SAFETY_MODELS_DB_URL", None)
    return subprocess.run([*prefix, sys.executable, "-m", "safety_models", *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def assert_one_paragraph(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    for word in words:
        assert word in done.stderr, (word, done.stderr)


def test_a_symlink_loop_and_a_damaged_database_get_messages_not_tracebacks(home, tmp_path):
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    assert_one_paragraph(run_cli(["ingest", str(loop), "--category", "crime"], home, tmp_path),
                         "loop.csv", "symbolic link")
    good = write(tmp_path, "tiny.csv", TINY_CSV)
    assert run_cli(["ingest", str(good), "--category", "crime"], home, tmp_path).returncode == 0
    db = home / "safety_models.db"
    intact = db.read_bytes()
    for damaged in (os.urandom(len(intact)), intact[: len(intact) // 2]):
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        db.write_bytes(damaged)
        for command in (["status"], ["ingest", str(good), "--category", "crime"], ["uploads"]):
            assert_one_paragraph(run_cli(command, home, tmp_path), str(db),
                                 "python -m safety_models check", "restore")


def read_only_prefix(folder: Path) -> list[str] | None:
    """A command prefix under which folder is read-only for real: chmod for a normal user;
    for root (whom permissions do not stop) a read-only bind mount in a user namespace.
    None when neither is possible here."""
    import shutil

    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    prefix = [unshare, "-rm", "sh", "-c", f'mount --bind -o ro "{folder}" "{folder}" && exec "$0" "$@"']
    probe = subprocess.run([*prefix, "touch", str(folder / "probe")], capture_output=True)
    return prefix if probe.returncode != 0 and not (folder / "probe").exists() else None


def test_a_read_only_home_gets_a_message_that_says_what_to_do(home, tmp_path):
    good = write(tmp_path, "tiny.csv", TINY_CSV)
    other = write(tmp_path, "other.csv", TINY_CSV.replace("A", "B"))
    empty_home = tmp_path / "empty-home"
    empty_home.mkdir()
    assert run_cli(["ingest", str(good), "--category", "crime"], home, tmp_path).returncode == 0
    for folder in (home, empty_home):
        prefix = read_only_prefix(folder)
        if prefix is None:
            pytest.skip("cannot make a folder read-only here (root without user namespaces)")
        try:
            for command in (["ingest", str(other), "--category", "crime"], ["status"]):
                assert_one_paragraph(run_cli(command, folder, tmp_path, prefix), str(folder),
                                     "SAFETY_MODELS_HOME", "write")
        finally:
            folder.chmod(0o755)


def test_backup_check_and_restore_commands(home, tmp_path, capsys):
    path = write(tmp_path, "tiny.csv", TINY_CSV)
    assert cli.main(["ingest", str(path), "--category", "crime"]) == 0
    capsys.readouterr()
    archive = tmp_path / "home.tar"
    out = run_json(capsys, ["backup", str(archive), "--json"])
    assert (out["uploads"], out["incidents"], out["files"]) == (1, 4, 1)
    assert cli.main(["check"]) == 0 and "no problems found" in capsys.readouterr().out
    db = home / "safety_models.db"
    db.write_bytes(b"garbage" * 1000)
    assert cli.main(["check"]) == 2
    assert "python -m safety_models restore" in capsys.readouterr().out
    assert cli.main(["restore", str(archive)]) == 0
    assert "moved to" in capsys.readouterr().out
    assert run_json(capsys, ["status", "--json"])["incidents"]["crime"] == 4
    assert run_json(capsys, ["check", "--json"])["ok"] is True
    # The restored audit trail is the backup's, and the restore is the row after it.
    trail = run_json(capsys, ["audit", "--json"])
    assert [(r["action"], r["outcome"]) for r in trail] == [("upload", "ok"),
                                                            ("home.restore", "ok")]
    assert "the replaced state is in" in trail[-1]["detail"]


# ------------------------------------------------------------------------- accounts, audit


def add_user(capsys, monkeypatch, name: str, role: str, password: str) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    assert cli.main(["users", "add", name, "--role", role, "--password-stdin"]) == 0
    assert f"account {name.lower()} ({role}) created" in capsys.readouterr().out


def test_users_commands_and_their_audit_rows(home, capsys, monkeypatch):
    import io

    from safety_models.data.store import Store
    from safety_models.service import accounts
    from safety_models.service.access import os_user

    add_user(capsys, monkeypatch, "Ana", "analyst", "analyst-password")
    add_user(capsys, monkeypatch, "root2", "admin", "root2-password")
    assert cli.main(["users", "set-role", "ana", "viewer"]) == 0
    assert cli.main(["users", "disable", "ana"]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("new-password-1\n"))
    assert cli.main(["users", "reset-password", "ana", "--password-stdin"]) == 0
    capsys.readouterr()
    listed = run_json(capsys, ["users", "list", "--json"])
    assert [(u["name"], u["role"], u["disabled"]) for u in listed] == [
        ("ana", "viewer", True), ("root2", "admin", False)]
    assert "password_hash" not in listed[0]
    with Store() as store:
        assert accounts.authenticate(store, "root2", "root2-password").ok
    # Mistakes are messages, exit status 2.
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert cli.main(["users", "add", "bob", "--role", "viewer", "--password-stdin"]) == 2
    assert "at least 10 characters" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert cli.main(["users", "add", "bob", "--role", "viewer"]) == 2
    assert "--password-stdin" in capsys.readouterr().err
    assert cli.main(["users", "disable", "root2"]) == 2
    assert "last administrator" in capsys.readouterr().err
    # Every change is in the trail, in the OS user's name, via the CLI.
    trail = run_json(capsys, ["audit", "--json"])
    assert [(r["who"], r["via"], r["action"], r["target"], r["outcome"]) for r in trail] == [
        (os_user(), "cli", "account.add", "account ana", "ok"),
        (os_user(), "cli", "account.add", "account root2", "ok"),
        (os_user(), "cli", "account.role", "account ana", "ok"),
        (os_user(), "cli", "account.disable", "account ana", "ok"),
        (os_user(), "cli", "account.password", "account ana", "ok"),
        (os_user(), "cli", "account.disable", "account root2", "failed"),
    ]


def test_audit_command_text_since_and_csv(home, tmp_path, capsys):
    path = write(tmp_path, "tiny.csv", TINY_CSV)
    assert cli.main(["ingest", str(path), "--category", "crime"]) == 0
    assert cli.main(["remove-upload", "1"]) == 0
    capsys.readouterr()
    assert cli.main(["audit"]) == 0
    text = capsys.readouterr().out
    assert "upload.remove" in text and "upload #1" in text and "tiny.csv (crime)" in text
    assert run_json(capsys, ["audit", "--json", "--since", "2999-01-01"]) == []
    assert len(run_json(capsys, ["audit", "--json", "--since", "2000-01-01",
                                 "--action", "upload"])) == 1
    assert cli.main(["audit", "--csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header == "id,at,who,via,action,target,outcome,detail"
    assert cli.main(["audit", "--since", "last tuesday"]) == 2
    assert "--since" in capsys.readouterr().err


def test_rejected_rows_csv_is_neutralised(home, tmp_path, capsys):
    text = TINY_CSV.replace("A5,not a date,41.880,-87.630,theft",
                            "A5,not a date,41.880,-87.630,=cmd|'/C calc'!A0")
    path = write(tmp_path, "tiny.csv", text)
    assert cli.main(["ingest", str(path), "--category", "crime"]) == 0
    capsys.readouterr()
    assert cli.main(["rejected", "1"]) == 0
    out = capsys.readouterr().out
    assert "'=cmd|'/C calc'!A0" in out
    assert ",-87.630," in out, "a number in a text column stays readable"


def test_horizon_options_parse():
    parser = cli.build_parser()
    assert parser.parse_args(["predict", "--category", "crime", "--horizon", "30d", "--out", "x.csv"]).horizon == "30d"
    assert parser.parse_args(["evaluate", "--category", "crime", "--horizon", "7d"]).horizon == "7d"
    assert parser.parse_args(["train", "--category", "crime", "--horizon", "90d"]).horizon == "90d"
    with pytest.raises(SystemExit):
        parser.parse_args(["predict", "--category", "crime", "--horizon", "5d", "--out", "x.csv"])


def test_horizons_written_as_weeks_or_months_become_their_days():
    """The NIJ challenge's horizons as a planner writes them: 1 and 2 weeks, 1, 2 and 3 months."""
    from safety_models.schema import horizon_days, parse_horizon

    parser = cli.build_parser()
    assert [parser.parse_args(["evaluate", "--category", "crime", "--horizon", h]).horizon
            for h in ("1w", "2w", "1m", "2m", "3m")] == ["7d", "14d", "30d", "60d", "90d"]
    assert parse_horizon("2 months") == "60d" and parse_horizon(" 14D ") == "14d"
    assert horizon_days("1 week") == 7
    with pytest.raises(ValueError, match="unknown horizon '6w'"):
        parse_horizon("6w")                      # 42 days: not a horizon models are made for
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--category", "crime", "--horizon", "soon"])


def test_cell_size_with_a_unit(capsys):
    parser = cli.build_parser()
    assert parser.parse_args(["train", "--category", "crime", "--cell-size", "600ft"]).cell_size_m == pytest.approx(182.88)
    assert parser.parse_args(["train", "--category", "crime", "--cell-size", "0.2km"]).cell_size_m == pytest.approx(200.0)
    assert parser.parse_args(["train", "--category", "crime", "--cell-size-m", "150"]).cell_size_m == 150.0
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--category", "crime", "--cell-size", "3 parsecs"])
    assert "'3 parsecs' not understood" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--category", "crime", "--cell-size", "600ft", "--cell-size-m", "150"])
    for too_small_or_large in (["--cell-size", "5m"], ["--cell-size-m", "20000"], ["--cell-size", "1e400m"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["train", "--category", "crime", *too_small_or_large])
    assert "outside 10 m .. 10000 m" in capsys.readouterr().err
