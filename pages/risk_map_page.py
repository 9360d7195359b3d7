"""Risk map: the chosen category's predicted risk per cell for the next window (or the next
7/14/30/60/90 days, where the category has a model for that horizon), a look back
over the latest windows (forecast beside what then happened, step by step or played), or any
past date; on a street map when one can be reached, on a fixed colour scale, with district
outlines, the top hotspots named as people name places, downloads, and a clicked cell's
history. What it shows was computed when the model was made or the data arrived
(service.forecasts); a visit only reads it."""

import json

import pandas as pd
import streamlit as st

from pages import _ui as ui
from safety_models import paths
from safety_models.grid import GridSpec
from safety_models.presentation import charts, export, maplayers, tables, text
from safety_models.presentation.text import category_label, when, window_label

PLAY_INTERVAL_S = 1.5     # seconds per window while playing the look-back

st.title("Risk map")

url = paths.db_url()
stamp = ui.data_stamp()

category = ui.category_selector("map_category")
model_id = ui.active_model_id(category)
if model_id is None:
    ui.wait_for_model(category)
    st.stop()

info = ui.model_info(url, model_id)
# The next window is the active model's; a longer horizon is the model trained for it.
horizon = ui.horizon_choice("map_horizon", category, info.get("window_hours"))
shown_id = model_id if horizon is None else ui.horizon_models(category)[horizon]
shown_info = info if horizon is None else ui.model_info(url, shown_id)
grid = GridSpec.from_dict(shown_info["grid"])
window_hours = int(shown_info.get("window_hours") or 24)
bundle = None
with ui.shown_errors("reading the forecasts"):
    bundle = ui.forecasts(category, shown_id)
if bundle is None:
    st.stop()
unit = text.period_label(window_hours, bundle.horizon_windows)   # what one forecast covers
if horizon is None:
    ui.forecaster_status(category, model_id, bundle.forecaster, info.get("activated_at"),
                         bundle.blend)
else:
    st.caption(text.horizon_line(unit, bundle.forecaster, shown_id,
                                 shown_info.get("activated_at") or shown_info.get("created_at"),
                                 blend=bundle.blend))

span = ui.time_range(url, category, stamp)
controls = st.columns([1.9, 1.3, 1.3, 0.9, 1.1], vertical_alignment="bottom")
with controls[0]:
    when_choice = st.segmented_control(
        "Window", options=["next", "back", "date"], key="map_when", default="next",
        required=True,
        format_func={"next": text.horizon_option_label(horizon, window_hours),
                     "back": "Look back", "date": "A past date"}.get,
        help=f"The model forecasts one {unit} at a time: the one after the latest data; the "
             f"latest {bundle.n_past} forecasts beside what then happened; or one from any "
             "earlier date.")
with controls[1]:
    last_day = (span[1] if span else pd.Timestamp.now()).date()
    # (a horizon's forecast may start on any day: what it covers is partly in the future)
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
        help=f"Chance: the probability of at least one incident in the {unit}, on a scale "
             "fixed for this model (the same colour means the same chance on every day). "
             "Risk level: the "
             "cell's rank among all cells.")
with controls[3]:
    show_3d = st.toggle("3D columns", key="map_3d",
                        help="Raise each cell in proportion to its chance (drag with the right "
                             "mouse button or Ctrl to tilt).")
with controls[4]:
    show_incidents = st.toggle("Recent incidents", key="map_incidents",
                               disabled=when_choice == "back",
                               help="Recorded incidents of the 30 days before the window "
                                    "(looking back, the incidents of the window itself are "
                                    "always drawn).")

scale_max = ui.scale_max(url, category, shown_id, stamp)
districts = ui.boundary(url, category)
streets = ui.basemap()
view = maplayers.view_state(grid, pitch_deg=maplayers.PITCH_3D_DEG if show_3d else 0.0)


