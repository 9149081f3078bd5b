"""Traffic series sources: the embedded synthetic corridor and real data files.

Everything downstream (scaling, windowing, training) consumes a :class:`TrafficSeries`,
so every source ends here in one shape: raw float32 readings with ``np.nan`` for a
missing reading, no scaling, no resampling. Loaders reject what they cannot read
faithfully with a one-line :class:`~tuning.errors.DataError` instead of guessing.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import datetime as dt
import fnmatch
import glob
import gzip
import io
import json
import logging
import lzma
import os
import re
import shlex
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, NamedTuple, cast

import numpy as np
import pandas as pd

from tuning.errors import DataError

log = logging.getLogger("tuning.sources")
_TIMESTAMP_NAMES = frozenset({"timestamp", "time", "date", "datetime", "date_time"})
_HDF5 = (".h5", ".hdf5", ".hdf")
_EXCEL = (".xlsx", ".xlsm")
_OTHER_SHEETS = {".xls": "Excel 97-2003", ".ods": "OpenDocument", ".xlsb": "Excel binary"}
_TEXT_TYPES = (".csv", ".txt", ".tsv", ".tab")  # delimited text (.txt as PeMS serves it), read as a CSV
_JSON_TYPES = (".json", ".jsonl", ".ndjson", ".geojson")
_SUPPORTED = (*_TEXT_TYPES, ".json", ".parquet", ".npz", *_HDF5, *_EXCEL)
_FORMATS = ".csv, .json, .parquet, .xlsx, .npz or .h5"
# Compressed CSVs, as data portals serve them; pandas reads them by their suffix.
_CSV_COMPRESSED: dict[str, Callable[..., Any]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}  # and a .zip of one file
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Reindexing to the step may grow a series at most this much: beyond it the step is
# more likely wrong (or the file mostly empty) than the data merely gappy.
_MAX_GROWTH = 10
_DATES_SAMPLE = 200  # cells tried before a whole column is parsed as dates
_FOOTER_ROWS = 5  # rows at the end that may be a report's footer (Total, Average, End of report)
_PICK_HINT = "pick the sensor columns with --columns or --exclude-columns"
# Column names (lower case, letters and digits only) that name the sensor of each row in
# a long table: one row per timestamp and sensor, as databases and PeMS-style exports hold it.
_SENSOR_ID_NAMES = frozenset({
    "sensor", "sensorid", "sensorname", "station", "stationid", "detector", "detectorid", "det", "detid",
    "node", "nodeid", "id", "vds", "vdsid", "segment", "segmentid", "link", "linkid", "location",
    "locationid", "site", "siteid", "loop", "loopid",
})  # fmt: skip
_DECIMAL_COMMA = re.compile(r"\s*-?\d+,\d+\s*$")
_NUMERIC_DATE = r"\s*\d{1,2}[./-]\d{1,2}[./-]\d{2,4}"  # 03.04.2024, 03/04/2024: day or month first?
# A date column and a time-of-day column beside it (``Date,Time``, as spreadsheets and many
# agencies export them) are one timestamp. The time column is found by its values (08:15,
# 08:15:00) anywhere after the date, or by its name when it holds whole numbers: hours (0-23),
# minutes or seconds since midnight (UTD19's ``interval``), the seconds per unit given here.
_TIME_OF_DAY = r"\s*\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*"
# A time of day as count reports write it: 1:00 PM, 13:00, 12:00:30 PM, or an interval
# (00:00-01:00, 7:00 AM - 8:00 AM, 4:00 - 4:15 PM) labelled by its start.
_CLOCK_TEXT = (
    r"\s*(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?\s*(?P<half>[ap]\.?m\.?)?"
    r"(?:\s*(?:-|\u2013|\u2014|to)\s*(?P<end_hour>\d{1,2}):(?P<end_minute>\d{2})(?::\d{2})?\s*(?P<end_half>[ap]\.?m\.?)?)?\s*"
)
_CLOCK_UNITS = {
    "hour": 3600, "hr": 3600, "hourofday": 3600, "minute": 60, "minuteofday": 60,
    "second": 1, "seconds": 1, "secondofday": 1, "interval": 1,
}  # fmt: skip
_DATE_NAMES = frozenset({"date", "day", "countdate", "reportdate", "datum", "fecha"})
_MIDNIGHT = r"[T ]00:00(:00(\.0+)?)?$"  # 2024-03-04T00:00:00: a date written as a timestamp
# Excel stores a date as days since 30 December 1899 (the 1900 date system); saved as a
# number, 1 January 1970 is 25569 and 1 January 2100 is 73051.
_EXCEL_DAY_0 = pd.Timestamp("1899-12-30")
_EXCEL_DAYS = (25569, 73051)
# What exports write for "no reading" beyond pandas' own NA, N/A, NULL, nan...: dashes,
# spreadsheet errors, error flags. Read as missing readings, as those are.
_MISSING_MARKS = (
    "-", "--", "---", "\u2013", "\u2014", "?", "#VALUE!", "#DIV/0!", "#REF!", "#NUM!", "#NAME?", "#NULL!",
    "ERR", "Err", "err", "ERROR", "Error", "error", "missing", "Missing", "MISSING", "no data", "No Data", "NO DATA",
)  # fmt: skip
# In a long table each timestamp holds a row per sensor; a wide file repeats few if any.
_LONG_MIN_REPEAT = 1.5
# Caltrans PeMS clearinghouse station files (Station 5-Minute, Station Hour): no header,
# a row per timestamp and station, 12 fixed fields and then a group per lane. The fields
# read, by position; the rest (district, freeway, direction, lane type, station length,
# samples, % observed, lane details) describe the station or the data's quality.
_PEMS_STATION_FIELDS = {0: "timestamp", 1: "station", 9: "flow", 10: "occupancy", 11: "speed"}
_PEMS_DIRECTIONS = frozenset("NSEW")


@dataclass(frozen=True, eq=False)
class TrafficSeries:
    """A (time x sensors) traffic series as loaded, before any scaling.

    ``eq=False`` keeps identity comparison: comparing arrays element-wise is never
    what ``==`` on two series should mean. Treat ``values`` as read-only.
    """

    values: np.ndarray
    timestamps: pd.DatetimeIndex | None
    sensor_ids: tuple[str, ...]
    name: str
    # Exact zeros were read as missing readings (asked for, or found to be outages): a
    # model trained on this series reads new data the same way.
    zeros_missing: bool = False
    # The column of a long table the readings came from (speed, beside flow and occupancy):
    # a model trained on this series reads new long tables from it too.
    readings: str | None = None
    # Dates such as 01/03/2024 were read day first: new data whose dates could be read
    # either way (a day's readings) are read so too.
    dayfirst: bool = False

    def __post_init__(self) -> None:
        """Check the shape invariants every consumer relies on (bugs, not user errors)."""
        if not isinstance(self.values, np.ndarray) or self.values.ndim != 2:
            raise ValueError(
                f"values must be a 2-D numpy array (time, sensors), got {type(self.values).__name__} "
                f"with shape {getattr(self.values, 'shape', None)}"
            )
        if self.values.dtype != np.float32:
            raise ValueError(f"values must be float32, got {self.values.dtype}")
        steps, sensors = self.values.shape
        if self.timestamps is not None:
            if not isinstance(self.timestamps, pd.DatetimeIndex):
                raise ValueError(f"timestamps must be a pandas DatetimeIndex or None, got {type(self.timestamps).__name__}")
            if len(self.timestamps) != steps:
                raise ValueError(f"timestamps has length {len(self.timestamps)} but values has {steps} steps")
        if not isinstance(self.sensor_ids, tuple) or not all(isinstance(s, str) for s in self.sensor_ids):
            raise ValueError("sensor_ids must be a tuple of str")
        if len(self.sensor_ids) != sensors:
            raise ValueError(f"sensor_ids has {len(self.sensor_ids)} entries but values has {sensors} sensors")

    @property
    def num_steps(self) -> int:
        """Number of time steps T."""
        return int(self.values.shape[0])

    @property
    def num_sensors(self) -> int:
        """Number of sensors N."""
        return int(self.values.shape[1])


def _array_ids(num_sensors: int) -> tuple[str, ...]:
    width = max(3, len(str(num_sensors - 1)))
    return tuple(f"S{i:0{width}d}" for i in range(num_sensors))


def _ar1(innovations: np.ndarray, phi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance AR(1) along axis 0 driven by (T, K) unit-variance innovations, one phi per column."""
    out = np.empty_like(innovations)
    scale = np.sqrt(1.0 - phi * phi)
    state = rng.standard_normal(innovations.shape[1])  # start in the stationary law
    for t in range(innovations.shape[0]):  # T vector steps: cheap, and no scipy needed
        state = phi * state + scale * innovations[t]
        out[t] = state
    return out


def _plateau(hours: np.ndarray, centre: float | np.ndarray, half_width: float | np.ndarray) -> np.ndarray:
    """Flat-topped bump in [0, 1]: a rush hour that builds, holds and clears."""
    x2 = np.square((hours - centre) / half_width)
    return 1.0 / (1.0 + x2 * x2)


