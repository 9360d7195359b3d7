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
    assert len(first["polygon"]) >= 4 and first["probability_text"] == "30 %"
    assert first["fill"][:3] == list(mapview.RISK_LEVEL_COLOURS["very high"])
    assert records[-1]["fill"][3] == mapview.QUIET_ALPHA   # probability 0: nearly transparent
    assert records[2]["line"] == list(mapview.SELECTED_OUTLINE_RGBA)
    json.dumps(records)  # plain types only: they travel to the browser as JSON


def test_deck_has_no_basemap(grid):
    records = mapview.cell_records(prediction_table(), grid, scale_max=0.5)
    deck = mapview.build_deck([mapview.cells_layer_spec(records)], mapview.view_state(grid))
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
