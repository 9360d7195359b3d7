"""Ingestion on tiny files whose right answers are known by hand (sources.py + ingest.py)."""

from __future__ import annotations

import hashlib
import gzip

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer

from safety_models.errors import FileUnusable, MappingError
from safety_models.data.ingest import (ColumnMapping, ParsedFile, detect_mapping, ingest_bytes, ingest_path, parse_incidents, read_incident_file, read_table)
from safety_models.schema import INCIDENT_COLUMNS, REJECT_COLUMNS

# Points in Chicago (lat, lon), a few km apart.
CHICAGO = [(41.8781, -87.6298), (41.7922, -87.6277), (41.7513, -87.6683), (41.9500, -87.7000), (41.8500, -87.6500)]


def csv_bytes(lines: list[str], encoding: str = "utf-8", newline: str = "\n") -> bytes:
    return (newline.join(lines) + newline).encode(encoding)


def parse(lines, category="crime", overrides=None, **kw) -> ParsedFile:
    return read_incident_file(csv_bytes(lines, **kw), "test.csv", category, overrides)


def times(parsed: ParsedFile) -> list[str]:
    return [t.strftime("%Y-%m-%d %H:%M") for t in parsed.accepted["occurred_at"]]


# --- reading --------------------------------------------------------------------------------

def test_read_table_sniffs_semicolon_latin1_crlf_and_strips_padding():
    data = csv_bytes(["Numero_expedient;Nom_districte;X", "2010S003688    ;Sant Martí;4584941,35",
                      "  2010S007597;Gràcia; 1,5 "], encoding="latin-1", newline="\r\n")
    df = read_table(data, "bcn.csv")
    assert list(df.columns) == ["Numero_expedient", "Nom_districte", "X"]
    assert df["Numero_expedient"].tolist() == ["2010S003688", "2010S007597"]
    assert df["Nom_districte"].tolist() == ["Sant Martí", "Gràcia"]
    assert df["X"].tolist() == ["4584941,35", "1,5"]


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_read_table_separators_and_quotes(sep):
    rows = [sep.join(["id", "name", "n"]), sep.join(["1", '"Smith, J; A|B"', "3"])]
    df = read_table(csv_bytes(rows), "t.csv")
    assert df.shape == (1, 3)
    assert df.loc[0, "name"] == "Smith, J; A|B"


def test_read_table_gzip_bom_and_cr_only_line_ends():
    raw = "\ufeffdate,lat\r2020-01-01,41.1\r2020-01-02,41.2\r".encode("utf-8")
    df = read_table(gzip.compress(raw), "t.csv.gz")
    assert list(df.columns) == ["date", "lat"]
    assert df["lat"].tolist() == ["41.1", "41.2"]
    assert df.attrs["file_name"] == "t.csv.gz"


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"  \n\n", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
    (b"date,lat,lon\n", "no data rows"),
])
def test_read_table_unusable_files_name_the_file(data, words):
    with pytest.raises(FileUnusable, match=words) as err:
        read_table(data, "bad.csv")
    assert "bad.csv" in str(err.value)


# --- time -----------------------------------------------------------------------------------

def test_iso_datetimes_and_counts():
    p = parse(["date,latitude,longitude,primary type",
               f"2010-01-01 00:05,{CHICAGO[0][0]},{CHICAGO[0][1]},BATTERY",
               f"2010-01-01T13:45:10,{CHICAGO[1][0]},{CHICAGO[1][1]},THEFT",
               f"2010-01-02,{CHICAGO[2][0]},{CHICAGO[2][1]},THEFT"])
    assert p.rows_read == 3 and len(p.accepted) == 3 and len(p.rejected) == 0
    assert list(p.accepted.columns) == list(INCIDENT_COLUMNS)
    assert times(p) == ["2010-01-01 00:05", "2010-01-01 13:45", "2010-01-02 00:00"]
    assert p.accepted["occurred_at"].dtype == "datetime64[ns]"
    assert p.accepted["subtype"].tolist() == ["BATTERY", "THEFT", "THEFT"]
    assert p.accepted["category"].tolist() == ["crime"] * 3
    assert p.mapping.time == "date" and p.mapping.lat == "latitude" and p.mapping.subtype == "primary type"


def test_timezone_suffix_keeps_clock_time_as_written():
    p = parse(["when,lat,lon",
               f"2023-01-31T14:38:00-05:00,{CHICAGO[0][0]},{CHICAGO[0][1]}",
               f"2023-01-31T23:10:00.000Z,{CHICAGO[1][0]},{CHICAGO[1][1]}"])
    assert times(p) == ["2023-01-31 14:38", "2023-01-31 23:10"]


def test_day_first_is_proved_by_a_day_above_12():
    p = parse(["fecha,lat,lon",
               f"01/02/2023 09:00,{CHICAGO[0][0]},{CHICAGO[0][1]}",
               f"31/01/2023 14:38,{CHICAGO[1][0]},{CHICAGO[1][1]}"])
    assert times(p) == ["2023-02-01 09:00", "2023-01-31 14:38"]


