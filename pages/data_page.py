"""Data: load incident files (check and correct the detected columns first), see what was
accepted and rejected and why, manage uploads and district outlines, and see the incidents
over time."""

import hashlib
import json

import streamlit as st

from pages import _auth as auth
from pages import _ui as ui
from safety_models.data import ingest
from safety_models import paths
from safety_models.errors import UserError
from safety_models.presentation import charts, export, tables, text
from safety_models.presentation.text import category_label
from safety_models.service import actions
from safety_models.schema import CATEGORIES

st.title("Data")

store = ui.get_store()
url = paths.db_url()

# The fields of a column mapping, grouped as people think of them; `crs` is a text input.
MAPPING_GROUPS = {
    "When": [("time", "Date and time"), ("date", "Date (time apart)"),
             ("clock", "Time of day")],
    "Where": [("lat", "Latitude"), ("lon", "Longitude"), ("location", "Lat/lon in one"),
              ("x", "X (projected)"), ("y", "Y (projected)")],
    "What": [("subtype", "Type / subtype"), ("source_id", "Record id"),
             ("outcome", "Test outcome"), ("place", "Place (block, street)")],
}
SPLIT_TIME_FIELDS = [("year", "Year"), ("month", "Month"), ("day", "Day"), ("hour", "Hour")]
# For these an explicit "none" overrides detection (ColumnMapping's convention: "").
NONE_MEANS_NONE = {"subtype", "source_id", "outcome", "place"}
NOT_USED = "— not used —"
# A type column with more distinct values than this is free text (descriptions), not a list to pick from.
MAX_TYPE_CHOICES = 200


def mapping_editor(file):
    """The file's first rows and its detected columns in editable selectboxes; returns the
    ColumnMapping to load it with (the user's corrections win over detection) and the incident
    types to keep (None: all)."""
    fid = hashlib.sha1(f"{file.file_id}:{file.name}".encode()).hexdigest()[:8]
    table, detected, problem = ui.file_preview(file.file_id, file.name, file.getvalue())
    st.markdown(f"**{file.name}** · {len(table):,} rows · {len(table.columns)} columns")
    st.dataframe(table.head(8), hide_index=True, width="stretch", height=245)
    if problem:
        st.warning(problem, icon=":material/help:")
    if detected:
        st.caption(f"Detected: {detected.describe()}. Correct anything wrong below before "
                   "loading.")
    else:
        st.caption("Choose the columns below before loading.")
    detected_dict = detected.to_dict() if detected else {}
    options = [NOT_USED, *[str(c) for c in table.columns]]
    chosen: dict[str, str | None] = {}
    for group, fields in MAPPING_GROUPS.items():
        cols = st.columns(len(fields) + (1 if group == "Where" else 0))
        for col, (field, label) in zip(cols, fields):
            current = detected_dict.get(field)
            value = col.selectbox(
                f"{group}: {label}", options,
                index=options.index(current) if current in options else 0,
                key=f"mapping_{fid}_{field}")
            chosen[field] = None if value == NOT_USED else value
        if group == "Where":
            chosen["crs"] = cols[-1].text_input(
                "CRS of X/Y", value=detected_dict.get("crs") or "", key=f"mapping_{fid}_crs",
                placeholder="e.g. EPSG:25831",
                help="Only for projected X/Y columns: the coordinate system's EPSG code.") \
                or None
    with st.expander("Time split over year / month / day / hour columns"):
        cols = st.columns(len(SPLIT_TIME_FIELDS))
        for col, (field, label) in zip(cols, SPLIT_TIME_FIELDS):
            current = detected_dict.get(field)
            value = col.selectbox(label, options,
                                  index=options.index(current) if current in options else 0,
                                  key=f"mapping_{fid}_{field}")
            chosen[field] = None if value == NOT_USED else value
    overrides = {k: ("" if v is None and k in NONE_MEANS_NONE else v) for k, v in chosen.items()}
    only_types = None
    if chosen.get("subtype"):
        # A file of several offences: the operator may load one offence's map only.
        values = table[chosen["subtype"]].astype(str).str.strip()
        values = values[values != ""]
        # One choice per type as loading matches it (without case), named as first written.
        counts = values.groupby(values.str.casefold(), sort=False).agg(["first", "size"])
        counts = counts.set_index("first")["size"].sort_values(ascending=False, kind="stable")
        if 1 < len(counts) <= MAX_TYPE_CHOICES:
            only_types = st.multiselect(
                "Load only these types (every type when none is chosen)", counts.index.tolist(),
                format_func=lambda t: f"{t} ({counts[t]:,} rows)", key=f"mapping_{fid}_only_types",
                help="For a map of one offence (burglary, say) from an export of several. The "
                     "other rows are listed as rejected, with that reason.") or None
    return ingest.ColumnMapping(**overrides), only_types