def draw(prediction: pd.DataFrame, looking_back: bool) -> None:
    """The map, its legend and the hotspots of one window's prediction."""
    window_start = pd.Timestamp(prediction["window_start"].iloc[0])
    window_end = pd.Timestamp(prediction["window_end"].iloc[0])
    selected_cell = maplayers.selected_cell_id(st.session_state.get(f"risk_map_{category}"))
    with_points = looking_back or show_incidents

    def deck():
        """The map's deck, built once per what it shows for every session (its JSON too:
        a city's cells are a megabyte of it), never per visit."""
        records = ui.cell_records(prediction, grid, scale_max, colour_by, selected_cell,
                                  bundle.places, streets.shown, show_3d)
        # Cells first, the outlines and names over them, incidents on top.
        layers = [maplayers.cells_layer_spec(records, grid, extruded=show_3d)]
        if districts:
            layers.append(maplayers.boundary_layer_spec(districts))
            layers.append(maplayers.labels_layer_spec(
                maplayers.district_label_records(districts)))
        if looking_back:
            points = ui.incidents(url, category, window_start, window_end, stamp)
        elif show_incidents:
            points = ui.incidents(url, category, window_start - pd.Timedelta(days=30),
                                  window_start, stamp).tail(20_000)
        if with_points:
            layers.append(maplayers.incidents_layer_spec(maplayers.incident_records(points)))
        selected = maplayers.selected_layer_spec(records)
        if selected is not None:
            layers.append(selected)
        return maplayers.build_deck(
            layers, view, basemap=streets,
            tooltip_html=maplayers.LOOKBACK_TOOLTIP_HTML if looking_back
            else maplayers.TOOLTIP_HTML)

    # Everything the deck is made of: the prediction (model, window, data), the controls,
    # the outlines' read and the street map.
    shows = (category, shown_id, str(window_start), len(prediction), stamp, looking_back,
             colour_by, show_3d, selected_cell, scale_max, with_points,
             ui.boundary_version(url, category), streets.shown, streets.style_url)

    kept = text.kept_types_label(ui.uploads(url, stamp), category)   # "burglary only"
    heading = (f"**{category_label(category)}**{f' ({kept})' if kept else ''}, {unit} from "
               f"**{when(window_start)}** to **{when(window_end)}**")
    if looking_back:
        heading += " · " + text.lookback_summary(prediction, unit)
    st.markdown(heading)
    map_column, side_column = st.columns([2.5, 1.1], gap="medium")
    with map_column:
        st.pydeck_chart(ui.built_once(("map-deck", *shows), deck), key=f"risk_map_{category}",
                        on_select="rerun", selection_mode="single-object",
                        height=maplayers.MAP_HEIGHT_PX,
                        alt=f"Risk map of {category_label(category).lower()} by grid cell")

        def legend() -> str:
            items = (maplayers.probability_legend(scale_max) if colour_by == "probability"
                     else maplayers.risk_level_legend(prediction["risk_level"]))
            note = maplayers.quiet_note(scale_max) if colour_by == "probability" else ""
            if streets.attribution:
                note = f"{note} {streets.attribution}.".strip()
            return maplayers.legend_html(
                f"Chance of at least one incident in the {unit}" if colour_by == "probability"
                else "Risk level",
                items, outlines=bool(districts), incidents=with_points,
                incidents_label="incident that happened" if looking_back
                else "recorded incident",
                note=note)

        st.html(ui.built_once(("map-legend", unit, streets.attribution, *shows), legend))
        if streets.note:
            st.caption(streets.note)
        if not districts:
            st.caption("No district outlines stored: add a GeoJSON file on the **Data** page.")

    with side_column:
        st.markdown("**Top hotspots**")
        with st.container(key="map_hotspots"):
            st.markdown(ui.built_once(
                ("map-hotspots", category, shown_id, str(window_start), len(prediction), stamp,
                 looking_back, ui.boundary_version(url, category)),
                lambda: tables.hotspots_markdown(tables.hotspots_shown(
                    tables.top_hotspots(prediction, 10, districts, bundle.places),
                    with_risk_level=True, with_expected=True))))
        file_stem = f"{category}-risk-{horizon + '-' if horizon else ''}{window_start:%Y-%m-%d}"
        # The files are made when a button is clicked, not on every visit (the GeoJSON of
        # a city's cells takes a quarter of a second).
        st.download_button("Download CSV", data=lambda: export.prediction_to_csv(prediction),
                           file_name=f"{file_stem}.csv", mime="text/csv",
                           key="map_download_csv", icon=":material/download:", width="stretch")
        st.download_button("Download GeoJSON",
                           data=lambda: json.dumps(export.prediction_to_geojson(prediction, grid)),
                           file_name=f"{file_stem}.geojson", mime="application/geo+json",
                           key="map_download_geojson", icon=":material/download:",
                           width="stretch")
    cell_history(maplayers.selected_cell_id(st.session_state.get(f"risk_map_{category}")))


