"""Tests for tuning.sources: the synthetic corridor and the file loaders."""

from __future__ import annotations

import gzip
import json
import logging
import re
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import long_table, pems_station_text

from tuning.errors import DataError
from tuning.sources import TrafficSeries, as_series, check_sensors, load_series, select_sensors, synthetic_traffic

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ODOT = SHARED_DATA / "odot_counts" / "counts_wide_15min.csv"
UCI = SHARED_DATA / "uci_metro_interstate" / "Metro_Interstate_Traffic_Volume.csv"


@pytest.fixture(scope="module")
def synthetic() -> TrafficSeries:
    return synthetic_traffic()


def _copy_last_vs_profile(series: TrafficSeries, horizon: int) -> tuple[float, float]:
    """MAE of copy-last and of last value + mean daily-profile change, on the last 20 %."""
    values = series.values.astype(np.float64)
    steps = len(values)
    per_day = int(pd.Timedelta("1D") / (series.timestamps[1] - series.timestamps[0]))
    weekend = (series.timestamps.day_of_week.to_numpy() >= 5).astype(int)
    key = weekend * per_day + np.arange(steps) % per_day
    cut = int(0.8 * steps)
    profile = np.full((2 * per_day, values.shape[1]), np.nan)
    for k in np.unique(key[:cut]):
        profile[k] = np.nanmean(values[:cut][key[:cut] == k], axis=0)
    t = np.arange(cut, steps - horizon)
    target, last = values[t + horizon], values[t]
    guess = last + profile[key[t + horizon]] - profile[key[t]]
    ok = ~(np.isnan(target) | np.isnan(last) | np.isnan(guess))
    return float(np.abs(target - last)[ok].mean()), float(np.abs(target - guess)[ok].mean())


# --- synthetic -------------------------------------------------------------------------------


def test_synthetic_is_deterministic_per_seed(synthetic: TrafficSeries) -> None:
    again = synthetic_traffic()
    assert np.array_equal(synthetic.values, again.values, equal_nan=True)
    other = synthetic_traffic(seed=1)
    assert not np.array_equal(synthetic.values, other.values, equal_nan=True)
    assert other.name == "synthetic(seed=1)"


def test_synthetic_shape_timestamps_and_gaps(synthetic: TrafficSeries) -> None:
    assert synthetic.values.shape == (8064, 20) and synthetic.values.dtype == np.float32
    assert (synthetic.num_steps, synthetic.num_sensors) == (8064, 20)
    assert synthetic.sensor_ids[0] == "S000" and synthetic.sensor_ids[-1] == "S019"
    assert synthetic.timestamps is not None
    assert synthetic.timestamps[0] == pd.Timestamp("2024-01-01")
    assert synthetic.timestamps[1] - synthetic.timestamps[0] == pd.Timedelta("5min")
    missing = np.isnan(synthetic.values).mean()
    assert 0.003 < missing < 0.01
    observed = synthetic.values[~np.isnan(synthetic.values)]
    assert 0 < observed.min() and observed.max() < 90 and 55 < observed.mean() < 70


def test_synthetic_sensors_have_their_own_rush_hours(synthetic: TrafficSeries) -> None:
    """Sensor identity and time of day matter, as on real roads: per sensor, which rush hour jams it."""
    hour = synthetic.timestamps.hour.to_numpy()
    weekday = synthetic.timestamps.day_of_week.to_numpy() < 5
    values = synthetic.values
    night = np.nanmean(values[hour == 3], axis=0)
    morning = np.nanmean(values[((hour == 7) | (hour == 8)) & weekday], axis=0)
    evening = np.nanmean(values[((hour == 16) | (hour == 17)) & weekday], axis=0)
    weekend_morning = np.nanmean(values[((hour == 7) | (hour == 8)) & ~weekday], axis=0)
    am_jam, pm_jam = morning < night - 12, evening < night - 12
    am_free, pm_free = morning > night - 8, evening > night - 8
    assert (am_jam & pm_free).any() and (pm_jam & am_free).any()  # some only mornings, some only evenings
    assert (am_free & pm_free).any()  # and some never jam
    assert (weekend_morning[am_jam] > morning[am_jam] + 5).all()  # weekends are milder
    assert np.ptp(night) > 5  # free-flow levels differ


def test_synthetic_neighbours_are_correlated(synthetic: TrafficSeries) -> None:
    changes = pd.DataFrame(np.diff(synthetic.values, axis=0))
    corr = changes.corr().to_numpy()
    assert np.nanmean(np.diag(corr, 1)) > np.nanmean(np.diag(corr, 10)) + 0.05


def test_synthetic_profile_beats_copy_last(synthetic: TrafficSeries) -> None:
    copy_last, profile = _copy_last_vs_profile(synthetic, horizon=5)
    assert profile < 0.9 * copy_last  # time of day matters
    assert copy_last < 5.0  # ...but the series is not noise


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_sensors": 0}, "num_sensors must be an integer >= 1"),
        ({"num_days": 0}, "num_days must be an integer >= 1"),
        ({"step_minutes": 7}, "step_minutes must divide 1440"),
        ({"step_minutes": 0}, "step_minutes must be an integer >= 1"),
        ({"start": "not a date"}, "start 'not a date' is not a date"),
    ],
)
def test_synthetic_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(DataError, match=match):
        synthetic_traffic(**kwargs)  # type: ignore[arg-type]


def test_synthetic_other_sizes() -> None:
    series = synthetic_traffic(num_sensors=3, num_days=2, step_minutes=15, seed=7)
    assert series.values.shape == (192, 3)
    assert series.timestamps[1] - series.timestamps[0] == pd.Timedelta("15min")


# --- files -----------------------------------------------------------------------------------


def test_csv_with_timestamp_column(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("Time,a,b\n2024-01-01 00:00,1.5,\n2024-01-01 00:05,2,3\n2024-01-01 00:10,0,4\n")
    series = load_series(path)
    assert series.sensor_ids == ("a", "b") and series.name == "data.csv"
    assert series.values.dtype == np.float32
    np.testing.assert_array_equal(series.values, np.array([[1.5, np.nan], [2, 3], [0, 4]], dtype=np.float32))
    assert list(series.timestamps) == list(pd.date_range("2024-01-01", periods=3, freq="5min"))


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("timestamp;a;b\n2024-01-01 00:00;61,5;58\n2024-01-01 00:05;60,25;\n", "fields separated by ';', decimal comma"),
        ("timestamp;a;b\n2024-01-01 00:00;61.5;58\n2024-01-01 00:05;60.25;\n", "fields separated by ';'"),
        ("timestamp\ta\tb\n2024-01-01 00:00\t61.5\t58\n2024-01-01 00:05\t60.25\t\n", "fields separated by '\\t'"),
        ("timestamp|a|b\n2024-01-01 00:00|61.5|58\n2024-01-01 00:05|60.25|\n", "fields separated by '|'"),
    ],
)
def test_csv_separators_and_decimal_commas(tmp_path: Path, text: str, said: str, caplog: pytest.LogCaptureFixture) -> None:
    # read with commas, "61,5;58" split inside the number and became a row index: a wrong series, no error
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        series = load_series(_write(tmp_path / "data.csv", text))
    assert series.sensor_ids == ("a", "b")
    np.testing.assert_array_equal(series.values, np.array([[61.5, 58], [60.25, NAN]], dtype=np.float32))
    assert said in caplog.text


def test_what_exports_write_for_no_reading_is_a_missing_reading(tmp_path: Path) -> None:
    # a dash, a spreadsheet's #DIV/0!, a detector's ERR: before, the column was "non-numeric" and refused
    text = "timestamp,a,b\n2024-01-01 00:00,61.5,-\n2024-01-01 00:05,#DIV/0!,57\n2024-01-01 00:10,-4.5,ERR\n"
    series = load_series(_write(tmp_path / "data.csv", text))
    np.testing.assert_array_equal(series.values, np.array([[61.5, NAN], [NAN, 57], [-4.5, NAN]], dtype=np.float32))


@pytest.mark.parametrize("compression", ["gz", "bz2", "xz", "zip"])
def test_compressed_csv_reads_as_the_csv(tmp_path: Path, compression: str) -> None:
    frame = pd.DataFrame({"timestamp": ["2024-01-01 00:00", "2024-01-01 00:05"], "a": [61.5, 60.0], "b": [58.0, None]})
    frame.to_csv(tmp_path / "data.csv", index=False)
    frame.to_csv(tmp_path / f"data.csv.{compression}", index=False, sep=";", decimal=",")  # the dialect read inside
    plain, packed = load_series(tmp_path / "data.csv"), load_series(tmp_path / f"data.csv.{compression}")
    np.testing.assert_array_equal(packed.values, plain.values)
    assert packed.sensor_ids == plain.sensor_ids and list(packed.timestamps) == list(plain.timestamps)


