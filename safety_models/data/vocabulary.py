"""The column-name vocabulary of open-data exports: which names mean time, place, type, id, outcome."""

from __future__ import annotations

import re
import unicodedata





# ---------------------------------------------------------------------------------------------
# Column names
# ---------------------------------------------------------------------------------------------

def normalise_name(name: str) -> str:
    """"CRASH DATE" -> "crash_date"; "WnvPresent" -> "wnv_present"; "Año" -> "ano"."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name))
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _tokens(name: str) -> list[str]:
    return [t for t in normalise_name(name).split("_") if t]


def _name_rank(name: str, exact: tuple[str, ...], tokens: tuple[str, ...] = (), suffixes: tuple[str, ...] = ()) -> int | None:
    """0.. when the name matches (lower is better), None when not: exact names, then tokens, then suffixes."""
    norm = normalise_name(name)
    if norm in exact:
        return exact.index(norm)
    toks = norm.split("_")
    for i, t in enumerate(tokens):
        if t in toks:
            return 100 + i
    for i, suf in enumerate(suffixes):
        if norm.endswith(suf):
            return 200 + i
    return None


LAT_NAMES = ("lat", "latitude", "latitud", "y_lat", "lat_y", "latitude_wgs84", "lat_wgs84", "breitengrad", "breite", "latitud_wgs84")
LAT_TOKENS = ("lat", "latitude", "latitud", "breitengrad")
LON_NAMES = ("lon", "lng", "long", "longitude", "longitud", "x_lon", "lon_x", "x_long", "longitude_wgs84", "lon_wgs84", "laengengrad", "lange", "laenge", "longitud_wgs84")
LON_TOKENS = ("lon", "lng", "longitude", "longitud", "long", "laengengrad")
X_NAMES = ("x", "x_coordinate", "xcoord", "x_coord", "coord_x", "coordx", "coordenada_x", "coordenada_utm_x", "utm_x", "x_utm", "easting", "east", "rechtswert", "x_etrs89", "x_coordinate_state_plane")
X_TOKENS = ("x", "easting", "rechtswert", "xcoord", "utmx", "coordx")
Y_NAMES = ("y", "y_coordinate", "ycoord", "y_coord", "coord_y", "coordy", "coordenada_y", "coordenada_utm_y", "utm_y", "y_utm", "northing", "north", "hochwert", "y_etrs89", "y_coordinate_state_plane")
Y_TOKENS = ("y", "northing", "hochwert", "ycoord", "utmy", "coordy")
LOCATION_NAMES = ("location", "geolocation", "geo_location", "the_geom", "geom", "geometry", "point", "coordinates", "coords", "wkt", "georeference", "position", "location_1", "lat_lon", "latlon", "lat_long")
LOCATION_TOKENS = ("location", "geom", "geometry", "point", "coordinates", "wkt", "georeference", "latlon")

# Best first. When an export gives a single (occurrence) time beside a window (Crime Open
# Database: date_single, date_start, date_end; LA: DATE OCC beside Date Rptd), the single time
# is the incident's: "occ" and "single" rank above "start" and "reported".
DATETIME_GOOD_TOKENS = ("occurred", "occurrence", "occur", "occ", "single", "incident", "crash", "accident",
                        "offense", "offence", "event", "start", "from", "created", "reported", "report", "datetime",
                        "timestamp", "date", "fecha", "data", "datum", "time", "dt")
DATETIME_BAD_TOKENS = ("closed", "close", "due", "updated", "update", "resolution", "end", "to", "modified",
                       "edit", "last", "birth", "dob", "expiry", "expires", "until", "finish", "ended")
CLOCK_NAMES = ("time", "hora", "heure", "zeit", "uhrzeit", "clock", "hour", "time_of_day", "stunde", "hora_dia")
CLOCK_TOKENS = ("time", "hora", "heure", "zeit", "uhrzeit", "clock", "hour", "stunde")
YEAR_NAMES = ("year", "yr", "any", "ano", "anio", "anyo", "annee", "jahr", "ujahr", "year_of_incident", "any_accident")
MONTH_NAMES = ("month", "mes", "mes_any", "mes_ano", "mois", "monat", "umonat", "mth", "mon", "month_of_year")
DAY_NAMES = ("day", "dia", "dia_mes", "dia_del_mes", "jour", "tag", "day_of_month", "dom")
HOUR_NAMES = ("hour", "hora", "hora_dia", "heure", "stunde", "ustunde", "hr", "hour_of_day", "hora_del_dia")
WEEKDAY_TOKENS = ("setmana", "semana", "week", "wochentag", "semaine", "weekday", "dow", "nom", "name", "nombre")

SUBTYPE_TIERS: tuple[tuple[str, ...], ...] = (
    ("primary_type", "offense", "offence", "offense_type", "offence_type", "crime_type", "offense_description",
     "offence_description", "crime", "crime_category", "delito", "tipo_delito", "infraction", "straftat",
     "ucr_description", "nibrs_description", "offense_category",
     # Los Angeles (Crm Cd Desc), New York's complaints (OFNS_DESC), Philadelphia (text_general_code)
     "crm_cd_desc", "ofns_desc", "crime_description", "crime_desc", "offense_desc", "offence_desc",
     "text_general_code"),
    ("complaint_type", "incident_type", "incident_category", "call_type", "collision_type", "accident_type", "crash_type",
     "event_type", "contributing_factor_vehicle_1", "contributing_factor", "species", "disease", "diagnosis",
     "nature", "nature_of_call", "tipus_accident", "tipo_accidente", "cause"),
    ("category", "subtype", "sub_type", "type", "descriptor", "loc_cat", "class", "classification",
     "description", "tipus", "tipo", "categoria", "categorie", "typ", "kategorie"),
)
SUBTYPE_EXCLUDE_TOKENS = ("location", "address", "street", "vehicle", "status", "agency", "zip", "facility",
                          "borough", "id", "code", "premise", "city", "community", "park", "channel")
ID_NAMES = ("id", "unique_key", "collision_id", "case_number", "incident_id", "numero_expedient", "report_number",
            "incident_number", "case_id", "record_id", "event_id", "report_id", "crash_record_id", "objectid",
            "object_id", "fid", "expedient", "expediente", "num_expediente", "incident_num", "report_no", "cad_number",
            "rd_no", "uid", "key")
ID_TOKENS = ("id", "key", "expedient", "expediente", "uuid")
OUTCOME_SUBSTRINGS = ("present", "result", "positive", "wnv", "outcome")
OUTCOME_VALUES = {"0": False, "1": True, "true": True, "false": False, "yes": True, "no": False,
                  "positive": True, "negative": False, "pos": True, "neg": False}

# Place names people use: a block, street or address column (optional; names the hot spots).
# Best first: the hundred-block of police exports, then an address, then a bare street name.
PLACE_NAMES = ("block", "hundred_block", "block_address", "address_number_and_street",
               "incident_address", "street_address", "address", "direccion", "adresse",
               "adreca", "location_description_address", "on_street_name", "street_name",
               "nom_carrer", "nombre_calle", "calle", "carrer", "strasse", "street", "via",
               "rue")
PLACE_TOKENS = ("block", "address", "street", "carrer", "calle", "strasse", "adresse",
                "direccion")
