"""What the risk map draws, computed without a user interface (pure; no streamlit).

The Risk map page turns a prediction table (one row per cell, from
`workflows.predict_category`) plus the grid and the city's district outlines into pydeck
layers. Everything that decides what an operator sees lives here so it can be tested:

* a colour scale that is FIXED for a model (0 .. `probability_scale_max`), so that the same
  colour means the same probability on every day the operator looks at;
* risk levels (by rank) with their own fixed colours, as an alternative colouring;
* the legend for either (swatches, and as HTML with the outline and incident keys);
* the initial view (centre and zoom) computed from the grid alone, so it does not move when
  the selected window or colouring changes (the dashboard keeps the user's pan and zoom);
* layer specs (plain dicts) and a `pydeck.Deck` built from them, over a street map when one
  can be reached (basemap.py chooses it; cells are then drawn a little more transparent so the
  streets show through), else on the page's plain background with no tiles fetched;
* which cell a click on the map selected, and how a cell is named in its tooltip.

Tables beside the map (hotspots) are in tables.py, texts in text.py.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np
import pandas as pd

from safety_models.data.geo import points_in_geometry, polygon_features
from safety_models.grid import GridSpec, cell_to_boundary, cell_to_rowcol, xy_to_latlon
from safety_models.presentation.text import short_percent

# Sequential scale from pale yellow to dark red (ColorBrewer YlOrRd, 8 classes): readable on
# white, ordered by lightness, and distinguishable by most colour-blind readers.
PROBABILITY_STOPS_RGB: tuple[tuple[int, int, int], ...] = (
    (255, 255, 204), (255, 237, 160), (254, 217, 118), (254, 178, 76),
    (253, 141, 60), (252, 78, 42), (227, 26, 28), (177, 0, 38),
)

# Risk levels from the highest to the lowest, as `workflows.predict_category` names them,
# with a fixed colour each (the top of the probability scale for the highest level).
RISK_LEVEL_COLOURS: dict[str, tuple[int, int, int]] = {
    "very high": (177, 0, 38),
    "high": (252, 78, 42),
    "elevated": (254, 178, 76),
    "medium": (254, 178, 76),
    "moderate": (254, 178, 76),
    "low": (255, 237, 160),
    "very low": (255, 255, 204),
    "none": (240, 240, 240),
}
UNKNOWN_LEVEL_RGB = (200, 200, 200)

# Cells whose probability is below this share of the scale are drawn almost transparent, so
# the busy part of the city stands out and the outlines stay readable everywhere else.
QUIET_SHARE = 0.02
CELL_ALPHA = 190
CELL_ALPHA_ON_STREETS = 150    # over a street map: the streets and names stay readable
QUIET_ALPHA = 25

BOUNDARY_RGBA = (60, 60, 60, 220)
INCIDENT_RGBA = (20, 80, 160, 200)
SELECTED_OUTLINE_RGBA = (0, 0, 0, 255)

CELLS_LAYER_ID = "cells"
BOUNDARY_LAYER_ID = "districts"
LABELS_LAYER_ID = "district-labels"
INCIDENTS_LAYER_ID = "incidents"
SELECTED_LAYER_ID = "selected-cell"

# The map's height in the page, in pixels; the initial zoom fits the grid into it.
MAP_HEIGHT_PX = 560
COORDINATE_DECIMALS = 6
MAP_WIDTH_PX = 620     # the map column on a laptop screen (wider screens get a margin)
PITCH_3D_DEG = 45.0

TOOLTIP_HTML = (
    "<b>{where}</b> &middot; rank {rank}<br/>"
    "Risk level: <b>{risk_level}</b><br/>"
    "Chance of at least one incident: <b>{probability_text}</b><br/>"
    "Expected incidents: {expected_text}<br/>"
    "Incidents in the last 30 days: {events_last_30d}"
)
# Looking back at a past window: what was forecast, and what then happened.
LOOKBACK_TOOLTIP_HTML = (
    "<b>{where}</b> &middot; rank {rank}<br/>"
    "Forecast chance of at least one incident: <b>{probability_text}</b><br/>"
    "Incidents that then happened: <b>{happened}</b><br/>"
    "Incidents in the 30 days before: {events_last_30d}"
)
TOOLTIP_STYLE = {"backgroundColor": "#1f2937", "color": "white", "fontSize": "13px",
                 "padding": "8px"}


@dataclass(frozen=True)
class LegendItem:
    """One swatch of a legend: its label and colour as a CSS hex string."""

    label: str
    colour_hex: str


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= value (value > 0); 1.0 for value <= 0."""
    if not value > 0 or not math.isfinite(value):
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        candidate = step * 10.0 ** exponent
        if candidate >= value * (1 - 1e-12):
            return float(candidate)
    return float(10.0 ** (exponent + 1))