def test_ambiguous_slash_dates_are_month_first_and_dotted_dates_day_first():
    p = parse(["Date,lat,lon", f"01/02/2023 9:05 PM,{CHICAGO[0][0]},{CHICAGO[0][1]}",
               f"3/4/2023 1:20,{CHICAGO[1][0]},{CHICAGO[1][1]}"])
    assert times(p) == ["2023-01-02 21:05", "2023-03-04 01:20"]
    p = parse(["Datum;lat;lon", f"01.02.2023 09:00;{CHICAGO[0][0]};{CHICAGO[0][1]}"])
    assert times(p) == ["2023-02-01 09:00"]


def test_separate_date_and_time_columns():
    p = parse(["CRASH DATE,CRASH TIME,LATITUDE,LONGITUDE,COLLISION_ID",
               f"01/01/2023,14:38,{CHICAGO[0][0]},{CHICAGO[0][1]},4594563",
               f"01/31/2023,8:04,{CHICAGO[1][0]},{CHICAGO[1][1]},4594599",
               f"01/15/2023,,{CHICAGO[2][0]},{CHICAGO[2][1]},4594600"])
    assert p.mapping.date == "CRASH DATE" and p.mapping.clock == "CRASH TIME" and p.mapping.time is None
    assert times(p) == ["2023-01-01 14:38", "2023-01-31 08:04", "2023-01-15 00:00"]
    assert p.accepted["source_key"].tolist() == ["4594563", "4594599", "4594600"]


def test_year_month_day_hour_columns_semicolon_decimal_comma_latin1():
    lines = ["Numero_expedient;Nom_districte;Descripcio_dia_setmana;Any;Mes_any;Nom_mes;Dia_mes;Hora_dia;Latitud;Longitud",
             "2010S003688    ;Sant Martí;Divendres;2010;5;Maig;28;19;41,411298;2,185462",
             "2010S007597    ;Sant Martí;Dilluns;2010;11;Novembre;8;11;41,412201;2,185412",
             "2010S000001    ;Gràcia;Dijous;2010;12;Desembre;31;0;41,40;2,15"]
    p = parse(lines, category="traffic", encoding="latin-1")
    m = p.mapping
    assert (m.year, m.month, m.day, m.hour) == ("Any", "Mes_any", "Dia_mes", "Hora_dia")
    assert times(p) == ["2010-05-28 19:00", "2010-11-08 11:00", "2010-12-31 00:00"]
    assert p.accepted["latitude"].tolist() == [41.411298, 41.412201, 41.40]
    assert p.accepted["longitude"].tolist() == [2.185462, 2.185412, 2.15]
    assert p.accepted["source_key"].tolist() == ["2010S003688", "2010S007597", "2010S000001"]


@pytest.mark.parametrize("names", [("year", "month", "day", "hour"), ("Año", "Mes", "Día", "Hora"),
                                   ("Annee", "Mois", "Jour", "Heure"), ("Jahr", "Monat", "Tag", "Stunde")])
def test_year_month_day_names_in_several_languages(names):
    header = ",".join([*names, "lat", "lon"])
    p = parse([header, f"2021,3,14,7,{CHICAGO[0][0]},{CHICAGO[0][1]}"])
    assert times(p) == ["2021-03-14 07:00"]


def test_unparseable_and_missing_time_rows_are_rejected_with_row_numbers():
    p = parse(["date,lat,lon",
               f"2020-05-01 10:00,{CHICAGO[0][0]},{CHICAGO[0][1]}",
               f"not a date,{CHICAGO[1][0]},{CHICAGO[1][1]}",
               f",{CHICAGO[2][0]},{CHICAGO[2][1]}",
               f"2020-05-02 11:00,{CHICAGO[3][0]},{CHICAGO[3][1]}"])
    assert (p.rows_read, len(p.accepted), len(p.rejected)) == (4, 2, 2)
    assert p.rejected["row_number"].tolist() == [2, 3]
    assert p.rejected["reason"].tolist() == ["unparseable time", "missing time"]
    assert list(p.rejected.columns) == ["date", "lat", "lon", *REJECT_COLUMNS]
    assert p.rejected.loc[0, "date"] == "not a date"


def test_only_types_keeps_one_offence_and_accounts_for_the_rest():
    """A calls-for-service export of several offences, loaded for a burglary map."""
    lines = ["occ_date,CATEGORY,lat,lon",
             f"2016/03/01,BURGLARY,{CHICAGO[0][0]},{CHICAGO[0][1]}",
             f"2016/03/01,STREET CRIMES,{CHICAGO[1][0]},{CHICAGO[1][1]}",
             f"2016/03/02, Burglary ,{CHICAGO[2][0]},{CHICAGO[2][1]}",
             f"2016/03/02,MOTOR VEHICLE THEFT,{CHICAGO[3][0]},{CHICAGO[3][1]}",
             f"not a date,BURGLARY,{CHICAGO[4][0]},{CHICAGO[4][1]}"]
    p = read_incident_file(csv_bytes(lines), "cfs.csv", "crime", only_types=["burglary"])
    assert p.accepted["subtype"].tolist() == ["BURGLARY", "Burglary"]
    assert p.rejected["row_number"].tolist() == [2, 4, 5]
    assert p.rejected["reason"].tolist() == ["not one of the incident types asked for"] * 2 + ["unparseable time"]
    both = read_incident_file(csv_bytes(lines), "cfs.csv", "crime",
                              only_types=["BURGLARY", "motor vehicle theft"])
    assert len(both.accepted) == 3
    with pytest.raises(FileUnusable, match=r"cfs\.csv: no row has the type 'arson' in the column 'CATEGORY'; "
                                           r"its most common types are 'BURGLARY' \(2 rows\)"):
        read_incident_file(csv_bytes(lines), "cfs.csv", "crime", only_types=["Arson"])
    untyped = ["date,lat,lon", f"2016-03-01,{CHICAGO[0][0]},{CHICAGO[0][1]}"]
    with pytest.raises(MappingError, match=r"plain\.csv: only the types burglary .*--type-column"):
        read_incident_file(csv_bytes(untyped), "plain.csv", "crime", only_types=["BURGLARY"])