def synthetic_traffic(
    num_sensors: int = 20, num_days: int = 28, step_minutes: int = 5, seed: int = 0, start: str = "2024-01-01"
) -> TrafficSeries:
    """Generate speed readings (mph) along a freeway corridor, so no data file is needed.

    Sensors sit along a line with traffic flowing towards higher indices. Each has its own
    free-flow level, capacity and rush-hour profile: some jam every weekday morning, some
    in the evening, some both, some never, at their own hours. Readings combine that, with
    congestion spreading upstream with a lag, milder weekends, a spatially smoothed AR(1)
    disturbance, per-sensor AR(1) and white noise, a few incidents a week that spread
    upstream, and a few missing cells. Sensor identity, time of day and recent history are
    all informative, as on real roads; copying the last value is beatable.

    Args:
        num_sensors: Number of sensors N (>= 1).
        num_days: Length in days (>= 1).
        step_minutes: Sampling interval in minutes; must divide 1440.
        seed: Seed for ``np.random.default_rng``; the same seed gives bit-identical output.
        start: First timestamp, anything ``pd.Timestamp`` parses.

    Returns:
        A series of shape (num_days * 1440 // step_minutes, num_sensors) named ``synthetic(seed=...)``.
    """
    for label, value, low in (("num_sensors", num_sensors, 1), ("num_days", num_days, 1), ("step_minutes", step_minutes, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise DataError(f"synthetic data: {label} must be an integer >= {low}, got {value!r}; pass a positive integer")
    if 1440 % step_minutes:
        raise DataError(f"synthetic data: step_minutes must divide 1440 (one day), got {step_minutes}; use e.g. 5, 10, 15 or 60")
    steps = num_days * (1440 // step_minutes)
    if steps < 2:
        raise DataError(
            f"synthetic data: {num_days} day(s) at {step_minutes} min give {steps} step; use more days or a shorter step"
        )
    try:
        timestamps = pd.date_range(start, periods=steps, freq=f"{step_minutes}min")
    except (ValueError, TypeError) as e:
        raise DataError(f"synthetic data: start {start!r} is not a date: {_first_line(e)}; pass e.g. '2024-01-01'") from e

    rng = np.random.default_rng(seed)
    n = num_sensors
    position = np.cumsum(rng.uniform(0.5, 1.5, n)) - 0.5  # miles along the corridor
    # Every sensor is its own road: free-flow level, capacity and which rush hours
    # jam it (mornings, evenings, both or neither), as on real corridors where a
    # bottleneck jams every weekday and the next sensor never does. A model must
    # tell sensors and times of day apart to beat copying the last value.
    free_flow = rng.uniform(55.0, 72.0, n)
    profile = rng.choice(4, size=n, p=[0.3, 0.3, 0.2, 0.2])  # 0 am, 1 pm, 2 both, 3 never
    jams_am, jams_pm = np.isin(profile, (0, 2)), np.isin(profile, (1, 2))
    depth_am = np.where(jams_am, rng.uniform(20.0, 40.0, n), rng.uniform(0.0, 4.0, n))
    depth_pm = np.where(jams_pm, rng.uniform(18.0, 38.0, n), rng.uniform(0.0, 4.0, n))
    centre_am, centre_pm = rng.uniform(7.0, 8.75, n), rng.uniform(16.25, 18.25, n)
    width_am, width_pm = rng.uniform(0.6, 1.4, n), rng.uniform(0.8, 1.8, n)
    # Demand above capacity breaks flow down: a sensor with spare capacity slows a
    # little in the peak, a saturated one collapses. capacity in demand units (peak = 1).
    capacity = np.where(profile == 3, rng.uniform(0.9, 1.2, n), rng.uniform(0.35, 0.7, n))
    night_boost = rng.uniform(1.0, 4.0, n)
    # Congestion backs up upstream from downstream bottlenecks at ~2 min per mile.
    lag_hours = (position.max() - position) * rng.uniform(1.5, 2.5) / 60.0

    hours = (timestamps.hour + timestamps.minute / 60.0).to_numpy(dtype=np.float64)[:, None]
    day = np.arange(steps) // (1440 // step_minutes)
    weekday = timestamps.day_of_week.to_numpy() < 5
    day_am = rng.lognormal(0.0, 0.2, num_days)[day][:, None]  # some mornings are worse than others
    day_pm = rng.lognormal(0.0, 0.2, num_days)[day][:, None]
    shifted = hours - lag_hours[None, :]

    def breakdown(demand: np.ndarray) -> np.ndarray:
        return np.clip((demand - capacity) / (1.0 - np.minimum(capacity, 0.95)), 0.0, 1.0) ** 0.8

    am_demand = _plateau(shifted, centre_am, width_am) * day_am
    pm_demand = _plateau(shifted, centre_pm, width_pm) * day_pm
    am = np.where(weekday[:, None], 1.0, 0.3) * breakdown(am_demand) * depth_am
    pm = np.where(weekday[:, None], 1.0, 0.4) * breakdown(pm_demand) * depth_pm
    # Below capacity, a peak still slows traffic a little.
    mild = 3.0 * (am_demand + pm_demand) * np.where(weekday[:, None], 1.0, 0.5)
    weekend_midday = np.where(weekday[:, None], 0.0, _plateau(shifted, 14.0, 2.0) * depth_pm * 0.2)
    rush = am + pm + mild + weekend_midday
    night = _plateau(hours, 2.5, 2.5) * night_boost  # emptier road at night: slightly faster

    # Shared disturbance: innovations smoothed over neighbours (kernel ~2 miles), slow AR(1).
    kernel = np.exp(-np.abs(position[:, None] - position[None, :]) / 2.0)
    kernel /= np.sqrt((kernel**2).sum(axis=1, keepdims=True))  # unit variance per sensor
    # One AR(1) pass for both: shared (time scale 60 min) in the first n columns, own (20 min) after.
    innovations = np.concatenate([rng.standard_normal((steps, n)) @ kernel.T, rng.standard_normal((steps, n))], axis=1)
    phi = np.repeat(np.exp(-step_minutes / np.array([60.0, 20.0])), n)
    shared, own = np.split(_ar1(innovations, phi, rng), 2, axis=1)
    white = rng.standard_normal((steps, n))
    congestion = rush / max(float(depth_am.max() + depth_pm.max()), 1.0)  # noisier when congested
    noise = (1.0 + 2.0 * congestion) * (1.5 * shared + 1.0 * own) + 0.6 * white

    incidents = np.zeros((steps, n))
    for _ in range(rng.poisson(3.0 * num_days / 7.0)):
        sensor, onset = int(rng.integers(n)), int(rng.integers(steps))
        depth, recovery = rng.uniform(15.0, 35.0), rng.uniform(30.0, 120.0)
        delay = rng.uniform(5.0, 10.0)  # minutes for the queue to reach the next sensor upstream
        for k in range(min(3, sensor) + 1):
            begin = onset + round(k * delay / step_minutes)
            length = int(np.ceil((recovery + k * delay) / step_minutes)) + 1
            if begin >= steps:
                break
            tau = np.arange(min(length, steps - begin)) / (length - 1)
            incidents[begin : begin + tau.size, sensor - k] += depth * 0.6**k * (1.0 - tau) ** 0.7

    speed = free_flow + night - rush + noise - incidents
    values = np.round(np.clip(speed, 3.0, 85.0), 1).astype(np.float32)
    values[rng.random((steps, n)) < 0.005] = np.nan
    outage = max(1, round(rng.uniform(45.0, 90.0) / step_minutes))
    if steps > 4 * outage:
        for _ in range(int(rng.integers(1, 3))):
            first = int(rng.integers(steps - outage))
            values[first : first + outage, int(rng.integers(n))] = np.nan
    return TrafficSeries(values, timestamps, _array_ids(n), f"synthetic(seed={seed})")


def _first_line(error: BaseException) -> str:
    """One line of an exception's text, without pandas' multi-line advice that follows it."""
    text = str(error).strip()
    return text.splitlines()[0].split(" You might want to try")[0] if text else type(error).__name__


def _as_numbers(column: pd.Series) -> np.ndarray | None:
    """The column as float64 with nan for gaps, or None when it holds non-numbers."""
    dtype = column.dtype
    if (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or pd.api.types.is_complex_dtype(dtype)
    ):
        return None
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    numbers, strays = _parse_cells(column)
    return None if strays.any() else numbers.to_numpy(dtype=np.float64, na_value=np.nan)


def _parse_cells(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    """A column of text cells as numbers (blank cells missing), and where a cell is no number."""
    cells = column.astype(object).map(lambda v: v.strip() or None if isinstance(v, str) else v)
    numbers = pd.to_numeric(cells, errors="coerce")
    return numbers, numbers.isna() & cells.notna()


def _parse_text_dates(column: pd.Series, dayfirst: bool) -> tuple[pd.DatetimeIndex, bool]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)  # pandas 2: mixed offsets parse as objects, with a warning
        try:
            return pd.DatetimeIndex(pd.to_datetime(column, dayfirst=dayfirst)), False
        except ValueError:  # pandas 3: "Mixed timezones detected"; pandas 2 fails in DatetimeIndex
            try:
                return pd.DatetimeIndex(pd.to_datetime(column, dayfirst=dayfirst, utc=True)), True
            except (ValueError, TypeError, OverflowError):
                pass
            raise


def _regularity(timestamps: pd.DatetimeIndex) -> tuple[float, float]:
    """Sort key for two readings of the same dates: the share of steps of the usual size, then a short span."""
    stamps = timestamps.dropna().asi8
    steps = np.diff(stamps)
    if steps.size == 0:
        return 0.0, 0.0
    _, counts = np.unique(steps, return_counts=True)
    return float(counts.max() / steps.size), -float(stamps.max() - stamps.min())


def _to_datetimes(column: pd.Series, dayfirst: bool | None = None) -> tuple[pd.DatetimeIndex, bool, list[str]]:
    """Parse text dates, those too that pandas alone would refuse or misread; the notes say how (for the log).

    Offsets that change within the column (daylight saving time) give UTC. Dates such as
    03.04.2024 or 03/04/2024 are read both ways, month first (pandas' default) and day
    first (Europe), and the reading whose steps are regular wins: month first, a file
    from 1 to 12 March steps a month at midnight, and 13.03 cannot be read at all. A tie
    (a day's data) goes to ``dayfirst`` (how a model's training data were read), else
    to the custom of the separator: day first for dots, month first for slashes.
    Returns the timestamps, whether they were read day first, and the notes.
    Raises pandas' ValueError, TypeError or OverflowError for cells that are no dates.
    """
    first = column.dropna().astype(str).head(1)
    readings: dict[bool, tuple[pd.DatetimeIndex, bool]] = {}
    error: Exception | None = None
    for order in (False, True) if first.str.match(_NUMERIC_DATE).all() and len(first) else (False,):
        try:
            readings[order] = _parse_text_dates(column, order)
        except (ValueError, TypeError, OverflowError) as e:
            error = error or e
    if not readings:
        assert error is not None
        raise error
    tie = bool(first.str.match(r"\s*\d{1,2}\.").all()) if dayfirst is None else dayfirst
    chosen = max(readings, key=lambda d: (*_regularity(readings[d][0]), d == tie)) if len(readings) > 1 else next(iter(readings))
    timestamps, utc = readings[chosen]
    notes = (
        ["its UTC offsets change (daylight saving time): read as UTC, so the steps stay regular and time of day is UTC's"]
        if utc
        else []
    )
    if chosen:
        day = timestamps[~timestamps.isna()][0]
        notes.append(f"dates read day first ({first.iloc[0].strip()} is {day.day} {day:%B %Y})")
    return timestamps, chosen, notes


def _epoch_unit(column: pd.Series) -> str | None:
    """'s' or 'ms' when a numeric timestamp column holds Unix times (2001-2096), 'D' for
    spreadsheet day numbers (1970-2099: Excel's dates saved as General), else None."""
    numbers = column.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = numbers[np.isfinite(numbers)]
    if finite.size and _EXCEL_DAYS[0] <= finite.min() and finite.max() < _EXCEL_DAYS[1]:
        return "D"
    if finite.size == 0 or (finite != np.round(finite)).any():
        return None
    for unit, scale in (("s", 1), ("ms", 1_000)):
        if 1e9 * scale <= finite.min() and finite.max() < 4e9 * scale:
            return unit
    return None


def _parse_timestamps(column: pd.Series, label: str, dayfirst: bool | None = None) -> tuple[pd.DatetimeIndex, bool]:
    """Parse a named timestamp column (and say whether day first); a failure is the user's to fix."""
    if pd.api.types.is_numeric_dtype(column.dtype):
        unit = _epoch_unit(column)
        if unit is None:
            raise DataError(
                f"{label}: timestamp column {column.name!r} holds numbers, not dates (nor Unix times in seconds or "
                "milliseconds, nor spreadsheet day numbers); write dates such as '2024-01-01 08:00', or rename the column if it "
                "holds sensor readings"
            )
        if unit == "D":  # a day and its fraction since Excel's day 0; floats, so to the nearest second
            log.info("%s: timestamp column %r holds spreadsheet day numbers (Excel's dates): read as dates", label, column.name)
            return pd.DatetimeIndex(pd.to_datetime(column, unit="D", origin=_EXCEL_DAY_0)).round("s"), False
        log.info("%s: timestamp column %r holds Unix times in %s: read as UTC", label, column.name,
                 "seconds" if unit == "s" else "milliseconds")  # fmt: skip
        return pd.DatetimeIndex(pd.to_datetime(column, unit=unit, utc=True)), False
    text = column.dropna().astype(str)
    # (a missing cell is named first: a report's times beside a blank one are a report's)
    if len(text) == len(column) and len(text) and text.str.fullmatch(_CLOCK_TEXT, case=False).all():
        # pandas dates a bare time today: a week of them became one day, its days averaged together
        raise DataError(
            f"{label}: timestamp column {column.name!r} holds times of day without dates ({text.iloc[0].strip()} ...); "
            "add the date, as a column of dates beside it (Date,Time are read as one timestamp) or in each cell"
        )
    try:
        timestamps, chosen, notes = _to_datetimes(column, dayfirst)
    except (ValueError, TypeError, OverflowError) as e:
        raise DataError(
            f"{label}: timestamp column {column.name!r} holds values that are not dates: "
            f"{_first_line(e)}; fix those cells or use one consistent date format"
        ) from e
    valid = timestamps[~timestamps.isna()]
    if len(valid) and valid.year.min() <= 1900:
        first = text.iloc[0].strip()
        if valid.year.min() < 1899:  # 03/04 08:00 is 4 March of the year 1 to pandas
            raise DataError(f"{label}: timestamp column {column.name!r} holds dates without a year ({first} ...); "
                            "write each date with its year (2024-03-04 08:00)")  # fmt: skip
        # Times of day that a spreadsheet or database stored without a date: its day 0
        raise DataError(
            f"{label}: timestamp column {column.name!r} holds times on a spreadsheet's day 0 ({first} ...), not "
            "dates: the cells held times of day alone; export the date with each time"
        )
    for note in notes:
        log.info("%s: timestamp column %r: %s", label, column.name, note)
    return timestamps, chosen


def _looks_like_dates(column: pd.Series) -> bool:
    """Whether an unnamed-as-timestamp first column is nonetheless a timestamp column."""
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        return True
    if pd.api.types.is_numeric_dtype(column.dtype) or _as_numbers(column) is not None:
        return False
    try:
        _to_datetimes(column)
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def _column_of_dates(frame: pd.DataFrame, columns: Sequence[str], label: str) -> str | None:
    """The first column of date-times among ``columns``, where no column is named or placed as the timestamp.

    Exports name it as they please (NYC DOT's ``DATA_AS_OF``, ``Measurement time``,
    ``start_time``); read as a "sensor", it made the file "non-numeric". A sample of its
    cells is tried first, so that text columns (sensor names) cost little. Columns named
    like sensor ids are passed over, and the cells must be dates of this era carrying a
    time of day or a four-digit year: ids such as ``1-5`` or ``1203-1`` parse as dates too.
    A column of date-times is preferred to one of dates alone.
    """
    dated: list[str] = []
    for c in columns:
        column = frame[c]
        if _name_key(c) in _SENSOR_ID_NAMES:
            continue
        if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
            continue
        sample = column.dropna().head(_DATES_SAMPLE)
        if sample.empty:
            continue
        text = sample.astype(str)
        stamped = pd.api.types.is_datetime64_any_dtype(column.dtype)
        if not stamped and not text.str.contains(r"\d:\d\d|\d{4}").all():
            continue
        if _plausible_dates(sample):
            if stamped or text.str.contains(r"\d:\d\d").all():
                dated.insert(0, c)
                break
            dated.append(c)
    if dated:
        log.info("%s: timestamps from column %r, the first column of dates", label, dated[0])
        return dated[0]
    return None


def _plausible_dates(cells: pd.Series) -> bool:
    """Dates of traffic records (1970-2100), which ids that parse as dates (year 1203) are not."""
    if not _looks_like_dates(cells):
        return False
    try:
        years = _to_datetimes(cells)[0].year
    except (ValueError, TypeError, OverflowError):
        return False
    return bool(len(years)) and 1970 <= years.min() and years.max() <= 2100


_DATE_TEXT = r"\d{4}[/.-]\d{1,2}[/.-]\d{1,2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{2}"
"""Text that holds a whole date: not a time of day alone (00:05 gives no day), nor a sensor id of 4 digits."""


# Columns of a count report beside its days: sums and averages, and the daily figures of US
# reports (ADT, AADT, AWDT: average daily, annual average daily, average weekday traffic).
_SUMMARY_NAMES = r"\s*(total|sum|average|mean|avg|median|max|maximum|min|minimum|peak|daily|adt|aadt|awdt|awt)\b.*"
# A day of a report's header without its year: 03/04, Mon 03/04, Mon. 4.3.
_DAY_WITHOUT_YEAR = r"\s*([A-Za-z]{2,9}\.?,?\s+)?\d{1,2}[/.-]\d{1,2}\.?\s*"


def _consecutive_days(header: pd.Series) -> bool:
    """Whether a header's cells are days written without a year (03/04, Mon 03/04), not ids of that form.

    Named with their weekday, they are. Else a report's days follow each other, month or
    day first, oldest or newest first, across a new year too (a week apart at most; a month
    with slashes, 3/1 ... 3/31 with a week missing), where ids of that form (mileposts 12.3,
    13.1) do not; with a hyphen (1-1, 1-2) they are lanes.
    """
    if header.str.match(r"\s*[A-Za-z]{2,9}\.?,?\s").all():  # each with its weekday: days, whatever their order
        return True
    if header.str.contains("-").any():  # 1-1, 1-2: lanes of stations far more often than days
        return False
    pairs = header.str.extract(r"(\d{1,2})[/.](\d{1,2})").astype(int).to_numpy()
    most = 31 if header.str.contains("/").all() else 7  # 3/1 ... 3/31 with a week missing; mileposts 12.3, 13.1 are not
    for month, day in ((pairs[:, 0], pairs[:, 1]), (pairs[:, 1], pairs[:, 0])):
        try:
            stamps = pd.to_datetime({"year": 2000, "month": month, "day": day})  # a leap year: 29 February reads
        except (ValueError, OverflowError):
            continue
        steps = np.diff(stamps.to_numpy()).astype("timedelta64[D]").astype(int)
        for gaps in (steps % 366, -steps % 366):  # oldest or newest first, across a new year too
            if len(gaps) and ((gaps >= 1) & (gaps <= most)).all():
                return True
    return False


def _is_dates_header(header: pd.Series) -> bool:
    """Whether column names are whole dates of this era: a matrix's time axis laid along its header."""
    return bool(header.str.contains(_DATE_TEXT).all()) and _plausible_dates(header.head(_DATES_SAMPLE))


def _days_as_columns(frame: pd.DataFrame, label: str) -> pd.DataFrame | None:
    """One sensor's readings kept as a matrix, a time of day per row and a day per column, as one column.

    Count reports are laid out so (``Hour,2024-03-01,2024-03-02,...`` over rows 0-23 or
    ``00:00``, ``01:00``, ...), often with a ``Total`` row and column. Read as it stands,
    each day was a "sensor" without timestamps. The sensor is named ``readings`` in every
    such report, so that a model of last month's reports forecasts from this month's, and a
    folder of one station's reports reads as one series.
    """
    columns = list(frame.columns)
    if len(columns) < 3:
        return None
    summaries = [c for c in columns[1:] if re.fullmatch(_SUMMARY_NAMES, str(c), re.IGNORECASE)]
    days = [c for c in columns[1:] if c not in summaries]
    header = pd.Series(days, dtype=object).astype(str)
    if len(days) < 2:
        return None
    no_year = bool(header.str.fullmatch(_DAY_WITHOUT_YEAR).all())
    if not no_year and not _is_dates_header(header):
        return None
    rows = frame
    while len(rows) > 2 and not re.search(r"\d", str(rows.iloc[-1, 0])):  # a Total row below the hours
        rows = rows.iloc[:-1]
    if rows.empty:
        return None
    first = rows[columns[0]].reset_index(drop=True)
    numbers = pd.to_numeric(first, errors="coerce")  # hours 0-23 were text beside a Total row
    hours = numbers if numbers.notna().all() else first
    times = _times_of_day(hours)
    if times is None:
        row = _blank_time_row(first)  # a report's hour left blank
        if row is not None:
            raise DataError(f"{label}: a time of day per row and a day per column, but column {columns[0]!r} is blank "
                            f"in data row {row}; every row needs its time, fill or drop it")  # fmt: skip
        return None
    if no_year:
        if not _consecutive_days(header):  # station-lane ids (1-1, 1-2, 2-1) or mileposts (12.3, 13.1)
            return None
        raise DataError(
            f"{label}: a time of day per row and a day per column, but the days have no year ({header.iloc[0]} ... "
            f"{header.iloc[-1]}): write the year into the header ({header.iloc[0].strip()}/2024, say) and read it again"
        )
    dates = _dates_alone(header)
    if times.duplicated().any() or dates is None:
        return None
    if _hours_ending(hours):
        _say_hours_ending(label, columns[0])
    try:
        order = np.argsort(_to_datetimes(dates)[0].asi8, kind="stable")
    except (ValueError, TypeError, OverflowError):
        return None
    if pd.Index(dates).duplicated().any():
        return None
    dates, days = dates.iloc[order], [days[i] for i in order]  # days in time order, whatever the columns' order
    sensor = "readings"  # the same in every report, so that a later one forecasts with the model of an earlier one
    stamps = (dates.to_numpy()[:, None] + " " + times.to_numpy()[None, :]).ravel()  # day by day, hour by hour
    long = pd.DataFrame({"timestamp": stamps, sensor: rows[days].to_numpy().T.ravel()})
    left = f"; {summaries} left out" if summaries else ""
    log.info(
        "%s: a time of day per row (%s ...) and a day per column (%s ... %s): read as one sensor, %r%s",
        label, times.iloc[0], header.iloc[0], header.iloc[-1], sensor, left,
    )  # fmt: skip
    return long


def _untransposed(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """A table with a row per sensor and a column per timestamp, turned to a row per timestamp.

    Spreadsheets and some portals keep a sensors x time matrix: the first column names
    the sensors, the header holds the timestamps. Read as it stands, each timestamp was a
    "sensor" and each sensor a time step: refused as too short with a few sensors, and
    silently trained on nonsense with a few hundred.
    """
    columns = list(frame.columns)
    if len(columns) < 3 or frame.empty:
        return frame
    header = pd.Series(columns[1:], dtype=object).astype(str)
    if not _is_dates_header(header):
        return frame
    # The first column names the sensors: not a date itself (a header of ids that all look
    # like dates, 1203-1,1203-2,...), nor the time of day of an hours x days matrix.
    first = str(columns[0])
    if _looks_like_dates(pd.Series([first])) or _name_key(first) in _CLOCK_UNITS or first.lower() in _TIMESTAMP_NAMES:
        return frame
    ids = _sensor_ids_of(frame[columns[0]])
    if ids is None or ids.duplicated().any() or _looks_like_dates(frame[columns[0]]):
        return frame
    rows = frame.drop(columns=columns[0]).T.reset_index(drop=True)
    rows.columns = ids.astype(str).tolist()
    rows.insert(0, "timestamp", header.to_numpy())
    log.info(
        "%s: a row per sensor and a column per timestamp (%s ... %s): read as %d time steps of %d sensors "
        "named in column %r",
        label, header.iloc[0], header.iloc[-1], len(rows), len(ids), columns[0],
    )  # fmt: skip
    return rows


def _without_footer(frame: pd.DataFrame, column: str, label: str) -> pd.DataFrame:
    """The frame without the rows below the table that reports end with ("Total", "End of report").

    Told by a timestamp cell without a digit in the last rows; a row whose timestamp is
    a date gone wrong (``2024-13-45``) stays, and is refused as a bad date, and so does a
    row of readings without a timestamp.
    """
    footer = 0
    tail = frame.iloc[-_FOOTER_ROWS:]
    for (_, row), cell in zip(reversed(list(tail.iterrows())), reversed(tail[column].tolist()), strict=True):
        blank = pd.isna(cell) or not str(cell).strip()
        if (not blank and re.search(r"\d", str(cell))) or (blank and row.drop(column).notna().any()):
            break  # a date, or readings without one: refused as a row without a timestamp
        footer += 1
    if footer == 0 or footer >= len(frame) - 1:
        return frame
    first = next((str(c).strip() for c in frame[column].iloc[-footer:] if pd.notna(c) and str(c).strip()), "")
    log.info("%s: %d row(s) below the table left out (a report's footer%s)", label, footer, f": {first!r}" if first else "")
    return frame.iloc[:-footer]


def _check_timestamps_present(timestamps: pd.DatetimeIndex, label: str) -> None:
    missing = np.flatnonzero(timestamps.isna())
    if missing.size:
        raise DataError(f"{label}: data row {missing[0] + 1} has no timestamp; every row needs one, fill or drop it")


def _check_order(timestamps: pd.DatetimeIndex, label: str) -> None:
    """Require timestamps in order: rows out of order are more likely a mistake than data."""
    _check_timestamps_present(timestamps, label)
    bad = np.flatnonzero(np.diff(timestamps.asi8) < 0)
    if bad.size:
        row = int(bad[0]) + 1
        raise DataError(
            f"{label}: timestamps must be in order, but data row {row + 1} ({timestamps[row]}) "
            f"is not increasing after data row {row} ({timestamps[row - 1]}); sort the rows"
        )


def _average_duplicates(
    values: np.ndarray, timestamps: pd.DatetimeIndex, label: str, *, quiet: bool = False
) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """One row per timestamp: the mean of each sensor's readings there, missing cells ignored.

    Files such as the UCI Metro one repeat a time step once per weather record; the
    readings then agree and the mean is that reading. Where they disagree the mean is
    the least biased single value, and the log line says how often that happened.
    """
    starts = np.flatnonzero(np.r_[True, np.diff(timestamps.asi8) != 0])
    if starts.size == len(timestamps):
        return values, timestamps
    observed = ~np.isnan(values)
    sums = np.add.reduceat(np.where(observed, values, 0.0).astype(np.float64), starts, axis=0)
    counts = np.add.reduceat(observed.astype(np.int64), starts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (sums / counts).astype(np.float32)  # 0/0 -> nan: no reading at that step
    high, low = np.fmax.reduceat(values, starts, axis=0), np.fmin.reduceat(values, starts, axis=0)
    differ = (high != low) & ~np.isnan(high)  # fmax/fmin skip nan; all-nan stays nan
    if quiet:  # readings put in their step by _snap_to_step, which said so
        return means, timestamps[starts]
    log.warning(
        "%s: %d rows repeat an earlier timestamp; each sensor's readings at one timestamp are averaged "
        "(%d timestamps held differing readings)",
        label, len(timestamps) - starts.size, int(differ.any(axis=1).sum()),
    )  # fmt: skip
    return means, timestamps[starts]


def _step(timestamps: pd.DatetimeIndex, freq: str | None, label: str) -> pd.DateOffset:
    """The series' step: ``freq`` when given, else the most common difference between timestamps."""
    if freq is not None:
        try:
            return pd.tseries.frequencies.to_offset(freq)
        except (ValueError, TypeError) as e:
            raise DataError(f"{label}: bad freq {freq!r}: {_first_line(e)}; pass e.g. '5min', '15min' or '1h'") from e
    step = pd.Timedelta(int(_most_common(np.diff(timestamps.asi8))), unit=timestamps.unit)
    return pd.tseries.frequencies.to_offset(step)


def _most_common(values: np.ndarray) -> Any:
    found, counts = np.unique(values, return_counts=True)
    return found[np.argmax(counts)]


def _step_text(step: pd.DateOffset) -> str:
    """'1h' rather than pandas' bare 'h'."""
    text = step.freqstr
    return text if text[:1].isdigit() else f"1{text}"


def step_of(timestamps: pd.DatetimeIndex) -> str:
    """A series' step as a pandas frequency such as '5min' or '1h': its most common difference."""
    return _step_text(_step(timestamps, None, "timestamps"))


def _snap_to_step(timestamps: pd.DatetimeIndex, freq: str, label: str) -> tuple[pd.DatetimeIndex, bool]:
    """Readings taken at irregular moments put in the step of ``freq`` they fall in, as ``resample`` would.

    A feed polled every few minutes (NYC DOT's link speeds at 08:04:58, 08:10:03, ...) or
    probe data has no grid of its own; ``--freq 5min`` then means five-minute steps, each
    labelled by its start and holding the mean of its readings. So does a multiple of a
    regular series' own step (``--freq 15min`` on 5-minute data). Kept as they are:
    timestamps already on a grid of that step (from the first one, whatever its offset),
    and a regular series whose step ``freq`` is no multiple of (5-minute data and
    ``7min``, more likely a slip than a wish: refused as off the grid, as before).
    Returns the timestamps and whether any moved.
    """
    step = _step(timestamps, freq, label)
    if not isinstance(step, pd.offsets.Tick):  # calendar steps (months) are on their grid or refused later
        return timestamps, False
    size = pd.Timedelta(step)
    known = timestamps.dropna()
    if known.empty or not ((known - known.min()) % size).asi8.any():
        return timestamps, False
    moments = np.unique(known.asi8)
    if moments.size > 1:  # a regular series of its own step: only a multiple of it bins its readings
        own = int(_most_common(np.diff(moments)))
        if not ((moments - moments[0]) % own).any() and size % pd.Timedelta(own, unit=known.unit):
            return timestamps, False  # 5-minute data and --freq 7min: refused as off the grid
    if timestamps.tz is not None:
        # Floor the wall clock (08:00 in India, +05:30, not 07:30), each time at its own UTC
        # offset: pandas' zoned floor fails in the hour that daylight saving repeats.
        utc = timestamps.tz_convert("UTC").tz_localize(None)
        offset = timestamps.tz_localize(None) - utc
        snapped = ((utc + offset).floor(size) - offset).tz_localize("UTC").tz_convert(timestamps.tz)
    else:
        snapped = timestamps.floor(size)
    moved = np.flatnonzero((snapped != timestamps) & timestamps.notna())
    log.info(
        "%s: %d of %d timestamps lie between steps of %s (e.g. %s): each reading is put in the step it falls in "
        "(%s), and a sensor's readings in one step are averaged",
        label, moved.size, len(timestamps), _step_text(step), timestamps[moved[0]], snapped[moved[0]],
    )  # fmt: skip
    return snapped, True


_USUAL_STEPS = tuple(
    pd.Timedelta(s)
    for s in ("1min", "2min", "3min", "5min", "10min", "15min", "20min", "30min", "1h", "2h", "3h", "6h", "12h", "1D")
)
"""The recording intervals traffic data come in, for the step a message suggests."""


def _freq_advice(values: np.ndarray, timestamps: pd.DatetimeIndex, step: pd.DateOffset) -> str:
    """What to pass as ``--freq``: the usual recording interval where each sensor's readings lie much
    further apart than ``step``, as in data logged at irregular moments (the most common difference
    of all the timestamps is then a second or two, while each sensor reports every few minutes)."""
    generic = "pass the step the data was recorded at with --freq"
    stamps = timestamps.asi8
    gaps = [g for column in values.T if (g := np.diff(stamps[~np.isnan(column)])).size]
    if not gaps or not isinstance(step, pd.offsets.Tick):
        return generic
    usual = pd.Timedelta(int(np.median(np.concatenate(gaps))), unit=timestamps.unit)
    if usual < 2 * pd.Timedelta(step):
        return generic
    nearest = min(_USUAL_STEPS, key=lambda s: abs(np.log(s / usual)))
    if abs(np.log(nearest / usual)) > np.log(1.5):  # weeks apart, say: no recording interval
        return generic
    freq = _step_text(pd.tseries.frequencies.to_offset(nearest))
    return (
        f"each sensor reports about every {freq} (median gap {usual.total_seconds():.0f} s): "
        f"pass --freq {freq} to average each sensor's readings per {freq} step"
    )


def _reindex_to_step(
    values: np.ndarray, timestamps: pd.DatetimeIndex, freq: str | None, label: str
) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Put the readings on a regular grid of the series' step, the missing steps as nan.

    Windows assume consecutive rows are one step apart; a gap left in place would
    make the model read the hour after a 10-month outage as the next hour.
    """
    if len(timestamps) < 2:
        return values, timestamps
    step = _step(timestamps, freq, label)
    first, last = timestamps[0], timestamps[-1]
    # Only fixed-length steps can make a huge grid; calendar steps (days, months) stay small.
    size = (last - first) // pd.Timedelta(step) + 1 if isinstance(step, pd.offsets.Tick) else len(timestamps)
    if size > _MAX_GROWTH * len(timestamps):
        raise DataError(
            f"{label}: {len(timestamps)} time steps spread over {size} steps of {_step_text(step)}: more than "
            f"{_MAX_GROWTH}x as many; {_freq_advice(values, timestamps, step)}"
        )
    grid = pd.date_range(first, last, freq=step)
    positions = grid.get_indexer(timestamps)
    off = np.flatnonzero(positions < 0)
    if off.size:
        raise DataError(
            f"{label}: timestamp {timestamps[off[0]]} is not on the grid of {_step_text(step)} steps from {first}; "
            f"resample the file to one regular step first, or {_freq_advice(values, timestamps, step)}"
        )
    if len(grid) == len(timestamps):
        return values, timestamps
    missing = np.diff(positions) - 1
    longest = int(np.argmax(missing))
    before, after = timestamps[longest], timestamps[longest + 1]
    log.warning(
        "%s: %d gaps in the timestamps: %d missing steps of %s (%.1f %% of %d) are masked as missing readings; "
        "the longest gap is %s (%d steps) between the readings at %s and %s",
        label, int((missing > 0).sum()), int(missing.sum()), _step_text(step), 100.0 * missing.sum() / len(grid), len(grid),
        after - before, int(missing[longest]), before, after,
    )  # fmt: skip
    full = np.full((len(grid), values.shape[1]), np.nan, dtype=np.float32)
    full[positions] = values
    return full, grid


def _name_key(name: str) -> str:
    """A column name as the name sets above hold them: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _sensor_ids_of(column: pd.Series) -> pd.Series | None:
    """The column as sensor ids (text), or None where it cannot name sensors (gaps, fractions, dates)."""
    if column.isna().any() or pd.api.types.is_bool_dtype(column.dtype) or pd.api.types.is_datetime64_any_dtype(column.dtype):
        return None
    if pd.api.types.is_numeric_dtype(column.dtype):
        numbers = column.to_numpy(dtype=np.float64)
        if not np.isfinite(numbers).all() or (numbers != np.round(numbers)).any():
            return None  # readings, not ids
        return pd.Series(numbers.astype(np.int64), index=column.index)
    cells = column.astype(str).str.strip()
    return None if (cells == "").any() else cells


class _Long(NamedTuple):
    wide: pd.DataFrame
    readings: str  # the column the readings came from
    columns: list[str] | None  # the names of ``columns`` / ``exclude_columns`` that are sensor ids
    exclude_columns: list[str] | None


def _long_to_wide(
    frame: pd.DataFrame,
    timestamps: pd.DatetimeIndex,
    timestamp_column: str | None,
    label: str,
    columns: Sequence[str] | None = None,
    exclude_columns: Sequence[str] | None = None,
    readings: str | None = None,
    *,
    binned: bool = False,
) -> _Long | None:
    """A long table (a row per timestamp and sensor) pivoted to one column per sensor, or None if wide.

    Read as a wide file, such a table would make the sensor-id column a "sensor" and
    average every sensor into one series at each repeated timestamp. The sensor column
    is the one named like one (sensor_id, station, detector, ...), or else the one
    column of whole numbers or text that tells the rows of each timestamp apart, while
    the timestamps repeat, and has as many values as most timestamps have rows (each
    sensor once). The readings are the one numeric column left, or the one that
    ``columns`` names (``exclude_columns`` leaves columns out), or else ``readings``
    (the column a model was trained on); the other names in ``columns`` and
    ``exclude_columns`` are sensor ids, returned to be picked from the pivoted table.
    """
    rows = len(frame)
    times = pd.Series(timestamps.asi8, index=frame.index)
    per_time = times.value_counts()
    repeats = rows >= _LONG_MIN_REPEAT * len(per_time)
    usual_rows = int(per_time.mode().max()) if repeats else 0  # rows at most timestamps: one per sensor
    named: dict[str, pd.Series] = {}
    shaped: dict[str, pd.Series] = {}
    for c in frame.columns:
        if c == timestamp_column:
            continue
        ids = _sensor_ids_of(frame[c])
        if ids is None:
            continue
        distinct = ids.nunique()
        if distinct > max(1, rows // 2):  # a row counter is no sensor id
            continue
        if _name_key(c) in _SENSOR_ID_NAMES:
            named[c] = ids
        elif binned:
            # Readings binned into steps (``--freq`` on a polled feed): a sensor may report
            # twice in a step or miss one, but most steps hold every sensor
            if repeats and distinct >= 2 and distinct == int(ids.groupby(times.to_numpy()).nunique().mode().max()):
                shaped[c] = ids
        elif (
            repeats
            and distinct == usual_rows  # most timestamps hold every sensor once
            and not pd.DataFrame({"t": times, "id": ids}).duplicated().any()  # and tell their rows apart
        ):
            shaped[c] = ids
    found = _one_name_per_sensor(named or shaped, label)
    if not found:
        return None
    if len(found) > 1:
        raise DataError(
            f"{label}: looks like a long table (a row per timestamp and sensor), but {list(found)} could each name "
            "the sensor; keep one of them (drop the others from the file)"
        )
    ((id_column, ids),) = found.items()
    _check_timestamps_present(timestamps, label)
    time_name = timestamp_column or "timestamp"
    others = [c for c in frame.columns if c not in (timestamp_column, id_column)]
    keys = {timestamp_column, id_column}
    picked = [c for c in columns or () if c in others] or ([readings] if readings is not None and readings in others else [])
    dropped = [c for c in exclude_columns or () if c in others]
    numeric = {c: v for c in (picked or others) if c not in dropped and (v := _as_numbers(frame[c])) is not None}
    if picked and (len(picked) > 1 or not numeric):
        raise DataError(f"{label}: --columns names {picked} of this long table's columns; name one column of numeric readings")
    if not picked:  # an empty column (UTD19's speed in most cities) holds no readings to offer
        numeric = {c: v for c, v in numeric.items() if not np.isnan(v).all()}
    if len(numeric) != 1:
        what = f"several value columns {list(numeric)}" if numeric else "no numeric value column"
        usual = sorted(  # what is usually forecast, speed first, then flow, then occupancy
            (c for c in numeric if _reading_rank(c) < len(_READING_WORDS)),
            key=_reading_rank,
        )
        example = (usual or list(numeric) or ["speed"])[0]
        raise DataError(
            f"{label}: a long table (a row per {time_name!r} and sensor {id_column!r}) needs one column "
            f"of readings, but has {what}; name the one to forecast with --columns, e.g. --columns {shlex.quote(example)}"
        )
    ((value_column, values),) = numeric.items()
    ignored = [c for c in others if c != value_column]
    cells = pd.DataFrame({"t": timestamps, "id": ids.to_numpy(), "v": values})
    grouped = cells.groupby(["t", "id"], sort=True)["v"]
    shared = int((grouped.size() > 1).sum())
    wide = grouped.mean().unstack("id")  # sorted by time; sensors by id (numerically for numbers)
    wide.columns = [str(c) for c in wide.columns]
    wide.index = pd.DatetimeIndex(wide.index, name=timestamp_column)
    log.info(
        "%s: a long table: %d sensors from column %r, readings from %r%s%s",
        label, wide.shape[1], id_column, value_column,
        f"; columns {ignored} left out" if ignored else "",
        f"; {shared} timestamp-sensor pairs held several rows, averaged" if shared else "",
    )  # fmt: skip
    rest = [c for c in columns or () if c not in picked and c not in keys]
    rest_excluded = [c for c in exclude_columns or () if c not in dropped and c not in keys]
    return _Long(wide, value_column, rest or None, rest_excluded or None)


def _one_name_per_sensor(found: dict[str, pd.Series], label: str) -> dict[str, pd.Series]:
    """The first of several sensor-id columns that name the same sensors, one to one.

    Feeds carry a sensor's id twice (NYC DOT's ``ID`` and ``LINK_ID``); either names the
    sensors as well, so the first is used and the log says so. Columns that disagree
    (two sensors under one id of the other) are left for the caller to refuse.
    """
    if len(found) < 2:
        return found
    (first, ids), *others = found.items()
    distinct = ids.nunique()
    for _, other in others:
        pairs = pd.DataFrame({"a": ids.to_numpy(), "b": other.to_numpy()}).drop_duplicates()
        if not len(pairs) == distinct == other.nunique():
            return found
    log.info("%s: columns %s name the same sensors; %r is used", label, list(found), first)
    return {first: ids}


_READING_WORDS = (
    r"speed|vitesse|velocidad|geschwindigkeit|snelheid|vmed",
    r"flow|volume|count|d[ée]bit|intensidad|intensit|verkehrsst|anzahl|aforo",
    r"occ|taux|ocupaci|belegung|bezetting",
)
"""Column names of the readings usually forecast, in the languages of the open traffic data seen, in the order
an example prefers them: Paris's ``Débit horaire``, Madrid's ``intensidad`` and ``vmed``."""


def _reading_rank(column: str) -> int:
    """Where the column's name falls in :data:`_READING_WORDS`; past its end for other columns."""
    return next((i for i, words in enumerate(_READING_WORDS) if re.search(words, column, re.IGNORECASE)), len(_READING_WORDS))


def _reject_duplicates(columns: list[str], label: str) -> None:
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise DataError(f"{label}: duplicate column names {duplicated}: every sensor needs its own column; rename them")


def _file_type(path: Path) -> str:
    """The suffix that says how to read the file: ``.csv`` for ``x.csv.gz``, ``x.txt``, ``x.tsv`` and
    ``x.txt.gz`` too; ``.json`` for JSON and JSON Lines, compressed or not."""
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) >= 2 and (suffixes[-1] in _CSV_COMPRESSED or suffixes[-1] == ".zip"):
        suffixes.pop()
    last = suffixes[-1] if suffixes else ""
    if last in _TEXT_TYPES:
        return ".csv"
    return ".json" if last in _JSON_TYPES and path.suffix.lower() != ".zip" else path.suffix.lower()


def _head_bytes(path: Path) -> bytes:
    """The first megabyte of a text file, unpacked: all that the dialect and encoding are read from."""
    suffix = path.suffix.lower()
    if suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            if len(names) != 1:
                raise DataError(f"{path}: a .csv.zip must hold one file, it holds {len(names)}; unzip it and pass the CSV")
            with archive.open(names[0]) as member:
                return member.read(_HEAD_BYTES)
    with _opener(path)(path, "rb") as f:
        return cast(bytes, f.read(_HEAD_BYTES))


def _opener(path: Path) -> Callable[..., Any]:
    """``open``, or the decompressor of a compressed text file (``.csv.gz``, ``.jsonl.xz``, ...)."""
    return _CSV_COMPRESSED.get(path.suffix.lower(), open) if _file_type(path) in (".csv", ".json") else open


def _text_encoding(path: Path) -> str:
    """UTF-8 (a BOM or not), UTF-16 where a BOM says so (Excel's "Unicode Text"), else Windows-1252.

    Older exports in Western Europe are in Windows-1252 (``Zählstelle``); read as UTF-8 they
    stopped at the first umlaut. Only the first megabyte is looked at: :func:`_read_csv`
    reads again as Windows-1252 where a later byte is not UTF-8.
    """
    head = _head_bytes(path)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=False)  # a character cut at the end is fine
            return "utf-8-sig"
        except UnicodeDecodeError:
            encoding = "cp1252"
    log.info("%s: text in %s, not UTF-8", path, _ENCODING_NAMES[encoding])
    return encoding


_ENCODING_NAMES = {"utf-16": "UTF-16", "cp1252": "Windows-1252"}
_HEAD_BYTES = 1 << 20


def _open_text(path: Path, encoding: str = "utf-8-sig") -> IO[str]:
    """The file as text; of a ``.zip``, only its first megabyte (pandas reads the rest)."""
    if path.suffix.lower() == ".zip":
        return io.TextIOWrapper(io.BytesIO(_head_bytes(path)), encoding=encoding, errors="replace")
    return cast(IO[str], _opener(path)(path, "rt", encoding=encoding, errors="replace"))


def _read_json(path: Path) -> pd.DataFrame:
    """Records as web APIs return them, flattened (``{"location": {"lat": ..}}`` gives ``location.lat``).

    A list of objects, one object per line (JSON Lines), the one list of objects inside an
    envelope (``{"meta": .., "data": [..]}``), an object of columns, or a frame as pandas'
    ``to_json`` writes one. Parsed with the ``json`` module (pandas' reader for its own
    layouts): data, never code.
    """
    with _open_text(path, _text_encoding(path)) as f:
        text = f.read()
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError as e:
        try:
            doc = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError:
            raise DataError(f"{path}: is not JSON ({e}); check the file is complete, or export the data as CSV") from e
    if isinstance(doc, dict) and doc and not any(isinstance(v, (list, dict)) for v in doc.values()):
        keys = ", ".join(list(doc)[:3]) + (", ..." if len(doc) > 3 else "")
        raise DataError(f"{path}: an object of settings ({keys}), not a table of readings; a training config goes to --config")
    pandas_layout = _pandas_json_layout(doc)
    if pandas_layout is not None:
        return _pandas_json_frame(text, pandas_layout, path)
    if isinstance(doc, dict):
        lists = {k: v for k, v in doc.items() if _is_records(v)}
        if len(lists) == 1:
            ((key, doc),) = lists.items()
            log.info("%s: records from its key %r", path, key)
        elif doc and all(isinstance(v, list) for v in doc.values()) and len({len(v) for v in doc.values()}) == 1:
            return pd.DataFrame(doc)
    if _is_records(doc) and all(r.get("type") == "Feature" and isinstance(r.get("properties", {}), dict | None) for r in doc):
        log.info("%s: GeoJSON: the table of its features' properties (their geometry left out)", path)
        # A feature's own id names its sensor where its properties do not
        doc = [{**({"id": r["id"]} if "id" in r else {}), **(r.get("properties") or {})} for r in doc]
    if not _is_records(doc):
        raise DataError(
            f"{path}: holds no table: expected a list of records (objects), one record per line, or an object of "
            "equally long columns; export the data as CSV"
        )
    return pd.json_normalize(doc)


def _pandas_json_layout(doc: Any) -> str | None:
    """The ``orient`` of a frame that pandas' ``to_json`` wrote, for ``read_json`` to read it back, or None.

    ``df.to_json()`` writes ``{"sensor": {"1709251200000": 61.2, ...}}`` (``columns``: the
    timestamps inside), ``orient="index"`` the timestamps (or row numbers) outside,
    ``orient="split"`` columns, index and rows, ``orient="table"`` a schema and records.
    Sensor ids of 8 to 13 digits (INRIX XD, HERE) are names, not epoch times: the side of
    the timestamps is told by the inner keys first.
    """
    if not isinstance(doc, dict) or not doc:
        return None
    if {"schema", "data"} <= doc.keys() and isinstance(doc["schema"], dict) and "fields" in doc["schema"]:
        return "table"
    if (
        {"columns", "data"} <= doc.keys() <= {"columns", "index", "data", "name"}
        and isinstance(doc["columns"], list)
        and all(isinstance(c, str | int | float) for c in doc["columns"])
        and isinstance(doc["data"], list)
        and all(isinstance(r, list) for r in doc["data"])
    ):
        return "split"
    if not all(isinstance(v, dict) and v for v in doc.values()):
        return None
    inner = pd.Series([str(k) for k in list(next(iter(doc.values())))[:_DATES_SAMPLE]])
    outer = pd.Series([str(k) for k in list(doc)[:_DATES_SAMPLE]])
    if _epoch_ms_or_dates(inner):
        return "columns"
    return "index" if _row_numbers(outer) or _epoch_ms_or_dates(outer) else "columns"


_EPOCH_MS = r"1\d{12}"
"""Timestamps as ``to_json`` writes them by default: epoch milliseconds, 13 digits since 2001."""


def _epoch_ms_or_dates(keys: pd.Series) -> bool:
    return bool(keys.str.fullmatch(_EPOCH_MS).all()) or _plausible_dates(keys)


def _row_numbers(keys: pd.Series) -> bool:
    """Whether the keys are a plain row index, 0, 1, ..., as text."""
    return keys.tolist() == [str(i) for i in range(len(keys))]


def _pandas_json_frame(text: str, layout: str, path: Path) -> pd.DataFrame:
    """The frame of a pandas JSON layout, its index as timestamps where it holds them.

    Axes are not converted by pandas: it turned sensor ids of 8 digits into dates of 1971.
    """
    try:
        axes = {} if layout == "table" else {"convert_axes": False}  # a table's schema gives its types
        frame = pd.read_json(io.StringIO(text), orient=layout, **axes)
    except (ValueError, TypeError) as e:
        raise DataError(
            f"{path}: a frame in pandas' {layout!r} JSON layout that does not read: {_first_line(e)}; export it as CSV"
        ) from e
    frame.columns = [str(c) for c in frame.columns]
    hours = pd.Series(frame.columns)
    if len(hours) >= 12 and (hours.str.fullmatch(r"\d{1,2}").all() or hours.str.fullmatch(_TIME_OF_DAY).all()):
        raise DataError(
            f"{path}: holds a row per day and a column per hour of the day (one sensor's readings); write it as CSV "
            "with an hour per row and a day per column, or as a timestamp column and a readings column"
        )
    if isinstance(frame.index, pd.DatetimeIndex):
        return frame
    index = pd.Series(frame.index.astype(str))
    if index.str.fullmatch(_EPOCH_MS).all():
        frame.index = pd.to_datetime(index.astype(np.int64), unit="ms")
        return frame
    if _row_numbers(index):
        return frame.reset_index(drop=True)
    return frame.rename_axis("index").reset_index()


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _head_lines(path: Path, encoding: str) -> list[str]:
    with _open_text(path, encoding) as f:
        return [line.rstrip("\r\n") for _, line in zip(range(20), f, strict=False)]


def _csv_dialect(lines: list[str]) -> tuple[str, str]:
    """The separator and decimal mark, from the first lines.

    Excel in much of Europe writes ``;`` between fields and ``,`` in numbers. Read with
    commas, such a file's rows split inside numbers and pandas takes the pieces for an
    index: a wrong series with no error.
    """
    header = lines[0] if lines else ""

    def decimal_commas(sep: str) -> bool:
        return any(_DECIMAL_COMMA.match(field) for line in lines for field in line.split(sep))

    sep = max((",", ";", "\t", "|"), key=header.count)  # a tie (no separator at all) keeps ","
    if sep == "," and 0 < header.count(",") == header.count(";") and decimal_commas(";"):
        sep = ";"  # "08:00;60,5;58,2": as many commas as semicolons, and the commas sit inside numbers
    return (sep, ",") if sep != "," and decimal_commas(sep) else (sep, ".")


def _is_pems_station(lines: list[str], sep: str) -> bool:
    """Whether the first rows are a PeMS station file's: a date, station, district and
    freeway numbers, a direction (N, S, E, W) and a lane type (ML, OR, HV, ...), no header."""

    def station_row(fields: list[str]) -> bool:
        return (
            len(fields) >= 12  # the fixed fields; a group per lane follows
            and all(f.strip().isdigit() for f in fields[1:4])
            and fields[4].strip() in _PEMS_DIRECTIONS
            and re.fullmatch(r"[A-Z]{2}", fields[5].strip()) is not None
        )

    rows = [line.split(sep) for line in lines if line.strip()]
    return bool(rows) and all(map(station_row, rows)) and _looks_like_dates(pd.Series([f[0] for f in rows]))


def _read_pems_station(path: Path, sep: str) -> pd.DataFrame:
    """A PeMS station file as a long table of timestamp, station, flow, occupancy and speed.

    Rows end in one group of fields per lane, so they differ in length; only the fixed
    fields are read. Ramps (lane types OR, FR) report flow but no speed: read for speed,
    they are sensors without readings, which :func:`tuning.data.prepare_data` names.
    """
    fields = {**_PEMS_STATION_FIELDS, 5: "lane_type"}
    frame = pd.read_csv(path, sep=sep, header=None, usecols=list(fields)).rename(columns=fields)
    lane_types = frame.drop_duplicates("station")["lane_type"].value_counts()
    frame = frame.drop(columns="lane_type")
    occupancy = pd.to_numeric(frame["occupancy"], errors="coerce")
    if (occupancy > 1).any():  # a fraction in 5-minute and hourly files; Station Day files hold delays there
        frame = frame.drop(columns=["occupancy", "speed"])
        log.warning("%s: fields 11-12 are not occupancy and speed (values above 1, as in a Station Day file): "
                    "only flow is read", path)  # fmt: skip
    log.info(
        "%s: a PeMS station file (no header row): read %s; stations by lane type: %s",
        path, ", ".join(frame.columns), ", ".join(f"{k} {v}" for k, v in lane_types.items()),
    )  # fmt: skip
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV, first checking the raw header: pandas would silently rename 'a', 'a' to 'a', 'a.1'."""
    encoding = _text_encoding(path)
    try:
        return _read_csv_as(path, encoding)
    except UnicodeDecodeError:
        if encoding != "utf-8-sig":
            raise
    if _head_bytes(path).isascii():  # nothing said UTF-8 before the first byte that is not
        log.info("%s: text in Windows-1252, not UTF-8 (found past the first megabyte)", path)
        return _read_csv_as(path, "cp1252")
    log.warning("%s: UTF-8 text with bytes that are not UTF-8 past the first megabyte; those characters read as \ufffd", path)
    return _read_csv_as(path, "utf-8-sig", errors="replace")


def _read_csv_as(path: Path, encoding: str, errors: str = "strict") -> pd.DataFrame:
    lines = _head_lines(path, encoding)
    sep, decimal = _csv_dialect(lines)
    if _is_pems_station(lines, sep):
        return _read_pems_station(path, sep)
    skip = _lines_above_table(lines)
    if skip:
        log.info("%s: %d line(s) above the table left out (a title or notes: %r)", path, skip, lines[0].strip()[:60])
        lines = lines[skip:]
        sep, decimal = _csv_dialect(lines)
    if sep != ",":
        log.info("%s: fields separated by %r%s", path, sep, ", decimal comma" if decimal == "," else "")
    read: dict[str, Any] = {"sep": sep, "encoding": encoding, "encoding_errors": errors, "skiprows": skip}
    head = pd.read_csv(path, header=None, nrows=21, dtype=str, keep_default_na=False, **read)
    header = [c.strip() for c in head.iloc[0]]
    dated = bool(header) and _looks_like_dates(pd.Series(header[:1]))
    if _first_row_is_data(head.iloc[:, int(dated) :], decimal):
        names = _headerless_names(path, len(header), dated)
        return pd.read_csv(path, decimal=decimal, header=None, names=names, na_values=_MISSING_MARKS, **read)
    _reject_duplicates(header, str(path))
    return pd.read_csv(path, decimal=decimal, na_values=_MISSING_MARKS, **read)


def _lines_above_table(lines: list[str]) -> int:
    """How many of the first lines are a title, notes or ``#`` comments above the table's header.

    Reports from count systems start so ("Traffic counts, Station 401", an export date,
    a blank line); pandas then took the title for the header and stopped at the first
    row, wider than it. The table is what the lower half of the first lines holds: its
    separator and width. The header is the first line at least that wide, or one cell
    narrower right above a row of data that wide (an unnamed index heading the dates, in
    tables of 3 columns or more); a ``#`` as wide as the table heads it (``#,Time,...``).
    Lines above it are narrower; a file whose first line is its header skips none.
    """
    body = lines[len(lines) // 2 :]
    if len(lines) < 4:
        return 0
    sep = _csv_dialect(body)[0]
    rows = list(csv.reader(lines, delimiter=sep))
    widths = [len(r) for r in rows[len(rows) // 2 :] if r]
    if not widths:
        return 0
    width = max(set(widths), key=widths.count)
    for i, row in enumerate(rows):
        below = rows[i + 1] if i + 1 < len(rows) else []
        if len(row) >= width or (width >= 3 and len(row) == width - 1 and len(below) >= width and re.search(r"\d", below[0])):
            above = [r[0] for r in rows[:i] if r and not r[0].lstrip().startswith("#")]
            # Keep every line where those above are ragged rows of data, or where the first
            # wide line is data itself: a one-cell header over R's row names and readings
            # ("speed" over "1,55.2") is no title over a headerless table.
            data = bool(row) and all(_is_number(c) for c in row)
            return 0 if data or (above and _looks_like_dates(pd.Series(above))) else i
    return 0


def _is_number(cell: str) -> bool:
    try:
        float(cell.replace(",", "."))
    except ValueError:
        return False
    return True


def _read_excel(path: Path) -> pd.DataFrame:
    """A workbook's first sheet as a frame, read as its CSV would be.

    Counts published as spreadsheets often carry a title and notes above the table: the
    header is the first row as wide as the table, or one cell narrower. Empty rows and columns around it are
    left out. A sheet without a header row (numbers from the first row on) is read as a
    headerless CSV is. Dates and times come as the cells' own values, not as text.
    """
    try:
        book = pd.ExcelFile(path, engine="openpyxl")
    except ImportError as e:  # a main dependency; only a broken install lacks it
        raise DataError(f"{path}: reading .xlsx needs openpyxl, which is not installed; pip install openpyxl") from e
    with book:
        sheets = [str(name) for name in book.sheet_names]
        raw = book.parse(sheets[0], header=None, na_values=_MISSING_MARKS).dropna(how="all").dropna(axis=1, how="all")
    if len(sheets) > 1:
        log.info("%s: read its first sheet %r (it has %d: %s); save another as its own file to use it", path, sheets[0],
                 len(sheets), ", ".join(map(repr, sheets)))  # fmt: skip
    if raw.empty:
        raise DataError(f"{path}: its first sheet {sheets[0]!r} is empty; put the table of readings on the first sheet")
    filled = raw.notna().sum(axis=1).to_numpy()
    # above it: a title, notes; the header may lack one cell (over a column of dates)
    top = int(np.argmax(filled >= max(2, filled.max() - 1)))
    table = raw.iloc[top:].reset_index(drop=True)
    dated = isinstance(table.iat[0, 0], (pd.Timestamp, dt.datetime, dt.date))
    if top:
        log.info("%s: %d row(s) above the table's header left out (a title or notes)", path, top)
    if _first_row_is_data(table.iloc[:21, int(dated) :].astype(str), "."):
        return table.set_axis(_headerless_names(path, table.shape[1], dated), axis=1).infer_objects()
    # a column with a title above it reads as floats: sensor id 101 came as 101.0
    names = [
        f"Unnamed: {i}" if pd.isna(c) else str(int(c)) if isinstance(c, float) and c.is_integer() else str(c).strip()
        for i, c in enumerate(table.iloc[0])
    ]  # empty header cells named as pandas names them in a CSV
    _reject_duplicates(names, str(path))
    return table.iloc[1:].set_axis(names, axis=1).reset_index(drop=True).infer_objects()


def _headerless_names(path: Path, width: int, dated: bool) -> list[str]:
    """Column names for a table without a header row: a timestamp (when its first cell is a
    date), then sensors named as an array's are; with one log line."""
    names = ["timestamp"] * dated + list(_array_ids(width - dated))
    log.info(
        "%s: the first row holds readings, not sensor names (no header): read as data, sensors named %s ...",
        path, ", ".join(names[dated : dated + 2]),
    )  # fmt: skip
    return names


def _first_row_is_data(head: pd.DataFrame, decimal: str) -> bool:
    """Whether a CSV's first row holds readings, not sensor names (a file without a header row).

    It does when its cells are all numbers, one at least with a fraction or exponent
    (60.5, 6.05e+01: whole numbers alone stay names, as METR-LA's sensor ids 773869 are),
    and they lie among the next rows' in most columns: names such as 401.1 and 401.2
    (station.lane) have fractions too, but lie far from the speeds or counts below them.
    """
    text = head.apply(lambda c: c.str.replace(",", ".")) if decimal == "," else head
    cells = [c.strip() for c in text.iloc[0]]
    if not cells:
        return False
    try:
        for cell in cells:
            float(cell)
    except ValueError:
        return False
    if all(re.fullmatch(r"[-+]?\d+", cell) for cell in cells):
        return False
    numbers = text.apply(pd.to_numeric, errors="coerce")
    first, below = numbers.iloc[0], numbers.iloc[1:]
    if below.empty:
        return True  # one row: nothing to compare with; readings it is
    low, high = below.min(), below.max()
    spread = (high - low).fillna(0) + 0.5 * below.abs().median().fillna(0) + 1e-9  # room for a first row near the rest
    inside = (first >= low - spread) & (first <= high + spread)
    return bool(inside.mean() >= 0.5)


def _pick_sensors(
    names: list[str],
    columns: Sequence[str] | None,
    exclude: Sequence[str] | None,
    label: str,
    timestamp: str | None = None,
    *,
    patterns: bool = True,
) -> list[str]:
    """The sensor columns to use: ``columns`` in their order, or all but ``exclude``; with ``patterns``,
    shell patterns among them match names (a model's saved sensor ids are names only)."""
    if columns is not None and exclude is not None:
        raise DataError(f"{label}: give --columns or --exclude-columns, not both")
    flag = "--columns" if columns is not None else "--exclude-columns"
    wanted = list(columns if columns is not None else exclude or [])
    if patterns:
        wanted = _expand_patterns(wanted, names, label, flag, timestamp)
    if timestamp is not None and timestamp in wanted:
        raise DataError(f"{label}: {timestamp!r} is the timestamp column, not a sensor; leave it out of the column list")
    unknown = [c for c in wanted if c not in names]
    if unknown:
        raise DataError(f"{label}: {flag} names {unknown}, which the file does not have; its columns are {names}")
    if columns is not None:
        if not wanted:
            raise DataError(f"{label}: --columns is empty; name at least one sensor column")
        return list(dict.fromkeys(wanted))
    return [c for c in names if c not in wanted]


def _expand_patterns(wanted: list[str], names: list[str], label: str, flag: str, timestamp: str | None) -> list[str]:
    """Shell-style patterns (``'*_speed'``, ``'det_1?'``) among column names, as the columns they match in file order.

    A wide file with a flow and a speed column per detector, or hundreds of sensors and a
    few covariates, is then picked in one word instead of hundreds. A name that is a
    column is taken as it is, whatever characters it holds.
    """
    expanded: list[str] = []
    for name in wanted:
        if name in names or not any(ch in name for ch in "*?["):
            expanded.append(name)
            continue
        matched = [c for c in names if c != timestamp and fnmatch.fnmatchcase(c, name)]
        if not matched:
            raise DataError(f"{label}: {flag} pattern {name!r} matches no column; its columns are {names}")
        expanded.extend(matched)
    return expanded


def select_sensors(
    series: TrafficSeries,
    columns: Sequence[str] | None = None,
    exclude_columns: Sequence[str] | None = None,
    *,
    label: str | None = None,
    patterns: bool = True,
) -> TrafficSeries:
    """The series with only the sensors ``columns`` names (in that order), or without ``exclude_columns``.

    ``patterns``: shell patterns among the names (``'*_speed'``) pick every sensor they match;
    False for names that are sensor ids whatever their characters (a model's ``det[1]``).

    Raises:
        DataError: Both are given, or one names a sensor the series does not have.
    """
    if columns is None and exclude_columns is None:
        return series
    picked = _pick_sensors(list(series.sensor_ids), columns, exclude_columns, label or series.name, patterns=patterns)
    index = [series.sensor_ids.index(c) for c in picked]
    return replace(series, values=np.ascontiguousarray(series.values[:, index]), sensor_ids=tuple(picked))


def _hours_ending(column: pd.Series) -> bool:
    """Whether an hour column counts 1-24: the hour ending at 01:00 ... 24:00, as US count reports number them."""
    if not pd.api.types.is_numeric_dtype(column.dtype) or _CLOCK_UNITS.get(_name_key(str(column.name))) != 3600:
        return False
    numbers = column.to_numpy(dtype=np.float64)
    return bool(len(numbers)) and numbers.min() >= 1 and numbers.max() == 24 and bool((numbers % 1 == 0).all())


def _say_hours_ending(label: str, column: object) -> None:
    log.info("%s: hours 1-24 in %r read as hours ending at 01:00 ... 24:00, each labelled by its start", label, column)


def _times_of_day(column: pd.Series) -> pd.Series | None:
    """The column as "HH:MM[:SS]" text when it holds times of day (or whole hours, minutes or
    seconds since midnight under such a name), else None. The first rows are tried first:
    most columns fail there.

    Count reports also write the hours 1-24 (:func:`_hours_ending`), a 12-hour clock and
    intervals such as ``00:00-01:00`` or ``4:00 - 4:15 PM``: each is labelled here by the
    start of its interval, as every other step is.
    """
    if pd.api.types.is_numeric_dtype(column.dtype):
        unit = _CLOCK_UNITS.get(_name_key(str(column.name)))
        if unit is None or column.isna().any():
            return None
        numbers = column.to_numpy(dtype=np.float64) - (1 if _hours_ending(column) else 0)
        if not ((numbers == np.round(numbers)) & (numbers >= 0) & (numbers * unit < 86_400)).all():
            return None
        if unit == 1 and numbers.max() < 3600:  # an "interval" 0-95 counts steps, not seconds: its step is unknown
            return None
        seconds = pd.to_timedelta(numbers * unit, unit="s")
        return pd.Series(
            [f"{c.hours:02d}:{c.minutes:02d}:{c.seconds:02d}" for c in seconds.components.itertuples()], index=column.index
        )
    if not pd.api.types.is_object_dtype(column.dtype) and not pd.api.types.is_string_dtype(column.dtype):
        return None
    head = column.head(50).astype(str)
    if head.str.fullmatch(_TIME_OF_DAY).all():
        text = column.astype(str)
        return text.str.strip() if text.str.fullmatch(_TIME_OF_DAY).all() else None
    if not head.str.fullmatch(_CLOCK_TEXT, case=False).all():
        return None
    parts = column.astype(str).str.extract(f"^{_CLOCK_TEXT}$", flags=re.IGNORECASE)
    if parts["hour"].isna().any():
        return None
    start = _clock_minutes(parts["hour"], parts["minute"], parts["half"])
    end = _clock_minutes(parts["end_hour"].fillna(parts["hour"]), parts["end_minute"].fillna(parts["minute"]),
                         parts["end_half"], end=True)  # fmt: skip
    if start is None or end is None:
        return None
    # "4:00 - 4:15 PM": the start takes the end's half of the day, the other half where
    # it would come after the end (11:00 - 12:00 PM starts at 11:00, 12:00 - 1:00 AM at 00:00)
    borrow = parts["half"].isna() & parts["end_half"].notna()
    if borrow.any():
        half_day = 12 * 60
        same = start % half_day + end // half_day * half_day
        other = (same + half_day) % (2 * half_day)
        start = start.where(~borrow, same.where(same <= end, other))
    seconds = parts["second"].fillna("0").astype(int)
    if (seconds > 59).any():
        return None
    return (start // 60).map("{:02d}".format) + ":" + (start % 60).map("{:02d}".format) + ":" + seconds.map("{:02d}".format)


def _blank_time_row(column: pd.Series) -> int | None:
    """The first blank row (from 1) of a column that holds times of day but for its blank cells, else None."""
    cells = column.dropna()
    if cells.empty or len(cells) == len(column):
        return None
    numbers = pd.to_numeric(cells, errors="coerce")  # hours beside a Total row are text
    if _times_of_day(numbers if numbers.notna().all() else cells) is None:
        return None
    return int(np.flatnonzero(column.isna().to_numpy())[0]) + 1


def _clock_minutes(hours: pd.Series, minutes: pd.Series, halves: pd.Series, *, end: bool = False) -> pd.Series | None:
    """Minutes since midnight of clock readings (a 24-hour clock where ``halves`` is empty), or None if any is no time.

    An interval's ``end`` may be 24:00.
    """
    hours, minutes = hours.astype(int), minutes.astype(int)
    pm = halves.fillna("").str.lower().str.startswith("p")
    twelve = halves.notna()
    midnight = (hours == 24) & (minutes == 0) & ~twelve if end else False
    if (twelve & ~hours.between(1, 12)).any() or ((hours > 23) & ~midnight).any() or (minutes > 59).any():
        return None
    return hours.where(~twelve, hours % 12 + 12 * pm) * 60 + minutes


def _dates_alone(column: pd.Series) -> pd.Series | None:
    """The column as date text when it holds dates without a time of day (or at midnight), else None."""
    if pd.api.types.is_datetime64_any_dtype(column.dtype):  # a spreadsheet's date cells
        if column.isna().any() or (column != column.dt.normalize()).any():
            return None
        return column.dt.strftime("%Y-%m-%d")
    text = column.astype(str).str.strip().str.replace(_MIDNIGHT, "", regex=True)
    return None if text.str.contains(":").any() or not _looks_like_dates(text) else text


def _join_date_and_time(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """``Date,Time`` (or ``Date,Hour``, ``day,interval``) columns as one timestamp column, in the date column's place.

    Read apart, the time column became a "sensor" (a wide file misread as a long table), or
    the dates alone were the timestamps and a day's rows were averaged into one step.
    """
    columns = list(frame.columns)
    named = [c for c in columns if _name_key(c) in _DATE_NAMES or c.lower() in _TIMESTAMP_NAMES]
    for i, time_column in enumerate(columns):
        column = frame[time_column]
        times = _times_of_day(column)
        # times of day but for blank cells: named, where the rest were read as a long table or sensors
        blank = _blank_time_row(column) if times is None else None
        if times is None and blank is None:
            continue
        for date_column in dict.fromkeys([*columns[:i][-1:], *named]):
            text = None if date_column == time_column else _dates_alone(frame[date_column])
            if text is None:
                continue
            if blank is not None:
                raise DataError(f"{label}: column {time_column!r}, the time of day of the dates in {date_column!r}, is "
                                f"blank in data row {blank}; every row needs one, fill or drop it")  # fmt: skip
            assert times is not None
            joined = frame.drop(columns=time_column)
            joined[date_column] = text + " " + times
            if _hours_ending(frame[time_column]):
                _say_hours_ending(label, time_column)
            if date_column.lower() not in _TIMESTAMP_NAMES and not any(c.lower() in _TIMESTAMP_NAMES for c in joined.columns):
                joined = joined.rename(columns={date_column: "timestamp"})  # found as the timestamp wherever it stands
            log.info("%s: columns %r and %r read as one timestamp", label, date_column, time_column)
            return joined
    return frame


def _frame_to_series(
    frame: pd.DataFrame,
    label: str,
    name: str,
    zero_is_missing: bool,
    *,
    freq: str | None = None,
    columns: Sequence[str] | None = None,
    exclude_columns: Sequence[str] | None = None,
    readings: str | None = None,
    dayfirst: bool | None = None,
    sort_rows: bool = False,
) -> TrafficSeries:
    """Split a wide frame into timestamps and sensor columns, rejecting anything else.

    ``sort_rows``: the frame joins several files, whose order says nothing; its rows are
    put in time order (a single file's rows out of order are refused as a likely mistake).
    """
    columns_in = [str(c).strip() for c in frame.columns]
    _reject_duplicates(columns_in, label)
    if frame.empty and len(columns_in):
        raise DataError(f"{label}: has a header ({', '.join(columns_in[:4])}{' ...' if len(columns_in) > 4 else ''}) "
                        "but no rows of readings; check the export finished")  # fmt: skip
    frame = frame.set_axis(columns_in, axis=1)
    if not isinstance(frame.index, pd.DatetimeIndex):
        days = _days_as_columns(frame, label)
        frame = days if days is not None else _join_date_and_time(_untransposed(frame, label), label)
        columns_in = list(frame.columns)
    timestamps: pd.DatetimeIndex | None = None
    timestamp_column: str | None = None
    read_dayfirst = False
    if isinstance(frame.index, pd.DatetimeIndex):
        timestamps = frame.index
    else:
        named = [c for c in columns_in if c.lower() in _TIMESTAMP_NAMES]
        if named:
            timestamp_column = named[0]
        elif columns_in and _looks_like_dates(frame[columns_in[0]]):
            timestamp_column = columns_in[0]
        else:
            timestamp_column = _column_of_dates(frame, columns_in[1:], label)
        if timestamp_column is not None:
            frame = _without_footer(frame, timestamp_column, label)
            timestamps, read_dayfirst = _parse_timestamps(frame[timestamp_column], label, dayfirst)
    snapped = repeated = False
    if timestamps is not None and freq is not None:
        repeated = timestamps.has_duplicates
        timestamps, snapped = _snap_to_step(timestamps, freq, label)
    if timestamps is not None and sort_rows:
        order = np.argsort(timestamps.asi8, kind="stable")
        frame, timestamps = frame.iloc[order], timestamps[order]
    if timestamps is not None:
        long = _long_to_wide(frame, timestamps, timestamp_column, label, columns, exclude_columns, readings, binned=snapped)
        readings = None if long is None else long.readings
        if long is not None:
            frame, timestamps, timestamp_column = long.wide, long.wide.index, None
            columns_in, columns, exclude_columns = list(long.wide.columns), long.columns, long.exclude_columns
    candidates = [c for c in columns_in if c != timestamp_column]
    sensors = _pick_sensors(candidates, columns, exclude_columns, label, timestamp_column)
    if sensors and sensors[0] == "Unnamed: 0":
        raise DataError(
            f"{label}: the first column has no header, so it looks like a saved row index; "
            "drop it (save with index=False) or give it a sensor name"
        )
    numeric: list[np.ndarray] = []
    bad: list[str] = []
    for c in sensors:
        as_numbers = _as_numbers(frame[c])
        if as_numbers is None:
            bad.append(c)
        else:
            numeric.append(as_numbers)
    if bad:
        first = int(np.flatnonzero(_parse_cells(frame[bad[0]])[1].to_numpy())[0])
        raise DataError(
            f"{label}: non-numeric columns {bad} ({str(frame[bad[0]].iloc[first]).strip()!r} in {bad[0]!r}, data row {first + 1}): every column "
            f"except one timestamp column must hold sensor readings; drop or convert them, or {_PICK_HINT}"
        )
    if not sensors:
        raise DataError(f"{label}: no sensor columns (columns: {columns_in}); it needs one numeric column per sensor")
    if len(frame) < 2:
        raise DataError(f"{label}: has {len(frame)} row(s) of readings; at least 2 time steps are needed")
    values = np.column_stack(numeric).astype(np.float32)
    infinite = [c for c, col in zip(sensors, values.T, strict=True) if np.isinf(col).any()]
    if infinite:
        raise DataError(f"{label}: columns {infinite} hold infinite values; replace them with empty cells (missing)")
    if zero_is_missing:
        values[values == 0] = np.nan
    if timestamps is not None:
        _check_order(timestamps, label)
        # Rows that share a step only once their readings were binned are what binning means: said
        # already. Rows that shared a timestamp in the file are still worth a warning.
        values, timestamps = _average_duplicates(values, timestamps, label, quiet=snapped and not repeated)
        values, timestamps = _reindex_to_step(values, timestamps, freq, label)
        if len(timestamps) < 2:
            raise DataError(f"{label}: has {len(timestamps)} distinct timestamp(s); at least 2 time steps are needed")
    return TrafficSeries(
        values, timestamps, tuple(sensors), name, zeros_missing=zero_is_missing, readings=readings, dayfirst=read_dayfirst
    )


def _array_to_series(array: np.ndarray, label: str, name: str, zero_is_missing: bool) -> TrafficSeries:
    """Take (T, N) as is, or channel 0 of (T, N, C) as PEMS files store the target first."""
    if array.ndim not in (2, 3):
        raise DataError(
            f"{label}: array has shape {array.shape}; expected (time, sensors) or (time, sensors, channels); reshape it"
        )
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool) or np.iscomplexobj(array):
        raise DataError(f"{label}: array has dtype {array.dtype}; sensor readings must be real numbers")
    if array.ndim == 3:
        if array.shape[2] < 1:
            raise DataError(f"{label}: array has shape {array.shape} with no channels; channel 0 must hold readings")
        array = array[:, :, 0]
    if array.shape[0] < 2 or array.shape[1] < 1:
        raise DataError(f"{label}: array has shape {array.shape}; at least 2 time steps and 1 sensor are needed")
    # Always a C-ordered copy: the caller's array stays untouched, and the windows index
    # the series as flat memory (DataFrame.to_numpy() hands out Fortran order).
    values = np.array(array, dtype=np.float32, order="C")
    if np.isinf(values).any():
        raise DataError(f"{label}: array holds infinite values; replace them with nan (missing)")
    if zero_is_missing:
        values[values == 0] = np.nan
    return TrafficSeries(values, None, _array_ids(values.shape[1]), name, zeros_missing=zero_is_missing)


def _read_npz(path: Path) -> np.ndarray:
    with path.open("rb") as f:
        magic = f.read(6)
    # np.load takes anything else for a pickle and says it "contains pickled data".
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
        raise DataError(
            f"{path}: is not a .npz archive (a zip of NumPy arrays; it starts with {magic!r}); "
            "save the series with np.savez(path, data=array)"
        )
    loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.ndarray):  # a bare .npy saved under a .npz name
        return loaded
    with loaded:
        keys = list(loaded.files)
        if not keys:
            raise DataError(f"{path}: holds no arrays; save the series with np.savez(path, data=array)")
        return loaded[_pick_key(path, "arrays", keys, ("data", "x"), "save the series under the key 'data'")]


def _pick_key(path: Path, what: str, keys: list[str], preferred: tuple[str, ...], fix: str) -> str:
    """The one object a file holds, else the first of ``preferred`` it holds; several others: one line saying ``fix``."""
    if len(keys) == 1:
        return keys[0]
    key = next((k for k in preferred if k in keys), None)
    if key is None:
        named = ", ".join(map(repr, preferred[:-1])) + f" or {preferred[-1]!r}"
        raise DataError(f"{path}: holds {what} {keys} and none is named {named}; {fix}")
    return key


def _read_hdf(path: Path) -> pd.DataFrame | np.ndarray:
    """A frame saved with ``DataFrame.to_hdf``, else a plain (T, N[, C]) array of an HDF5 file.

    METR-LA and PEMS-BAY, the field's two standard speed sets, ship as ``to_hdf`` frames
    (keys ``df`` and ``speed``): a DatetimeIndex of 5-minute steps and one column per
    sensor id, read here as a CSV with a timestamp column would be. Files written with
    h5py or PyTables hold arrays instead, taken as a ``.npz``'s are.
    """
    with path.open("rb") as f:
        head = f.read(2048 + len(_HDF5_SIGNATURE))
    # HDF5 puts its signature at byte 0, or after a user block of 512, 1024, 2048... bytes.
    if not any(head[at : at + len(_HDF5_SIGNATURE)] == _HDF5_SIGNATURE for at in (0, 512, 1024, 2048)):
        raise DataError(
            f"{path}: is not an HDF5 file (it starts with {head[:8]!r}); "
            "save the frame with DataFrame.to_hdf(path, key='df') or pass a .csv"
        )
    try:
        import tables
    except ImportError as e:  # a main dependency; only a broken install lacks it
        raise DataError(f"{path}: reading HDF5 needs PyTables, which is not installed; pip install tables") from e
    try:
        with pd.HDFStore(path, mode="r") as store:
            keys = [k.lstrip("/") for k in store.keys()]
            if keys:
                key = _pick_key(path, "frames", keys, ("df", "data", "speed"), "save the one to use alone, or under the key 'df'")
                frame = store[key]
                if isinstance(frame, pd.Series):
                    frame = frame.to_frame()
                if not isinstance(frame, pd.DataFrame):
                    raise DataError(f"{path}: key {key!r} holds a {type(frame).__name__}, not a frame of readings")
                return frame
        with tables.open_file(path, mode="r") as h5:
            arrays = {node._v_pathname.lstrip("/"): node for node in h5.walk_nodes("/", "Array")}
            if not arrays:
                raise DataError(f"{path}: holds no frame or array; save the series with DataFrame.to_hdf(path, key='df')")
            key = _pick_key(path, "arrays", sorted(arrays), ("data", "x"), "save the series under the key 'data'")
            return np.asarray(arrays[key].read())
    except tables.HDF5ExtError as e:
        raise DataError(f"{path}: cannot read as HDF5: the file is damaged or incomplete; copy it again or pass a .csv") from e


def _data_files(path: Path) -> list[Path]:
    """The files ``path`` names: itself, or a folder's data files, or a pattern's matches
    (``d04_text_station_5min_2024_03_*.txt.gz``, quoted so the shell leaves it), in name order.

    Data portals serve a file per day (PeMS) or per month; a week of them is read as one
    series, as if the files were one.
    """
    if not path.exists() and glob.has_magic(str(path)):
        files = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())
        if not files:
            raise DataError(f"no file matches {path}; check the pattern, or pass a file or a folder of files")
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and _file_type(p) in _SUPPORTED)
        if not files and next(path.glob("*=*/**/*.parquet"), None) is not None:
            return [path]  # a partitioned Parquet dataset (date=2024-03-04/part-0.parquet), as Spark writes it
        if not files:
            raise DataError(f"{path}: is a folder without data files; pass a {_FORMATS} file, or a folder of them")
    elif not path.exists():
        raise DataError(f"data file not found: {path}; pass an existing {_FORMATS} file")
    elif not path.is_file():  # a FIFO or device would block the reader or never end
        raise DataError(f"{path}: is not a regular file (a pipe, socket or device); save the data to a file and pass that")
    else:
        files = [path]
    for file in files:
        suffix = _file_type(file)
        if suffix in (".pkl", ".pickle"):  # Seattle Loop's speed matrix, among others, ships as one
            raise DataError(
                f"{file}: a pickle, which can run code when read, so it is not read here; convert it where you trust "
                f"its source: python -c \"import pandas as pd; pd.read_pickle('{file.name}').to_parquet('{file.stem}.parquet')\""
            )
        if suffix in (".xls", ".ods", ".xlsb"):
            raise DataError(
                f"{file}: a workbook in {_OTHER_SHEETS[suffix]} format, which is not read here; open it in a spreadsheet "
                "program and save it as .xlsx (Excel Workbook) or .csv"
            )
        if suffix not in _SUPPORTED:
            raise DataError(
                f"{file}: unsupported file type {suffix or '(no extension)'!r}; supported are {', '.join(_SUPPORTED)} "
                "(a .csv, .txt or .json also compressed: .csv.gz, .csv.bz2, .csv.xz, .csv.zip); convert the file to one of them"
            )
    kinds = sorted({_file_type(f) for f in files})
    if len(kinds) > 1:
        raise DataError(f"{path}: holds {' and '.join(kinds)} files; files read together must be of one kind: pass one kind")
    return files


def _read_file(file: Path, suffix: str) -> pd.DataFrame | np.ndarray:
    """A data file's frame (CSV, parquet, HDF5 frame) or array (.npz, HDF5 array)."""
    try:
        if suffix == ".npz":
            return _read_npz(file)
        if suffix in _HDF5:
            return _read_hdf(file)
        if suffix in _EXCEL:
            return _in_one_column(_read_excel(file), file)
        if suffix == ".json":
            return _read_json(file)
        return _in_one_column(_read_csv(file), file) if suffix == ".csv" else _read_parquet(file)
    except pd.errors.EmptyDataError as e:
        raise DataError(f"{file}: is empty; it needs a header of sensor ids and one row per time step") from e
    except DataError:
        raise
    except (OSError, ValueError, UnicodeDecodeError, zipfile.BadZipFile, EOFError, lzma.LZMAError) as e:
        raise DataError(
            f"{file}: cannot read as {suffix[1:]}: {_first_line(e)}; check the file is a valid, uncorrupted {suffix} file"
        ) from e


def _in_one_column(frame: pd.DataFrame, file: Path) -> pd.DataFrame:
    """A report of days by times of day as its one column, file by file: a folder of weekly
    reports has other days in each header, and is joined only once each is a column."""
    days = _days_as_columns(frame, str(file))
    return frame if days is None else days


def _read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file, or a partitioned dataset (``date=2024-03-04/part-0.parquet``).

    A dataset's partition columns name its files, not readings: read as numbers (``day=04``)
    a wide table would gain a "sensor" of them. So they are left out, where the rows carry
    their own timestamps, unless one names the sensor (``station=400001``).
    """
    frame = pd.read_parquet(path)
    if not path.is_dir():
        return frame
    keys = {p.name.split("=", 1)[0] for p in path.glob("**/*=*") if p.is_dir()}
    stamped = isinstance(frame.index, pd.DatetimeIndex) or any(
        str(c).lower() in _TIMESTAMP_NAMES for c in frame.columns if c not in keys
    )
    drop = sorted(k for k in keys if k in frame.columns and _name_key(k) not in _SENSOR_ID_NAMES) if stamped else []
    if drop:
        log.info("%s: partition columns %s left out: they name the dataset's files, not readings", path, drop)
    return frame.drop(columns=drop)


def _join_files(files: list[Path], suffix: str, label: str) -> pd.DataFrame:
    """Several files' rows as one frame; they must share their columns (wide) or layout (long)."""
    frames: list[pd.DataFrame] = []
    for i, file in enumerate(files):
        level = log.level
        if i:  # the first file's lines (its separator, a PeMS layout) stand for all: no line per day of a year
            log.setLevel(max(level, logging.WARNING))
        try:
            read = _read_file(file, suffix)
        finally:
            log.setLevel(level)
        if isinstance(read, np.ndarray):
            raise DataError(f"{file}: holds an array, and arrays are not joined across files; pass one file")
        if frames and list(read.columns) != list(frames[0].columns):
            first = list(frames[0].columns)
            differ = [c for c in read.columns if c not in first] + [c for c in first if c not in read.columns]
            raise DataError(
                f"{file}: its columns differ from {files[0].name}'s ({differ[:5] or 'in order'}); "
                "files read together need the same columns"
            )
        frames.append(read)
    log.info("%s: %d files read as one series (%s ... %s)", label, len(files), files[0].name, files[-1].name)
    return pd.concat(frames, ignore_index=not isinstance(frames[0].index, pd.DatetimeIndex))


def load_series(
    path: str | os.PathLike[str],
    *,
    zero_is_missing: bool | None = None,
    freq: str | None = None,
    start: str | None = None,
    columns: Sequence[str] | None = None,
    exclude_columns: Sequence[str] | None = None,
    readings: str | None = None,
    dayfirst: bool | None = None,
) -> TrafficSeries:
    """Load a wide traffic file: one row per time step, one column per sensor.

    Timestamps are put on a regular grid of one step: rows that share a timestamp
    are averaged, and steps missing from the file become missing readings (nan),
    each with one log line.

    Args:
        path: A ``.csv`` or ``.parquet`` file (optional timestamp column named timestamp,
            time, date, datetime or date_time, or a first column of dates; a long table,
            a row per timestamp and sensor, is pivoted to this form), a ``.npz``
            holding one (T, N) or (T, N, C) array (channel 0 is used), or an HDF5 file
            (``.h5``, ``.hdf5``, ``.hdf``): a frame saved with ``DataFrame.to_hdf`` (as
            METR-LA and PEMS-BAY ship) or an array as in a ``.npz``.
        zero_is_missing: True: exact zeros are missing readings (the METR-LA convention);
            False: they are readings; None (the default): missing where they look like
            outages (:func:`outage_zero_sensors`), with one warning that says so.
        freq: A pandas frequency such as ``"5min"``: the step to put a file's timestamps
            on (default: the most common step between them), or, for a file without
            timestamps, the step to build them with.
        start: First timestamp for ``freq`` in a file without timestamps (default
            2000-01-01); needs ``freq``.
        columns: The sensor columns to use, in this order (others, such as covariates,
            are left out); the sensors of an array are named S000, S001, ..., those of a
            long table by their ids.
        exclude_columns: Columns to leave out; the rest are the sensors.
        readings: A long table's column to read when ``columns`` names none (the one a
            model was trained on: ``TrafficSeries.readings``).
        dayfirst: How to read dates such as 01/03/2024 that fit either order equally well
            (a day's data): as a model's training data were (``TrafficSeries.dayfirst``).

    Returns:
        The series, named after the file, with float32 values and nan for missing cells.

    Raises:
        DataError: The file is missing, not a regular file, unreadable, not wide numeric
            data, has fewer than 2 rows, unordered or off-grid timestamps, or a sensor
            without any reading.
    """
    file = Path(path)
    files = _data_files(file)
    suffix = ".parquet" if files[0].is_dir() else _file_type(files[0])
    label = str(file)
    mask = bool(zero_is_missing)  # auto (None) reads the zeros first, then decides
    read = _read_file(files[0], suffix) if len(files) == 1 else _join_files(files, suffix, label)
    try:
        if isinstance(read, np.ndarray):
            series = _array_to_series(read, label, file.name, mask)
            series = select_sensors(series, columns, exclude_columns, label=label)
        else:
            series = _frame_to_series(
                read, label, file.name, mask, freq=freq, columns=columns, exclude_columns=exclude_columns,
                readings=readings, dayfirst=dayfirst, sort_rows=len(files) > 1 or files[0].is_dir(),
            )  # fmt: skip
    except DataError:
        raise
    except (OSError, ValueError) as e:
        raise DataError(f"{file}: cannot read as {suffix[1:]}: {_first_line(e)}; check the file is a valid {suffix} file") from e
    if series.timestamps is None and (freq is not None or start is not None):
        if freq is None:
            raise DataError(f"{file}: start={start!r} was given without freq; pass freq too (e.g. '5min') or drop start")
        try:
            stamps = pd.date_range(start or "2000-01-01", periods=series.num_steps, freq=freq)
        except (ValueError, TypeError) as e:
            raise DataError(
                f"{file}: bad freq {freq!r} or start {start!r}: {_first_line(e)}; pass e.g. freq='5min' and start='2024-01-01'"
            ) from e
        series = replace(series, timestamps=stamps)
    if zero_is_missing is None:
        series = outage_zeros_missing(series, label)
    _check_sensors(series, label)
    return series


def outage_zero_sensors(values: np.ndarray) -> list[int]:
    """Sensors whose exact zeros look like outages: runs of 0 that start right after a usual reading.

    Loop detectors that report speed write 0 when they fail (METR-LA, PEMS-BAY): a
    reading of 60 mph followed by zeros. Counts reach 0 by falling through small values
    at night. A sensor counts when at least two of its zero runs, and at least half of
    them, begin right after a reading of at least half its median positive reading (a
    median of at least 5, so that small counts never count). So do the sensors of a
    logging outage: nine in ten of at least 3 sensors at 0 from the same step, nine in
    ten of them straight from such a reading; one is enough, as it may be in a week.
    """
    levels = np.full(values.shape[1], np.nan)
    found = []
    for i in range(values.shape[1]):
        column = values[:, i]
        zero = column == 0
        positive = column[column > 0]
        if not zero.any() or positive.size == 0:
            continue
        level = float(np.median(positive))
        if level < 5:
            continue
        levels[i] = level
        starts = np.flatnonzero(zero & ~np.r_[False, zero[:-1]])
        before = column[starts[starts > 0] - 1]
        abrupt = int(np.sum(before >= 0.5 * level))
        if abrupt >= 2 and abrupt * 2 >= len(starts):
            found.append(i)
    if values.shape[1] >= 3:
        network = (values == 0).mean(axis=1) >= 0.9
        for step in np.flatnonzero(network[1:] & ~network[:-1]) + 1:
            dropped = (values[step] == 0) & (values[step - 1] >= 0.5 * levels)  # nan levels compare False
            if dropped.sum() >= 0.9 * values.shape[1]:
                found.extend(int(i) for i in np.flatnonzero(dropped))
    return sorted(set(found))


def outage_zeros_missing(series: TrafficSeries, label: str) -> TrafficSeries:
    """The series with its exact zeros read as missing when they look like outages; else as it is.

    Speed detectors write 0 when they fail, and a model trained and scored on those
    zeros learns the outages: on a week of METR-LA-like speeds with one 3-hour
    network outage in the validation part, every trial of a sweep scored best after
    its first epoch, and the retrained best config matched copy-last (1.01x) where
    reading those zeros as missing gave 0.82x. So where :func:`outage_zero_sensors`
    finds failed detectors, all exact zeros are missing readings, as every METR-LA and
    PEMS-BAY study reads them; one warning says so and how to keep them.
    """
    sensors = outage_zero_sensors(series.values)
    if not sensors:
        return series
    named = ", ".join(series.sensor_ids[i] for i in sensors[:3]) + (f" and {len(sensors) - 3} more" if len(sensors) > 3 else "")
    log.warning(
        "%s: %d sensor(s) (%s) drop from their usual level straight to exact zeros, as failed detectors do; "
        "exact zeros are read as missing readings (the METR-LA convention); pass --zeros-are-readings if 0 is a real reading there",
        label, len(sensors), named,
    )  # fmt: skip
    values = np.array(series.values)
    values[values == 0] = np.nan
    return replace(series, values=values, zeros_missing=True)


def as_series(
    obj: TrafficSeries | np.ndarray | pd.DataFrame,
    *,
    zero_is_missing: bool | None = None,
    name: str = "array",
    columns: Sequence[str] | None = None,
    exclude_columns: Sequence[str] | None = None,
    readings: str | None = None,
    dayfirst: bool | None = None,
) -> TrafficSeries:
    """Turn in-memory data into a :class:`TrafficSeries` so callers can skip files.

    Unlike :func:`load_series` this does not call :func:`check_sensors`; call it when
    all-missing sensors must be rejected.

    Args:
        obj: A TrafficSeries (returned as is, or with zeros masked when
            ``zero_is_missing``), a (T, N) or (T, N, C) array (channel 0), or a wide
            DataFrame whose DatetimeIndex or timestamp column gives the timestamps (a
            long one, a row per timestamp and sensor, is pivoted to it).
        zero_is_missing: True: exact zeros are missing readings; False: readings; None
            (the default): an array's or frame's are missing where they look like
            outages, as :func:`load_series` reads a file's; a series stays as it was read.
        name: Name for the series; it also prefixes error messages.
        columns, exclude_columns, readings, dayfirst: The sensors to use or leave out, a
            long table's readings column and the order of ambiguous dates, as
            :func:`load_series` takes them.

    Returns:
        The series with float32 values; the input is never modified.
    """
    if isinstance(obj, TrafficSeries):
        if not zero_is_missing and obj.values.flags.c_contiguous:
            return select_sensors(obj, columns, exclude_columns, label=name)
        values = np.array(obj.values, order="C")  # the windows index the series as flat memory
        if zero_is_missing:
            values[values == 0] = np.nan
        series = replace(obj, values=values, zeros_missing=obj.zeros_missing or bool(zero_is_missing))
        return select_sensors(series, columns, exclude_columns, label=name)
    if isinstance(obj, pd.DataFrame):
        series = _frame_to_series(
            obj, name, name, bool(zero_is_missing), columns=columns, exclude_columns=exclude_columns,
            readings=readings, dayfirst=dayfirst,
        )  # fmt: skip
    elif isinstance(obj, np.ndarray):
        series = select_sensors(_array_to_series(obj, name, name, bool(zero_is_missing)), columns, exclude_columns, label=name)
    else:
        raise TypeError(f"as_series expects a TrafficSeries, numpy array or pandas DataFrame, got {type(obj).__name__}")
    return outage_zeros_missing(series, name) if zero_is_missing is None else series


def _check_sensors(series: TrafficSeries, label: str) -> None:
    if series.num_sensors and np.isnan(series.values).all():
        raise DataError(
            f"{label}: no sensor has a single reading; pass data with readings, "
            "or turn off --zero-is-missing if it turned every zero into a gap"
        )


def check_sensors(series: TrafficSeries) -> None:
    """Reject a series in which no sensor has a single reading: there is nothing to learn.

    Sensors that never report while others do are real roads' dead detectors: they are
    kept (the sensor count and order stay the data's) and :func:`tuning.data.prepare_data`
    says which ones it can neither train nor score.

    Args:
        series: The series to check.

    Raises:
        DataError: When every reading is missing.
    """
    _check_sensors(series, series.name)