def show_result(result: dict) -> None:
    """One loaded file's outcome: counts, rejection reasons, the rejected rows to download."""
    if "error" in result:
        st.error(f"**{result['file_name']}** was not loaded. {result['error']}",
                 icon=":material/error:")
        return
    s = result["summary"]
    if s.get("already_loaded"):
        st.info(text.upload_result_text(s), icon=":material/content_copy:")
        return
    (st.warning if s["rejected"] else st.success)(text.upload_result_text(s),
                                                   icon=":material/task_alt:")
    if s["rejected"]:
        st.caption(f"Rejected rows by reason – {text.rejected_reasons_text(s)}")
        upload_id = s["upload_id"]
        st.download_button(
            f"Download the {s['rejected']:,} rejected rows (CSV with reasons)",
            data=lambda: export.csv_bytes(store.rejected_rows(upload_id)),
            file_name=f"rejected-upload-{s['upload_id']}.csv", mime="text/csv",
            key=f"download_rejected_result_{s['upload_id']}", icon=":material/download:")


# Lazy tabs: only the open tab runs (the charts read every incident; loading needs none).
load_tab, uploads_tab, outlines_tab, charts_tab = st.tabs(
    ["Load files", "Uploads", "District outlines", "Incidents over time"], key="data_tab",
    on_change="rerun")

# ---------------------------------------------------------------------------- load files
with load_tab:
    if load_tab.open:
        category = st.selectbox("These files hold", CATEGORIES, format_func=category_label,
                                key="upload_category")
        files = st.file_uploader(
            "Incident files (CSV or similar exports; one or more)", accept_multiple_files=True,
            key="upload_files",
            help="Each row one incident with a time and a location (latitude/longitude, a "
                 "'(lat, lon)' column, or projected X/Y with a CRS). Common open-data layouts are "
                 "recognised; check the columns below before loading.")
        mappings = []
        for file in files or []:
            with st.container(border=True):
                with ui.shown_errors(f"reading {file.name}"):
                    mappings.append((file, *mapping_editor(file)))
        if files:
            if st.button(f"Load {len(mappings)} file{'s' if len(mappings) != 1 else ''} as "
                         f"{category_label(category).lower()}", type="primary",
                         key="upload_load", disabled=not mappings, icon=":material/upload:"):
                results = []
                progress = st.progress(0.0, text="Loading…")
                for i, (file, mapping, only_types) in enumerate(mappings):
                    progress.progress(i / len(mappings), text=f"Loading {file.name}…")
                    try:
                        summary = actions.ingest(store, auth.actor(), file.getvalue(),
                                                 file.name, category, overrides=mapping,
                                                 only_types=only_types)
                        results.append({"file_name": file.name, "summary": summary.to_dict()})
                    except UserError as err:
                        results.append({"file_name": file.name, "error": str(err)})
                progress.empty()
                ui.clear_data_caches()
                if any(r.get("summary", {}).get("accepted") for r in results):
                    ui.after_data_change([category])
                st.session_state["upload_results"] = results
        results = st.session_state.get("upload_results", [])
        for result in results:
            show_result(result)
        if any(r.get("summary", {}).get("accepted") for r in results):
            st.caption("The maps forecast from the new incidents at once; the models learn "
                       "from them when retrained (**Models and training** page).")