def test_a_file_loaded_for_some_types_is_not_silently_taken_as_loaded_for_others(store):
    data = csv_bytes(["occ_date,CATEGORY,lat,lon",
                      f"2016/03/01,BURGLARY,{CHICAGO[0][0]},{CHICAGO[0][1]}",
                      f"2016/03/02,STREET CRIMES,{CHICAGO[1][0]},{CHICAGO[1][1]}"])
    first = ingest_bytes(store, data, "cfs.csv", "crime", only_types=["Burglary"])
    assert (first.accepted, first.rejected) == (1, 1)
    assert store.upload_mapping(first.upload_id)["only_types"] == ["burglary"]
    assert store.list_uploads()["only_types"].tolist() == [["burglary"]]
    again = ingest_bytes(store, data, "cfs.csv", "crime", only_types=[" BURGLARY"])
    assert again.already_loaded and again.accepted == 0
    with pytest.raises(FileUnusable, match=r"already loaded as upload #1, keeping only the types "
                                           r"'burglary'; this load asked for every incident type"):
        ingest_bytes(store, data, "cfs.csv", "crime")
    assert store.incident_counts()["crime"] == 1, "nothing added, nothing lost"


def test_one_map_does_not_mix_a_choice_of_types_with_every_type(store):
    """A burglary-only upload, then a file of every offence for the same category: refused
    (one map of neither); the same choice again, or a blank choice on a fresh category, loads."""
    def rows(day):
        return csv_bytes(["occ_date,CATEGORY,lat,lon",
                          f"2016/03/{day:02d},BURGLARY,{CHICAGO[0][0]},{CHICAGO[0][1]}",
                          f"2016/03/{day:02d},STREET CRIMES,{CHICAGO[1][0]},{CHICAGO[1][1]}"])
    ingest_bytes(store, rows(1), "march01.csv", "crime", only_types=["BURGLARY"])
    with pytest.raises(FileUnusable, match=r"march02\.csv: the crime map is made from uploads that keep "
                                           r"only the types 'burglary' \(upload #1, march01\.csv\), "
                                           r"and this load asks for every incident type"):
        ingest_bytes(store, rows(2), "march02.csv", "crime")
    assert ingest_bytes(store, rows(2), "march02.csv", "crime", only_types=["burglary"]).accepted == 1
    blank = ingest_bytes(store, rows(3), "march03.csv", "traffic", only_types=[" "])
    assert blank.accepted == 2, "a blank choice is no choice: every type"


def test_all_dates_bad_is_unusable_and_says_why():
    lines = ["date,lat,lon"] + [f"foo{i},{CHICAGO[i % 5][0]},{CHICAGO[i % 5][1]}" for i in range(3)]
    df = read_table(csv_bytes(lines), "bad.csv")
    mapping = ColumnMapping(time="date", lat="lat", lon="lon")
    with pytest.raises(FileUnusable) as err:
        parse_incidents(df, mapping, "crime", "bad.csv")
    assert str(err.value).startswith("bad.csv: all 3 rows rejected: unparseable time (3); e.g. row 1: 'foo0' in column 'date'")


# --- location -------------------------------------------------------------------------------

def test_location_column_lat_lon_pair():
    p = parse(["ID,Date,Primary Type,Location",
               '11,01/31/2023 02:38:00 PM,THEFT,"(41.8, -87.6)"',
               '12,01/31/2023 03:00:00 PM,THEFT,"(41.85, -87.65)"',
               "13,01/31/2023 04:00:00 PM,THEFT,"])
    assert p.mapping.location == "Location"
    assert p.accepted["latitude"].tolist() == [41.8, 41.85]
    assert p.accepted["longitude"].tolist() == [-87.6, -87.65]
    assert p.rejected["reason"].tolist() == ["missing coordinates"]
    assert times(p)[0] == "2023-01-31 14:38"


def test_wkt_point_column():
    p = parse(["created,geom", "2025-03-14 01:20,POINT (-73.88182509318824 40.65651333701598)",
               "2025-03-14 00:44,POINT (-73.76748678 40.70349715)", "2025-03-14 00:50,POINT (nonsense)"])
    assert p.mapping.location == "geom"
    assert np.allclose(p.accepted["latitude"], [40.65651333701598, 40.70349715])
    assert np.allclose(p.accepted["longitude"], [-73.88182509318824, -73.76748678])
    assert p.rejected["reason"].tolist() == ["unparseable coordinates"]


def test_lat_lon_columns_holding_each_others_values_are_swapped_by_content():
    # Houston-like: "lat" holds longitudes (|v| > 90), "lon" holds latitudes.
    p = parse(["time,lat,lon", "2010-01-01 00:00,-95.4373883,29.6779015", "2010-01-01 01:00,-95.2988769,29.6917121"])
    assert (p.mapping.lat, p.mapping.lon) == ("lon", "lat")
    assert p.accepted["latitude"].tolist() == [29.6779015, 29.6917121]