def probability_scale_max(probabilities: Any) -> float:
    """A fixed top for the colour scale: the nice number above the largest probability.

    Computed once per model (from its prediction for the latest window) and then kept for
    every window the operator looks at, so a colour always means the same probability.
    Probabilities above it (rare) take the top colour. Between 0.01 and 1.0."""
    values = np.asarray(probabilities, dtype=float)
    values = values[np.isfinite(values)]
    top = float(values.max()) if values.size else 0.0
    if top <= 0:
        return 0.01
    return min(1.0, max(0.01, nice_ceiling(top)))


def probability_rgb(probabilities: Any, scale_max: float) -> np.ndarray:
    """(n, 3) uint8 colours on the fixed scale 0 .. scale_max (linear between the stops)."""
    p = np.nan_to_num(np.asarray(probabilities, dtype=float), nan=0.0)
    share = np.clip(p / float(scale_max), 0.0, 1.0)
    stops = np.asarray(PROBABILITY_STOPS_RGB, dtype=float)           # (stops, 3)
    position = share * (len(stops) - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(stops) - 1)
    weight = (position - low)[:, None]
    rgb = stops[low] * (1 - weight) + stops[high] * weight
    return np.round(rgb).astype(np.uint8)


def risk_level_rgb(levels: Any) -> np.ndarray:
    """(n, 3) uint8 colours of risk levels (case-insensitive); grey for an unknown level."""
    return np.array([RISK_LEVEL_COLOURS.get(str(level).strip().lower(), UNKNOWN_LEVEL_RGB)
                     for level in levels], dtype=np.uint8).reshape(-1, 3)


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb[:3]))


def quiet_note(scale_max: float) -> str:
    """What the legend says about the cells left almost clear."""
    return (f"Cells under {short_percent(QUIET_SHARE * scale_max)} are left almost clear; "
            "the scale is the same on every day.")


def probability_legend(scale_max: float, n_items: int = 6) -> list[LegendItem]:
    """Swatches at equal steps of the fixed scale, labelled in percent (top one '≥ max')."""
    items = []
    for i in range(n_items):
        p = scale_max * i / (n_items - 1)
        label = short_percent(p)
        if i == n_items - 1 and scale_max < 1.0:
            label = f"≥ {label}"
        items.append(LegendItem(label, _hex(probability_rgb([p], scale_max)[0])))
    return items


def risk_level_legend(levels: Any) -> list[LegendItem]:
    """Swatches for the risk levels present, highest first (known order, then the rest)."""
    present = list(dict.fromkeys(str(level) for level in levels))
    order = {name: i for i, name in enumerate(RISK_LEVEL_COLOURS)}
    present.sort(key=lambda name: order.get(name.strip().lower(), len(order)))
    return [LegendItem(name, _hex(risk_level_rgb([name])[0])) for name in present]


def legend_html(title: str, items: list[LegendItem], outlines: bool = False,
                incidents: bool = False, incidents_label: str = "recorded incident",
                note: str = "") -> str:
    """A horizontal legend as HTML: colour swatches with their labels, then the keys for the
    district outline and the incident points when the map draws them, then a note."""
    swatches = "".join(
        f'<span style="display:inline-flex;align-items:center;margin-right:12px">'
        f'<span style="width:22px;height:14px;background:{item.colour_hex};'
        f'border:1px solid #bbb;margin-right:5px;display:inline-block"></span>'
        f'{escape(item.label)}</span>' for item in items)
    extras = ""
    if outlines:
        extras += ('<span style="display:inline-flex;align-items:center;margin-right:12px">'
                   '<span style="width:22px;height:0;border-top:2px solid #3c3c3c;'
                   'margin-right:5px;display:inline-block"></span>district</span>')
    if incidents:
        r, g, b, _ = INCIDENT_RGBA
        extras += ('<span style="display:inline-flex;align-items:center">'
                   f'<span style="width:9px;height:9px;border-radius:50%;'
                   f'background:rgb({r},{g},{b});margin-right:5px;display:inline-block"></span>'
                   f'{escape(incidents_label)}</span>')
    if note:
        extras += f'<br/><span style="color:#666">{escape(note)}</span>'
    return (f'<div style="font-size:0.85rem;color:#444;line-height:1.9">'
            f'<b style="margin-right:10px">{escape(title)}</b>{swatches}{extras}</div>')