def test_utd19s_day_and_interval_seconds_are_one_timestamp(tmp_path: Path) -> None:
    # UTD19 (loop detectors of 40 cities): day, interval (seconds since midnight), detid, flow, occ,
    # error, city, speed (empty in most cities). Before, the days alone were the timestamps.
    rows = [
        ("2017-05-06", sec, det, 10 + sec // 180 % 50 + i, 0.05, NAN, "augsburg", NAN)
        for sec in range(0, 86_400, 180)
        for i, det in enumerate(("K101D11", "K101D12"))
    ]
    frame = pd.DataFrame(rows, columns=["day", "interval", "detid", "flow", "occ", "error", "city", "speed"])
    frame.to_csv(tmp_path / "utd19.csv", index=False)
    with pytest.raises(DataError, match=r"several value columns \['flow', 'occ'\].*e\.g\. --columns flow$"):
        load_series(tmp_path / "utd19.csv")  # the empty error and speed columns are not offered
    series = load_series(tmp_path / "utd19.csv", columns=["flow"], zero_is_missing=False)
    assert series.sensor_ids == ("K101D11", "K101D12") and series.num_steps == 480
    assert list(series.timestamps[:2]) == [pd.Timestamp("2017-05-06 00:00"), pd.Timestamp("2017-05-06 00:03")]
    np.testing.assert_array_equal(series.values[:, 1], 11 + np.arange(480) % 50)


def test_a_folder_of_per_site_files_with_a_midnight_report_date(tmp_path: Path) -> None:
    # National Highways' WebTRIS reports, a file per site: "Report Date" at midnight, "Time Period
    # Ending" the quarter hour's last minute, several value columns; their names need quoting
    stamps = pd.date_range("2024-03-04", periods=192, freq="15min")
    for k, site in enumerate(("M25/4012A", "M25/4015B")):
        pd.DataFrame({
            "Site Name": site,
            "Report Date": stamps.normalize().strftime("%Y-%m-%dT00:00:00"),
            "Time Period Ending": (stamps + pd.Timedelta("14min")).strftime("%H:%M:%S"),
            "Time Interval": np.arange(192) % 96,
            "Total Volume": np.arange(192) + 1000 * k,
            "Avg mph": 60,
        }).to_csv(tmp_path / f"site{k}.csv", index=False)  # fmt: skip
    with pytest.raises(DataError, match=r"e\.g\. --columns 'Total Volume'$"):
        load_series(tmp_path)
    series = load_series(tmp_path, columns=["Total Volume"])
    assert series.sensor_ids == ("M25/4012A", "M25/4015B") and series.timestamps[0] == pd.Timestamp("2024-03-04 00:14")
    np.testing.assert_array_equal(series.values, np.stack([np.arange(192), np.arange(192) + 1000], axis=1))


# --- spreadsheets ---------------------------------------------------------------------------------


def test_a_workbook_reads_as_its_csv_would(tmp_path: Path, stations: TrafficSeries, caplog: pytest.LogCaptureFixture) -> None:
    # a title and a source line above the table, a second sheet of notes, sensor ids as numbers
    frame = pd.DataFrame(
        stations.values, index=stations.timestamps.rename("timestamp"), columns=list(map(int, stations.sensor_ids))
    )
    with pd.ExcelWriter(tmp_path / "counts.xlsx") as book:
        pd.DataFrame([["Counts, January 2024"], ["source: the city"]]).to_excel(
            book, sheet_name="Counts", header=False, index=False
        )
        frame.to_excel(book, sheet_name="Counts", startrow=3)
        pd.DataFrame({"note": ["detector 400017 was moved"]}).to_excel(book, sheet_name="Notes")
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        series = load_series(tmp_path / "counts.xlsx")
    assert "read its first sheet 'Counts' (it has 2: 'Counts', 'Notes')" in caplog.text
    assert "2 row(s) above the table's header left out" in caplog.text
    assert series.sensor_ids == stations.sensor_ids and list(series.timestamps) == list(stations.timestamps)
    np.testing.assert_array_equal(series.values, stations.values)


def test_a_workbooks_date_and_time_cells_and_a_sheet_without_header(tmp_path: Path, stations: TrafficSeries) -> None:
    stamps = stations.timestamps
    cells = pd.DataFrame({"Date": stamps.normalize(), "Time": [t.time() for t in stamps], "a": stations.values[:, 0]})
    cells.to_excel(tmp_path / "cells.xlsx", index=False)
    series = load_series(tmp_path / "cells.xlsx")
    assert list(series.timestamps) == list(stamps) and series.sensor_ids == ("a",)
    named = pd.DataFrame(stations.values[:100], index=stamps[:100], columns=list(stations.sensor_ids))
    named.to_excel(tmp_path / "unnamed_index.xlsx")  # the header's first cell, over the dates, is empty
    assert load_series(tmp_path / "unnamed_index.xlsx").sensor_ids == stations.sensor_ids
    pd.DataFrame(stations.values[:100], index=stamps[:100]).to_excel(tmp_path / "bare.xlsx", header=False)
    bare = load_series(tmp_path / "bare.xlsx")
    assert bare.sensor_ids == ("S000", "S001", "S002", "S003") and list(bare.timestamps) == list(stamps[:100])
    np.testing.assert_array_equal(bare.values, stations.values[:100])


# --- a date column and a time column ---------------------------------------------------------------


def test_date_and_time_columns_are_one_timestamp(
    tmp_path: Path, stations: TrafficSeries, caplog: pytest.LogCaptureFixture
) -> None:
    # Date,Time as spreadsheets export them: before, "Time" was taken for a long table's sensor column
    frame = pd.DataFrame(stations.values, columns=list(stations.sensor_ids))
    frame.insert(0, "Date", stations.timestamps.strftime("%d/%m/%Y"))
    frame.insert(1, "Time", stations.timestamps.strftime("%H:%M"))
    frame.to_csv(tmp_path / "wide.csv", index=False)
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        series = load_series(tmp_path / "wide.csv")
    assert "columns 'Date' and 'Time' read as one timestamp" in caplog.text
    assert series.sensor_ids == stations.sensor_ids and list(series.timestamps) == list(stations.timestamps)
    np.testing.assert_array_equal(series.values, stations.values)


def test_a_long_tables_date_and_time_columns_are_one_timestamp(tmp_path: Path, stations: TrafficSeries) -> None:
    # before, the dates alone were the timestamps: each day's 288 rows per site averaged into one step
    long = long_table(stations, id_column="site")
    long.insert(0, "date", long.pop("timestamp"))
    long.insert(1, "time", long["date"].dt.strftime("%H:%M:%S"))
    long["date"] = long["date"].dt.strftime("%Y-%m-%d")
    long.to_csv(tmp_path / "long.csv", index=False)
    series = load_series(tmp_path / "long.csv")
    assert list(series.timestamps) == list(stations.timestamps)
    np.testing.assert_array_equal(series.values, stations.values)


def test_a_count_date_and_whole_hours_are_one_timestamp(tmp_path: Path) -> None:
    # manual counts as the UK's DfT publishes them: a date, an hour 7-18, a count point, counts
    days = pd.date_range("2019-06-03", periods=3, freq="D")
    rows = [(p, d.strftime("%Y-%m-%d"), h, "N", 100 * h + p) for d in days for h in range(7, 19) for p in (501, 6030)]
    pd.DataFrame(rows, columns=["count_point_id", "count_date", "hour", "direction", "all_motor_vehicles"]).to_csv(
        tmp_path / "counts.csv", index=False
    )
    series = load_series(tmp_path / "counts.csv", zero_is_missing=False)
    assert series.sensor_ids == ("501", "6030") and series.readings == "all_motor_vehicles"
    assert series.timestamps[0] == pd.Timestamp("2019-06-03 07:00") and series.timestamps[11] == pd.Timestamp("2019-06-03 18:00")
    np.testing.assert_array_equal(series.values[:12, 0], 100 * np.arange(7, 19) + 501)
    assert np.isnan(series.values[12:24]).all() and series.timestamps[24] == pd.Timestamp(
        "2019-06-04 07:00"
    )  # the night: hours not counted are missing steps


# --- PeMS station files and a file per day ---------------------------------------------------------


@pytest.fixture(scope="module")
def stations() -> TrafficSeries:
    """4 stations x 3 days of 5-minute speeds with gaps, named by PeMS station ids."""
    series = synthetic_traffic(num_sensors=4, num_days=3, seed=3)
    speeds = np.round(series.values, 1)  # PeMS writes one decimal
    return replace(series, values=speeds, sensor_ids=("400001", "400017", "400101", "401002"))


def _days(series: TrafficSeries) -> list[TrafficSeries]:
    day = 288
    return [
        replace(series, values=series.values[d : d + day], timestamps=series.timestamps[d : d + day])
        for d in range(0, series.num_steps, day)
    ]


def test_a_pems_station_file_reads_as_a_long_table_of_its_stations(
    tmp_path: Path, stations: TrafficSeries, caplog: pytest.LogCaptureFixture
) -> None:
    # Caltrans' clearinghouse files: no header, 12 fixed fields, then a group per lane (rows
    # differ in length), .txt.gz. Before, ".gz" was an unsupported type, and as .txt pandas
    # stopped at the first longer row; read as a plain CSV, the first row became the header.
    path = tmp_path / "d04_text_station_5min_2024_01_01.txt.gz"
    path.write_bytes(gzip.compress(pems_station_text(stations, ramps=1).encode()))
    with pytest.raises(DataError, match=r"several value columns \['flow', 'occupancy', 'speed'\].*--columns speed$"):
        load_series(path)
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        series = load_series(path, columns=["speed"])
    assert "a PeMS station file (no header row)" in caplog.text and "stations by lane type: ML 4, OR 1" in caplog.text
    assert series.sensor_ids == (*stations.sensor_ids, "900000") and series.readings == "speed"
    np.testing.assert_array_equal(series.values[:, :4], stations.values)
    assert np.isnan(series.values[:, 4]).all()  # a ramp reports flow, no speed: a sensor without readings
    assert list(series.timestamps) == list(stations.timestamps)  # MM/DD/YYYY, month first
    flows = load_series(path, columns=["flow"])
    assert flows.readings == "flow" and not np.isnan(flows.values[:, 4]).any()


def test_a_pems_station_day_file_reads_flow_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Station Day files hold vehicle-hours of delay where the 5-minute files hold occupancy and speed
    rows = [
        f"{day:%m/%d/%Y} 00:00:00,{station},4,101,S,ML,.5,2880,100,{50_000 + d * 100 + k},35.2,80.1,120.3,160.4,200.5,240.6"
        for d, day in enumerate(pd.date_range("2024-01-01", periods=10))
        for k, station in enumerate((400001, 400017))
    ]
    (tmp_path / "d04_text_station_day_2024_01.txt").write_text("\n".join(rows) + "\n")
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        series = load_series(tmp_path / "d04_text_station_day_2024_01.txt")
    assert "fields 11-12 are not occupancy and speed" in caplog.text and series.readings == "flow"
    np.testing.assert_array_equal(series.values[:, 1], 50_001 + 100 * np.arange(10))


def test_a_folder_of_daily_files_reads_as_one_series(
    tmp_path: Path, stations: TrafficSeries, caplog: pytest.LogCaptureFixture
) -> None:
    # a file per day, as PeMS serves them: the folder (or a quoted pattern) is the week
    week = tmp_path / "week"
    week.mkdir()
    for day in _days(stations):
        name = day.timestamps[0].strftime("d04_text_station_5min_%Y_%m_%d.txt.gz")
        (week / name).write_bytes(gzip.compress(pems_station_text(day).encode()))
    (week / ".DS_Store").write_bytes(b"\0")  # hidden files are not data
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        series = load_series(week, columns=["speed"])
    assert "3 files read as one series (d04_text_station_5min_2024_01_01.txt.gz ... " in caplog.text
    assert series.sensor_ids == stations.sensor_ids and list(series.timestamps) == list(stations.timestamps)
    np.testing.assert_array_equal(series.values, stations.values)
    pattern = load_series(week / "d04_text_station_5min_2024_01_0[12].txt.gz", columns=["speed"])
    np.testing.assert_array_equal(pattern.values, stations.values[:576])


def test_a_partitioned_parquet_dataset_reads_as_one_series(tmp_path: Path, stations: TrafficSeries) -> None:
    # date=2024-01-01/part-0.parquet, ... as Spark and pyarrow write a table by day; before: "a folder without data files"
    long = long_table(stations, id_column="sensor_id")
    long["sensor_id"] = long["sensor_id"].astype(int)
    long.assign(date=long["timestamp"].dt.strftime("%Y-%m-%d")).to_parquet(tmp_path / "speeds", partition_cols=["date"])
    series = load_series(tmp_path / "speeds")  # the partition column, text, is left out of a long table
    assert series.sensor_ids == stations.sensor_ids and list(series.timestamps) == list(stations.timestamps)
    np.testing.assert_array_equal(series.values, stations.values)
    wide = pd.DataFrame(stations.values, index=stations.timestamps.rename("timestamp"), columns=list(stations.sensor_ids))
    wide.assign(day=wide.index.strftime("%d")).iloc[::-1].to_parquet(tmp_path / "wide", partition_cols=["day"])
    again = load_series(tmp_path / "wide")  # read as numbers, "day" would be a sensor of 1, 2, 3
    assert again.sensor_ids == stations.sensor_ids and list(again.timestamps) == list(stations.timestamps)  # in time order
    np.testing.assert_array_equal(again.values, stations.values)


def test_wide_daily_files_join_in_time_order_whatever_their_names(tmp_path: Path, stations: TrafficSeries) -> None:
    frame = pd.DataFrame(stations.values, index=stations.timestamps.rename("timestamp"), columns=list(stations.sensor_ids))
    for name, day in zip(["monday.csv", "tuesday.csv", "wednesday.parquet"], range(3), strict=True):
        part = frame.iloc[288 * day : 288 * (day + 1)]
        part.to_parquet(tmp_path / name) if name.endswith("parquet") else part.to_csv(tmp_path / name)
    with pytest.raises(DataError, match=r"holds \.csv and \.parquet files; files read together must be of one kind"):
        load_series(tmp_path)
    (tmp_path / "wednesday.parquet").unlink()
    frame.iloc[576:].to_csv(tmp_path / "a_wednesday.csv")  # sorts first by name
    series = load_series(tmp_path)
    assert list(series.timestamps) == list(stations.timestamps)
    np.testing.assert_array_equal(series.values, stations.values)
    frame.iloc[:10, :3].to_csv(tmp_path / "z_three_sensors.csv")
    with pytest.raises(DataError, match=r"z_three_sensors\.csv: its columns differ from a_wednesday\.csv's \(\['401002'\]\)"):
        load_series(tmp_path)


def test_a_pattern_that_matches_nothing_says_so(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no file matches .*d04_\*\.txt\.gz; check the pattern"):
        load_series(tmp_path / "d04_*.txt.gz")


@pytest.mark.parametrize(
    ("text", "stamps"),
    [
        ("6.05e+01,5.82e+01\n6.01e+01,5.79e+01\n", False),  # np.savetxt(path, array, delimiter=",")
        ("60.5,58.2\n60.1,57.9\n", False),
        ("2024-01-01 00:00,60.5,58.2\n2024-01-01 00:05,60.1,57.9\n", True),
        ("2024-01-01 00:00;60,5;58,2\n2024-01-01 00:05;60,1;57,9\n", True),
    ],
)
def test_csv_without_a_header_row(tmp_path: Path, text: str, stamps: bool, caplog: pytest.LogCaptureFixture) -> None:
    # the first row of readings used to become sensor names ("60.5"), and was lost as data
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        series = load_series(_write(tmp_path / "data.csv", text))
    assert series.sensor_ids == ("S000", "S001")
    np.testing.assert_allclose(series.values, [[60.5, 58.2], [60.1, 57.9]], rtol=1e-6)
    assert (series.timestamps is not None) is stamps
    assert "the first row holds readings, not sensor names (no header)" in caplog.text
    ids = load_series(_write(tmp_path / "ids.csv", "773869,767541\n60,61\n62,63\n"))  # whole numbers: sensor ids
    assert ids.sensor_ids == ("773869", "767541") and ids.num_steps == 2
    lanes = load_series(_write(tmp_path / "lanes.csv", "401.1,401.2\n60.5,58.2\n60.1,57.9\n"))  # far from the readings
    assert lanes.sensor_ids == ("401.1", "401.2") and lanes.num_steps == 2


def test_csv_first_column_of_dates_is_the_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("when,a\n2024-01-01,1\n2024-01-02,2\n")
    series = load_series(path)
    assert series.sensor_ids == ("a",) and series.timestamps[1] == pd.Timestamp("2024-01-02")


def test_csv_header_only_with_freq(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("773869,767541\n60.1,62\n58,\n")
    assert load_series(path).timestamps is None
    series = load_series(path, freq="5min", start="2012-03-01")
    assert series.sensor_ids == ("773869", "767541")
    assert series.timestamps[0] == pd.Timestamp("2012-03-01") and series.timestamps[1] == pd.Timestamp("2012-03-01 00:05")
    assert np.isnan(series.values[1, 1])


def test_csv_numeric_strings_are_readings() -> None:
    frame = pd.DataFrame({"a": ["1", " 2.5 ", None], "b": [1, 2, 3]})
    series = as_series(frame, name="frame")
    np.testing.assert_array_equal(series.values[:, 0], np.array([1, 2.5, np.nan], dtype=np.float32))


def test_parquet_roundtrip_with_datetime_index(tmp_path: Path) -> None:
    index = pd.date_range("2024-01-01", periods=4, freq="15min", name="timestamp")
    frame = pd.DataFrame({"s1": [1.0, 2.0, np.nan, 4.0], "s2": [5, 6, 7, 8]}, index=index)
    frame.to_parquet(tmp_path / "data.parquet")
    frame.reset_index().to_parquet(tmp_path / "column.parquet")
    for name in ("data.parquet", "column.parquet"):
        series = load_series(tmp_path / name)
        assert series.sensor_ids == ("s1", "s2")
        np.testing.assert_array_equal(series.values, frame.to_numpy(dtype=np.float32))
        assert list(series.timestamps) == list(index)


def _metr_la_like() -> pd.DataFrame:
    """METR-LA's ``.h5`` in small: 5-minute DatetimeIndex, integer sensor ids, 0 for a failed reading."""
    index = pd.date_range("2012-03-01", periods=6, freq="5min")
    values = np.array(
        [[64.4, 67.6, 0.0], [62.7, 68.6, 0.0], [0.0, 63.8, 55.1], [61.0, 0.0, 54.2], [60.2, 66.1, 53.9], [59.8, 65.0, 52.0]]
    )
    return pd.DataFrame(values, index=index, columns=[773869, 767541, 767542])


@pytest.mark.parametrize("key", ["df", "speed"])  # METR-LA's key, PEMS-BAY's
def test_hdf_frame_reads_as_its_csv_does(tmp_path: Path, key: str) -> None:
    frame = _metr_la_like()
    frame.to_hdf(tmp_path / "metr-la.h5", key=key)
    frame.to_csv(tmp_path / "metr-la.csv")
    for zero_is_missing in (False, True):
        from_hdf = load_series(tmp_path / "metr-la.h5", zero_is_missing=zero_is_missing)
        from_csv = load_series(tmp_path / "metr-la.csv", zero_is_missing=zero_is_missing)
        assert from_hdf.sensor_ids == from_csv.sensor_ids == ("773869", "767541", "767542")
        np.testing.assert_array_equal(from_hdf.values, from_csv.values)
        assert list(from_hdf.timestamps) == list(frame.index)
        assert from_hdf.name == "metr-la.h5"
    assert np.isnan(load_series(tmp_path / "metr-la.h5", zero_is_missing=True).values[0, 2])


def test_hdf_frame_picks_sensors_and_table_format(tmp_path: Path) -> None:
    frame = _metr_la_like().rename_axis("timestamp").reset_index()
    frame.columns = [str(c) for c in frame.columns]
    frame.to_hdf(tmp_path / "table.hdf5", key="data", format="table")
    series = load_series(tmp_path / "table.hdf5", columns=["767542", "773869"])
    assert series.sensor_ids == ("767542", "773869")
    np.testing.assert_array_equal(series.values, frame[["767542", "773869"]].to_numpy(dtype=np.float32))
    assert series.timestamps[0] == pd.Timestamp("2012-03-01")


def test_hdf_array_as_h5py_writes_it(tmp_path: Path) -> None:
    import tables  # a main dependency: pandas reads .h5 with it

    data = np.arange(24, dtype=np.float64).reshape(4, 3, 2)
    with tables.open_file(tmp_path / "pems.h5", mode="w") as h5:
        h5.create_array("/", "data", data)
        h5.create_array("/", "note", np.zeros(1))
    series = load_series(tmp_path / "pems.h5", freq="5min")
    np.testing.assert_array_equal(series.values, data[:, :, 0].astype(np.float32))
    assert series.sensor_ids == ("S000", "S001", "S002")
    assert series.timestamps[0] == pd.Timestamp("2000-01-01")


def test_hdf_errors(tmp_path: Path) -> None:
    import tables  # a main dependency: pandas reads .h5 with it

    _metr_la_like().to_hdf(tmp_path / "good.h5", key="df")
    (tmp_path / "cut.h5").write_bytes((tmp_path / "good.h5").read_bytes()[:3000])
    (tmp_path / "text.h5").write_text("time,a\n2024-01-01,1\n")
    for key in ("a", "b"):
        _metr_la_like().to_hdf(tmp_path / "frames.h5", key=key)
    with tables.open_file(tmp_path / "arrays.h5", mode="w") as h5:
        h5.create_array("/", "a", np.ones((3, 2)))
        h5.create_array("/", "b", np.ones((3, 2)))
    with tables.open_file(tmp_path / "none.h5", mode="w"):
        pass
    cases = {
        "text.h5": r"is not an HDF5 file \(it starts with b'time,a\\n2'\); save the frame with DataFrame\.to_hdf",
        "cut.h5": "cannot read as HDF5: the file is damaged or incomplete",
        "frames.h5": r"holds frames \['a', 'b'\] and none is named 'df', 'data' or 'speed'",
        "arrays.h5": r"holds arrays \['a', 'b'\] and none is named 'data' or 'x'",
        "none.h5": "holds no frame or array",
    }
    for name, match in cases.items():
        with pytest.raises(DataError, match=match) as info:
            load_series(tmp_path / name)
        assert str(tmp_path / name) in str(info.value) and "\n" not in str(info.value), name


@pytest.mark.parametrize("shape", [(10, 3), (10, 3, 2)])
def test_npz_uses_channel_zero(tmp_path: Path, shape: tuple[int, ...]) -> None:
    data = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    np.savez(tmp_path / "pems.npz", data=data)
    series = load_series(tmp_path / "pems.npz", freq="5min")
    expected = data if data.ndim == 2 else data[:, :, 0]
    np.testing.assert_array_equal(series.values, expected.astype(np.float32))
    assert series.sensor_ids == ("S000", "S001", "S002")
    assert series.timestamps[0] == pd.Timestamp("2000-01-01")


def test_npz_picks_data_or_x_among_several(tmp_path: Path) -> None:
    np.savez(tmp_path / "two.npz", x=np.ones((4, 2)), y=np.zeros((4, 2)))
    assert np.all(load_series(tmp_path / "two.npz").values == 1)


def test_zero_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n0,1\n2,0\n")
    series = load_series(path, zero_is_missing=True)
    assert np.isnan(series.values[0, 0]) and np.isnan(series.values[1, 1]) and series.values[1, 0] == 2
    assert load_series(path, zero_is_missing=False).values[0, 0] == 0
    assert load_series(path).values[0, 0] == 0  # two readings tell no outage
    array = np.array([[0.0, 1.0], [2.0, 3.0]])
    assert np.isnan(as_series(array, zero_is_missing=True).values[0, 0]) and array[0, 0] == 0


def test_as_series_inputs() -> None:
    series = synthetic_traffic(num_sensors=2, num_days=1)
    assert as_series(series) is series
    assert as_series(np.ones((5, 2, 3))).values.shape == (5, 2)
    frame = pd.DataFrame({"timestamp": ["2024-01-01 00:00", "2024-01-01 01:00"], "x": [1, 2]})
    assert as_series(frame).timestamps[1] == pd.Timestamp("2024-01-01 01:00")
    with pytest.raises(TypeError, match="as_series expects"):
        as_series([[1.0]])  # type: ignore[arg-type]


def test_check_sensors_rejects_only_a_series_without_any_reading() -> None:
    values = np.array([[1, np.nan, np.nan], [2, np.nan, np.nan]], dtype=np.float32)
    check_sensors(TrafficSeries(values, None, ("a", "b", "c"), "mem"))  # dead detectors beside a live one
    values[:, 0] = np.nan
    with pytest.raises(DataError, match=r"mem: no sensor has a single reading.*--zero-is-missing"):
        check_sensors(TrafficSeries(values, None, ("a", "b", "c"), "mem"))
    check_sensors(synthetic_traffic(num_sensors=2, num_days=1))


def test_series_invariants_are_enforced() -> None:
    with pytest.raises(ValueError, match="float32"):
        TrafficSeries(np.zeros((2, 2)), None, ("a", "b"), "x")
    with pytest.raises(ValueError, match="sensor_ids has 1"):
        TrafficSeries(np.zeros((2, 2), np.float32), None, ("a",), "x")
    with pytest.raises(ValueError, match="timestamps has length 3"):
        TrafficSeries(np.zeros((2, 2), np.float32), pd.date_range("2024", periods=3), ("a", "b"), "x")


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "match"),
    [
        ("data.csv", "", {}, r"data\.csv: is empty"),
        ("data.csv", "timestamp\n2024-01-01\n2024-01-02\n", {}, "no sensor columns"),
        ("data.csv", "a,b\n1,2\n", {}, r"has 1 row\(s\).*at least 2"),
        ("data.csv", "a,b\n", {}, r"data\.csv: has a header \(a, b\) but no rows of readings"),
        ("data.csv", "t,a,weather\n2024-01-01,1,sun\n2024-01-02,2,rain\n", {}, r"non-numeric columns \['weather'\]"),
        ("data.csv", "a,b\n1,3\n2,x\n", {}, r"non-numeric columns \['b'\] \('x' in 'b', data row 2\).*drop or convert"),
        ("data.csv", "time,a\n2024-01-01,1\n2024-01-01,2\n", {}, r"has 1 distinct timestamp\(s\); at least 2"),
        ("data.csv", "time,a\n2024-01-02,1\n2024-01-03,2\n2024-01-01,3\n", {}, "in order.*data row 3.*not increasing"),
        (
            "data.csv",
            "time,a\n2024-01-01 00:00,1\n2024-01-01 00:05,2\n2024-01-01 00:10,2\n2024-01-01 00:17,3\n",
            {},
            "00:17:00 is not on the grid of 5min",
        ),
        (
            "data.csv",
            "time,a\n2024-01-01 00:00,1\n2024-01-01 00:05,2\n",
            {"freq": "1s"},
            "2 time steps spread over 301 steps of 1s",
        ),
        ("data.csv", "time,a\n2024-01-01,1\n2024-01-02,2\n", {"freq": "bogus"}, "bad freq 'bogus'"),
        (
            "data.csv",
            "time,a,b\n2024-01-01,1,2\n2024-01-02,2,3\n",
            {"columns": ["c"]},
            r"--columns names \['c'\].*columns are \['a', 'b'\]",
        ),
        (
            "data.csv",
            "time,a,b\n2024-01-01,1,2\n2024-01-02,2,3\n",
            {"exclude_columns": ["c"]},
            r"--exclude-columns names \['c'\]",
        ),
        ("data.csv", "time,a,b\n2024-01-01,1,2\n2024-01-02,2,3\n", {"columns": ["time"]}, "'time' is the timestamp column"),
        ("data.csv", "time,a,b\n2024-01-01,1,2\n2024-01-02,2,3\n", {"columns": ["a"], "exclude_columns": ["b"]}, "not both"),
        ("data.csv", "time,a\n2024-01-01,1\nsoon,2\n", {}, "timestamp column 'time' holds values that are not dates"),
        (
            "data.csv",
            "time,a\n1,1\n2,2\n",
            {},
            r"holds numbers, not dates \(nor Unix times in seconds or milliseconds, nor spreadsheet day numbers\)",
        ),
        ("data.csv", "a,b\n,\n,\n", {}, r"no sensor has a single reading"),
        ("data.csv", "a,b\n0,0\n0,0\n", {"zero_is_missing": True}, r"no sensor has a single reading.*--zero-is-missing"),
        ("data.csv", "a,a\n1,2\n3,4\n", {}, "duplicate column names"),
        ("data.csv", ",a\n0,1\n1,2\n", {}, "first column has no header"),
        ("data.csv", "a\n1\n2\n", {"freq": "bogus"}, "bad freq 'bogus'"),
        ("data.csv", "a\n1\n2\n", {"start": "2024-01-01"}, "without freq"),
        ("data.parquet", b"not a parquet file", {}, r"cannot read as parquet"),
        ("data.npz", b"not a zip file at all", {}, r"is not a \.npz archive.*np\.savez"),
        ("data.xlsx", b"not a workbook", {}, r"cannot read as xlsx"),
        ("speed_matrix.pkl", b"\x80\x04", {}, r"a pickle, which can run code when read, so it is not read here.*to_parquet"),
        (
            "counts.xls",
            b"\xd0\xcf\x11\xe0",
            {},
            r"a workbook in Excel 97-2003 format, which is not read here; .* save it as \.xlsx",
        ),
        (
            "data.dat",
            "a\n1\n2\n",
            {},
            r"unsupported file type '\.dat'.*\.csv, \.txt, \.tsv, \.tab, \.json, \.parquet, \.npz, \.h5, \.hdf5, \.hdf, \.xlsx",
        ),
        ("data.csv.gz", b"not gzip", {}, r"cannot read as csv: Not a gzipped file"),
        ("data.parquet.gz", b"{}", {}, r"unsupported file type '\.gz'.*\(a \.csv, \.txt or \.json also compressed: \.csv\.gz"),
    ],
)
def test_load_errors(tmp_path: Path, name: str, content: str | bytes, kwargs: dict[str, object], match: str) -> None:
    path = _write(tmp_path / name, content)
    with pytest.raises(DataError, match=match) as info:
        load_series(path, **kwargs)  # type: ignore[arg-type]
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({}, "holds no arrays"),
        ({"a": np.ones((3, 2)), "b": np.ones((3, 2))}, r"holds arrays \['a', 'b'\] and none is named 'data' or 'x'"),
        ({"data": np.ones(5)}, r"shape \(5,\); expected \(time, sensors\)"),
        ({"data": np.ones((2, 2, 2, 2))}, r"shape \(2, 2, 2, 2\)"),
        ({"data": np.array([["a", "b"], ["c", "d"]])}, "dtype <U1"),
    ],
)
def test_npz_errors(tmp_path: Path, arrays: dict[str, np.ndarray], match: str) -> None:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=match):
        load_series(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data file not found: .*nope\.csv; pass an existing"):
        load_series(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a folder without data files; pass a .* file, or a folder of them"):
        load_series(tmp_path)


# --- gaps, repeated timestamps and the choice of sensors --------------------------------------

NAN = np.nan


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tuning.sources" and r.levelno == logging.WARNING]


def test_gaps_in_timestamps_become_masked_steps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "gappy.csv"
    minutes = [0, 5, 20, 25, 35]  # 10, 15 and 30 are missing
    rows = [f"2024-01-01 00:{m:02d},{i + 1},{10 * (i + 1)}" for i, m in enumerate(minutes)]
    path.write_text("timestamp,a,b\n" + "\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="tuning.sources"):
        series = load_series(path)
    assert list(series.timestamps) == list(pd.date_range("2024-01-01", periods=8, freq="5min"))
    np.testing.assert_array_equal(series.values[:, 0], np.array([1, 2, NAN, NAN, 3, 4, NAN, 5], dtype=np.float32))
    np.testing.assert_array_equal(np.isnan(series.values[:, 1]), np.isnan(series.values[:, 0]))
    (line,) = _warnings(caplog)
    assert "2 gaps in the timestamps: 3 missing steps of 5min (37.5 % of 8)" in line
    assert "longest gap is 0 days 00:15:00 (2 steps) between the readings at 2024-01-01 00:05:00 and 2024-01-01 00:20:00" in line


def test_offsets_across_daylight_saving_time_read_as_utc(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # ISO stamps with the local offset, as agencies' APIs export them: -08:00, then -07:00
    stamps = pd.date_range("2024-03-10 01:45", periods=4, freq="5min", tz="America/Los_Angeles")
    lines = [f"{s.isoformat()},{i}" for i, s in enumerate(stamps)]
    assert lines[1].startswith("2024-03-10T01:50:00-08:00") and lines[3].startswith("2024-03-10T03:00:00-07:00")
    for name, header in (("named.csv", "timestamp,a"), ("first.csv", "when,a")):  # named, or found as dates
        path = _write(tmp_path / name, "\n".join([header, *lines]) + "\n")
        with caplog.at_level(logging.INFO, logger="tuning.sources"):
            series = load_series(path)
        assert list(series.timestamps) == list(stamps.tz_convert("UTC"))  # no hour lost or doubled
        np.testing.assert_array_equal(series.values[:, 0], [0, 1, 2, 3])
    assert "change (daylight saving time): read as UTC" in caplog.text


@pytest.mark.parametrize("days", [20, 10, 1])  # 10 days and 1: every day <= 12, so both readings parse
@pytest.mark.parametrize(("fmt", "dayfirst"), [("%d.%m.%Y %H:%M", True), ("%d/%m/%Y %H:%M", True), ("%m/%d/%Y %H:%M", False)])
def test_day_first_dates(tmp_path: Path, fmt: str, dayfirst: bool, days: int, caplog: pytest.LogCaptureFixture) -> None:
    # pandas reads 13.03.2024 as month 13 (refused) and 01.03.2024 as 3 January (a month's step at midnight)
    stamps = pd.date_range("2024-03-01", periods=days * 96, freq="15min")
    frame = pd.DataFrame({"timestamp": stamps.strftime(fmt), "a": np.arange(len(stamps), dtype=float)})
    frame.to_csv(tmp_path / "data.csv", index=False)
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        series = load_series(tmp_path / "data.csv")
    if days == 1 and fmt.startswith("%d/"):  # one day of 01/03/2024 is 3 January to pandas and to an American
        dayfirst, stamps = False, pd.date_range("2024-01-03", periods=96, freq="15min")
    assert list(series.timestamps) == list(stamps)
    assert ("dates read day first" in caplog.text) is dayfirst
    assert "(01.03.2024 00:00 is 1 March 2024)" in caplog.text or not fmt.startswith("%d.")


@pytest.mark.parametrize(("unit", "scale"), [("seconds", 1), ("milliseconds", 1000)])
def test_unix_times_read_as_utc(tmp_path: Path, unit: str, scale: int, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path / "epoch.csv", "".join(f"{1_700_000_000 * scale + i * 300 * scale},{i}\n" for i in range(3)))
    path.write_text("time,a\n" + path.read_text())
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        series = load_series(path)
    assert list(series.timestamps) == list(pd.date_range("2023-11-14 22:13:20", periods=3, freq="5min", tz="UTC"))
    assert f"holds Unix times in {unit}: read as UTC" in caplog.text


def test_spreadsheet_day_numbers_read_as_dates(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Excel's dates saved as General: 45355.010417 is 4 March 2024 00:15; float noise must not push
    # a step off the 15-minute grid. Before, refused as "holds numbers, not dates"
    stamps = pd.date_range("2024-03-04", periods=300, freq="15min")
    days = (stamps - pd.Timestamp("1899-12-30")) / pd.Timedelta("1D")
    pd.DataFrame({"timestamp": days.map(lambda d: f"{d:.6f}"), "a": np.arange(300.0)}).to_csv(tmp_path / "x.csv", index=False)
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        series = load_series(tmp_path / "x.csv")
    assert list(series.timestamps) == list(stamps) and series.values[:, 0].tolist() == list(range(300))
    assert "holds spreadsheet day numbers (Excel's dates): read as dates" in caplog.text


def test_freq_sets_the_grid_of_a_file_with_timestamps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "quarter.csv"
    path.write_text("timestamp,a\n2024-01-01 00:00,1\n2024-01-01 00:15,2\n2024-01-01 00:30,3\n")
    with caplog.at_level(logging.WARNING, logger="tuning.sources"):
        assert load_series(path, freq="15min").num_steps == 3
        assert not _warnings(caplog)
        series = load_series(path, freq="5min")
    assert series.num_steps == 7 and np.isnan(series.values[:, 0]).sum() == 4
    assert "2 gaps in the timestamps: 4 missing steps of 5min" in _warnings(caplog)[0]


def _polled_feed(path: Path) -> Path:
    """A long table as a polled feed writes it (NYC DOT's link speeds): each link read every ~5 min at its
    own moments, 12-hour clock, the timestamp column named as the feed names it."""
    rows = ["LINK_ID,SPEED,DATA_AS_OF"]
    for link, offset in ((4616, 17), (4620, 140)):
        for i in range(36):
            moment = pd.Timestamp("2024-03-04") + pd.Timedelta(seconds=offset + 300 * i + (-1) ** i * 9)
            rows.append(f"{link},{40 + i + (link == 4620) * 10},{moment.strftime('%m/%d/%Y %I:%M:%S %p')}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_polled_feed_without_freq_is_told_the_step_its_sensors_report_at(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _polled_feed(tmp_path / "feed.csv")
    with caplog.at_level(logging.INFO, logger="tuning.sources"), pytest.raises(DataError) as e:
        load_series(path)
    # Before, DATA_AS_OF was a "non-numeric column"; found by its values, then the step is named
    assert "timestamps from column 'DATA_AS_OF', the first column of dates" in caplog.text
    assert "each sensor reports about every 5min (median gap " in str(e.value)
    assert str(e.value).endswith("pass --freq 5min to average each sensor's readings per 5min step")


def test_freq_puts_readings_at_irregular_moments_in_their_steps(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _polled_feed(tmp_path / "feed.csv")
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        series = load_series(path, freq="5min")
    assert series.sensor_ids == ("4616", "4620")
    assert series.timestamps[0] == pd.Timestamp("2024-03-04 00:00") and pd.infer_freq(series.timestamps) == "5min"
    # link 4616 at 00:00:08 (40) and 00:05:26 (41): steps 00:00 and 00:05; two readings fall in 01:00 (52, 53)
    frame = pd.DataFrame(series.values, index=series.timestamps, columns=series.sensor_ids)
    assert frame.loc["2024-03-04 00:00", "4616"] == 40 and frame.loc["2024-03-04 00:05", "4616"] == 41
    readings = pd.read_csv(path)
    moments = pd.to_datetime(readings["DATA_AS_OF"], format="%m/%d/%Y %I:%M:%S %p")
    binned = readings.assign(step=moments.dt.floor("5min")).groupby(["step", "LINK_ID"])["SPEED"].mean().unstack()
    np.testing.assert_array_equal(frame.reindex(binned.index).to_numpy(), binned.to_numpy(dtype=np.float32))
    assert "timestamps lie between steps of 5min (e.g. 2024-03-04 00:0" in caplog.text
    assert "each reading is put in the step it falls in (2024-03-04 00:0" in caplog.text
    assert not _warnings(caplog)  # the readings a step averages are the point, not a problem


def test_freq_a_multiple_of_the_step_averages_the_readings_in_each_step(tmp_path: Path) -> None:
    path = tmp_path / "five.csv"
    stamps = pd.date_range("2024-01-01", periods=12, freq="5min")
    pd.DataFrame({"timestamp": stamps, "a": np.arange(12.0)}).to_csv(path, index=False)
    series = load_series(path, freq="15min")
    assert list(series.timestamps) == list(pd.date_range("2024-01-01", periods=4, freq="15min"))
    assert series.values[:, 0].tolist() == [1.0, 4.0, 7.0, 10.0]
    with pytest.raises(DataError, match="is not on the grid of 7min steps"):  # no multiple: a slip, refused
        load_series(path, freq="7min")


def test_freq_bins_a_polled_long_table_whose_sensor_column_has_no_usual_name(tmp_path: Path) -> None:
    # Binned, a station may fall twice in one step; before the fix the id column became a "sensor"
    # and every station's speeds were averaged into one series, without an error
    rows = ["measured,station_no,speed"]
    for k in range(60):
        for station, offset in ((4011, 10), (4012, 39), (4013, 200)):
            moment = pd.Timestamp("2024-03-01 08:00") + pd.Timedelta(seconds=offset + 300 * k + (k % 3) * 7)
            rows.append(f"{moment:%Y-%m-%d %H:%M:%S},{station},{station % 10}")
    (tmp_path / "polled.csv").write_text("\n".join(rows) + "\n")
    for freq in ("5min", "1h"):  # twice in a step now and then; 12 times in every step
        series = load_series(tmp_path / "polled.csv", freq=freq, zero_is_missing=False)
        assert series.sensor_ids == ("4011", "4012", "4013")
        assert (np.nanmax(series.values, axis=0) == [1, 2, 3]).all() and (np.nanmin(series.values, axis=0) == [1, 2, 3]).all()


def test_freq_bins_zoned_readings_by_their_wall_clock(tmp_path: Path) -> None:
    # India is UTC+05:30: hourly steps start at 08:00 there, not at 07:30 (a floor in UTC)
    minutes = [0, 17, 41, 58, 66, 101, 130, 179]
    moments = pd.Timestamp("2024-03-01 08:00", tz="Asia/Kolkata") + pd.to_timedelta(minutes, unit="min")
    (tmp_path / "ist.csv").write_text("timestamp,a\n" + "".join(f"{m.isoformat()},{i}\n" for i, m in enumerate(moments)))
    series = load_series(tmp_path / "ist.csv", freq="1h", zero_is_missing=False)
    assert [f"{t:%H:%M}" for t in series.timestamps.tz_convert("Asia/Kolkata")] == ["08:00", "09:00", "10:00"]
    assert series.values[:, 0].tolist() == [1.5, 4.5, 6.5]


def test_freq_keeps_timestamps_on_a_grid_of_their_own(tmp_path: Path) -> None:
    path = tmp_path / "offset.csv"  # 5-minute data stamped at the middle of each interval
    path.write_text("timestamp,a\n2024-01-01 00:02:30,1\n2024-01-01 00:07:30,2\n2024-01-01 00:12:30,3\n")
    series = load_series(path, freq="5min")
    assert list(series.timestamps) == list(pd.date_range("2024-01-01 00:02:30", periods=3, freq="5min"))


def test_freq_puts_zoned_readings_in_their_steps_across_the_clock_change(tmp_path: Path) -> None:
    # Berlin's clocks went back at 03:00 on 27 October 2024: 02:00-03:00 came twice
    minutes = [3, 20, 31, 52, 64, 78, 95, 112]  # from 00:00 UTC, each in its own quarter hour
    moments = (pd.Timestamp("2024-10-27 00:00", tz="UTC") + pd.to_timedelta(minutes, unit="min")).tz_convert("Europe/Berlin")
    text = "".join(f"{m.isoformat()},{i}\n" for i, m in enumerate(moments))
    path = tmp_path / "zoned.csv"
    path.write_text("timestamp,a\n" + text)
    series = load_series(path, freq="15min")
    assert series.timestamps[0] == pd.Timestamp("2024-10-27 00:00", tz="UTC")  # the same moment as 02:00+02:00
    assert series.values[:, 0].tolist() == list(range(8))  # each in its own step, none missing


def test_a_column_of_text_ids_is_not_taken_for_dates(tmp_path: Path) -> None:
    path = tmp_path / "lanes.csv"  # lane ids such as 1-5 parse as 5 January; the readings' moments come later
    rows = [f"{30 + lane + i},1-{lane},2024-03-04 00:{5 * i:02d}" for i in range(4) for lane in (1, 2)]
    path.write_text("speed,lane,measured\n" + "\n".join(rows) + "\n")
    series = load_series(path)
    assert series.sensor_ids == ("1-1", "1-2") and series.num_steps == 4


def test_rows_sharing_a_timestamp_are_averaged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "repeats.csv"
    path.write_text(
        "timestamp,a,b\n2024-01-01 00:00,1,\n2024-01-01 00:00,3,4\n2024-01-01 00:05,2,2\n"
        "2024-01-01 00:05,2,2\n2024-01-01 00:10,,\n2024-01-01 00:10,,\n2024-01-01 00:15,7,8\n"
    )
    with caplog.at_level(logging.WARNING, logger="tuning.sources"):
        series = load_series(path)
    expected = np.array([[2, 4], [2, 2], [NAN, NAN], [7, 8]], dtype=np.float32)  # missing cells do not count
    np.testing.assert_array_equal(series.values, expected)
    assert list(series.timestamps) == list(pd.date_range("2024-01-01", periods=4, freq="5min"))
    (line,) = _warnings(caplog)
    assert "3 rows repeat an earlier timestamp" in line and "(1 timestamps held differing readings)" in line


_TABLE = "timestamp,det_1,det_2\n" + "".join(f"2024-01-01 {h:02d}:00,{h},{h + 1}\n" for h in range(12))


@pytest.mark.parametrize(
    "report",
    [
        "Traffic counts, Station 401\nExported 2024-05-01 by TMS\n\n" + _TABLE,  # a title, notes, a blank line
        "# Traffic counts, Station 401\n# units: vehicles per hour\n" + _TABLE,  # comments
        _TABLE + "\nTotal,66,78\nEnd of report\n",  # a footer, its sums too
        "Counts;Station 401\n" + _TABLE.replace(",", ";"),  # a title of the other separator
    ],
    ids=["title", "comments", "footer", "semicolons"],
)
def test_a_report_s_title_and_footer_are_left_out(tmp_path: Path, report: str, caplog: pytest.LogCaptureFixture) -> None:
    # Before: "Expected 2 fields in line 4, saw 3", or "Total" refused as a date
    (tmp_path / "report.csv").write_text(report)
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        series = load_series(tmp_path / "report.csv", zero_is_missing=False)
    assert series.sensor_ids == ("det_1", "det_2") and series.values[:, 0].tolist() == list(range(12))
    assert (
        "above the table left out (a title or notes: " in caplog.text
        or "2 row(s) below the table left out (a report's footer: 'Total')" in caplog.text
    )


def test_a_bad_date_in_the_last_row_is_no_footer(tmp_path: Path) -> None:
    (tmp_path / "typo.csv").write_text(_TABLE + "2024-13-45 00:00,1,2\n")
    with pytest.raises(DataError, match="holds values that are not dates"):
        load_series(tmp_path / "typo.csv")


def test_column_patterns_pick_a_measure_of_every_detector(tmp_path: Path) -> None:
    path = tmp_path / "measures.csv"
    path.write_text(
        "timestamp,det_1_flow,det_1_speed,det_2_flow,det_2_speed\n2024-01-01 00:00,10,61,12,59\n2024-01-01 00:05,11,60,13,58\n"
    )
    for picked in (load_series(path, columns=["*_speed"]), load_series(path, exclude_columns=["*_flow"])):
        assert picked.sensor_ids == ("det_1_speed", "det_2_speed")
        np.testing.assert_array_equal(picked.values, np.array([[61, 59], [60, 58]], dtype=np.float32))
    assert load_series(path, columns=["det_2_?????", "det_1_speed"]).sensor_ids == ("det_2_speed", "det_1_speed")
    with pytest.raises(DataError, match=r"--columns pattern '\*_occupancy' matches no column; its columns are"):
        load_series(path, columns=["*_occupancy"])


def test_columns_pick_sensors_in_order_and_skip_covariates(tmp_path: Path) -> None:
    path = tmp_path / "covariates.csv"
    path.write_text("date_time,weather,b,a,temp\n2024-01-01 00:00,sun,1,2,20\n2024-01-01 01:00,rain,3,4,21\n")
    picked = load_series(path, columns=["a", "b"])
    assert picked.sensor_ids == ("a", "b")
    np.testing.assert_array_equal(picked.values, np.array([[2, 1], [4, 3]], dtype=np.float32))
    rest = load_series(path, exclude_columns=["weather", "temp"])
    assert rest.sensor_ids == ("b", "a")


def test_columns_pick_array_and_synthetic_sensors(tmp_path: Path) -> None:
    data = np.arange(30, dtype=np.float64).reshape(10, 3)
    np.savez(tmp_path / "pems.npz", data=data)
    series = load_series(tmp_path / "pems.npz", columns=["S002", "S000"])
    assert series.sensor_ids == ("S002", "S000")
    np.testing.assert_array_equal(series.values, data[:, [2, 0]].astype(np.float32))
    assert series.values.flags.c_contiguous
    synthetic = synthetic_traffic(num_sensors=3, num_days=1)
    assert select_sensors(synthetic, exclude_columns=["S001"]).sensor_ids == ("S000", "S002")
    assert select_sensors(synthetic) is synthetic
    with pytest.raises(DataError, match=r"--columns names \['S009'\]"):
        select_sensors(synthetic, ["S009"])


def test_a_long_table_reads_as_its_wide_form(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Read as a wide file, the sensor-id column became a "sensor" and every sensor was
    # averaged into one series at each repeated timestamp.
    series = synthetic_traffic(num_sensors=4, num_days=1)
    series = replace(series, sensor_ids=("773869", "767541", "767542", "717447"))
    long = long_table(series)
    long["timestamp"] = long["timestamp"].dt.strftime("%Y-%m-%d %H:%M")
    long["sensor_id"] = long["sensor_id"].astype(int)
    long = long.dropna(subset=["speed"])  # exports leave missing readings out
    long.to_csv(tmp_path / "long.csv", index=False)
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        read = load_series(tmp_path / "long.csv")
    order = np.argsort([int(s) for s in series.sensor_ids])  # sensors by id, as numbers
    assert read.sensor_ids == tuple(series.sensor_ids[i] for i in order)
    np.testing.assert_array_equal(read.values, series.values[:, order])
    assert list(read.timestamps) == list(series.timestamps)
    assert any("a long table: 4 sensors from column 'sensor_id', readings from 'speed'" in r.message for r in caplog.records)
    picked = load_series(tmp_path / "long.csv", columns=["767541"])  # --columns names sensor ids
    np.testing.assert_array_equal(picked.values[:, 0], series.values[:, 1])


def test_a_long_table_by_its_shape_with_text_ids_and_extra_columns() -> None:
    series = synthetic_traffic(num_sensors=3, num_days=1)
    long = long_table(series, id_column="VDS code")  # a name not known as an id: found by its shape
    long["direction"] = "N"
    long.loc[0, "speed"] = np.nan
    read = as_series(long, name="frame", zero_is_missing=False)
    expected = series.values.copy()
    expected[0, 0] = np.nan
    assert read.sensor_ids == series.sensor_ids
    np.testing.assert_array_equal(read.values, expected)
    named = long.rename(columns={"VDS code": "Station"})  # a known name: rows may repeat
    doubled = as_series(pd.concat([named, named.assign(speed=named["speed"] + 2)]), name="frame", zero_is_missing=False)
    np.testing.assert_allclose(doubled.values[1:], expected[1:] + 1, rtol=1e-6)  # repeated rows are averaged


def test_columns_pick_a_long_tables_readings_and_sensors(tmp_path: Path) -> None:
    series = synthetic_traffic(num_sensors=3, num_days=1)
    long = long_table(series, id_column="station").assign(flow=7.0, occupancy=0.1)  # as PeMS exports hold them
    speed = as_series(long, name="frame", zero_is_missing=False, columns=["speed"])
    assert speed.sensor_ids == series.sensor_ids
    np.testing.assert_array_equal(speed.values, series.values)
    flow = as_series(long, name="frame", exclude_columns=["speed", "occupancy", "S001"])  # and a sensor left out
    assert flow.sensor_ids == ("S000", "S002") and (flow.values == 7).all()
    long.to_csv(tmp_path / "long.csv", index=False)
    picked = load_series(tmp_path / "long.csv", columns=["speed", "S002", "S000"], zero_is_missing=False)
    assert picked.sensor_ids == ("S002", "S000")
    np.testing.assert_allclose(picked.values, series.values[:, [2, 0]], rtol=1e-6)
    with pytest.raises(DataError, match=r"--columns names \['speed', 'flow'\] of this long table's columns; name one"):
        load_series(tmp_path / "long.csv", columns=["speed", "flow"])


@pytest.mark.parametrize(
    ("values", "example"),
    [
        (["intensidad", "ocupacion", "carga", "vmed"], "vmed"),  # Madrid: speed before flow
        (["Débit horaire", "Taux d'occupation"], "'Débit horaire'"),  # Paris: flow before occupancy
        (["carga", "ocupacion"], "ocupacion"),
    ],
)
def test_the_example_reading_is_what_is_usually_forecast_in_the_file_s_language(values: list[str], example: str) -> None:
    long = long_table(synthetic_traffic(num_sensors=3, num_days=1)).drop(columns="speed")
    with pytest.raises(DataError, match=f"name the one to forecast with --columns, e.g. --columns {re.escape(example)}$"):
        as_series(long.assign(**{v: 1.0 for v in values}), name="frame")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            lambda f: f.assign(flow=1.0),
            r"several value columns \['speed', 'flow'\]; name the one to forecast with --columns, e.g. --columns speed",
        ),
        (  # two sensors under one station: the columns disagree on what a sensor is
            lambda f: f.assign(station=f["sensor_id"].map({"S000": "A", "S001": "A", "S002": "B"})),
            r"\['sensor_id', 'station'\] could each name the sensor",
        ),
        (lambda f: f.assign(speed="fast"), "but has no numeric value column"),
        (lambda f: f.assign(timestamp=f["timestamp"].where(f.index != 5)), "data row 6 has no timestamp"),
    ],
)
def test_long_table_errors(change: object, match: str) -> None:
    long = long_table(synthetic_traffic(num_sensors=3, num_days=1))
    with pytest.raises(DataError, match=match):
        as_series(change(long), name="frame")  # type: ignore[operator]


@pytest.mark.parametrize(("encoding", "sep"), [("cp1252", ";"), ("utf-16", "\t")])
def test_text_in_windows_1252_or_utf_16_is_read(tmp_path: Path, encoding: str, sep: str) -> None:
    # Windows-1252: older exports in Western Europe; UTF-16 with tabs: Excel's "Unicode Text". Before: "'utf-8' codec can't decode"
    frame = pd.DataFrame({"Zeit": ["04.03.2024 00:00", "04.03.2024 00:15", "04.03.2024 00:30"], "Zählstelle Süd": [5, 7, 9]})
    frame.to_csv(tmp_path / "zaehlung.csv", sep=sep, index=False, encoding=encoding)
    series = load_series(tmp_path / "zaehlung.csv", zero_is_missing=False)
    assert series.sensor_ids == ("Zählstelle Süd",) and series.values[:, 0].tolist() == [5, 7, 9]


def test_windows_1252_past_the_first_megabyte_is_read_again_as_such(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stamps = pd.date_range("2024-03-04", periods=50_000, freq="5min").strftime("%Y-%m-%d %H:%M")
    rows = [f"{t},Nord,{i % 50}" for i, t in enumerate(stamps)] + [f"{t},Süd,{i % 40}" for i, t in enumerate(stamps)]
    (tmp_path / "sites.csv").write_bytes(("timestamp,site,count\n" + "\n".join(rows) + "\n").encode("cp1252"))
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        series = load_series(tmp_path / "sites.csv", zero_is_missing=False)
    assert series.sensor_ids == ("Nord", "Süd") and series.values[-1].tolist() == [49_999 % 50, 49_999 % 40]
    assert "text in Windows-1252, not UTF-8 (found past the first megabyte)" in caplog.text


def test_a_stray_byte_in_utf_8_text_keeps_its_names(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = "".join(
        f"{t:%Y-%m-%d %H:%M},{i % 50},x\n" for i, t in enumerate(pd.date_range("2024-01-01", periods=60_000, freq="5min"))
    )
    (tmp_path / "stray.csv").write_bytes(("timestamp,café,note\n" + rows).encode() + b"2024-07-28 08:00,7,\xff\n")
    with caplog.at_level(logging.WARNING, logger="tuning.sources"):
        series = load_series(tmp_path / "stray.csv", columns=["café"], zero_is_missing=False)
    assert series.sensor_ids == ("café",)  # not Windows-1252's "cafÃ©"
    assert "UTF-8 text with bytes that are not UTF-8 past the first megabyte" in caplog.text


def _records(tmp_path: Path) -> tuple[pd.DataFrame, TrafficSeries]:
    """A long table as an API returns it (every value a string, as Socrata's are; a nested location), and
    the series its CSV gives."""
    long = long_table(synthetic_traffic(num_sensors=3, num_days=1)).astype(str)
    long.to_csv(tmp_path / "table.csv", index=False)
    return long, load_series(tmp_path / "table.csv", zero_is_missing=False)


@pytest.mark.parametrize("form", ["records", "envelope", "lines.gz", "columns", "tsv", "geojson"])
def test_json_records_and_tab_separated_text_read_as_their_csv(tmp_path: Path, form: str) -> None:
    long, expected = _records(tmp_path)
    records = [{**r, "location": {"lat": "45.5", "lon": "-122.6"}} for r in long.to_dict("records")]
    if form == "records":
        (path := tmp_path / "feed.json").write_text(json.dumps(records))
    elif form == "envelope":
        (path := tmp_path / "feed.json").write_text(json.dumps({"meta": {"rows": len(records)}, "data": records}))
    elif form == "lines.gz":
        with gzip.open(path := tmp_path / "feed.jsonl.gz", "wt") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
    elif form == "columns":
        (path := tmp_path / "feed.json").write_text(json.dumps(long.to_dict("list")))
    elif form == "geojson":  # a feature per reading; its geometry's coordinates once looked like sensor ids
        features = [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [i % 7, 45.5]}, "properties": r}
            for i, r in enumerate(long.to_dict("records"))
        ]
        (path := tmp_path / "feed.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    else:
        long.to_csv(path := tmp_path / "feed.tsv", sep="\t", index=False)
    read = load_series(path, columns=["speed"], zero_is_missing=False)  # before: "unsupported file type"
    assert read.sensor_ids == expected.sensor_ids and list(read.timestamps) == list(expected.timestamps)
    np.testing.assert_array_equal(read.values, expected.values)


@pytest.mark.parametrize("layout", [{}, {"orient": "index"}, {"orient": "split"}, {"orient": "table"}, {"date_format": "iso"}])
def test_a_frame_that_pandas_wrote_as_json_reads_back(tmp_path: Path, layout: dict[str, str]) -> None:
    series = synthetic_traffic(num_sensors=3, num_days=1)
    frame = pd.DataFrame(series.values, index=series.timestamps, columns=list(series.sensor_ids))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas' notice that its default date format will change
        frame.to_json(tmp_path / "frame.json", **layout)  # type: ignore[call-overload]
    read = load_series(tmp_path / "frame.json", zero_is_missing=False)  # before: "holds no table"
    assert read.sensor_ids == series.sensor_ids and list(read.timestamps) == list(series.timestamps)
    np.testing.assert_allclose(read.values, series.values, rtol=1e-6)


@pytest.mark.parametrize("ids", [["40012345", "40012346"], ["1236893704", "1236893705"]])
def test_sensor_ids_of_many_digits_stay_names_in_pandas_json(tmp_path: Path, ids: list[str]) -> None:
    # 8 digits became dates of 1971 (pandas converts axes), 10 digits took the frame for the index layout
    stamps = pd.date_range("2024-03-04", periods=48, freq="1h")
    frame = pd.DataFrame({ids[0]: np.arange(48.0), ids[1]: np.arange(48.0) + 100}, index=stamps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame.to_json(tmp_path / "xd.json")
    read = load_series(tmp_path / "xd.json", zero_is_missing=False)
    assert read.sensor_ids == tuple(ids) and list(read.timestamps) == list(stamps)


@pytest.mark.parametrize("orient", ["index", "table"])
def test_pandas_json_of_a_frame_with_row_numbers(tmp_path: Path, orient: str) -> None:
    frame = pd.DataFrame({"det1": np.arange(48.0), "det2": np.arange(48.0) + 1})
    frame.to_json(tmp_path / "rows.json", orient=orient)
    read = load_series(tmp_path / "rows.json", zero_is_missing=False)  # the row numbers are no sensor
    assert read.sensor_ids == ("det1", "det2") and read.values[:, 1].tolist() == list(range(1, 49))


def test_json_of_days_by_hours_is_refused_with_the_layout_to_use(tmp_path: Path) -> None:
    days = {f"2024-03-0{d}": {str(h): 100 * d + h for h in range(24)} for d in range(4, 8)}
    (tmp_path / "days.json").write_text(json.dumps(days))
    with pytest.raises(DataError, match="holds a row per day and a column per hour of the day"):
        load_series(tmp_path / "days.json")


def test_geojson_features_named_by_their_own_id(tmp_path: Path) -> None:
    features = [
        {
            "type": "Feature",
            "id": f"det{d}",
            "geometry": None,
            "properties": {"timestamp": f"2024-03-04 {h:02d}:00", "speed": 50 + d},
        }
        for h in range(24)
        for d in range(3)
    ]
    (tmp_path / "f.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    read = load_series(tmp_path / "f.geojson", zero_is_missing=False)
    assert read.sensor_ids == ("det0", "det1", "det2") and read.values[0].tolist() == [50, 51, 52]
    features.append({"type": "Feature", "id": "det9", "geometry": None, "properties": None})  # allowed by GeoJSON
    (tmp_path / "f.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with pytest.raises(DataError, match="data row 73 has no timestamp"):  # read as GeoJSON still: one clear line
        load_series(tmp_path / "f.geojson")


def test_json_without_a_table_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text("[1, 2, 3]")
    with pytest.raises(DataError, match=r"list.json: holds no table: expected a list of records"):
        load_series(tmp_path / "list.json")
    (tmp_path / "cut.json").write_text('[{"timestamp": "2024-01-01 00:00", "a": 1}, {"times')
    with pytest.raises(DataError, match=r"cut.json: is not JSON \(.*\); check the file is complete"):
        load_series(tmp_path / "cut.json")


def test_a_row_per_sensor_and_a_column_per_timestamp_is_read_transposed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    series = synthetic_traffic(num_sensors=3, num_days=1)
    matrix = pd.DataFrame(series.values.T, columns=series.timestamps.strftime("%d/%m/%Y %H:%M"))
    matrix.insert(0, "detector", [401, 402, 403])
    matrix.to_csv(tmp_path / "matrix.csv", index=False)
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        read = load_series(tmp_path / "matrix.csv", zero_is_missing=False)
    # Before, each of the 288 timestamps was a "sensor" and the 3 sensors its time steps
    assert read.sensor_ids == ("401", "402", "403") and list(read.timestamps) == list(series.timestamps)
    np.testing.assert_allclose(read.values, series.values, rtol=1e-6)
    assert "a row per sensor and a column per timestamp (01/01/2024 00:00 ... 01/01/2024 23:55): read as 288" in caplog.text


def test_a_count_report_of_hours_by_days_is_one_sensor_in_time_order(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # An hour per row, a day per column, a Total row and column, as count reports are laid out;
    # before, each day was a "sensor" without timestamps
    days = ["04/03/2024", "05/03/2024", "06/03/2024"]
    rows = [f"{h:02d}:00," + ",".join(str(100 * d + h) for d in range(3)) + f",{300 + 3 * h}" for h in range(24)]
    text = "Time," + ",".join(days) + ",Total\n" + "\n".join(rows) + "\nTotal,2676,5076,7476,15228\n"
    (tmp_path / "station_401.csv").write_text(text)
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        series = load_series(tmp_path / "station_401.csv", zero_is_missing=False)
    assert series.sensor_ids == ("readings",)
    assert list(series.timestamps) == list(pd.date_range("2024-03-04", periods=72, freq="1h"))  # day first: 4-6 March
    assert series.values[:, 0].tolist() == [100 * d + h for d in range(3) for h in range(24)]
    assert "a day per column (04/03/2024 ... 06/03/2024): read as one sensor, 'readings'; ['Total'] left out" in caplog.text


def test_a_folder_of_weekly_reports_of_hours_by_days_is_one_series(tmp_path: Path) -> None:
    # each week's header holds other days: joined only once each report is one column
    (tmp_path / "reports").mkdir()
    for week in range(2):
        days = pd.date_range("2024-03-04", periods=7, freq="D") + pd.Timedelta(days=7 * week)
        rows = [f"{h}," + ",".join(str(1000 * week + 10 * d + h) for d in range(7)) for h in range(24)]
        (tmp_path / "reports" / f"week{week + 1}.csv").write_text(
            "Hour," + ",".join(f"{d:%Y-%m-%d}" for d in days) + "\n" + "\n".join(rows)
        )
    series = load_series(tmp_path / "reports", zero_is_missing=False)
    assert series.sensor_ids == ("readings",) and series.num_steps == 14 * 24
    assert series.values[:, 0].tolist() == [1000 * w + 10 * d + h for w in range(2) for d in range(7) for h in range(24)]


def test_a_report_with_hours_0_to_23_a_total_row_and_days_in_reverse(tmp_path: Path) -> None:
    days = ["2024-03-06", "2024-03-05", "2024-03-04"]  # newest first
    rows = [f"{h}," + ",".join(str(100 * (6 - int(d[-1])) + h) for d in days) for h in range(24)]
    (tmp_path / "r.csv").write_text("Hour," + ",".join(days) + "\n" + "\n".join(rows) + "\nTotal,1,2,3\n")
    series = load_series(tmp_path / "r.csv", zero_is_missing=False)
    assert series.sensor_ids == ("readings",) and series.timestamps[0] == pd.Timestamp("2024-03-04")
    assert series.values[:, 0].tolist() == [100 * (2 - d) + h for d in range(3) for h in range(24)]


@pytest.mark.parametrize(
    ("hours", "first"),
    [
        ([str(h) for h in range(1, 25)], "1"),  # hour ending 01:00 ... 24:00, as US count reports number them
        ([f"{h:02d}:00-{h + 1:02d}:00" for h in range(24)], "00:00-01:00"),  # intervals, labelled by their start
        ([f"{h % 12 or 12}:00 {'AM' if h < 12 else 'PM'} - {(h + 1) % 12 or 12}:00 {'AM' if h < 11 or h == 23 else 'PM'}"
          for h in range(24)], "12:00 AM - 1:00 AM"),  # a 12-hour clock
        ([f"{h % 12 or 12}:00 - {(h + 1) % 12 or 12}:00 {'AM' if h < 11 or h == 23 else 'PM'}" for h in range(24)],
         "12:00 - 1:00 AM"),  # the half of the day named once, at the end: 11:00 - 12:00 PM starts at 11:00
    ],
)  # fmt: skip
def test_a_report_s_hours_ending_and_intervals_are_labelled_by_their_start(
    tmp_path: Path, hours: list[str], first: str, caplog: pytest.LogCaptureFixture
) -> None:
    # before: 1-24 made 'Hour' a "sensor" beside the days, with no timestamps; intervals were refused
    days = ["2024-03-04", "2024-03-05"]
    rows = [f'"{h}",' + ",".join(str(100 * d + i) for d in range(2)) for i, h in enumerate(hours)]
    (tmp_path / "r.csv").write_text("Hour," + ",".join(days) + "\n" + "\n".join(rows) + "\nTotal,1,2\n")
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        series = load_series(tmp_path / "r.csv", zero_is_missing=False)
    assert series.sensor_ids == ("readings",)
    assert list(series.timestamps) == list(pd.date_range("2024-03-04", periods=48, freq="1h"))
    assert series.values[:, 0].tolist() == [100 * d + i for d in range(2) for i in range(24)]
    assert ("hours 1-24 in 'Hour' read as hours ending" in caplog.text) == (first == "1")


def test_a_report_s_daily_traffic_column_is_left_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # ADT (average daily traffic) beside the days: before, the days were not seen as a report
    days = ["Mon 03/04/2024", "Tue 03/05/2024"]
    rows = [f"{h}," + ",".join(str(100 * d + h) for d in range(2)) + f",{100 + 2 * h}" for h in range(24)]
    (tmp_path / "r.csv").write_text("Hour," + ",".join(days) + ",ADT\n" + "\n".join(rows) + "\nAM Peak,1,2,3\n")
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        series = load_series(tmp_path / "r.csv", zero_is_missing=False)
    assert series.sensor_ids == ("readings",) and series.timestamps[24] == pd.Timestamp("2024-03-05")
    assert series.values[:, 0].tolist() == [100 * d + h for d in range(2) for h in range(24)]
    assert "['ADT'] left out" in caplog.text


@pytest.mark.parametrize(("header", "footer"), [(["Mon 03/04", "Tue 03/05"], ""), (["04.03.", "05.03."], ""),
                                                (["Mon 03/04", "Tue 03/05"], "Total,1,2\n"),
                                                (["Tue 03/05", "Mon 03/04"], ""),  # newest first
                                                (["3/1", "3/16"], "")])  # fmt: skip
def test_a_report_whose_days_have_no_year_is_refused_with_the_fix(tmp_path: Path, header: list[str], footer: str) -> None:
    # before: each day became a "sensor" of 24 steps, at times of day dated today (or without timestamps), silently
    rows = [f"{h:02d}:00," + ",".join(str(100 * d + h) for d in range(2)) for h in range(24)]
    (tmp_path / "r.csv").write_text("Time," + ",".join(header) + "\n" + "\n".join(rows) + "\n" + footer)
    with pytest.raises(DataError, match=rf"r.csv: a time of day per row and a day per column, but the days have no year "
                       rf"\({re.escape(header[0])} ... {re.escape(header[1])}\): write the year into the header"):  # fmt: skip
        load_series(tmp_path / "r.csv", zero_is_missing=False)


def test_a_peak_period_report_takes_the_half_of_the_day_from_the_interval_s_end(tmp_path: Path) -> None:
    # "4:00 - 4:15 PM", as peak-period counts are written: 16:00, not 04:00 (a review found it read as morning)
    starts = pd.date_range("2024-03-04 16:00", periods=8, freq="15min")
    rows = [f"{t:%-I:%M} - {t + pd.Timedelta('15min'):%-I:%M %p},{i},{100 + i}" for i, t in enumerate(starts)]
    (tmp_path / "pm.csv").write_text("Time,2024-03-04,2024-03-05\n" + "\n".join(rows) + "\n")
    series = load_series(tmp_path / "pm.csv", zero_is_missing=False)
    assert series.timestamps[0] == pd.Timestamp("2024-03-04 16:00") and series.timestamps[7] == pd.Timestamp("2024-03-04 17:45")
    assert series.values[:8, 0].tolist() == list(range(8))


def test_seconds_of_a_12_hour_clock_are_kept(tmp_path: Path) -> None:
    # 30-second readings at 12:00:30 PM: the seconds were dropped and each pair averaged into a minute
    stamps = pd.date_range("2024-03-04 12:00", periods=40, freq="30s")
    frame = pd.DataFrame({"Date": stamps.strftime("%m/%d/%Y"), "Time": stamps.strftime("%I:%M:%S %p"),
                          "S1": np.arange(40.0)})  # fmt: skip
    frame.to_csv(tmp_path / "s.csv", index=False)
    series = load_series(tmp_path / "s.csv", zero_is_missing=False)
    assert list(series.timestamps) == list(stamps) and series.values[:, 0].tolist() == list(range(40))


@pytest.mark.parametrize("lanes", [["1-1", "1-2", "2-1"], ["1-1", "1-2", "1-3"]])
def test_detector_ids_shaped_like_days_without_a_year_stay_sensors(tmp_path: Path, lanes: list[str]) -> None:
    # station-lane ids, in a run or not: the file reads wide, as before the days-without-a-year check
    rows = "".join(f"{h},{10 + h},{20 + h},{30 + h}\n" for h in range(24))
    (tmp_path / "lanes.csv").write_text("hour," + ",".join(lanes) + "\n" + rows)
    series = load_series(tmp_path / "lanes.csv", zero_is_missing=False, exclude_columns=["hour"], freq="1h",
                         start="2024-03-04")  # fmt: skip
    assert series.sensor_ids == tuple(lanes) and series.values[:, 2].tolist() == [30 + h for h in range(24)]


def test_dates_without_a_year_and_a_header_without_rows_are_refused(tmp_path: Path) -> None:
    (tmp_path / "y.csv").write_text("time,S1\n" + "".join(f"03/04 {h:02d}:00,{h}\n" for h in range(24)))
    with pytest.raises(DataError, match=r"y.csv: timestamp column 'time' holds dates without a year \(03/04 00:00 ...\); "
                       r"write each date with its year"):  # fmt: skip
        load_series(tmp_path / "y.csv")  # before: 4 March of the year 1
    (tmp_path / "d0.csv").write_text("timestamp,S1\n" + "".join(f"1899-12-30 {h:02d}:00,{h}\n" for h in range(24)))
    with pytest.raises(DataError, match=r"d0.csv: timestamp column 'timestamp' holds times on a spreadsheet's day 0 "
                       r"\(1899-12-30 00:00 ...\), not dates"):  # fmt: skip
        load_series(tmp_path / "d0.csv")  # times of day alone, as a database export writes them
    (tmp_path / "h.csv").write_text("timestamp,S1,S2\n")
    with pytest.raises(DataError, match=r"h.csv: has a header \(timestamp, S1, S2\) but no rows of readings"):
        load_series(tmp_path / "h.csv")  # before: "cannot convert float NaN to integer"


def test_a_report_s_blank_time_is_named_as_such(tmp_path: Path) -> None:
    # its dates are in the header: "add the date" would be the wrong advice
    rows = [("" if h == 5 else f"{h % 12 or 12}:00 {'AM' if h < 12 else 'PM'}") + f",{h},{h}" for h in range(24)]
    (tmp_path / "r.csv").write_text("Time,2024-03-04,2024-03-05\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"r.csv: a time of day per row and a day per column, but column 'Time' is "
                       r"blank in data row 6; every row needs its time"):  # fmt: skip
        load_series(tmp_path / "r.csv")
    rows = [("" if h == 5 else str(h)) + f",{h},{h}" for h in range(24)]  # whole hours: before, 'Hour' was a sensor
    (tmp_path / "h.csv").write_text("Hour,2024-03-04,2024-03-05\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"h.csv: .* column 'Hour' is blank in data row 6"):
        load_series(tmp_path / "h.csv")


@pytest.mark.parametrize("has_blank", [True, False])
def test_a_blank_hour_beside_dates_is_named(tmp_path: Path, has_blank: bool) -> None:
    # before: read as a long table, 'Volume' the sensor ids and 'Hour' the readings, without an error
    rows = [f"2024-03-0{4 + d},{'' if has_blank and (d, h) == (1, 6) else h},{10 * d + h}" for d in range(2) for h in range(24)]
    (tmp_path / "v.csv").write_text("Date,Hour,Volume\n" + "\n".join(rows) + "\n")
    if not has_blank:  # the same file whole reads as 48 hourly steps
        assert load_series(tmp_path / "v.csv", zero_is_missing=False).num_steps == 48
        return
    with pytest.raises(DataError, match=r"v.csv: column 'Hour', the time of day of the dates in 'Date', is blank in "
                       r"data row 31; every row needs one"):  # fmt: skip
        load_series(tmp_path / "v.csv")


def test_a_date_column_and_hours_1_to_24_are_one_timestamp(tmp_path: Path) -> None:
    rows = [(f"2024-03-0{d + 4}", h, 50 + 24 * d + h) for d in range(2) for h in range(1, 25)]
    pd.DataFrame(rows, columns=["Date", "Hour", "volume"]).to_csv(tmp_path / "v.csv", index=False)
    series = load_series(tmp_path / "v.csv", zero_is_missing=False)
    assert list(series.timestamps) == list(pd.date_range("2024-03-04", periods=48, freq="1h"))
    assert series.values[:, 0].tolist() == [50 + 24 * d + h for d in range(2) for h in range(1, 25)]


def test_a_day_of_readings_of_sensors_with_year_like_ids_stays_wide(tmp_path: Path) -> None:
    rows = "".join(f"{h:02d}:00,{100 + h},{200 + h}\n" for h in range(24))
    (tmp_path / "lanes.csv").write_text("Time,2015-1,2015-2\n" + rows)  # station-lane ids, not days
    # not a report of two days: read wide, whose times of day lack a date (pandas dated them today)
    with pytest.raises(DataError, match=r"lanes.csv: timestamp column 'Time' holds times of day without dates \(00:00 ...\)"):
        load_series(tmp_path / "lanes.csv", zero_is_missing=False)
    dated = "".join(f"2024-03-04 {h:02d}:00,{100 + h},{200 + h}\n" for h in range(24))
    (tmp_path / "dated.csv").write_text("Time,2015-1,2015-2\n" + dated)
    assert load_series(tmp_path / "dated.csv", zero_is_missing=False).sensor_ids == ("2015-1", "2015-2")


def test_times_of_day_without_dates_are_refused(tmp_path: Path) -> None:
    # a week of 5-minute readings whose date was in the file's name: before, pandas dated the
    # times today and the file was refused as out of order; a single day was dated today
    stamps = pd.date_range("2024-03-04", periods=3 * 288, freq="5min")
    pd.DataFrame({"Time": stamps.strftime("%I:%M %p"), "D1": 1.0}).to_csv(tmp_path / "w.csv", index=False)
    with pytest.raises(DataError, match=r"w.csv: timestamp column 'Time' holds times of day without dates \(12:00 AM ...\); "
                       r"add the date, as a column of dates beside it"):  # fmt: skip
        load_series(tmp_path / "w.csv")


def test_sensor_ids_that_look_like_dates_stay_sensors(tmp_path: Path) -> None:
    path = tmp_path / "lanes.csv"  # station-lane ids parse as dates of the year 1203; whole counts, no timestamps
    path.write_text("1203-1,1203-2,1203-3\n" + "".join(f"{1800 + 7 * i},{1600 + 3 * i},{2100 - i}\n" for i in range(48)))
    series = load_series(path, zero_is_missing=False)
    assert series.sensor_ids == ("1203-1", "1203-2", "1203-3") and series.num_steps == 48


def test_a_detector_column_of_date_like_ids_is_not_taken_for_the_timestamps(tmp_path: Path) -> None:
    rows = "".join(f"A4,1203-{d},2024-03-01 {h:02d}:00,{50 + d + h}\n" for h in range(24) for d in (1, 2))
    (tmp_path / "detectors.csv").write_text("road,detector,period_start,speed\n" + rows)
    series = load_series(tmp_path / "detectors.csv")
    assert series.sensor_ids == ("1203-1", "1203-2") and series.values[:, 0].tolist() == [51 + h for h in range(24)]


def test_a_header_that_starts_with_a_hash_is_the_header(tmp_path: Path) -> None:
    # as wide as the table: a row-number column named '#', no comment
    rows = "".join(f"{i + 1},2024-03-01 {i // 4:02d}:{15 * (i % 4):02d},{90 + i},{170 - i}\n" for i in range(30))
    (tmp_path / "numbered.csv").write_text("#,Time,Northbound,Southbound\n" + rows)
    series = load_series(tmp_path / "numbered.csv", exclude_columns=["#"], zero_is_missing=False)
    assert series.sensor_ids == ("Northbound", "Southbound") and series.num_steps == 30


def test_r_row_names_under_a_one_cell_header_are_still_refused(tmp_path: Path) -> None:
    # "speed" over rows of a row name and a reading: no title to skip (it would make the row names a sensor)
    (tmp_path / "r.csv").write_text("speed\n" + "".join(f'"{i + 1}",{55 + i % 3}.2\n' for i in range(30)))
    with pytest.raises(DataError, match="Expected 1 fields in line 2, saw 2"):
        load_series(tmp_path / "r.csv")


def test_readings_without_a_timestamp_at_the_end_are_no_footer(tmp_path: Path) -> None:
    (tmp_path / "cut.csv").write_text(_TABLE + ",5,6\n")
    with pytest.raises(DataError, match="has no timestamp; every row needs one"):
        load_series(tmp_path / "cut.csv")


def test_sensors_named_like_years_stay_sensors(tmp_path: Path) -> None:
    path = tmp_path / "years.csv"  # no timestamps, sensor ids of four digits, whole counts
    path.write_text("2019,2020,2021\n" + "".join(f"{i},{i + 1},{i + 2}\n" for i in range(50)))
    assert load_series(path, zero_is_missing=False).sensor_ids == ("2019", "2020", "2021")


def test_two_columns_that_name_the_same_sensors_one_to_one_are_one(caplog: pytest.LogCaptureFixture) -> None:
    # NYC DOT's feed carries each link's id twice (ID, LINK_ID); before, refused as ambiguous
    long = long_table(synthetic_traffic(num_sensors=3, num_days=1))
    long.insert(0, "ID", long["sensor_id"].map({"S000": 7, "S001": 8, "S002": 9}))
    with caplog.at_level(logging.INFO, logger="tuning.sources"):
        series = as_series(long, name="feed", zero_is_missing=False)
    assert series.sensor_ids == ("7", "8", "9")
    assert "columns ['ID', 'sensor_id'] name the same sensors; 'ID' is used" in caplog.text


def test_wide_files_with_repeated_timestamps_and_whole_numbers_stay_wide(tmp_path: Path) -> None:
    # counts are whole numbers, and rows may repeat: neither makes a column a sensor id
    index = pd.date_range("2024-01-01", periods=6, freq="15min", name="timestamp").repeat(2)
    frame = pd.DataFrame({"det_1": np.arange(12) // 2, "det_2": np.arange(12) % 3 + 5}, index=index)
    series = as_series(frame.reset_index(), name="counts", zero_is_missing=False)
    assert series.sensor_ids == ("det_1", "det_2") and series.num_steps == 6


def test_fortran_ordered_input_becomes_c_ordered() -> None:
    values = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(6, 2))
    for given in (values, TrafficSeries(values, None, ("a", "b"), "f")):
        series = as_series(given)
        assert series.values.flags.c_contiguous
        np.testing.assert_array_equal(series.values, values)


# --- real sample data ------------------------------------------------------------------------

needs_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"sample data not found at {SHARED_DATA}")


@needs_shared_data
def test_real_odot_counts_load() -> None:
    series = load_series(ODOT)
    assert series.values.shape == (2496, 22)
    assert series.sensor_ids[0] == "det_1" and series.timestamps[0] == pd.Timestamp("2024-04-18")
    assert np.isnan(series.values).any()
    assert np.isnan(load_series(ODOT, zero_is_missing=True).values).mean() > np.isnan(series.values).mean()


@needs_shared_data
def test_real_uci_file_names_non_numeric_columns() -> None:
    match = r"non-numeric columns \['holiday', 'weather_main', 'weather_description'\].*--columns or --exclude-columns"
    with pytest.raises(DataError, match=match):
        load_series(UCI)


@needs_shared_data
def test_real_uci_file_is_put_on_its_hourly_grid(caplog: pytest.LogCaptureFixture) -> None:
    """48,204 rows: 7,629 repeat an hour (one per weather record), 2,588 gaps, the longest 307 days."""
    with caplog.at_level(logging.WARNING, logger="tuning.sources"):
        series = load_series(UCI, columns=["traffic_volume"])
    repeats, gaps = _warnings(caplog)
    assert "7629 rows repeat an earlier timestamp" in repeats and "(0 timestamps held differing readings)" in repeats
    assert "2588 gaps in the timestamps: 11976 missing steps of 1h (22.8 % of 52551)" in gaps
    assert "longest gap is 307 days 19:00:00 (7386 steps)" in gaps and "2014-08-08 01:00:00 and 2015-06-11 20:00:00" in gaps
    assert series.sensor_ids == ("traffic_volume",) and series.values.shape == (52551, 1)
    assert (series.timestamps == pd.date_range("2012-10-02 09:00", "2018-09-30 23:00", freq="h")).all()
    assert int(np.isnan(series.values).sum()) == 11976
    raw = pd.read_csv(UCI, usecols=["date_time", "traffic_volume"])
    per_hour = raw.groupby(pd.to_datetime(raw["date_time"]))["traffic_volume"].first()
    np.testing.assert_array_equal(series.values[series.timestamps.get_indexer(per_hour.index), 0], per_hour.to_numpy())


# --- zeros that look like detector outages -------------------------------------------------


def _speeds_with_outages(tmp_path: Path) -> Path:
    """Three speed sensors (mph); S001 fails three times: 60-ish, then zeros, then 60-ish again."""
    rng = np.random.default_rng(0)
    speeds = 60 + rng.normal(0, 3, size=(600, 3))
    for start in (100, 300, 450):
        speeds[start : start + 12, 1] = 0.0
    frame = pd.DataFrame(speeds, columns=["S000", "S001", "S002"])
    path = tmp_path / "speeds.csv"
    frame.to_csv(path, index=False)
    return path


def test_zeros_that_look_like_outages_are_read_as_missing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _speeds_with_outages(tmp_path)
    with caplog.at_level(logging.WARNING, logger="tuning.sources"):
        series = load_series(path, freq="5min", start="2024-03-01")
    notes = [r.getMessage() for r in caplog.records if "exact zeros" in r.getMessage()]
    assert len(notes) == 1
    assert "1 sensor(s) (S001) drop from their usual level straight to exact zeros" in notes[0]
    assert "read as missing readings" in notes[0] and "--zeros-are-readings" in notes[0]
    assert np.isnan(series.values[:, 1]).sum() == 36 and series.zeros_missing
    # asked for either way: no warning, and the zeros are read as said
    for zero_is_missing, zeros, nans in ((False, 36, 0), (True, 0, 36)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tuning.sources"):
            read = load_series(path, freq="5min", start="2024-03-01", zero_is_missing=zero_is_missing)
        assert not [r for r in caplog.records if "exact zeros" in r.getMessage()]
        assert (read.values[:, 1] == 0).sum() == zeros and np.isnan(read.values[:, 1]).sum() == nans
        assert read.zeros_missing is zero_is_missing
    # data from memory are read as a file is; a series stays as it was read
    frame = pd.read_csv(path)
    assert np.isnan(as_series(frame).values[:, 1]).sum() == 36 and as_series(frame).zeros_missing
    assert as_series(frame.to_numpy()).zeros_missing
    kept = load_series(path, zero_is_missing=False)
    assert as_series(kept) is kept


def test_one_outage_of_the_whole_network_is_enough() -> None:
    rng = np.random.default_rng(1)
    speeds = (60 + rng.normal(0, 3, size=(400, 10))).astype(np.float32)
    speeds[200:236] = 0.0  # 3 hours of nothing logged, once
    read = as_series(speeds)
    assert read.zeros_missing and np.isnan(read.values[200:236]).all() and not np.isnan(read.values[:200]).any()
    # the same step at 0 in nine of ten sensors, straight from their usual speeds, counts too; in four of ten it does not
    speeds[200:236, 0] = 60.0
    assert as_series(speeds).zeros_missing
    speeds[200:236, :6] = 60.0
    assert not as_series(speeds).zeros_missing


def test_counts_that_fall_to_zero_at_night_are_not_taken_for_outages(caplog: pytest.LogCaptureFixture) -> None:
    from tuning.sources import outage_zero_sensors

    hours = np.arange(24 * 14) % 24
    counts = np.round(np.clip(40 * np.sin(np.pi * (hours - 5) / 17), 0, None))[:, None]  # 0 overnight, via 1, 2, ...
    assert (counts == 0).sum() > 50
    assert outage_zero_sensors(counts) == []
    odot = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "odot_counts" / "counts_wide_15min.csv"
    if odot.exists():  # real counts: detectors that sit at 0 most of the day
        assert outage_zero_sensors(load_series(odot, zero_is_missing=False).values) == []
        read = load_series(odot)  # so their zeros stay readings
        assert not read.zeros_missing and (read.values == 0).sum() > 0