def test_zero_and_far_away_points_are_outside_the_data_area():
    lines = ["date,lat,lon"] + [f"2010-01-0{i + 1} 10:00,{la},{lo}" for i, (la, lo) in enumerate(CHICAGO)]
    lines += ["2010-01-06 10:00,0,0", "2010-01-07 10:00,37.3369,-99.50555", "2010-01-08 10:00,abc,-87.6",
              "2010-01-09 10:00,,-87.6", "2010-01-10 10:00,141.9,-87.6"]
    p = parse(lines)
    assert (p.rows_read, len(p.accepted)) == (10, 5)
    assert p.rejected[["row_number", "reason"]].values.tolist() == [
        [6, "coordinates outside the data's area"], [7, "coordinates outside the data's area"],
        [8, "unparseable coordinates"], [9, "missing coordinates"], [10, "coordinates outside the data's area"]]


def test_bulk_keeps_outer_neighbourhoods():
    # 300 points over a 40 km city; an outer point 15 km beyond the edge stays, one 150 km away goes.
    rng = np.random.default_rng(0)
    lat = 41.65 + rng.random(300) * 0.36
    lon = -87.90 + rng.random(300) * 0.38
    rows = [f"2020-01-01 10:00,{a:.5f},{b:.5f}" for a, b in zip(lat, lon)]
    rows += ["2020-01-01 10:00,41.52,-87.60", "2020-01-01 10:00,40.60,-87.60"]
    p = parse(["date,lat,lon", *rows])
    assert len(p.accepted) == 301
    assert p.rejected["row_number"].tolist() == [302]


def utm31(lat, lon, crs="EPSG:32631"):
    return Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)


BCN = [(41.411298, 2.185462), (41.3870, 2.1700), (41.4036, 2.1744), (41.3750, 2.1490)]


def test_projected_xy_with_crs_round_trips_within_a_metre():
    # decimal commas inside a comma-separated file are quoted
    lines = ["Any,Mes_any,Dia_mes,Hora_dia,Coordenada_UTM_X,Coordenada_UTM_Y"] + [
        "2019,6,1,12,\"{}\",\"{}\"".format(*(f"{v:.2f}".replace(".", ",") for v in utm31(la, lo))) for la, lo in BCN]
    data = csv_bytes(lines)
    with pytest.raises(MappingError, match=r"--crs EPSG") as err:
        read_incident_file(data, "utm.csv", "traffic")
    assert "'Coordenada_UTM_X'" in str(err.value) and "utm.csv" in str(err.value)
    p = read_incident_file(data, "utm.csv", "traffic", ColumnMapping(crs="EPSG:32631"))
    assert (p.mapping.x, p.mapping.y, p.mapping.crs) == ("Coordenada_UTM_X", "Coordenada_UTM_Y", "EPSG:32631")
    assert len(p.accepted) == 4
    for (la, lo), got_la, got_lo in zip(BCN, p.accepted["latitude"], p.accepted["longitude"]):
        assert abs(got_la - la) * 111_320 < 1.0 and abs(got_lo - lo) * 111_320 * np.cos(np.radians(la)) < 1.0


def test_swapped_utm_columns_are_detected_and_recorded():
    # Barcelona 2010-2015: the "X" column holds northings (~4.58e6) and "Y" eastings; -1 = unknown.
    lines = ["Numero_expedient;Any;Mes_any;Dia_mes;Hora_dia;Coordenada_UTM_X;Coordenada_UTM_Y"]
    for i, (la, lo) in enumerate(BCN):
        x, y = utm31(la, lo)
        lines.append(f"E{i};2010;5;28;19;{y:.2f};{x:.2f}".replace(".", ","))
    lines.append("E9;2010;5;28;19;-1;-1")
    p = parse(lines, category="traffic", overrides=ColumnMapping(crs="EPSG:32631"))
    assert (p.mapping.x, p.mapping.y) == ("Coordenada_UTM_Y", "Coordenada_UTM_X")
    assert np.allclose(p.accepted["latitude"], [b[0] for b in BCN], atol=1e-5)
    assert np.allclose(p.accepted["longitude"], [b[1] for b in BCN], atol=1e-5)
    assert p.rejected[["row_number", "reason"]].values.tolist() == [[5, "missing coordinates"]]


def test_broken_lat_lon_fall_back_to_utm():
    # Barcelona 2016+: Longitud/Latitud with thousands dots ("2.129.612") are unusable.
    lines = ["Any;Mes_any;Dia_mes;Hora_dia;Coordenada_UTM_X;Coordenada_UTM_Y;Longitud;Latitud"]
    for la, lo in BCN:
        x, y = utm31(la, lo)
        lines.append(f"2017;10;13;8;{x:.2f};{y:.2f};".replace(".", ",") + "212.562.442;4.134.004.482")
    p = parse(lines, category="traffic", overrides=ColumnMapping(crs="EPSG:32631"))
    assert p.mapping.lat is None and (p.mapping.x, p.mapping.y) == ("Coordenada_UTM_X", "Coordenada_UTM_Y")
    assert np.allclose(p.accepted["latitude"], [b[0] for b in BCN], atol=1e-5)