def view_state(grid: GridSpec, width_px: int = MAP_WIDTH_PX, height_px: int = MAP_HEIGHT_PX,
               pitch_deg: float = 0.0) -> dict[str, float]:
    """Centre and zoom that fit the whole grid into a map of width_px x height_px.

    Depends on the grid only (never on the prediction or the selection), so the dashboard can
    pass the same initial view on every rerun and the map stays where the user left it."""
    corners = cell_to_boundary(grid, [0, grid.n_cells - 1])
    lons = [pt[0] for ring in corners for pt in ring]
    lats = [pt[1] for ring in corners for pt in ring]
    lat_c = (min(lats) + max(lats)) / 2
    lon_c = (min(lons) + max(lons)) / 2
    # deck.gl's Web-Mercator (512-pixel tiles): metres per pixel = 78271.52 * cos(lat) / 2^z.
    width_m = grid.n_cols * grid.cell_size_m
    height_m = grid.n_rows * grid.cell_size_m
    metres_per_px = max(width_m / (width_px * 0.9), height_m / (height_px * 0.9), 1e-6)
    zoom = math.log2(78271.517 * math.cos(math.radians(lat_c)) / metres_per_px)
    return {"latitude": round(lat_c, 6), "longitude": round(lon_c, 6),
            "zoom": round(max(1.0, min(18.0, zoom)), 2), "pitch": float(pitch_deg),
            "bearing": 0.0}


def cell_names(cell_ids: Any, places: pd.DataFrame | None = None) -> list[str]:
    """How a cell is named in its tooltip: its most frequent place text (forecasts' places:
    cell_id, place), else 'Cell <id>'."""
    known = {} if places is None or places.empty else dict(
        zip(places["cell_id"].astype(int), places["place"].astype(str)))
    return [known.get(int(c)) or f"Cell {int(c)}" for c in cell_ids]


