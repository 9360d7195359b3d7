"""The built-in demo data: shipped, attributed, small, and loaded idempotently."""

from __future__ import annotations

import json

from safety_models import cli
from safety_models.data.demo import DEMO_DIR, demo_files, load_demo
from safety_models.schema import CATEGORIES


# `store` (conftest.py): a Store on a fresh, empty home.


def test_demo_files_are_shipped_small_and_attributed():
    files = demo_files()
    assert sorted(f.category for f in files) == sorted(CATEGORIES)
    sources = (DEMO_DIR / "SOURCES.md").read_text()
    total = 0
    for f in files:
        assert f.path.is_file() and f.path.name in sources
        total += f.path.stat().st_size
        if f.boundary is not None:
            assert f.boundary.name in sources
            total += f.boundary.stat().st_size
    assert total < 3_000_000
    assert "Licence" in sources and "What was cut" in sources


def test_load_demo_is_idempotent_and_removable(store, capsys):
    stages = []
    first = load_demo(store, on_progress=stages.append)
    assert [s.category for s in first] == [f.category for f in demo_files()]
    assert not any(s.already_loaded for s in first)
    assert stages[-1] == {"stage": "done", "fraction": 1.0}
    assert all(0 <= s["fraction"] <= 1 for s in stages)
    counts = store.incident_counts()
    assert counts["crime"] > 50_000 and counts["traffic"] > 35_000 and counts["health"] > 400
    health = next(s for s in first if s.category == "health")
    assert health.rejected_reasons.get("negative test result", 0) > 9_000   # WnvPresent = 0
    assert store.time_range("crime")[0].year == 2016
    assert len(store.boundary("crime")["features"]) == 25
    assert store.boundary("traffic") is None      # Barcelona: the map draws cells

    again = load_demo(store)
    assert all(s.already_loaded for s in again)
    assert store.incident_counts() == counts and len(store.list_uploads()) == 3
    assert store.list_uploads()["is_demo"].all()
    assert cli.main(["demo", "--json"]) == 0      # the command line, on the same home
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["already_loaded"] for line in lines] == [True, True, True]

    assert store.remove_demo() == sum(counts.values())
    assert store.incident_counts() == {c: 0 for c in CATEGORIES}
    assert store.boundary("crime") is None
    assert cli.main(["demo", "--remove"]) == 0
    assert "removed the demo data: 0 incidents" in capsys.readouterr().out