def test_no_location_columns_lists_the_columns():
    data = csv_bytes(["Station,Date,Tmax,Tmin", "1,5/1/2007,83,50", "2,5/1/2007,84,52"])
    with pytest.raises(MappingError) as err:
        read_incident_file(data, "weather.csv", "health")
    msg = str(err.value)
    assert msg.startswith("weather.csv:") and "'Station', 'Date', 'Tmax', 'Tmin'" in msg
    assert "--lat-column/--lon-column" in msg and "--crs" in msg
    assert err.value.columns_found == ["Station", "Date", "Tmax", "Tmin"]


def test_no_time_column_lists_the_columns():
    with pytest.raises(MappingError, match=r"--time-column") as err:
        parse(["name,lat,lon", f"a,{CHICAGO[0][0]},{CHICAGO[0][1]}"])
    assert "'name', 'lat', 'lon'" in str(err.value)


def test_wide_area_rate_table_is_explained():
    header = "week_ending," + ",".join(f"CASERATE_{z}" for z in range(10001, 10031))
    row = "03/14/2020," + ",".join(str(z / 7) for z in range(30))
    with pytest.raises(MappingError, match="table of values per area"):
        parse([header, row, row])


# --- overrides, subtype, id, outcome -------------------------------------------------------

def test_overrides_win_and_unknown_override_columns_are_named():
    lines = ["reported,occurred,lat,lon,kind", f"2020-01-02 10:00,2020-01-01 09:00,{CHICAGO[0][0]},{CHICAGO[0][1]},A"]
    assert times(parse(lines, overrides=ColumnMapping(time="reported"))) == ["2020-01-02 10:00"]
    p = parse(lines, overrides=ColumnMapping(subtype=""))
    assert p.mapping.subtype is None and p.accepted["subtype"].tolist() == [""]
    with pytest.raises(MappingError, match=r"'nope' given for time is not in the file; columns found: 'reported'"):
        parse(lines, overrides=ColumnMapping(time="nope"))
    with pytest.raises(MappingError, match="EPSG"):
        parse(lines, overrides=ColumnMapping(crs="EPSG:999999999"))


def test_subtype_prefers_offense_over_generic_type():
    p = parse(["time_local,offense,type,premise,lat,lon",
               f"2010-01-01 00:00,murder,ln,18A,{CHICAGO[0][0]},{CHICAGO[0][1]}",
               f"2010-01-01 01:00,robbery,rd,13R,{CHICAGO[1][0]},{CHICAGO[1][1]}"])
    assert p.mapping.subtype == "offense"
    assert p.accepted["subtype"].tolist() == ["murder", "robbery"]


def test_source_key_is_the_id_or_a_hash_of_the_raw_row():
    lines = ["date,lat,lon", f"2020-01-01 10:00,{CHICAGO[0][0]},{CHICAGO[0][1]}",
             f"2020-01-01 10:00,{CHICAGO[0][0]},{CHICAGO[0][1]}", f"2020-01-01 11:00,{CHICAGO[0][0]},{CHICAGO[0][1]}"]
    keys = parse(lines).accepted["source_key"].tolist()
    # Identical rows are two events: the second gets the hash numbered by its occurrence.
    assert len(keys[0]) == 40 and keys[1] == keys[0] + "#2" and keys[2] not in keys[:2]


def test_negative_test_results_are_not_events():
    p = parse(['"Date","Species","Trap","Latitude","Longitude","NumMosquitos","WnvPresent"',
               f'2007-05-29,"CULEX PIPIENS",T002,{CHICAGO[0][0]},{CHICAGO[0][1]},1,0',
               f'2007-05-29,"CULEX RESTUANS",T002,{CHICAGO[0][0]},{CHICAGO[0][1]},4,1',
               f'2007-06-05,"CULEX PIPIENS",T003,{CHICAGO[1][0]},{CHICAGO[1][1]},50,1'], category="health")
    assert p.mapping.outcome == "WnvPresent" and p.mapping.subtype == "Species"
    assert (len(p.accepted), len(p.rejected)) == (2, 1)
    assert p.rejected[["row_number", "reason"]].values.tolist() == [[1, "negative test result"]]
    assert "negatives skipped" in p.mapping.describe()


def test_mapping_round_trips_through_a_dict():
    m = ColumnMapping(date="CRASH DATE", clock="CRASH TIME", lat="LATITUDE", lon="LONGITUDE", outcome="x")
    assert ColumnMapping.from_dict({**m.to_dict(), "unknown_key": 1}) == m


def test_detect_mapping_on_a_dataframe_directly():
    df = pd.DataFrame({"Created Date": ["3/14/2025 1:20"], "Closed Date": ["3/15/2025 1:20"],
                       "Latitude": ["40.65"], "Longitude": ["-73.88"], "Unique Key": ["64345465"]})
    m = detect_mapping(df)
    assert (m.time, m.lat, m.lon, m.source_id) == ("Created Date", "Latitude", "Longitude", "Unique Key")


# --- store hand-off -------------------------------------------------------------------------

class FakeStore:
    def __init__(self):
        self.calls = []

    def add_upload(self, file_name, data, category, accepted, rejected, rows_read, mapping, is_demo=False,
                   checksum=None):
        self.calls.append(dict(file_name=file_name, data=data, category=category, accepted=accepted,
                               rejected=rejected, rows_read=rows_read, mapping=mapping, is_demo=is_demo,
                               checksum=checksum))
        return "summary"

    def find_upload(self, data, category, file_name=None):
        return None

    def list_uploads(self):
        return pd.DataFrame(columns=["upload_id", "file_name", "category", "is_demo", "only_types"])


