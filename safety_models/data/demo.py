"""The built-in demo data: real open data shipped with the package (see demo_data/SOURCES.md).

Crime and health are Chicago (aggravated assaults 2016-2019; West Nile virus trap tests
2007-2013), traffic is Barcelona (accidents 2016-2019): one home holds one city per category,
so the demo may mix cities across categories. Demo uploads are marked is_demo and
`Store.remove_demo()` removes them, with the demo district outlines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from safety_models.data.ingest import read_incident_file
from safety_models.data.store import Store, UploadSummary

DEMO_DIR = Path(__file__).resolve().parent / "demo_data"


@dataclass(frozen=True)
class DemoFile:
    category: str
    path: Path
    description: str              # one line for people
    boundary: Path | None = None  # district outlines (GeoJSON) for this category's city


def demo_files() -> list[DemoFile]:
    """The shipped demo files, one per category."""
    districts = DEMO_DIR / "chicago_police_districts.geojson"
    return [
        DemoFile("crime", DEMO_DIR / "crime_chicago_aggravated_assaults_2016_2019.csv.gz",
                 "Chicago aggravated assaults, 2016-2019 (Chicago Police Department)",
                 districts),
        DemoFile("traffic", DEMO_DIR / "traffic_barcelona_accidents_2016_2019.csv.gz",
                 "Barcelona traffic accidents, 2016-2019 (Guardia Urbana)"),
        DemoFile("health", DEMO_DIR / "health_chicago_wnv_mosquito_traps_2007_2013.csv.gz",
                 "Chicago West Nile virus mosquito trap tests, 2007-2013 seasons (CDPH)",
                 districts),
    ]


def load_demo(store: Store, on_progress: Callable[[dict], None] | None = None
              ) -> list[UploadSummary]:
    """Load every demo file (is_demo=True) and its district outlines; idempotent: files
    already stored are not parsed again and come back with already_loaded=True.

    Raises CityMismatch when this home already holds another city for a category (files of
    earlier categories stay loaded). on_progress gets {"stage": "demo", "fraction",
    "category", "file_name"} before each file and {"stage": "done", "fraction": 1.0} at the end.
    """
    files = demo_files()
    summaries = []
    for i, demo in enumerate(files):
        if on_progress:
            on_progress({"stage": "demo", "fraction": i / len(files),
                         "category": demo.category, "file_name": demo.path.name})
        data = demo.path.read_bytes()
        summary = store.find_upload(data, demo.category)
        if summary is None:
            parsed = read_incident_file(data, demo.path.name, demo.category)
            summary = store.add_upload(
                demo.path.name, data, demo.category, parsed.accepted, parsed.rejected,
                parsed.rows_read, parsed.mapping.to_dict(), is_demo=True)
        if demo.boundary is not None:
            store.set_boundary(demo.category, json.loads(demo.boundary.read_text()),
                               is_demo=True)
        summaries.append(summary)
    if on_progress:
        on_progress({"stage": "done", "fraction": 1.0})
    return summaries
