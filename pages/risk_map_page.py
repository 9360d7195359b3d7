"""Risk map: the chosen category's predicted risk per cell for the next window (or a past
one), on a colour scale fixed for the model, with district outlines, recent incidents,
the top hotspots, downloads, and the history of a clicked cell."""

import json

import pandas as pd
import streamlit as st

from pages import _ui as ui
from safety_models import paths
from safety_models.grid import GridSpec
from safety_models.presentation import charts, export, maplayers, tables
from safety_models.presentation.text import category_label, when, window_label

st.title("Risk map")

url = paths.db_url()
stamp = ui.data_stamp()

category = ui.category_selector("map_category")
model_id = ui.active_model_id(category)
if model_id is None:
    ui.wait_for_model(category)
    st.stop()

info = ui.model_info(url, model_id)
grid = GridSpec.from_dict(info["grid"])
window_hours = int(info.get("window_hours") or 24)
span = ui.time_range(url, category, stamp)
unit = window_label(window_hours)

controls = st.columns([1.3, 1.2, 1.3, 0.9, 1.1], vertical_alignment="bottom")
with controls[0]:
    when_choice = st.segmented_control(
        "Window", options=["next", "date"], key="map_when", default="next", required=True,
        format_func=lambda v: f"Next {unit}" if v == "next" else "A past date",
        help=f"The model predicts one {unit} at a time: the one after the latest data, or "
             "any earlier one (to compare with what happened).")
with controls[1]:
    last_day = (span[1] if span else pd.Timestamp.now()).date()
    # The model needs at least one window of history before the one it predicts.
    first_day = ((span[0] if span else pd.Timestamp.now()).normalize()
                 + pd.Timedelta(hours=window_hours)).date()
    chosen_day = st.date_input(
        f"{unit.capitalize()} starting", value=last_day, min_value=first_day,
        max_value=last_day, key="map_date", disabled=when_choice != "date",
        format="YYYY-MM-DD")
with controls[2]:
    colour_by = st.segmented_control(
        "Colour by", options=["probability", "risk_level"], key="map_colour",
        default="probability", required=True,
        format_func=lambda v: "Chance" if v == "probability" else "Risk level",
        help="Chance: the probability of at least one incident, on a scale fixed for this "
             "model (the same colour means the same chance on every day). Risk level: the "
             "cell's rank among all cells.")
with controls[3]:
    show_3d = st.toggle("3D columns", key="map_3d",
                        help="Raise each cell in proportion to its chance (drag with the right "
                             "mouse button or Ctrl to tilt).")
with controls[4]:
    show_incidents = st.toggle("Recent incidents", key="map_incidents",
                               help="Recorded incidents of the 30 days before the window.")

at_iso = None if when_choice == "next" else pd.Timestamp(chosen_day).isoformat()
prediction = scale_max = None
with ui.shown_errors("predicting the risk map"):
    prediction = ui.prediction(url, category, model_id, at_iso, stamp)
    scale_max = ui.scale_max(url, category, model_id, stamp)
if prediction is None or scale_max is None:
    st.stop()
if prediction.empty:
    st.warning("The model returned no cells for this window.")
    st.stop()

window_start = pd.Timestamp(prediction["window_start"].iloc[0])
window_end = pd.Timestamp(prediction["window_end"].iloc[0])
selected_cell = maplayers.selected_cell_id(st.session_state.get(f"risk_map_{category}"))

districts = ui.boundary(url, category)
records = maplayers.cell_records(prediction, grid, scale_max, colour_by=colour_by,
                               selected_cell=selected_cell)
# Cells first, the outlines and names over them, incidents on top.
layers = [maplayers.cells_layer_spec(records, extruded=show_3d)]
if districts:
    layers.append(maplayers.boundary_layer_spec(districts))
    layers.append(maplayers.labels_layer_spec(maplayers.district_label_records(districts)))
if show_incidents:
    recent = ui.incidents(url, category, window_start - pd.Timedelta(days=30), window_start,
                          stamp)
    layers.append(maplayers.incidents_layer_spec(maplayers.incident_records(recent.tail(20_000))))
view = maplayers.view_state(grid, pitch_deg=maplayers.PITCH_3D_DEG if show_3d else 0.0)

st.markdown(f"**{category_label(category)}**, {unit} from **{when(window_start)}** to "
            f"**{when(window_end)}** · model `{model_id}`")
map_column, side_column = st.columns([2.5, 1.1], gap="medium")
with map_column:
    event = st.pydeck_chart(
        maplayers.build_deck(layers, view), key=f"risk_map_{category}", on_select="rerun",
        selection_mode="single-object", height=maplayers.MAP_HEIGHT_PX,
        alt=f"Risk map of {category_label(category).lower()} by grid cell")
    legend = (maplayers.probability_legend(scale_max) if colour_by == "probability"
              else maplayers.risk_level_legend(prediction["risk_level"]))
    st.html(maplayers.legend_html(
        "Chance of at least one incident" if colour_by == "probability" else "Risk level",
        legend, outlines=bool(districts), incidents=show_incidents))
    if not districts:
        st.caption("No district outlines stored: add a GeoJSON file on the **Data** page.")

with side_column:
    st.markdown("**Top hotspots**")
    hotspots = tables.top_hotspots(prediction, 10, districts)
    st.dataframe(tables.hotspots_shown(hotspots, with_risk_level=True), hide_index=True,
                 width="stretch", key="map_hotspots", height=388,
                 column_config=ui.column_config(tables.HOTSPOT_COLUMNS))
    file_stem = f"{category}-risk-{window_start:%Y-%m-%d}"
    st.download_button("Download CSV", data=export.prediction_to_csv(prediction),
                       file_name=f"{file_stem}.csv", mime="text/csv", key="map_download_csv",
                       icon=":material/download:", width="stretch")
    st.download_button("Download GeoJSON",
                       data=json.dumps(export.prediction_to_geojson(prediction, grid)),
                       file_name=f"{file_stem}.geojson", mime="application/geo+json",
                       key="map_download_geojson", icon=":material/download:", width="stretch")

clicked = maplayers.selected_cell_id(event)
st.subheader("Cell history")
if clicked is None:
    st.caption("Click a cell on the map to see its recorded incidents and predicted chance "
               "over time.")
else:
    with ui.shown_errors(f"reading the history of cell {clicked}"):
        history = ui.cell_history(url, category, clicked, stamp)
        st.plotly_chart(charts.history_figure(history, clicked, unit), key="map_history",
                        width="stretch")