def test_ingest_bytes_and_path_hand_the_tables_to_the_store(tmp_path):
    data = csv_bytes(["date,lat,lon", f"2020-01-01 10:00,{CHICAGO[0][0]},{CHICAGO[0][1]}", "2020-01-01 11:00,,"])
    store = FakeStore()
    assert ingest_bytes(store, data, "a.csv", "crime") == "summary"
    call = store.calls[0]
    assert (call["file_name"], call["data"], call["category"], call["rows_read"]) == ("a.csv", data, "crime", 2)
    assert len(call["accepted"]) == 1 and call["rejected"]["reason"].tolist() == ["missing coordinates"]
    assert call["mapping"]["time"] == "date" and call["is_demo"] is False
    path = tmp_path / "b.csv"
    path.write_bytes(data)
    ingest_path(store, path, "traffic")
    assert store.calls[1]["file_name"] == "b.csv" and store.calls[1]["category"] == "traffic"
    # a file on disk is handed over as its path and the checksum of the bytes parsed
    # (the store copies the file itself; its bytes are not kept in memory meanwhile)
    assert store.calls[1]["data"] == path
    assert store.calls[1]["checksum"] == hashlib.sha256(data).hexdigest()
    assert len(store.calls[1]["accepted"]) == 1
    with pytest.raises(FileUnusable, match="missing.csv"):
        ingest_path(store, tmp_path / "missing.csv", "crime")


# --- speed ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_million_rows_parse_completely():
    # Correctness at scale only; the rate is measured by benchmarks/bench_ingest.py.
    n = 1_000_000
    rng = np.random.default_rng(1)
    minutes = rng.integers(0, 60 * 24 * 365, n)
    when = (pd.Timestamp("2020-01-01") + pd.to_timedelta(minutes, unit="min")).strftime("%m/%d/%Y %I:%M:%S %p")
    df = pd.DataFrame({"ID": np.arange(n).astype(str), "Date": when,
                       "Primary Type": rng.choice(["THEFT", "BATTERY", "ASSAULT"], n),
                       "Latitude": (41.65 + rng.random(n) * 0.36).round(6).astype(str),
                       "Longitude": (-87.9 + rng.random(n) * 0.38).round(6).astype(str)})
    data = df.to_csv(index=False).encode()
    p = read_incident_file(data, "big.csv", "crime")
    assert len(p.accepted) == n
    assert p.accepted["occurred_at"].min() >= pd.Timestamp("2020-01-01")


def test_month_only_dates_fall_on_the_first_of_the_month():
    # police.uk layout: "Month" holds 2023-01; Crime ID is empty for anti-social behaviour
    p = parse(["Crime ID,Month,Longitude,Latitude,Location,Crime type,Last outcome category",
               ",2023-01,-1.549,53.800,On or near Park Row,Anti-social behaviour,",
               "abc123,2023-02,-1.540,53.795,On or near Boar Lane,Burglary,Under investigation"])
    assert (p.mapping.time, p.mapping.subtype, p.mapping.outcome) == ("Month", "Crime type", None)
    assert times(p) == ["2023-01-01 00:00", "2023-02-01 00:00"]


def test_a_place_column_is_kept_with_each_accepted_incident(store):
    csv = (b"ID,Date,Block,Latitude,Longitude\n"
           b"1,2024-01-01 10:00,010XX  W MADISON ST ,41.88,-87.65\n"
           b"2,2024-01-01 11:00,,41.89,-87.66\n"
           b"3,2024-01-02 12:00,0XX N STATE ST,,\n")
    parsed = read_incident_file(csv, "blocks.csv", "crime")
    assert parsed.mapping.place == "Block"
    assert list(parsed.accepted["place"]) == ["010XX W MADISON ST", ""]   # spaces collapsed
    ingest_bytes(store, csv, "blocks.csv", "crime")
    assert list(store.incident_places("crime")["place"]) == ["010XX W MADISON ST"]


# --- nothing lost, nothing silently wrong (issue 12) ------------------------------------------

def chicago_rows(n: int, start_day: int = 1) -> list[str]:
    """n well-formed rows id,date,lat,lon,type (distinct ids, times and places)."""
    return [f"R{i},2019-03-{start_day + i % 27:02d} {i % 24:02d}:15,"
            f"{CHICAGO[i % 5][0] + 0.001 * i:.5f},{CHICAGO[i % 5][1]:.5f},theft" for i in range(n)]


HEADER = "id,date,latitude,longitude,type"


def test_an_unbalanced_quote_rejects_its_line_and_every_other_line_is_read():
    lines = chicago_rows(10)
    lines[4] = lines[4].replace(",theft", ',"theft')          # opens a quote that never closes
    p = parse([HEADER, *lines])
    # Every line of the input: 9 accepted, 1 rejected (nothing swallowed into a cell).
    assert (p.rows_read, len(p.accepted), len(p.rejected)) == (10, 9, 1)
    assert p.rejected[["row_number", "reason"]].values.tolist() == [
        [5, "unbalanced quote (a quoted value that never closes)"]]
    assert p.rejected.loc[0, "id"] == "R4" and p.rejected.loc[0, "type"] == '"theft'
    assert not p.accepted["subtype"].str.contains("\n").any()


