"""Column detection on its own: tiny hand-made tables in the layouts cities publish."""

from __future__ import annotations

import pandas as pd
import pytest

from safety_models.data.columns import ColumnMapping, detect_mapping
from safety_models.errors import MappingError


def table(columns: dict[str, list[str]], file_name: str = "export.csv") -> pd.DataFrame:
    """A table as read_table gives it: every column a string, the file's name in attrs."""
    df = pd.DataFrame(columns, dtype="str")
    df.attrs["file_name"] = file_name
    return df


CHICAGO = {
    "ID": ["10224738", "10224739", "10224740", "10224741"],
    "Date": ["09/05/2015 01:30:00 PM", "09/04/2015 11:30:00 AM", "09/01/2015 12:01:00 AM",
             "09/05/2015 12:45:00 PM"],
    "Primary Type": ["BATTERY", "THEFT", "THEFT", "BATTERY"],
    "Latitude": ["41.815117", "41.895080", "41.937406", "41.881903"],
    "Longitude": ["-87.670000", "-87.765400", "-87.716650", "-87.755121"],
}


def test_chicago_date_latitude_longitude():
    mapping = detect_mapping(table(CHICAGO))
    assert (mapping.time, mapping.lat, mapping.lon) == ("Date", "Latitude", "Longitude")
    assert mapping.date is mapping.location is mapping.x is None
    assert (mapping.subtype, mapping.source_id) == ("Primary Type", "ID")


def test_nyc_crash_date_plus_crash_time():
    mapping = detect_mapping(table({
        "CRASH DATE": ["09/11/2021", "03/26/2022", "11/01/2023", "06/29/2022"],
        "CRASH TIME": ["2:39", "11:45", "1:29", "6:55"],
        "LATITUDE": ["40.667202", "40.683304", "40.710000", "40.660000"],
        "LONGITUDE": ["-73.866500", "-73.917270", "-73.800000", "-73.900000"],
        "COLLISION_ID": ["4455765", "4513547", "4541903", "4542489"],
    }))
    assert (mapping.date, mapping.clock) == ("CRASH DATE", "CRASH TIME")
    assert mapping.time is None
    assert (mapping.lat, mapping.lon, mapping.source_id) == ("LATITUDE", "LONGITUDE", "COLLISION_ID")


BARCELONA = {
    "Numero_expedient": ["2016S001896", "2016S004886", "2016S000001", "2016S000002"],
    "Any": ["2016", "2016", "2016", "2016"],
    "Mes_any": ["3", "6", "1", "12"],
    "Dia_mes": ["9", "21", "1", "31"],
    "Hora_dia": ["15", "18", "0", "23"],
    "Coordenada_UTM_X": ["430011.68", "429686.94", "431000.50", "428000.10"],
    "Coordenada_UTM_Y": ["4587542.05", "4578924.07", "4581000.20", "4583000.90"],
}


def test_barcelona_year_month_day_hour_and_utm_metres_with_their_crs():
    mapping = detect_mapping(table(BARCELONA), ColumnMapping(crs="EPSG:25831"))
    assert (mapping.year, mapping.month, mapping.day, mapping.hour) == (
        "Any", "Mes_any", "Dia_mes", "Hora_dia")
    assert (mapping.x, mapping.y, mapping.crs) == ("Coordenada_UTM_X", "Coordenada_UTM_Y",
                                                   "EPSG:25831")
    assert mapping.time is mapping.lat is None
    assert mapping.source_id == "Numero_expedient"


def test_utm_metres_without_a_crs_ask_for_one():
    with pytest.raises(MappingError, match=r"bcn\.csv: .*look like UTM metres.*--crs EPSG:NNNN"):
        detect_mapping(table(BARCELONA, "bcn.csv"))


@pytest.mark.parametrize("columns, subtype", [
    ({"DATE OCC": ["03/01/2019 12:00:00 AM"] * 2, "Crm Cd": ["230", "310"],
      "Crm Cd Desc": ["ASSAULT WITH DEADLY WEAPON, AGGRAVATED ASSAULT", "BURGLARY"],
      "LAT": ["34.05", "34.06"], "LON": ["-118.25", "-118.24"]}, "Crm Cd Desc"),          # Los Angeles
    ({"CMPLNT_FR_DT": ["03/01/2019"] * 2, "OFNS_DESC": ["BURGLARY", "ROBBERY"],
      "PD_DESC": ["BURGLARY,RESIDENCE,DAY", "ROBBERY,OPEN AREA"],
      "Latitude": ["40.71", "40.72"], "Longitude": ["-74.0", "-73.99"]}, "OFNS_DESC"),     # New York
    ({"Incident Datetime": ["2019/03/01 08:15:00 AM"] * 2, "Incident Category": ["Larceny Theft", "Assault"],
      "Latitude": ["37.77", "37.78"], "Longitude": ["-122.41", "-122.42"]}, "Incident Category"),  # San Francisco
])
def test_offence_columns_of_large_cities_are_the_incident_type(columns, subtype):
    assert detect_mapping(table(columns)).subtype == subtype