def cell_records(prediction: pd.DataFrame, grid: GridSpec, scale_max: float,
                 colour_by: str = "probability", elevation_max_m: float | None = None,
                 selected_cell: int | None = None, places: pd.DataFrame | None = None,
                 on_streets: bool = False, extruded: bool = False) -> list[dict[str, Any]]:
    """One record per cell for the cells' layer (cells_layer_spec): centre, colour, tooltip
    text. Only what the browser uses is sent: the page's JSON is parsed (by a slow JSON5
    parser), converted and kept object by object for picking, so its time grows with every
    number in it. A cell is its centre (`position`, [lon, lat]); the layer draws the grid's
    square around it. `polygon` (the exact outline) and `line` only on the selected cell,
    `elevation` only for 3D columns (extruded), `happened` only for a past window.

    colour_by: "probability" (fixed scale 0..scale_max) or "risk_level" (fixed colours).
    elevation_max_m: height of a cell at the top of the scale (3D view); default 4 cells.
    places: names the cells in the tooltip (cell_names). on_streets: drawn over a street map
    (more transparent). A `happened` column (a past window) is carried into the records."""
    if colour_by not in ("probability", "risk_level"):
        raise ValueError(f"colour_by must be 'probability' or 'risk_level', got {colour_by!r}")
    if prediction.empty:
        return []
    cell_ids = prediction["cell_id"].to_numpy(dtype=np.int64)
    # Degrees to 6 decimals (0.1 m): the map's JSON is a third shorter than at full precision.
    centres = np.round(np.stack(cell_centre_lonlat(grid, cell_ids), axis=1),
                       COORDINATE_DECIMALS).tolist()            # (cells, [lon, lat])
    probability = prediction["probability"].to_numpy(dtype=float)
    if colour_by == "probability":
        rgb = probability_rgb(probability, scale_max)
    else:
        rgb = risk_level_rgb(prediction["risk_level"])
    share = np.clip(np.nan_to_num(probability) / scale_max, 0.0, 1.0)
    alpha = np.where(share < QUIET_SHARE, QUIET_ALPHA,
                     CELL_ALPHA_ON_STREETS if on_streets else CELL_ALPHA)
    top_m = elevation_max_m if elevation_max_m is not None else 4 * grid.cell_size_m
    elevation = share * top_m
    expected = prediction["expected_count"].to_numpy(dtype=float)
    recent = prediction["events_last_30d"].to_numpy()
    rank = prediction["rank"].to_numpy()
    level = prediction["risk_level"].astype(str).to_numpy()
    names = cell_names(cell_ids, places)
    happened = prediction["happened"].to_numpy() if "happened" in prediction else None
    records = []
    for i, cell_id in enumerate(cell_ids):
        record = {
            "where": names[i],
            "cell_id": int(cell_id),
            "position": centres[i],
            "fill": [int(rgb[i, 0]), int(rgb[i, 1]), int(rgb[i, 2]), int(alpha[i])],
            "probability_text": short_percent(probability[i]),
            "expected_text": f"{expected[i]:.2f}" if np.isfinite(expected[i]) else "–",
            "events_last_30d": int(recent[i]) if np.isfinite(recent[i]) else 0,
            "rank": int(rank[i]),
            "risk_level": str(level[i]),
        }
        if extruded:
            record["elevation"] = round(float(elevation[i]), 1)
        if happened is not None:
            record["happened"] = int(happened[i])
        if selected_cell == int(cell_id):
            record["line"] = list(SELECTED_OUTLINE_RGBA)
            outline = np.round(np.asarray(cell_to_boundary(grid, [cell_id])[0], dtype=float),
                               COORDINATE_DECIMALS).tolist()
            record["polygon"] = outline[:-1]     # deck.gl closes polygons itself
        records.append(record)
    return records


