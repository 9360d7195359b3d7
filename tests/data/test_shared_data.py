"""Ingestion on samples of the real open-data files in the shared data folder.

Each test reads the first rows of one file layout (a byte slice ending at a line boundary, so
the run stays fast) and checks the counts against an independent reading with the csv module,
and that the accepted points fall in the right city. Skipped when the folder is absent.
Set SAFETY_MODELS_SHARED_DATA to point elsewhere.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from pathlib import Path

import numpy as np
import pytest

from safety_models.errors import MappingError
from safety_models.data.ingest import ColumnMapping, read_incident_file

DATA = Path(os.environ.get("SAFETY_MODELS_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data folder {DATA} not present")

# (lat_min, lat_max, lon_min, lon_max), a little wider than each city's limits.
CHICAGO = (41.60, 42.05, -87.95, -87.50)
HOUSTON = (29.30, 30.30, -95.95, -94.90)
NYC = (40.49, 40.92, -74.26, -73.69)
BARCELONA = (41.31, 41.48, 2.05, 2.24)


def head_bytes(rel: str, rows: int = 3000) -> bytes:
    """The header plus the first `rows` lines of a (possibly gzipped) file, cut at a line end."""
    path = DATA / rel
    if not path.exists():
        pytest.skip(f"{path} not present")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    end = -1
    for _ in range(rows + 1):
        end = data.find(b"\n", end + 1)
        if end < 0:
            return data
    return data[: end + 1]


def csv_rows(data: bytes, encoding: str = "utf-8", sep: str = ",") -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode(encoding).lstrip("\ufeff")), delimiter=sep))


def assert_in_box(parsed, box):
    lat, lon = parsed.accepted["latitude"], parsed.accepted["longitude"]
    assert lat.between(box[0], box[1]).all() and lon.between(box[2], box[3]).all()


def test_chicago_assaults_gzip():
    data = head_bytes("crime/chicago_assaults/chicago_aggravated_assaults.csv.gz")
    p = read_incident_file(gzip.compress(data), "chicago_aggravated_assaults.csv.gz", "crime")
    assert (p.rows_read, len(p.accepted), len(p.rejected)) == (3000, 3000, 0)
    assert (p.mapping.time, p.mapping.lat, p.mapping.lon, p.mapping.subtype) == ("date", "latitude", "longitude", "loc_cat")
    assert str(p.accepted["occurred_at"].iloc[0]) == "2010-01-01 00:05:00"
    assert_in_box(p, CHICAGO)


def test_houston_month_rejects_geocoding_errors():
    rel = "crime/houston_crime_2010/houston_crime_2010-01.csv"
    data = head_bytes(rel, rows=20_000)
    p = read_incident_file(data, "houston_crime_2010-01.csv", "crime")
    rows = csv_rows(data)
    far = sum(1 for r in rows if r["lat"] and float(r["lat"]) > 31)  # the 31.41 / 32.x / 37.3 geocodes
    assert far == 32
    assert (p.rows_read, len(p.accepted), len(p.rejected)) == (10211, 10177, 34)
    assert set(p.rejected["reason"]) == {"coordinates outside the data's area"}
    assert (p.rejected["lat"].astype(float) > 31).sum() == far  # every far geocode is among the rejected
    assert p.mapping.time == "time_local" and p.mapping.subtype == "offense"
    assert_in_box(p, HOUSTON)


def test_west_nile_traps_keep_positive_tests_only():
    data = head_bytes("health/chicago_wnv/train.csv")
    p = read_incident_file(data, "train.csv", "health")
    positives = sum(1 for r in csv_rows(data) if r["WnvPresent"] == "1")
    assert p.mapping.outcome == "WnvPresent" and p.mapping.subtype == "Species"
    assert (p.rows_read, len(p.accepted)) == (3000, positives)
    assert set(p.rejected["reason"]) == {"negative test result"}
    assert_in_box(p, CHICAGO)


def test_west_nile_spray_date_and_am_pm_time():
    data = head_bytes("health/chicago_wnv/spray.csv")
    p = read_incident_file(data, "spray.csv", "health")
    assert (p.mapping.date, p.mapping.clock) == ("Date", "Time")
    assert (p.rows_read, len(p.accepted)) == (3000, 3000)
    assert str(p.accepted["occurred_at"].iloc[0]) == "2011-09-07 19:52:52"  # 9/7/2011 7:52:52 PM
    assert_in_box(p, CHICAGO)


def test_west_nile_weather_has_no_location():
    data = head_bytes("health/chicago_wnv/weather.csv")  # CR-only line ends: one "line"
    with pytest.raises(MappingError) as err:
        read_incident_file(data, "weather.csv", "health")
    assert "weather.csv" in str(err.value) and "'Station', 'Date', 'Tmax'" in str(err.value)
    assert err.value.columns_found[:3] == ["Station", "Date", "Tmax"]


def test_nyc_311_animal():
    data = head_bytes("health/nyc_311_animal_2025q1/311_Animals_short.csv")
    p = read_incident_file(data, "311_Animals_short.csv", "health")
    with_coords = sum(1 for r in csv_rows(data) if r["Latitude"])
    assert (p.mapping.time, p.mapping.subtype, p.mapping.source_id) == ("Created Date", "Complaint Type", "Unique Key")
    assert (p.rows_read, len(p.accepted)) == (3000, with_coords)
    assert set(p.rejected["reason"]) == {"missing coordinates"}
    assert str(p.accepted["occurred_at"].iloc[0]) == "2025-03-14 01:20:00"
    assert_in_box(p, NYC)


def test_nyc_crashes_without_coordinates_are_rejected():
    data = head_bytes("traffic/nyc_crashes_2023_01/nyc_crashes_202301.csv")
    p = read_incident_file(data, "nyc_crashes_202301.csv", "traffic")
    rows = csv_rows(data)
    missing = sum(1 for r in rows if not r["LATITUDE"])
    zero = sum(1 for r in rows if r["LATITUDE"] and float(r["LATITUDE"]) == 0)
    assert (p.mapping.date, p.mapping.clock, p.mapping.source_id) == ("CRASH DATE", "CRASH TIME", "COLLISION_ID")
    assert (p.rows_read, len(p.accepted)) == (3000, 3000 - missing - zero)
    assert p.rejected_reasons() == {"missing coordinates": missing, "coordinates outside the data's area": zero}
    assert_in_box(p, NYC)


def test_barcelona_clean():
    data = head_bytes("traffic/bcn_accidents/clean/bcn_accidents_2010.csv")
    p = read_incident_file(data, "bcn_accidents_2010.csv", "traffic")
    with_coords = sum(1 for r in csv_rows(data) if r["latitude"])
    assert (p.rows_read, len(p.accepted)) == (3000, with_coords)
    assert p.mapping.time == "datetime" and p.mapping.source_id == "id"
    assert_in_box(p, BARCELONA)


def clean_points(year: int, rows: int = 3000) -> dict[str, tuple[float, float]]:
    data = head_bytes(f"traffic/bcn_accidents/clean/bcn_accidents_{year}.csv", rows)
    return {r["id"]: (float(r["latitude"]), float(r["longitude"])) for r in csv_rows(data) if r["latitude"]}


@pytest.mark.parametrize("year, encoding, swapped", [(2010, "latin-1", True), (2017, "utf-8", False)])
def test_barcelona_raw_utm_matches_the_clean_file(year, encoding, swapped):
    data = head_bytes(f"traffic/bcn_accidents/raw/{year}_accidents_gu_bcn.csv")
    name = f"{year}_accidents_gu_bcn.csv"
    with pytest.raises(MappingError, match="--crs EPSG"):
        read_incident_file(data, name, "traffic")
    p = read_incident_file(data, name, "traffic", ColumnMapping(crs="EPSG:23031"))  # UTM 31N read as ED50
    m = p.mapping
    assert (m.year, m.month, m.day, m.hour) == ("Any", "Mes_any", "Dia_mes", "Hora_dia")
    assert (m.x, m.y) == (("Coordenada_UTM_Y", "Coordenada_UTM_X") if swapped else ("Coordenada_UTM_X", "Coordenada_UTM_Y"))
    assert m.lat is None  # 2016+ Latitud/Longitud ("4.134.004.482") are unusable
    rows = csv_rows(data, encoding, sep=";")
    known = sum(1 for r in rows if r["Coordenada_UTM_X"] != "-1")
    assert (p.rows_read, len(p.accepted)) == (3000, known)
    assert set(p.rejected["reason"]) <= {"missing coordinates"}
    clean = clean_points(year)
    got = p.accepted.set_index("source_key")
    common = sorted(set(clean) & set(got.index))
    assert len(common) >= 0.99 * known
    want = np.array([clean[k] for k in common])
    assert np.abs(got.loc[common, ["latitude", "longitude"]].to_numpy() - want).max() < 2e-6  # ~0.2 m
    assert_in_box(p, BARCELONA)


@pytest.mark.parametrize("name", ["trends__caserate-by-modzcta.csv", "trends__hosprate-by-modzcta.csv"])
def test_nyc_covid_rate_tables_are_explained_not_ingested(name):
    data = head_bytes(f"health/nyc_covid_modzcta/{name}", rows=50)
    with pytest.raises(MappingError, match="table of values per area") as err:
        read_incident_file(data, name, "health")
    assert "one row per incident" in str(err.value) and name in str(err.value)