# ---------------------------------------------------------------------------- uploads
with uploads_tab:
    if uploads_tab.open:
        stamp = ui.data_stamp()
        listing = ui.uploads(url, stamp)
        if listing.empty:
            st.info("Nothing loaded yet.", icon=":material/inbox:")
        else:
            st.dataframe(tables.uploads_table(listing), hide_index=True, width="stretch",
                         key="uploads_table",
                         column_config=ui.column_config(tables.UPLOAD_COLUMNS))
            labels = {int(r["upload_id"]): text.upload_label(r)
                      for r in listing.to_dict("records")}
            chosen = st.selectbox("Upload", list(labels), format_func=labels.get,
                                  key="remove_upload_id")
            left, right, _ = st.columns([1.2, 1, 2])
            with left:
                row = listing[listing["upload_id"] == chosen].iloc[0]
                if row["rejected"]:
                    st.download_button(
                        f"Rejected rows ({row['rejected']:,})",
                        data=lambda: export.csv_bytes(store.rejected_rows(chosen)),
                        file_name=f"rejected-upload-{chosen}.csv", mime="text/csv",
                        key="download_rejected", icon=":material/download:")
                else:
                    st.caption("No rejected rows in this upload.")
            with right.popover("Remove…", icon=":material/delete:",
                               disabled=not auth.allowed("remove_upload"),
                               help=None if auth.allowed("remove_upload")
                               else "Only an administrator removes uploads."):
                st.markdown(f"Remove **{labels[chosen]}** and its incidents? Models already "
                            "trained keep what they learnt; retrain to forget it.")
                if st.button("Yes, remove it", type="primary", key="remove_upload_confirm"):
                    with ui.shown_errors("removing the upload"):
                        removed = actions.remove_upload(store, auth.actor(), chosen)
                        ui.clear_data_caches()
                        ui.after_data_change([row["category"]])
                        st.toast(f"Removed upload #{chosen} ({removed:,} incidents).")
                        st.rerun()
            if listing["is_demo"].any() and auth.allowed("remove_demo"):
                st.divider()
                st.markdown("**Demo data** – the built-in example city. Remove it before loading "
                            "your own city's files (one home holds one city per category).")
                with st.popover("Remove the demo data…", icon=":material/delete_sweep:"):
                    st.markdown("Remove every demo upload and the demo district outlines?")
                    if st.button("Yes, remove the demo data", type="primary",
                                 key="remove_demo_confirm"):
                        with ui.shown_errors("removing the demo data"):
                            demo_categories = listing.loc[listing["is_demo"], "category"]
                            removed = actions.remove_demo(store, auth.actor())
                            ui.clear_data_caches()
                            ui.after_data_change(demo_categories)
                            st.toast(f"Removed the demo data ({removed:,} incidents).")
                            st.rerun()

# ---------------------------------------------------------------------------- outlines
with outlines_tab:
    if outlines_tab.open:
        st.markdown("District (or neighbourhood) outlines are drawn on the risk map so operators "
                    "can find their way without a street map. Any GeoJSON file of polygons in "
                    "latitude/longitude (WGS84) works.")
        current = ui.boundary(url, "*")
        st.caption("Outlines stored for every category: "
                   + (f"{len(current.get('features', []))} shapes." if current else "none."))
        scope = st.selectbox("Use for", ["*", *CATEGORIES], key="boundary_scope",
                             format_func=lambda c: "every category" if c == "*"
                             else category_label(c))
        outline_file = st.file_uploader("GeoJSON file", type=["geojson", "json"],
                                        key="boundary_file")
        if st.button("Save outlines", key="boundary_save", icon=":material/save:",
                     disabled=outline_file is None or not auth.allowed("boundary"),
                     help=None if auth.allowed("boundary")
                     else "Only an administrator changes the outlines."):
            try:
                geojson = json.loads(outline_file.getvalue().decode("utf-8-sig"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                st.error(f"{outline_file.name} is not a GeoJSON file: {err}")
            else:
                with ui.shown_errors("saving the outlines"):
                    actions.set_boundary(store, auth.actor(), scope, geojson, outline_file.name)
                    ui.clear_boundary()
                    st.success(f"Saved the outlines of {outline_file.name}.")

# ---------------------------------------------------------------------------- charts
with charts_tab:
    if charts_tab.open:
        stamp = ui.data_stamp()
        period = st.segmented_control("Per", ["D", "W", "M"], default="W", required=True,
                                      format_func={"D": "day", "W": "week", "M": "month"}.get,
                                      key="chart_period")
        per_category = tables.incidents_by_category(
            {cat: ui.per_period(url, cat, period, False, stamp) for cat in CATEGORIES})
        if per_category.empty:
            st.info("No incidents stored yet.")
        else:
            st.plotly_chart(charts.incidents_by_category_figure(per_category), width="stretch",
                            key="chart_categories")
            chart_category = st.selectbox("Subtypes of", CATEGORIES, format_func=category_label,
                                          key="chart_category")
            by_subtype = ui.per_period(url, chart_category, period, True, stamp)
            if by_subtype.empty:
                st.caption("No incidents of this category.")
            else:
                st.plotly_chart(
                    charts.incidents_by_subtype_figure(by_subtype, category_label(chart_category)),
                    width="stretch", key="chart_subtypes")