def cell_history(clicked: int | None) -> None:
    st.subheader("Cell history")
    if clicked is None:
        st.caption("Click a cell on the map to see its recorded incidents and predicted "
                   "chance over time.")
        return
    with ui.shown_errors(f"reading the history of cell {clicked}"):
        history = ui.cell_history(url, category, model_id, clicked, stamp)
        st.plotly_chart(charts.history_figure(history, clicked, window_label(window_hours)),
                        key="map_history",
                        width="stretch")


def toggle_play(last: int) -> None:
    """Play / Pause (a callback: it may set the slider before the slider is drawn)."""
    playing = not st.session_state.get("map_playing", False)
    st.session_state["map_playing"] = playing
    st.session_state["_map_play_toggled"] = True
    if playing and int(st.session_state.get("map_back", last)) >= last:
        st.session_state["map_back"] = -1          # played from the first window


def look_back() -> None:
    """One of the latest windows at a time, forecast beside what happened: a slider to step,
    Play to run through them (this part reruns by itself while playing)."""
    last = bundle.n_past - 1
    if last < 0:
        st.info(f"No past forecast of a whole {unit} lies within the data yet.",
                icon=":material/info:")
        return
    shown = f"{category}:{shown_id}"
    if st.session_state.get("_map_back_shows") != shown:     # another category or horizon:
        st.session_state["_map_back_shows"] = shown          # its latest forecast first
        st.session_state["map_back"] = last
        st.session_state["map_playing"] = False
    st.session_state.setdefault("map_back", last)
    if st.session_state.pop("_map_play_toggled", False):
        st.rerun(scope="app")                      # playing reruns this part on a timer
    if st.session_state.get("map_playing"):
        position = int(st.session_state["map_back"])
        if position >= last:                       # the latest window was shown: stop there
            st.session_state["map_playing"] = False
            st.rerun(scope="app")
        st.session_state["map_back"] = position + 1
    starts = bundle.past_starts
    step, play = st.columns([5, 1], vertical_alignment="bottom")
    with step:
        index = st.select_slider(
            f"{unit.capitalize()} shown", options=list(range(bundle.n_past)), key="map_back",
            format_func=lambda i: f"{starts[i]:%a %d %b %Y}",
            help=f"Each {unit}'s forecast was made from the data before it only, as the "
                 "model would have made it that morning.")
    with play:
        playing = bool(st.session_state.get("map_playing"))
        st.button("Pause" if playing else "Play", key="map_play", width="stretch",
                  icon=":material/pause:" if playing else ":material/play_arrow:",
                  on_click=toggle_play, args=(last,))
    draw(bundle.past_window(int(index)), looking_back=True)


prediction = None
if when_choice == "back":
    st.fragment(look_back,
                run_every=PLAY_INTERVAL_S if st.session_state.get("map_playing") else None)()
else:
    st.session_state["map_playing"] = False
    with ui.shown_errors("predicting the risk map"):
        prediction = (bundle.next_window if when_choice == "next" else
                      ui.prediction(url, category, shown_id,
                                    pd.Timestamp(chosen_day).isoformat(), stamp))
    if prediction is None:
        st.stop()
    if prediction.empty:
        st.warning("The model returned no cells for this window.")
        st.stop()
    draw(prediction, looking_back=False)