def cell_centre_lonlat(grid: GridSpec, cell_ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the given cells in degrees: (lon, lat), one each per cell id."""
    rows, cols = cell_to_rowcol(grid, np.asarray(cell_ids, dtype=np.int64))
    x_m = grid.origin_x_m + (cols + 0.5) * grid.cell_size_m
    y_m = grid.origin_y_m + (rows + 0.5) * grid.cell_size_m
    lat, lon = xy_to_latlon(grid, x_m, y_m)
    return lon, lat


# deck.gl's metre in degrees of latitude (its Web-Mercator earth: 40,030 km round).
DECK_METRES_PER_DEGREE = 40.03e6 / 360


def cell_shape_m(grid: GridSpec) -> list[list[float]]:
    """The grid's middle cell as corner offsets from its centre in metres ([east, north],
    SW SE NE NW), as deck.gl measures them: the shape every cell of the layer is drawn with.

    A grid cell is a square in the grid's own projection (UTM), slightly turned against
    north away from the zone's central meridian; one shape for the whole city is off by
    well under a metre at its edges (the turn changes by about 0.1 degree across 20 km),
    and deck.gl sizes it for the middle of the view, so the cells in view always meet."""
    middle = (grid.n_rows // 2) * grid.n_cols + grid.n_cols // 2
    ring = np.asarray(cell_to_boundary(grid, [middle])[0], dtype=float)[:4]   # (4, [lon, lat])
    lon_c, lat_c = (float(v[0]) for v in cell_centre_lonlat(grid, [middle]))
    east = (ring[:, 0] - lon_c) * DECK_METRES_PER_DEGREE * math.cos(math.radians(lat_c))
    north = (ring[:, 1] - lat_c) * DECK_METRES_PER_DEGREE
    return np.round(np.stack([east, north], axis=1), 2).tolist()


def cells_layer_spec(records: list[dict[str, Any]], grid: GridSpec,
                     extruded: bool = False) -> dict[str, Any]:
    """A pickable layer of the cells (flat, or extruded as 3D columns), filled only.

    A ColumnLayer with the grid's square as its shape (cell_shape_m): each cell is sent as
    its centre alone, and the browser draws one shape many times instead of cutting thousands
    of polygons into triangles (the demo's crime map: 705 kB of JSON with polygons, 501 kB
    with centres). Not outlined: outlining thousands of cells doubled what the browser draws
    (and a cell's edge shows where its colour changes); the selected cell is outlined by
    selected_layer_spec."""
    shape = cell_shape_m(grid)
    spec = {
        "type": "ColumnLayer", "id": CELLS_LAYER_ID, "data": records,
        "get_position": "position", "get_fill_color": "fill", "disk_resolution": len(shape),
        # radius: the shape's scale (its offsets are metres: deck.gl's default radius_units;
        # pydeck would send a string as an accessor, so the default is not restated).
        "vertices": shape, "radius": 1, "stroked": False, "filled": True, "extruded": bool(extruded), "wireframe": False,
        "pickable": True, "auto_highlight": True, "highlight_color": [30, 30, 30, 90],
    }
    if extruded:     # records carry elevation only then (cell_records(extruded=True))
        spec.update(get_elevation="elevation", elevation_scale=1)
    return spec


def selected_layer_spec(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The selected cell's outline (records whose line is SELECTED_OUTLINE_RGBA), drawn over
    the cells; None when no cell is selected."""
    chosen = [{"polygon": r["polygon"]} for r in records
              if r.get("line") == list(SELECTED_OUTLINE_RGBA)]
    if not chosen:
        return None
    return {
        "type": "PolygonLayer", "id": SELECTED_LAYER_ID, "data": chosen,
        "get_polygon": "polygon", "filled": False, "stroked": True,
        "get_line_color": list(SELECTED_OUTLINE_RGBA), "line_width_min_pixels": 2.5,
        "pickable": False,
    }


def boundary_layer_spec(geojson: dict[str, Any]) -> dict[str, Any]:
    """District outlines: dark lines, no fill, not pickable (tooltips stay on the cells)."""
    return {
        "type": "GeoJsonLayer", "id": BOUNDARY_LAYER_ID, "data": geojson,
        "stroked": True, "filled": False, "get_line_color": list(BOUNDARY_RGBA),
        "line_width_min_pixels": 1.2, "get_line_width": 1, "pickable": False,
    }


NAME_PROPERTIES = ("name", "NAME", "district_name", "dist_label", "district", "DISTRICT",
                   "label", "id")


def feature_name(feature: dict[str, Any], index: int) -> str:
    """A district's name for people: its first name-like property; 'District 3' for a bare
    number; 'Area <n>' when it has none."""
    properties = feature.get("properties") or {}
    for key in NAME_PROPERTIES:
        value = properties.get(key)
        if value not in (None, ""):
            text = str(value).strip()
            return f"District {text}" if text.isdigit() else text.title() \
                if text.isupper() else text
    return f"Area {index + 1}"


def district_of(lat: Any, lon: Any, geojson: dict[str, Any] | None) -> list[str]:
    """The name of the district each point lies in ('' outside every district)."""
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    names = np.full(lat.shape, "", dtype=object)
    if not geojson:
        return names.tolist()
    features = geojson.get("features") if geojson.get("type") == "FeatureCollection" \
        else [geojson if geojson.get("type") == "Feature" else
              {"type": "Feature", "geometry": geojson}]
    for i, feature in enumerate(features or []):
        for _, geometry in polygon_features(feature):
            todo = names == ""
            if not todo.any():
                break
            hit = np.zeros(lat.shape, dtype=bool)
            hit[todo] = points_in_geometry(lon[todo], lat[todo], geometry)
            names[hit] = feature_name(feature, i)
    return names.tolist()


def district_label_records(geojson: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One label per district at the middle of its largest polygon's bounding box."""
    if not geojson or geojson.get("type") != "FeatureCollection":
        return []
    records = []
    for i, feature in enumerate(geojson.get("features") or []):
        parts = [part for _, geometry in polygon_features(feature)
                 for part in getattr(geometry, "geoms", [geometry]) if not part.is_empty]
        if not parts:
            continue
        west, south, east, north = max(parts, key=lambda part: part.area).bounds
        records.append({"position": [(west + east) / 2, (south + north) / 2],
                        "label": feature_name(feature, i)})
    return records


def labels_layer_spec(records: list[dict[str, Any]]) -> dict[str, Any]:
    """District names as text (they orient the reader where there is no street map).

    The white outline needs a signed-distance-field font, which the browser computes glyph
    by glyph each time a tab first draws the map: only the characters the labels use are
    made (character_set), not deck.gl's default of all of ASCII."""
    characters = "".join(sorted(set("".join(str(r["label"]) for r in records)) | {" "}))
    return {
        "type": "TextLayer", "id": LABELS_LAYER_ID, "data": records,
        "get_position": "position", "get_text": "label", "get_size": 13,
        "get_color": [30, 30, 30, 230], "font_weight": 600, "pickable": False,
        "outline_width": 3, "outline_color": [255, 255, 255, 220],
        "font_settings": {"sdf": True}, "character_set": characters, "billboard": True,
    }


def incident_records(incidents: pd.DataFrame) -> list[dict[str, Any]]:
    """Points of recorded incidents (latitude, longitude) for a ScatterplotLayer."""
    if incidents.empty:
        return []
    return [{"position": [float(lon), float(lat)]} for lat, lon in
            zip(incidents["latitude"].to_numpy(), incidents["longitude"].to_numpy())]


def incidents_layer_spec(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "ScatterplotLayer", "id": INCIDENTS_LAYER_ID, "data": records,
        "get_position": "position", "get_fill_color": list(INCIDENT_RGBA),
        "get_radius": 25, "radius_min_pixels": 2, "radius_max_pixels": 6,
        "stroked": False, "pickable": False,
    }


def build_deck(layer_specs: list[dict[str, Any]], initial_view: dict[str, float],
               basemap: Any = None, tooltip_html: str = TOOLTIP_HTML):
    """A pydeck Deck from layer specs, over basemap (basemap.Basemap) when it is shown.

    Without one, `map_provider=None` leaves pydeck's map_style at its sentinel, which
    Streamlit's frontend reads as "no basemap": no tiles are ever requested (an explicit
    `map_style=None` would make it fall back to Carto tiles, which an offline machine cannot
    load)."""
    import pydeck as pdk   # imported here: only the dashboard needs pydeck

    layers = [pdk.Layer(spec["type"], **{k: _literal(k, v) for k, v in spec.items()
                                         if k != "type" and _literal(k, v) is not None})
              for spec in layer_specs]
    if basemap is not None and basemap.shown:
        streets = {"map_provider": basemap.provider, "map_style": basemap.style_url}
    else:
        streets = {"map_provider": None}
    return _compact_deck_class()(layers=layers, initial_view_state=pdk.ViewState(**initial_view),
                                 tooltip={"html": tooltip_html, "style": TOOLTIP_STYLE},
                                 **streets)


# Props whose string value is the value itself: pydeck sends every other string as an
# accessor expression ("@@=..."), and a quoted one as the text inside the quotes.
LITERAL_STRING_PROPS = ("character_set",)


def _literal(prop: str, value: Any) -> Any:
    """value as pydeck must be given it to send it as a plain string (see LITERAL_STRING_PROPS);
    a character set that holds every quote mark is left to deck.gl's default (ASCII)."""
    if prop not in LITERAL_STRING_PROPS or not isinstance(value, str):
        return value
    quote = next((q for q in ('"', "'", "`") if q not in value), None)
    return None if quote is None else f"{quote}{value}{quote}"


@functools.lru_cache(maxsize=1)
def _compact_deck_class():
    """pydeck.Deck whose JSON has no indentation: pydeck indents by two spaces, which makes
    a city's map (thousands of cells) about twice as long to send and to parse."""
    import pydeck as pdk
    from pydeck.bindings.json_tools import default_serialize

    class CompactDeck(pdk.Deck):
        def to_json(self) -> str:
            # Made once: a deck is built for what it shows and then only read (the dashboard
            # hands the same deck to every session that shows the same map).
            if getattr(self, "_json", None) is None:
                self._json = json.dumps(self, sort_keys=True, default=default_serialize,
                                        separators=(",", ":"))
            return self._json

    return CompactDeck


def selected_cell_id(selection: Any) -> int | None:
    """The id of the cell a map selection holds ({"selection": {"objects": {"cells": [...]}}},
    as the dashboard reports a click), None when it holds no cell."""
    try:
        objects = selection["selection"]["objects"].get(CELLS_LAYER_ID) or []
    except (KeyError, TypeError, AttributeError):
        return None
    if not objects:
        return None
    cell = objects[0].get("cell_id")
    return None if cell is None else int(cell)