def test_state_plane_feet_without_a_crs_name_state_plane_systems():
    """Portland's calls for service (the NIJ challenge's layout): x/y in Oregon North feet."""
    rows = {"CATEGORY": ["BURGLARY"] * 4, "occ_date": ["2016/03/01", "2016/03/01", "2016/03/02", "2016/03/03"],
            "x_coordinate": [7651114, 7648210, 7660553, 7655020], "y_coordinate": [679613, 683410, 671998, 690123]}
    with pytest.raises(MappingError, match=r"portland\.csv: .*look like US State Plane feet.*EPSG:2913.*--crs"):
        detect_mapping(table(rows, "portland.csv"))
    rows_illinois = dict(rows, x_coordinate=[1176437, 1172010, 1180115, 1168930],
                         y_coordinate=[1899632, 1901285, 1895003, 1910444])   # Chicago, Illinois East
    with pytest.raises(MappingError, match=r"may be US State Plane feet.*EPSG:3435"):
        detect_mapping(table(rows_illinois, "chicago.csv"))
    mapping = detect_mapping(table(rows, "portland.csv"), ColumnMapping(crs="EPSG:2913"))
    assert (mapping.x, mapping.y, mapping.date or mapping.time) == ("x_coordinate", "y_coordinate", "occ_date")


def test_a_lat_lon_pair_in_one_location_column():
    mapping = detect_mapping(table({
        "Incident Date": ["2019-03-01 08:15", "2019-03-01 09:30", "2019-03-02 22:05",
                          "2019-03-04 01:00"],
        "Location": ["(41.881, -87.631)", "(41.882, -87.629)", "(41.879, -87.633)",
                     "(41.885, -87.640)"],
    }))
    assert (mapping.time, mapping.location) == ("Incident Date", "Location")
    assert mapping.lat is mapping.lon is None


def test_overrides_win_over_detection():
    columns = {**CHICAGO, "Updated On": ["09/10/2015 01:30:00 PM"] * 4}
    assert detect_mapping(table(columns)).time == "Date"
    mapping = detect_mapping(table(columns), ColumnMapping(time="Updated On", subtype=""))
    assert mapping.time == "Updated On"
    assert mapping.subtype is None                   # "" means: no subtype column
    assert (mapping.lat, mapping.lon) == ("Latitude", "Longitude")   # still detected


def test_an_override_naming_a_missing_column_lists_the_columns_found():
    with pytest.raises(MappingError, match="'Lat' given for lat is not in the file") as err:
        detect_mapping(table(CHICAGO), ColumnMapping(lat="Lat"))
    assert err.value.columns_found == list(CHICAGO)


def test_no_time_column_names_the_file_and_the_columns_found():
    with pytest.raises(MappingError) as err:
        detect_mapping(table({"name": ["a", "b"], "value": ["x", "y"]}, "notes.csv"))
    message = str(err.value)
    assert message.startswith("notes.csv: could not find when the incidents happened")
    assert "Columns found: 'name', 'value'" in message and "--time-column" in message
    assert err.value.columns_found == ["name", "value"]


def test_no_location_column_names_the_columns_found():
    with pytest.raises(MappingError) as err:
        detect_mapping(table({"Date": CHICAGO["Date"], "Block": ["A", "B", "C", "D"]}, "x.csv"))
    assert "could not find where the incidents happened" in str(err.value)
    assert "Columns found: 'Date', 'Block'" in str(err.value)
    assert err.value.columns_found == ["Date", "Block"]


@pytest.mark.parametrize("columns, place", [
    ({**CHICAGO, "Block": ["010XX W MADISON ST", "0XX N STATE ST", "", "034XX S HALSTED ST"]},
     "Block"),
    # A block number alone is no place people read; the street address is.
    ({**CHICAGO, "Block": ["41", "12", "41", "7"],
      "AddressNumberAndStreet": ["4100  N OAK PARK AVE, Chicago, IL"] * 4}, "AddressNumberAndStreet"),
    # Houston's "block" is a hundred-block's numbers without its street: the address wins.
    ({**CHICAGO, "block": ["9600-9699", "4700-4799", "1-99", "9600-9699"],
      "address": ["9650 marlive ln", "4750 telephone rd", "50 main st", "9650 marlive ln"]}, "address"),
    ({**CHICAGO, "Nom carrer": ["Diagonal", "Aragó", "Balmes", "Diagonal"]}, "Nom carrer"),
    (CHICAGO, None),
])
def test_a_place_column_is_recognised_by_name(columns, place):
    assert detect_mapping(table(columns)).place == place


def test_a_place_override_of_none_keeps_no_place():
    columns = {**CHICAGO, "Block": ["010XX W MADISON ST"] * 4}
    assert detect_mapping(table(columns), ColumnMapping(place="")).place is None
    assert "place 'Block'" in detect_mapping(table(columns)).describe()
    assert ColumnMapping.from_dict({"time": "Date", "unknown": "x"}).place is None
