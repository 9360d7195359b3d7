"""Coordinates: projection to WGS84, one-city plausibility, great-circle distance, point in polygon."""

from __future__ import annotations

from typing import Any

import numpy as np

EARTH_RADIUS_KM = 6371.0088   # IUGG mean radius: the one used for every distance here


def project_to_wgs84(x: np.ndarray, y: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Projected x/y (in the CRS's easting/northing order) -> (lat, lon) WGS84; NaN where invalid."""
    from pyproj import Transformer

    transformer = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    ok = np.isfinite(x) & np.isfinite(y)
    lat = np.full(len(x), np.nan)
    lon = np.full(len(x), np.nan)
    if ok.any():
        lo, la = transformer.transform(x[ok], y[ok], errcheck=False)
        lo, la = np.asarray(lo, dtype="float64"), np.asarray(la, dtype="float64")
        bad = ~np.isfinite(lo) | ~np.isfinite(la) | (np.abs(la) > 90) | (np.abs(lo) > 180)
        lo[bad], la[bad] = np.nan, np.nan
        lat[ok], lon[ok] = la, lo
    return lat, lon


def plausible_share(lat: np.ndarray, lon: np.ndarray, crs: str | None = None) -> float:
    """Share of points inside the CRS's area of use and within 100 km of their median (one city)."""
    ok = np.isfinite(lat) & np.isfinite(lon)
    if not ok.any():
        return 0.0
    inside = ok.copy()
    if crs:
        from pyproj import CRS

        area = CRS.from_user_input(crs).area_of_use
        if area is not None:
            margin = 1.0
            inside &= (lon >= area.west - margin) & (lon <= area.east + margin) & \
                      (lat >= area.south - margin) & (lat <= area.north + margin)
    if not inside.any():
        return 0.0
    mlat, mlon = np.median(lat[inside]), np.median(lon[inside])
    dist_km = haversine_km(lat, lon, mlat, mlon)
    near = inside & (np.nan_to_num(dist_km, nan=1e9) <= 100)
    return float(near.sum() / len(lat))


def haversine_km(lat, lon, lat0, lon0) -> np.ndarray | float:
    """Great-circle distance in km from each (lat, lon) to (lat0, lon0) (arrays or scalars;
    a float for scalar input)."""
    p1, p2 = np.radians(lat), np.radians(lat0)
    dphi = p2 - p1
    dl = np.radians(lon0) - np.radians(lon)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def _geometries(geojson: dict[str, Any] | None) -> list[tuple[dict[str, Any], Any]]:
    """(feature, shapely geometry) for every Polygon / MultiPolygon in a GeoJSON object
    (FeatureCollection, Feature, GeometryCollection or bare geometry); points and lines
    enclose nothing and are left out. Invalid rings (self-intersections, as hand-drawn
    outlines often have) are repaired with shapely.make_valid."""
    import shapely
    from shapely.geometry import shape

    if not geojson:
        return []
    kind = geojson.get("type")
    if kind == "FeatureCollection":
        return [g for f in geojson.get("features") or [] for g in _geometries(f)]
    if kind == "Feature":
        geometry = geojson.get("geometry") or {}
        return [(geojson, g) for _, g in _geometries(geometry)]
    if kind == "GeometryCollection":
        return [g for part in geojson.get("geometries") or [] for g in _geometries(part)]
    if kind not in ("Polygon", "MultiPolygon"):
        return []
    try:
        geometry = shape(geojson)
    except (ValueError, TypeError, IndexError, KeyError):
        return []   # a ring with fewer than 3 points or broken coordinates encloses nothing
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
    return [({"type": "Feature", "geometry": geojson, "properties": {}}, geometry)]


def polygon_features(geojson: dict[str, Any] | None) -> list[tuple[dict[str, Any], Any]]:
    """The polygon features of geojson as (feature, shapely geometry) pairs, in file order."""
    return _geometries(geojson)


def points_in_geometry(lon: Any, lat: Any, geometry: Any) -> np.ndarray:
    """(points,) bool: which (lon, lat) points lie inside a shapely geometry (holes are
    outside; a point exactly on an edge counts as inside)."""
    import shapely

    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    return np.asarray(shapely.intersects_xy(geometry, lon, lat), dtype=bool)


def points_in_geojson(lon: Any, lat: Any, geojson: dict[str, Any] | None) -> np.ndarray:
    """(points,) bool: inside any Polygon / MultiPolygon of geojson (WGS84 [lon, lat])."""
    lon = np.asarray(lon, dtype=np.float64)
    inside = np.zeros(lon.shape, dtype=bool)
    for _, geometry in _geometries(geojson):
        todo = ~inside
        if not todo.any():
            break
        inside[todo] = points_in_geometry(lon[todo], np.asarray(lat, dtype=np.float64)[todo],
                                          geometry)
    return inside
