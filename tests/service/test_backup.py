"""Backups: a consistent snapshot while writers run, restore into a damaged or moved home,
and check naming each thing that is wrong."""

from __future__ import annotations

import os
import sqlite3
import tarfile
import threading

import numpy as np
import pytest
import torch

from safety_models.data import ingest
from safety_models.data.store import Store
from safety_models.modeling import registry
from safety_models.modeling.models import ModelConfig, create_model, model_to_state
from safety_models.service import backup
from safety_models.service.backup import BackupError

CSV = """id,date,latitude,longitude,type
{p}1,2019-03-01 08:15,41.881,-87.631,theft
{p}2,2019-03-01 09:30,41.882,-87.629,assault
{p}3,2019-03-02 22:05,41.879,-87.633,theft
"""


def use_home(monkeypatch, path):
    monkeypatch.setenv("SAFETY_MODELS_HOME", str(path))
    monkeypatch.delenv("SAFETY_MODELS_DB_URL", raising=False)
    registry.clear_cache()
    return path


@pytest.fixture()
def home(tmp_path, monkeypatch):
    return use_home(monkeypatch, tmp_path / "home")


def tiny_checkpoint() -> dict:
    torch.manual_seed(0)
    net = create_model(ModelConfig(in_channels=3, decoder_width=8, full_res_width=8))
    return {"format": 1, **model_to_state(net), "feature_config": {"window_hours": 24},
            "data_window": {"start": "2019-01-01", "end": "2019-03-01"}}


def filled_home(home):
    """Two uploads, a model, an evaluation and a study file; returns (store, model_id)."""
    store = Store()
    ingest.ingest_bytes(store, CSV.format(p="A").encode(), "a.csv", "crime")
    ingest.ingest_bytes(store, CSV.format(p="B").encode(), "b.csv", "crime")
    model_id = registry.save_model(store, tiny_checkpoint(), "crime")
    (home / "evaluations").mkdir(exist_ok=True)
    (home / "evaluations" / f"{model_id}.json").write_text('{"pai_5": 3.5}')
    return store, model_id


def state(store) -> dict:
    uploads = store.list_uploads()
    return {"uploads": uploads[["upload_id", "file_name", "accepted"]].values.tolist(),
            "kept": [open(p, "rb").read() for p in uploads["stored_path"]],
            "incidents": store.incident_counts(),
            "models": registry.list_models(store)["model_id"].tolist()}


def test_backup_then_restore_puts_back_the_database_and_the_files(home, tmp_path):
    store, model_id = filled_home(home)
    before = state(store)
    archive = tmp_path / "backup.tar.gz"
    report = backup.backup_home(archive)
    assert (report.uploads, report.incidents, report.models) == (2, 6, 1)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"MANIFEST.json", "safety_models.db", f"models/{model_id}.pt",
            f"evaluations/{model_id}.json"} <= names
    # Changes after the backup: one upload removed, another added, the evaluation edited.
    store.remove_upload(1)
    ingest.ingest_bytes(store, CSV.format(p="C").encode(), "c.csv", "crime")
    (home / "evaluations" / f"{model_id}.json").write_text("{}")
    store.close()

    restored = backup.restore_home(archive)
    assert restored.replaced is not None and (restored.replaced / "safety_models.db").exists()
    store = Store()
    assert state(store) == before
    assert (home / "evaluations" / f"{model_id}.json").read_text() == '{"pai_5": 3.5}'
    registry.clear_cache()
    model, _ = registry.load_model(store, model_id)
    assert model is not None
    assert backup.check_home().ok
    store.close()


def test_a_backup_taken_while_uploads_commit_is_consistent(home, tmp_path, monkeypatch):
    store, _ = filled_home(home)
    stop = threading.Event()
    errors = []

    def keep_loading():
        s = Store()
        i = 0
        try:
            while not stop.is_set():
                i += 1
                rows = "".join(f"W{i}-{j},2019-03-0{1 + j % 9} 10:00,41.88{j % 10},-87.63,theft\n"
                               for j in range(300))
                ingest.ingest_bytes(s, ("id,date,latitude,longitude,type\n" + rows).encode(),
                                    f"w{i}.csv", "crime")
        except Exception as err:   # noqa: BLE001 - reported below
            errors.append(err)
        finally:
            s.close()

    # An open, uncommitted write transaction must neither block the backup nor be in it.
    writer = sqlite3.connect(str(home / "safety_models.db"), timeout=60)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO meta (key, value) VALUES ('uncommitted', 'x')")
    report = backup.backup_home(tmp_path / "first.tar")
    writer.rollback()
    writer.close()
    thread = threading.Thread(target=keep_loading)
    thread.start()
    try:
        archives = [backup.backup_home(tmp_path / f"during-{k}.tar") for k in range(3)]
    finally:
        stop.set()
        thread.join()
    assert errors == []
    store.close()
    for k, archive in enumerate([report, *archives]):
        other = use_home(monkeypatch, tmp_path / f"restored-{k}")
        backup.restore_home(archive.archive)
        with sqlite3.connect(str(other / "safety_models.db")) as con:
            assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            # Every upload in the snapshot is whole: its rows and its kept file.
            stored = con.execute("SELECT count(*) FROM incidents").fetchone()[0]
            counted = con.execute("SELECT sum(accepted) FROM uploads").fetchone()[0]
            assert stored == counted
            assert con.execute("SELECT count(*) FROM meta WHERE key = 'uncommitted'").fetchone() == (0,)
        assert backup.check_home().ok, backup.check_home().problems


def test_restore_repairs_a_damaged_database(home, tmp_path):
    store, _ = filled_home(home)
    before = state(store)
    store.close()
    archive = backup.backup_home(tmp_path / "b.tar").archive
    db = home / "safety_models.db"
    db.write_bytes(os.urandom(4096))
    report = backup.check_home()
    assert not report.ok and "damaged" in report.problems[0]
    assert "python -m safety_models restore" in report.problems[0]
    backup.restore_home(archive)
    store = Store()
    assert state(store) == before
    store.close()


def test_check_names_each_missing_or_broken_file_and_table(home):
    store, model_id = filled_home(home)
    assert backup.check_home().ok
    kept = store.list_uploads()["stored_path"].tolist()
    os.remove(kept[0])
    checkpoint = home / "models" / f"{model_id}.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    store.close()
    problems = backup.check_home().problems
    assert len(problems) == 2
    assert "upload #1 (a.csv)" in problems[0] and "missing" in problems[0]
    assert model_id in problems[1] and "does not load" in problems[1]
    checkpoint.unlink()
    assert "is missing" in backup.check_home().problems[1]
    with sqlite3.connect(str(home / "safety_models.db")) as con:
        con.execute("DROP TABLE boundaries")
    problems = backup.check_home().problems
    assert list(problems) == [
        "the table boundaries is missing from the database; put back the last backup with "
        "`python -m safety_models restore BACKUP` (stop the dashboard and jobs first)."]


def test_restore_refuses_what_is_not_a_backup_and_changes_nothing(home, tmp_path):
    store, _ = filled_home(home)
    before = state(store)
    store.close()
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    sneaky = tmp_path / "sneaky.tar"
    with tarfile.open(sneaky, "w") as tar:
        tar.add(garbage, arcname="../outside.txt")
    for archive in (garbage, sneaky, tmp_path / "missing.tar"):
        with pytest.raises(BackupError):
            backup.restore_home(archive)
    store = Store()
    assert state(store) == before
    assert not (tmp_path / "outside.txt").exists()
    assert sorted(p.name for p in home.iterdir() if p.name.startswith((".restore", "replaced"))) == []
    store.close()
