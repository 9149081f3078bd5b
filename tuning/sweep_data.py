"""A sweep's data: a file, the embedded data set, or an object from a notebook.

A resumed sweep reads its data again. A file is read from where it was; data
passed as an object (a DataFrame, an array, a :class:`TrafficSeries`) is saved
into the experiment as ``sweep/data.parquet`` and read from there, after checking
that the copy reads back identical. Prepared data (windows already cut and scaled)
cannot be saved that way: such a sweep records that and resumes only from Python,
given the same data again.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from typing import Union

import numpy as np
import pandas as pd

from tuning import storage
from tuning.data import PreparedData, prepare_data
from tuning.errors import UserError
from tuning.fingerprint import fingerprint
from tuning.sources import TrafficSeries, as_series, load_series
from tuning.storage import Experiment
from tuning.sweep_settings import DATA_COPY, SweepSettings

log = logging.getLogger(__name__)

DataLike = Union[str, "os.PathLike[str]", pd.DataFrame, np.ndarray, TrafficSeries, PreparedData, None]  # noqa: UP007
"""What a sweep takes as data: a file, an object, or None for the embedded data set."""


@dataclass(frozen=True)
class SweepData:
    """Data given to a new sweep, before anything is written.

    ``path`` is the file the trials read (None: the embedded data set, or data from
    memory); ``origin`` says what object the data came from (None: a file or the
    embedded set); ``series``/``prepared`` hold data from memory.
    """

    path: str | None
    origin: str | None = None
    series: TrafficSeries | None = None
    prepared: PreparedData | None = None


def resolve_data(
    data: DataLike,
    *,
    zero_is_missing: bool | None = None,
    freq: str | None = None,
    start: str | None = None,
    columns: tuple[str, ...] | None = None,
    exclude_columns: tuple[str, ...] | None = None,
) -> SweepData:
    """Sort out what ``data`` is; objects are converted (and sensors picked) here."""
    if data is None or isinstance(data, (str, os.PathLike)):
        return SweepData(None if data is None else os.fspath(data))
    if isinstance(data, PreparedData):
        given = [name for name, v in (("zero_is_missing", zero_is_missing), ("freq", freq), ("start", start),
                                      ("columns", columns), ("exclude_columns", exclude_columns)) if v]  # fmt: skip
        if given:
            raise UserError(
                f"data is already prepared (windows cut, scaled); {', '.join(given)} cannot apply: prepare it with them"
            )
        return SweepData(None, origin=f"PreparedData {data.name!r}", prepared=data)
    if freq is not None or start is not None:
        raise UserError("freq and start apply to data files; give the DataFrame a DatetimeIndex (or a timestamp column) instead")
    if isinstance(data, pd.DataFrame):
        origin = "pandas DataFrame"
    elif isinstance(data, np.ndarray):
        origin = f"numpy array {data.shape}"
    elif isinstance(data, TrafficSeries):
        origin = f"TrafficSeries {data.name!r}"
    else:
        raise UserError(
            f"data must be a file path, a pandas DataFrame, a numpy array, a TrafficSeries or PreparedData, got {type(data).__name__}"
        )
    series = as_series(data, zero_is_missing=zero_is_missing, name="data", columns=columns, exclude_columns=exclude_columns)
    return SweepData(None, origin=origin, series=series)


def read_series(settings: SweepSettings) -> TrafficSeries:
    """The series a sweep's settings name: its file, or the embedded data set."""
    from tuning.train import load_data_arg

    return load_data_arg(
        settings.data, zero_is_missing=settings.zero_is_missing, freq=settings.freq, start=settings.start,
        columns=settings.columns, exclude_columns=settings.exclude_columns,
    )  # fmt: skip


def prepare(settings: SweepSettings, given: SweepData | None = None) -> PreparedData:
    """Read (or take) and window the sweep's data once, before anything is written."""
    if given is not None and given.prepared is not None:
        prepared = given.prepared
        if (prepared.len_source, prepared.len_target) != (settings.len_source, settings.len_target):
            raise UserError(
                f"the prepared data has windows len_source={prepared.len_source}, len_target={prepared.len_target} but the "
                f"sweep asks for {settings.len_source}, {settings.len_target}; pass the same or leave them out"
            )
        return prepared
    series = given.series if given is not None and given.series is not None else read_series(settings)
    return prepare_data(series, settings.len_source, settings.len_target)


def save_series(series: TrafficSeries, exp: Experiment) -> str | None:
    """Save data from memory as ``sweep/data.parquet``; its path, or None where it cannot be.

    The copy is read back with the same loader a resume uses and compared by
    fingerprint (values, sensors, timestamps), so a resume never trains on data that
    differ from the first run's.
    """
    if not exp.is_local:
        log.warning("data from memory is not saved to remote storage; this sweep resumes only from Python, given the data again")
        return None
    frame = pd.DataFrame(series.values, columns=list(series.sensor_ids))
    if series.timestamps is not None:
        if "timestamp" in series.sensor_ids:
            log.warning("a sensor is named 'timestamp'; the data are not saved, so the sweep resumes only from Python")
            return None
        frame.insert(0, "timestamp", series.timestamps)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    path = exp.file(DATA_COPY)
    storage.write_atomic(path, buffer.getbuffer())
    again = load_series(path)
    if fingerprint(again).sha256 != fingerprint(series).sha256:
        os.remove(path)
        log.warning("the data do not read back identical from parquet; not saved, so the sweep resumes only from Python")
        return None
    return path