def test_two_stray_quotes_do_not_merge_the_lines_between_them():
    lines = chicago_rows(8)
    lines[1] = lines[1].replace(",theft", ',"theft')
    lines[5] = lines[5].replace(",theft", ',theft"')          # a quote that would "close" it
    p = parse([HEADER, *lines])
    assert (p.rows_read, len(p.accepted) + len(p.rejected)) == (8, 8)
    assert p.rejected["row_number"].tolist() == [2]
    assert sorted(p.accepted["source_key"]) == sorted(f"R{i}" for i in range(8) if i != 1)


def test_quoted_values_with_line_breaks_stay_one_row_and_ragged_lines_are_rejected():
    lines = [HEADER, 'R1,2019-03-01 10:00,41.88,-87.63,"theft\nfrom a car"',
             "R2,2019-03-01 11:00,41.88,-87.63,theft,extra,fields",
             "R3,2019-03-01 12:00,41.88",
             "", "R4,2019-03-01 13:00,41.89,-87.64,theft"]
    p = parse(lines)
    assert p.rows_read == 4 and p.accepted["subtype"].tolist() == ["theft\nfrom a car", "theft"]
    # Row numbers are lines below the header, so the user finds the line in the file.
    assert p.rejected[["row_number", "reason"]].values.tolist() == [
        [3, "wrong number of fields for the header"], [4, "wrong number of fields for the header"]]


def test_lines_of_utf8_and_latin1_in_one_file_both_read_right():
    data = (f"{HEADER},comuna\n".encode()
            + "A1,2019-03-01 10:00,41.88,-87.63,robo,Peñalolén\n".encode("utf-8")
            + "A2,2019-03-01 11:00,41.88,-87.63,robo,Peñalolén\n".encode("latin-1")
            + "A3,2019-03-01 12:00,41.88,-87.63,robo,Ñuñoa\n".encode("utf-8"))
    assert read_table(data, "mixed.csv")["comuna"].tolist() == ["Peñalolén", "Peñalolén", "Ñuñoa"]


@pytest.mark.parametrize("when", ["1900-01-01 00:00", "1969-12-31 23:59", "2200-01-01 10:00",
                                  "tomorrow+2"])
