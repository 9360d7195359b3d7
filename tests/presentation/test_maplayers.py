"""maplayers: the fixed colour scale, legends, the grid-based view, layers and clicks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from safety_models.presentation import maplayers as mapview
from safety_models.grid import GridSpec, fit_grid


def prediction_table(n: int = 6) -> pd.DataFrame:
    probability = np.linspace(0.3, 0.0, n)
    return pd.DataFrame({
        "cell_id": np.arange(n), "row": np.zeros(n, int), "col": np.arange(n),
        "lat": 41.0, "lon": -87.0, "probability": probability,
        "expected_count": probability * 2, "events_last_30d": np.arange(n)[::-1],
        "rank": np.arange(1, n + 1),
        "risk_level": ["very high", "high", "elevated", "low", "low", "low"][:n],
        "model_id": "m", "window_start": pd.Timestamp("2025-01-01"),
        "window_end": pd.Timestamp("2025-01-02"),
    })


@pytest.fixture
def grid() -> GridSpec:
    return fit_grid(np.array([41.80, 41.90]), np.array([-87.70, -87.60]), cell_size_m=1000.0)


@pytest.mark.parametrize("value, expected", [(0.003, 0.005), (0.012, 0.02), (0.2, 0.2),
                                             (0.21, 0.25), (0.26, 0.5), (0.7, 1.0),
                                             (0.0, 1.0)])
def test_nice_ceiling(value, expected):
    assert mapview.nice_ceiling(value) == pytest.approx(expected)


def test_scale_max_is_a_nice_number_between_one_percent_and_one():
    assert mapview.probability_scale_max([0.001, 0.002]) == 0.01
    assert mapview.probability_scale_max([0.1, 0.23]) == 0.25
    assert mapview.probability_scale_max([]) == 0.01


def test_colours_are_fixed_by_the_scale_not_by_the_data():
    # The same probability gets the same colour whatever else is on the map.
    a = mapview.probability_rgb([0.1, 0.0], scale_max=0.2)
    b = mapview.probability_rgb([0.1, 0.19, 0.02], scale_max=0.2)
    assert (a[0] == b[0]).all()
    ends = mapview.probability_rgb([0.0, 0.2, 0.9], scale_max=0.2)
    assert tuple(ends[0]) == mapview.PROBABILITY_STOPS_RGB[0]
    assert tuple(ends[1]) == tuple(ends[2]) == mapview.PROBABILITY_STOPS_RGB[-1]


def test_legends():
    items = mapview.probability_legend(0.25, n_items=6)
    assert [i.label for i in items] == ["0 %", "5 %", "10 %", "15 %", "20 %", "≥ 25 %"]
    assert items[-1].colour_hex == "#b10026"
    levels = mapview.risk_level_legend(["low", "very high", "elevated", "low", "high"])
    assert [i.label for i in levels] == ["very high", "high", "elevated", "low"]


def test_view_state_depends_on_the_grid_only(grid):
    view = mapview.view_state(grid)
    assert 41.80 < view["latitude"] < 41.90 and -87.70 < view["longitude"] < -87.60
    assert 10 < view["zoom"] < 14
    assert mapview.view_state(grid, pitch_deg=45)["zoom"] == view["zoom"]


def test_cell_records_carry_outlines_colours_and_tooltip_values(grid):
    records = mapview.cell_records(prediction_table(), grid, scale_max=0.5,
                                   colour_by="risk_level", selected_cell=2)
    assert len(records) == 6
    first = records[0]
    assert first["probability_text"] == "30 %"
    # A cell travels as its centre; only the selected one carries its outline.
    assert first["position"] == pytest.approx(
        [float(v[0]) for v in mapview.cell_centre_lonlat(grid, [first["cell_id"]])], abs=1e-6)
    assert "polygon" not in first and len(records[2]["polygon"]) == 4
    assert first["fill"][:3] == list(mapview.RISK_LEVEL_COLOURS["very high"])
    assert records[-1]["fill"][3] == mapview.QUIET_ALPHA   # probability 0: nearly transparent
    assert records[2]["line"] == list(mapview.SELECTED_OUTLINE_RGBA)
    json.dumps(records)  # plain types only: they travel to the browser as JSON
    outline = mapview.selected_layer_spec(records)
    assert outline["data"] == [{"polygon": records[2]["polygon"]}] and not outline["filled"]
    assert mapview.selected_layer_spec(mapview.cell_records(prediction_table(), grid, 0.5)) is None


def test_deck_has_no_basemap(grid):
    records = mapview.cell_records(prediction_table(), grid, scale_max=0.5)
    deck = mapview.build_deck([mapview.cells_layer_spec(records, grid)], mapview.view_state(grid))
    spec = json.loads(deck.to_json())
    assert "mapProvider" not in spec
    assert spec["mapStyle"] == "__MAP_STYLE__"   # Streamlit reads this as "no basemap"
    assert spec["layers"][0]["id"] == mapview.CELLS_LAYER_ID


def test_legend_html_escapes_labels_and_adds_the_keys_drawn():
    items = [mapview.LegendItem("< 5 %", "#ffffcc"), mapview.LegendItem("≥ 25 %", "#b10026")]
    plain = mapview.legend_html("Chance <of> incidents", items)
    assert "<b style=\"margin-right:10px\">Chance &lt;of&gt; incidents</b>" in plain
    assert "&lt; 5 %" in plain and "background:#b10026" in plain
    assert "district" not in plain and "recorded incident" not in plain
    both = mapview.legend_html("Risk level", items, outlines=True, incidents=True)
    assert both.count("district</span>") == 1
    assert "background:rgb(20,80,160)" in both and both.endswith("recorded incident</span></div>")


@pytest.mark.parametrize("selection, cell", [
    ({"selection": {"objects": {"cells": [{"cell_id": 7}, {"cell_id": 9}]}}}, 7),
    ({"selection": {"objects": {"cells": []}}}, None),
    ({"selection": {"objects": {"districts": [{"name": "x"}]}}}, None),
    ({"selection": {"objects": {"cells": [{"rank": 1}]}}}, None),
    ({}, None), (None, None),
])
def test_selected_cell_id_reads_a_map_click(selection, cell):
    assert mapview.selected_cell_id(selection) == cell


def test_deck_over_a_street_map_and_cells_named_by_place(grid):
    from safety_models.presentation.basemap import basemap_for, CARTO_POSITRON_URL

    places = pd.DataFrame({"cell_id": [0], "place": ["010XX W MADISON ST"]})
    records = mapview.cell_records(prediction_table(), grid, scale_max=0.5, places=places,
                                   on_streets=True)
    assert records[0]["where"] == "010XX W MADISON ST" and records[1]["where"] == "Cell 1"
    assert records[0]["fill"][3] == mapview.CELL_ALPHA_ON_STREETS < mapview.CELL_ALPHA
    streets = basemap_for(CARTO_POSITRON_URL, reachable=True)
    deck = mapview.build_deck([mapview.cells_layer_spec(records, grid)], mapview.view_state(grid),
                              basemap=streets, tooltip_html=mapview.LOOKBACK_TOOLTIP_HTML)
    spec = json.loads(deck.to_json())
    assert spec["mapProvider"] == "carto" and spec["mapStyle"] == CARTO_POSITRON_URL
    assert deck._tooltip["html"] == mapview.LOOKBACK_TOOLTIP_HTML
    offline = basemap_for(CARTO_POSITRON_URL, reachable=False)
    spec = json.loads(mapview.build_deck([], mapview.view_state(grid), basemap=offline).to_json())
    assert "mapProvider" not in spec and spec["mapStyle"] == "__MAP_STYLE__"


def test_a_past_windows_records_carry_what_happened(grid):
    table = prediction_table().assign(happened=[0, 3, 0, 0, 1, 0], expected_count=np.nan)
    records = mapview.cell_records(table, grid, scale_max=0.5)
    assert [r["happened"] for r in records] == [0, 3, 0, 0, 1, 0]
    assert records[0]["expected_text"] == "–"
    json.dumps(records)


def test_the_legend_says_which_cells_are_left_clear():
    note = mapview.quiet_note(0.2)
    assert note.startswith("Cells under 0.4 % are left almost clear")
    html = mapview.legend_html("Chance", mapview.probability_legend(0.2), incidents=True,
                               incidents_label="incident that happened", note=note)
    assert "incident that happened" in html and "left almost clear" in html
    labels = [item.label for item in mapview.probability_legend(0.2)]
    assert labels == ["0 %", "4 %", "8 %", "12 %", "16 %", "≥ 20 %"]


def test_the_cells_layer_draws_each_cell_as_the_grids_own_square(grid):
    """Every cell is its centre plus one shared shape; that shape, put at any cell's centre,
    lands on the cell's exact corners (grid.cell_to_boundary) within a metre."""
    from safety_models.grid import cell_to_boundary

    spec = mapview.cells_layer_spec(mapview.cell_records(prediction_table(), grid, 0.5), grid)
    assert spec["type"] == "ColumnLayer" and spec["disk_resolution"] == 4 == len(spec["vertices"])
    assert not spec["extruded"] and "get_elevation" not in spec
    shape = np.asarray(spec["vertices"])                          # (4, [east, north]) metres
    assert np.hypot(*(shape[1] - shape[0])) == pytest.approx(grid.cell_size_m, rel=0.005)
    for cell in (0, grid.n_cells - 1):                            # opposite corners of the city
        lon, lat = (float(v[0]) for v in mapview.cell_centre_lonlat(grid, [cell]))
        corners = np.asarray(cell_to_boundary(grid, [cell])[0])[:4]
        east = (corners[:, 0] - lon) * mapview.DECK_METRES_PER_DEGREE * np.cos(np.radians(lat))
        north = (corners[:, 1] - lat) * mapview.DECK_METRES_PER_DEGREE
        assert np.abs(np.stack([east, north], axis=1) - shape).max() < 1.0
    raised = mapview.cells_layer_spec(
        mapview.cell_records(prediction_table(), grid, 0.5, extruded=True), grid, extruded=True)
    assert raised["extruded"] and raised["get_elevation"] == "elevation"
    assert raised["data"][0]["elevation"] == pytest.approx(0.3 / 0.5 * 4 * grid.cell_size_m)


def test_district_labels_make_only_the_glyphs_they_use():
    spec = mapview.labels_layer_spec([{"position": [0, 0], "label": "District 12"},
                                      {"position": [1, 1], "label": "Loop"}])
    assert spec["character_set"] == " 12DLcioprst"
    assert spec["font_settings"] == {"sdf": True} and spec["outline_width"] == 3
    # Sent as the characters themselves, not as an accessor (pydeck's reading of a string).
    sent = json.loads(mapview.build_deck([spec], {"latitude": 0, "longitude": 0, "zoom": 1})
                      .to_json())["layers"][0]
    assert sent["characterSet"] == " 12DLcioprst"
    assert mapview._literal("character_set", "\"'`") is None
