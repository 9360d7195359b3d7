"""Write the built-in demo data into safety_models/data/demo_data/ (developers only; never at run time).

Reads the shared open-data copies (default /work/shared/data, or the folder given as the first
argument) and writes small, attributed extracts:

  crime_chicago_aggravated_assaults_2016_2019.csv.gz   plain layout: id, datetime, latitude, longitude, type
  traffic_barcelona_accidents_2016_2019.csv.gz         plain layout, type = worst injury, address
  health_chicago_wnv_mosquito_traps_2007_2013.csv.gz   the Kaggle/CDPH layout unchanged (WnvPresent 0/1)
  chicago_police_districts.geojson                     the CPD district KML as simplified GeoJSON

Gzip headers carry no timestamp, so re-running on the same inputs gives identical bytes
(and therefore the same upload checksums: loading the demo twice adds nothing).

    python scripts/make_demo_data.py [/work/shared/data [barcelona_accidents ...]]
"""

from __future__ import annotations

import gzip
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parent.parent / "safety_models" / "data" / "demo_data"
YEARS = range(2016, 2020)
KML_NS = {"kml": "http://www.opengis.net/kml/2.2"}
SIMPLIFY_DEGREES = 0.0001    # Douglas-Peucker tolerance, about 10 m
DECIMALS = 5                 # about 1 m


def write_csv_gz(df: pd.DataFrame, name: str) -> Path:
    path = OUT / name
    text = df.to_csv(index=False, lineterminator="\n")
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                                  filename="", compresslevel=9) as gz:
        gz.write(text.encode("utf-8"))
    return path


def chicago_assaults(shared: Path) -> Path:
    src = pd.read_csv(shared / "crime/chicago_assaults/chicago_aggravated_assaults.csv.gz",
                      dtype=str)
    # The source has no incident id: the row number in the source file is stable.
    src["id"] = [f"CHI-AA-{i:06d}" for i in range(len(src))]
    src = src[src["date"].str[:4].astype(int).isin(YEARS)]
    out = pd.DataFrame({"id": src["id"], "datetime": src["date"],
                        "latitude": src["latitude"], "longitude": src["longitude"],
                        "type": src["loc_cat"]})
    return write_csv_gz(out, "crime_chicago_aggravated_assaults_2016_2019.csv.gz")


def barcelona_accidents(shared: Path) -> Path:
    src = pd.concat([pd.read_csv(shared / f"traffic/bcn_accidents/clean/bcn_accidents_{y}.csv",
                                 dtype=str) for y in YEARS], ignore_index=True)
    deaths, serious, mild = (src[c].astype(int) for c in
                             ("deaths", "serious_injuries", "mild_injuries"))
    worst = np.select([deaths > 0, serious > 0, mild > 0],
                      ["fatal", "serious injury", "mild injury"], "no injury")
    # Where, as people say it: the street, then the neighbourhood ("Desconegut" = unknown).
    street = src["street"].fillna("").str.strip().replace("Desconegut", "")
    barri = src["neighbourhood"].fillna("").str.strip().replace("Desconegut", "")
    address = np.where((street != "") & (barri != ""), street + ", " + barri, street + barri)
    out = pd.DataFrame({"id": src["id"].str.strip(), "datetime": src["datetime"],
                        "latitude": src["latitude"], "longitude": src["longitude"],
                        "type": worst, "address": address})
    return write_csv_gz(out, "traffic_barcelona_accidents_2016_2019.csv.gz")


def chicago_wnv(shared: Path) -> Path:
    # Unchanged columns and values: the demo exercises the trap-test layout (WnvPresent 0/1).
    src = pd.read_csv(shared / "health/chicago_wnv/train.csv", dtype=str, keep_default_na=False)
    return write_csv_gz(src, "health_chicago_wnv_mosquito_traps_2007_2013.csv.gz")


def simplify(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker on a closed ring (n, 2); keeps the first and last point."""
    keep = np.zeros(len(points), dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        if last - first < 2:
            continue
        a, b = points[first], points[last]
        inner = points[first + 1:last]
        ab = b - a
        length = np.hypot(*ab)
        if length == 0:
            dist = np.hypot(*(inner - a).T)
        else:
            dist = np.abs(ab[0] * (inner[:, 1] - a[1]) - ab[1] * (inner[:, 0] - a[0])) / length
        i = int(np.argmax(dist))
        if dist[i] > tolerance:
            split = first + 1 + i
            keep[split] = True
            stack += [(first, split), (split, last)]
    return points[keep]


def _ring(element: ET.Element) -> list[list[float]]:
    text = element.find(".//kml:coordinates", KML_NS).text
    points = np.array([[float(v) for v in pair.split(",")[:2]] for pair in text.split()])
    ring = np.round(simplify(points, SIMPLIFY_DEGREES), DECIMALS)
    if len(ring) < 4:     # too small to survive simplification: keep it as it was
        ring = np.round(points, DECIMALS)
    return ring.tolist()


def chicago_districts(shared: Path) -> Path:
    root = ET.parse(shared / "crime/chicago_assaults/chicago_police_districts.kml").getroot()
    features = []
    for placemark in root.iter(f"{{{KML_NS['kml']}}}Placemark"):
        polygons = []
        for polygon in placemark.iter(f"{{{KML_NS['kml']}}}Polygon"):
            rings = [_ring(polygon.find("kml:outerBoundaryIs", KML_NS))]
            rings += [_ring(inner) for inner in polygon.findall("kml:innerBoundaryIs", KML_NS)]
            polygons.append(rings)
        name = placemark.findtext("kml:name", default="", namespaces=KML_NS)
        features.append({"type": "Feature",
                         "properties": {"name": name, "district": name},
                         "geometry": {"type": "MultiPolygon", "coordinates": polygons}})
    features.sort(key=lambda f: int(f["properties"]["name"]))
    geojson = {"type": "FeatureCollection", "name": "chicago_police_districts",
               "features": features}
    path = OUT / "chicago_police_districts.geojson"
    path.write_text(json.dumps(geojson, separators=(",", ":")) + "\n")
    return path


def main(argv: list[str]) -> None:
    shared = Path(argv[0]) if argv else Path("/work/shared/data")
    OUT.mkdir(parents=True, exist_ok=True)
    only = set(argv[1:])   # file makers to run (function names); all by default
    for make in (chicago_assaults, barcelona_accidents, chicago_wnv, chicago_districts):
        if only and make.__name__ not in only:
            continue
        path = make(shared)
        print(f"{path.name}: {path.stat().st_size / 1024:,.0f} KiB")


if __name__ == "__main__":
    main(sys.argv[1:])