def test_implausible_times_are_rejected(when):
    if when == "tomorrow+2":
        when = (pd.Timestamp.now() + pd.Timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    lines = chicago_rows(5)
    lines[2] = f"R2,{when},41.88,-87.63,theft"
    p = parse([HEADER, *lines])
    assert p.rejected[["row_number", "reason"]].values.tolist() == [[3, "time outside the plausible range"]]
    assert len(p.accepted) == 4


def test_plausible_start_is_configurable_and_now_is_accepted():
    now = pd.Timestamp.now().floor("min").strftime("%Y-%m-%d %H:%M")
    lines = [HEADER, "R1,1970-01-01 00:00,41.88,-87.63,theft", f"R2,{now},41.88,-87.63,theft",
             "R3,1999-06-01 10:00,41.88,-87.63,theft"]
    assert len(parse(lines).accepted) == 3
    p = read_incident_file(csv_bytes(lines), "t.csv", "crime", earliest="2000-01-01")
    assert p.rejected["row_number"].tolist() == [1, 3] and len(p.accepted) == 1


def test_a_few_rows_geocoded_to_another_city_are_rejected_in_a_small_file():
    # 12 Chicago rows and three identical rows ~1,100 km away (Atlanta): the old box read the
    # 2nd lowest/highest values and so took Atlanta into "the data's area".
    lines = chicago_rows(12) + ["X1,2019-03-05 10:00,33.749,-84.388,theft"] * 3
    p = parse([HEADER, *lines])
    assert len(p.accepted) == 12
    assert p.rejected[["row_number", "reason"]].values.tolist() == [
        [13, "coordinates outside the data's area"], [14, "coordinates outside the data's area"],
        [15, "coordinates outside the data's area"]]
    # A city-wide spread (40 km) is kept whole, even in five rows.
    five = [HEADER, *(f"Q{i},2019-03-01 10:00,{41.65 + 0.09 * i},-87.70,theft" for i in range(5))]
    assert len(parse(five).accepted) == 5


def test_a_single_occurrence_time_wins_over_a_window():
    # Crime Open Database layout, and LA's DATE OCC beside Date Rptd.
    p = parse(["uid,offense_type,date_single,date_start,date_end,longitude,latitude",
               "1,assault,2016-01-02 10:30,2016-01-01 22:00,2016-01-02 11:00,-87.63,41.88",
               "2,assault,2016-01-03 12:00,2016-01-03 09:00,2016-01-03 15:00,-87.64,41.87"])
    assert p.mapping.time == "date_single"
    assert times(p) == ["2016-01-02 10:30", "2016-01-03 12:00"]
    p = parse(["DR_NO,Date Rptd,DATE OCC,LAT,LON",
               "1,01/05/2020 00:00,01/01/2020 22:00,34.05,-118.25",
               "2,01/09/2020 00:00,01/08/2020 13:00,34.06,-118.24"])
    assert p.mapping.time == "DATE OCC"


def test_identical_rows_without_an_id_are_separate_events():
    row = "2019-03-01 10:00,41.88,-87.63,noise complaint"
    p = parse(["date,lat,lon,type", row, row, row, "2019-03-01 11:00,41.88,-87.63,noise complaint"])
    keys = p.accepted["source_key"].tolist()
    assert len(set(keys)) == 4 and keys[1:3] == [keys[0] + "#2", keys[0] + "#3"]


REFUSAL_SCRIPT = r"""
import json, resource, sys, time
from safety_models.data.ingest import read_incident_file
from safety_models.errors import UserError
mb = 1_000_000
files = {
    "one line of commas": (",".join(f"c{i}" for i in range(200_000))).encode()[:mb],
    "one line of text": (b"lorem ipsum dolor sit amet " * 40_000)[:mb],
    "one line of JSON": ("[" + ",".join('{"a": %d, "b": "x;y"}' % i for i in range(60_000)) + "]").encode()[:mb],
    "every line an unbalanced quote": b"date,lat,lon\n" + b'"2019-01-01,41.8,-87.6\n' * 40_000,
}
out = {}
for name, data in files.items():
    start = time.perf_counter()
    try:
        read_incident_file(data, "big.csv", "crime")
        refused = None
    except UserError as err:
        refused = type(err).__name__
    out[name] = {"seconds": time.perf_counter() - start, "refused": refused}
try:   # this process's peak (ru_maxrss would count the forking pytest process too)
    status = open("/proc/self/status").read()
    peak_kb = int(status.split("VmHWM:")[1].split()[0])
except (OSError, IndexError):
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out["max_rss_mb"] = peak_kb / 1024
print(json.dumps(out))
"""


def test_unusable_one_megabyte_files_are_refused_within_a_second_and_200_mb():
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", REFUSAL_SCRIPT], capture_output=True, text=True,
                          cwd=repo, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result.pop("max_rss_mb") <= 200     # the whole process, imports included
    for name, got in result.items():
        assert got["refused"] == "FileUnusable", name
        assert got["seconds"] <= 1.0, (name, got)


def test_a_symbolic_link_loop_is_a_message_not_a_traceback(tmp_path):
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    with pytest.raises(FileUnusable, match="symbolic link that leads back to itself") as err:
        ingest_path(FakeStore(), loop, "crime")
    assert str(loop) in str(err.value)


def test_a_file_whose_every_line_is_unreadable_is_refused_saying_why():
    data = csv_bytes(["date,lat,lon", '"2019-01-01,41.8,-87.6', '"2019-01-02,41.8,-87.6'])
    with pytest.raises(FileUnusable, match="none of its 2 rows could be split into the 3 columns") as err:
        read_incident_file(data, "quotes.csv", "crime")
    assert "unbalanced quote" in str(err.value) and "quotes.csv" in str(err.value)


@pytest.mark.parametrize("data", [
    b"\xef\xbb\xbf\n \n\xc2\xa0\nid,date,place\r\n1,2020-01-01,\xc3\x89glise  St\r\n2,2020-01-02,x\r\n",
    b"id;date\r1;2020-01-01\r2;\"2020-01-02\"\r",
    b"id,date,note\n1,2020-01-01,\"two\nlines\"\n2,2020-01-02,\n\n3,2020-01-03,\"open\n",
    b"id,date\n\xc2\xa0\n",          # only a no-break space below the header
    b"id,date",                       # a header alone
])
def test_utf8_files_are_read_in_place_exactly_as_through_their_text(data, monkeypatch):
    """A UTF-8 file is read where its bytes lie (no text of the whole file): the same rows,
    row numbers, unreadable lines and refusals as the decode-everything path gives."""
    from safety_models.data import reading

    def outcome():
        try:
            rows = reading.read_rows(data, "f.csv")
        except FileUnusable as err:
            return str(err)
        return (rows.frame.to_dict("list"), rows.row_numbers.tolist(), rows.unreadable,
                rows.frame.attrs)

    assert reading._split_utf8(data, "f.csv") is not None
    in_place = outcome()
    monkeypatch.setattr(reading, "_split_utf8", lambda data, file_name: None)
    assert in_place == outcome()


def test_a_place_has_its_whitespace_collapsed_as_python_would():
    from safety_models.data.ingest import clean_place

    spaces = "".join(chr(i) for i in range(0x3001) if chr(i).isspace())
    values = pd.Series([f"{spaces}100 N{spaces}STATE\u00a0ST ", "  ", "NA", "a\u2028b"], dtype="str")
    expected = [" ".join(v.split()) for v in values]
    expected = [v if v not in ("", "NA") else "" for v in expected]
    assert list(clean_place(values)) == expected == ["100 N STATE ST", "", "", "a b"]


def test_a_header_line_at_the_edge_of_the_decoded_head_reads_as_through_text(monkeypatch):
    """The in-place reader decodes only the file's head to find the header line: a CRLF cut
    at the head's edge, or a header longer than the head, fall back to the text path."""
    from safety_models.data import reading

    monkeypatch.setattr(reading, "HEAD_BYTES", 12)
    for data in (b"id,datetime\r\n1,2020-01-01\r\n", b"id,datetim\r\n1,2020-01-01\r\n",
                 b"identifier,date\n1,2020-01-01\n"):
        rows = reading.read_rows(data, "f.csv")
        assert rows.frame.iloc[:, 1].tolist() == ["2020-01-01"] and rows.row_numbers.tolist() == [1]
