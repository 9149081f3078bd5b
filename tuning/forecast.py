"""Forecasts from a saved model: :func:`load_model` and :class:`Forecaster`.

A model is only usable with what it was trained with: the scaler fitted on its
training split, its sensors in column order (the sensor embedding has one row per
sensor), its window lengths and the data's step (the time-of-day embedding has one
row per step of the day). Model files (``model.pt`` of ``tuning.train``) and trial
checkpoints carry all of it (:meth:`tuning.data.PreparedData.model_record`), so a
model folder is self-contained; data that does not fit is refused, never forecast
from. Files are read with ``torch.load(weights_only=True)`` (:mod:`tuning.checkpoints`):
opening a model someone sent cannot run code.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from tuning import checkpoints
from tuning.cli import prog_name
from tuning.config import TrainConfig
from tuning.data import DataShape, Scaler, check_same_sensors, forecast_batch, prepare_data, steps_after
from tuning.errors import DataError, UserError
from tuning.model import build_model
from tuning.sources import TrafficSeries, as_series, select_sensors, step_of
from tuning.storage import BEST_FILE

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
COLUMNS = ("timestamp", "sensor", "horizon", "forecast")
"""The long form of a forecast; ``step`` (the row number) replaces ``timestamp`` for data without timestamps."""


@dataclass(frozen=True)
class Forecaster:
    """A trained model with everything needed to forecast from new data.

    Get one with :func:`load_model`; :meth:`predict` forecasts the ``len_target``
    steps after the end of the data it is given.
    """

    model: nn.Module
    config: TrainConfig
    scaler: Scaler
    sensor_ids: tuple[str, ...]
    shape: DataShape
    freq: str | None
    """The training data's step ('5min'); None when it had no timestamps (or an older file did not say)."""
    zero_is_missing: bool = False
    picked_sensors: bool = False
    """The sensors were picked from wider data (``--columns``/``--exclude-columns``): pick them from new data too."""
    source: str = "the model"
    untrained_sensors: tuple[str, ...] = ()
    """Sensors without a reading in the training part (dead detectors): forecast as NaN."""
    readings: str | None = None
    """The long table's column the model was trained on (speed beside flow): new long tables are read from it."""
    dayfirst: bool | None = None
    """Its data's dates were read day first (01/03 as 1 March): new data that fit either order are read so too."""

    @property
    def len_source(self) -> int:
        return self.config.len_source

    @property
    def len_target(self) -> int:
        return self.config.len_target

    @property
    def uses_timestamps(self) -> bool:
        """The model was trained with time features and calendar embeddings, so new data needs timestamps."""
        return self.shape.input_size > 1 or self.shape.steps_per_day > 0

    def predict(self, data: pd.DataFrame | np.ndarray | TrafficSeries) -> pd.DataFrame:
        """Forecast the ``len_target`` steps after the end of ``data``.

        Args:
            data: the latest readings (time x sensors), at least ``len_source`` steps: a wide
                DataFrame (a DatetimeIndex or timestamp column, one column per sensor), a
                (T, N) array, or a :class:`~tuning.sources.TrafficSeries`. Missing readings
                (NaN) are forward-filled as in training.

        Returns:
            One row per forecast step and sensor: ``timestamp`` (or ``step``, the row number
            the forecast step would have, for data without timestamps), ``sensor``,
            ``horizon`` (1 .. len_target) and ``forecast`` in the data's units.

        Raises:
            DataError: other sensors, too few steps, another step than the training data's,
                no timestamps where the model needs them, or no reading at all. A sensor
                without any reading, or one the model never learned, gets NaN forecasts.
        """
        series, unseen = self._fit(data)
        model_series = series if self.uses_timestamps else TrafficSeries(series.values, None, series.sensor_ids, series.name)
        batch = forecast_batch(model_series, self.scaler, self.shape.steps_per_day, self.len_source, self.len_target)
        device = next(self.model.parameters()).device
        batch = batch.to(device)
        with torch.no_grad():
            scaled = self.model(batch.x, batch.future, batch.sensor, batch.tod, batch.dow)  # (N, len_target)
            values = self.scaler.forecast(scaled, batch.sensor).cpu().numpy()
        # No forecast where there is nothing to forecast from: a sensor the model never
        # learned, or one without any reading in ``data``.
        values[unseen | np.isin(np.array(series.sensor_ids), self.untrained_sensors)] = np.nan
        return _long_form(values, series, self.len_target)

    def _fit(self, data: pd.DataFrame | np.ndarray | TrafficSeries) -> tuple[TrafficSeries, np.ndarray]:
        """``data`` as a series with the model's sensors and which of them have no reading at all
        (a boolean mask), or a one-line refusal saying what does not fit."""
        name = data.name if isinstance(data, TrafficSeries) else f"the {type(data).__name__}"
        series = as_series(data, zero_is_missing=self.zero_is_missing, name=name, readings=self.readings, dayfirst=self.dayfirst)
        if self.picked_sensors and series.sensor_ids != self.sensor_ids and set(self.sensor_ids) <= set(series.sensor_ids):
            series = select_sensors(series, self.sensor_ids, patterns=False)  # the same sensors as in training
        check_same_sensors(self.sensor_ids, series, self.source)
        if series.num_steps < self.len_source:
            raise DataError(
                f"{series.name}: has {series.num_steps} time steps but {self.source} reads the last {self.len_source} "
                f"(len_source); pass at least {self.len_source} steps"
            )
        if series.timestamps is not None and series.num_steps < 2:
            raise DataError(f"{series.name}: has 1 time step; pass at least 2 so that its step is known")
        if series.timestamps is None and self.uses_timestamps:
            every = f" of {self.freq}" if self.freq else ""
            raise DataError(
                f"{series.name}: has no timestamps but {self.source} was trained on timestamped steps{every} "
                "(time-of-day inputs); give the data a timestamp column or DatetimeIndex (files: --freq and --start)"
            )
        if series.timestamps is not None and self.freq is not None:
            step = step_of(series.timestamps)
            if pd.tseries.frequencies.to_offset(step) != pd.tseries.frequencies.to_offset(self.freq):
                raise DataError(
                    f"{series.name}: has steps of {step} but {self.source} was trained on steps of {self.freq}; "
                    f"resample the data to {self.freq}"
                )
        values = series.values
        unseen = np.isnan(values).all(axis=0)
        if unseen.all():
            raise DataError(
                f"{series.name}: no sensor has a reading; a forecast starts from each sensor's latest reading, "
                "so pass data that reaches back to one"
            )
        if unseen.any():
            log.warning(
                "%s: sensors %s have no reading at all: forecast as NaN; pass data that reaches back to a reading",
                series.name, [series.sensor_ids[i] for i in np.flatnonzero(unseen)[:10]],
            )  # fmt: skip
        window = values[-self.len_source :]
        stale = [series.sensor_ids[i] for i in np.flatnonzero(np.isnan(window).all(axis=0) & ~unseen)]
        if stale:
            log.warning(
                "%s: sensors %s have no reading in the last %d steps; their forecasts start from an older reading",
                series.name, stale[:10], self.len_source,
            )  # fmt: skip
        return series, unseen


def _long_form(values: np.ndarray, series: TrafficSeries, len_target: int) -> pd.DataFrame:
    """(N, H) forecasts as rows ordered by forecast step, then sensor in column order."""
    n_sens = len(series.sensor_ids)
    horizon = np.repeat(np.arange(1, len_target + 1), n_sens)
    if series.timestamps is not None:
        when: Any = steps_after(series.timestamps, len_target)
        key = "timestamp"
    else:
        when, key = np.arange(series.num_steps, series.num_steps + len_target), "step"
    return pd.DataFrame({
        key: np.repeat(np.asarray(when), n_sens),
        "sensor": np.tile(np.array(series.sensor_ids, dtype=object), len_target),
        "horizon": horizon,
        "forecast": values.T.reshape(-1),  # (H, N) row-major: step-major, sensors in order
    })  # fmt: skip


# ----------------------------------------------------------------------------------
# loading


def load_model(path: str | os.PathLike[str], *, device: str = "cpu", ensemble: bool = True) -> Forecaster:
    """The model saved at ``path``, ready to forecast.

    Args:
        path: the ``--output`` folder of ``tuning.train`` (its ``model.pt``), a sweep's
            experiment folder (its final model, named by ``best_config.json``), a trial's
            checkpoint folder, or one of those files.
        device: where the model runs (default: the CPU).
        ensemble: for a sweep, its final model: the best trials' weighted average where the
            export chose one (:mod:`tuning.ensemble`); False for the best trial alone.

    Raises:
        UserError: nothing loadable there; a file that is corrupt, or that would run code
            (refused unopened); a sweep checkpoint whose data cannot be found to refit its scaler.
    """
    where = Path(path).expanduser()
    if where.is_dir():
        if (where / MODEL_FILE).is_file():
            where = where / MODEL_FILE
        elif (where / checkpoints.RUN_STATE_FILE).is_file():
            where = where / checkpoints.RUN_STATE_FILE
        elif (where / BEST_FILE).is_file():
            return _from_sweep(where / BEST_FILE, device, ensemble)
        else:
            raise UserError(
                f"{where} holds no model ({MODEL_FILE}, {checkpoints.RUN_STATE_FILE} or {BEST_FILE}); pass the --output "
                "folder of tuning.train, a sweep's folder or a trial checkpoint"
            )
    elif where.name == BEST_FILE and where.is_file():
        return _from_sweep(where, device, ensemble)
    return _from_file(where, device)


def _from_file(path: Path, device: str, sweep: Mapping[str, Any] | None = None) -> Forecaster:
    """A model file or run checkpoint; ``sweep`` (a best_config.json) fills in what older checkpoints lack."""
    doc = checkpoints.load(path)
    kind = doc.get("kind")
    if kind == checkpoints.RUN:
        weights = doc.get("best_state")  # the best epoch's weights, not the newest epoch's
    elif kind == checkpoints.MODEL:
        weights = doc.get("model")
    else:
        raise checkpoints.CheckpointError(f"{path} holds a {kind!r} file, not a model or a run checkpoint")
    if not isinstance(weights, Mapping):
        raise checkpoints.CheckpointError(f"{path} holds no model weights; retrain it or restore the file")
    if "scaler_mean" not in doc:
        if sweep is None:
            raise UserError(
                f"{path} was written before models carried their scaler; load it through its sweep "
                f"({prog_name('tuning.predict')} --name NAME, or load_model(the experiment folder)) "
                "so that the scaler is fitted again on the sweep's data"
            )
        doc = {**doc, **_refit_record(sweep, doc)}
    data_options = sweep.get("data_options") if sweep is not None else doc.get("data_options")
    options = data_options if isinstance(data_options, Mapping) else {}
    try:
        config = TrainConfig.from_dict(doc["config"], source=str(path))
        shape = DataShape(*(int(v) for v in doc["data_shape"]))
        model = build_model(config, shape)
        model.load_state_dict(weights)
        floor = doc.get("scaler_floor")  # None in models saved before forecasts were held at 0
        scaler = Scaler(
            doc["scaler_mean"].numpy().astype(np.float32), doc["scaler_std"].numpy().astype(np.float32),
            None if floor is None else float(floor),
        )  # fmt: skip
        sensor_ids = tuple(str(s) for s in doc["sensor_ids"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise checkpoints.CheckpointError(f"{path} is not a usable model ({first}); retrain it or restore the file") from e
    if doc.get("freq") is None and shape.steps_per_day > 0:
        log.warning("%s does not record its data's step (an older file): the step of new data is not checked", path)
    return Forecaster(
        model=model.to(device).eval(),
        config=config,
        scaler=scaler,
        sensor_ids=sensor_ids,
        shape=shape,
        freq=doc.get("freq"),
        zero_is_missing=bool(doc.get("zeros_missing") or options.get("zero_is_missing")),
        picked_sensors=bool(options.get("columns") or options.get("exclude_columns")),
        source=f"the model in {path.parent}",
        untrained_sensors=tuple(str(s) for s in doc.get("untrained_sensors") or ()),
        readings=doc.get("readings"),
        dayfirst=doc.get("dayfirst"),
    )


def _from_sweep(best_file: Path, device: str, ensemble: bool = True) -> Forecaster:
    """A sweep's final model (or its best trial) from the checkpoints its ``best_config.json`` names."""
    try:
        doc = json.loads(best_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read {best_file} ({e}); re-export it with {prog_name('tuning.export')}") from e
    final = doc.get("final_model") if isinstance(doc, dict) and ensemble else None
    if isinstance(final, dict) and len(final.get("members", [])) > 1:
        return _ensemble(best_file, doc, final, device)
    named = doc.get("checkpoint") if isinstance(doc, dict) else None
    return _from_trial(best_file, doc, named, device)


def _ensemble(best_file: Path, doc: dict[str, Any], final: dict[str, Any], device: str) -> Forecaster:
    """The best trials' weighted average: one forecaster whose model averages the members'."""
    from tuning.ensemble import MeanEnsemble

    parts = [_from_trial(best_file, doc, m.get("checkpoint"), device) for m in final["members"]]
    model = MeanEnsemble([p.model for p in parts], [float(m["weight"]) for m in final["members"]]).to(device).eval()
    first = parts[0]
    source = f"the final model of {best_file.parent} (the average of {len(parts)} trials)"
    return dataclasses.replace(first, model=model, source=source)


def _from_trial(best_file: Path, doc: Any, named: Any, device: str) -> Forecaster:
    """The trial checkpoint ``named`` by a sweep's ``best_config.json``."""
    if not isinstance(named, str):
        raise UserError(f"{best_file} names no checkpoint of its best trial; re-export it with {prog_name('tuning.export')}")
    # The experiment folder may have moved since the export: look beside the file first.
    moved = best_file.parent / Path(named).parent.name / Path(named).name
    folder = moved if moved.is_dir() else Path(named)
    if not (folder / checkpoints.RUN_STATE_FILE).is_file():
        raise UserError(
            f"the best trial's checkpoint {named} named by {best_file} is missing; re-export the sweep with {prog_name('tuning.export')}"
        )
    return _from_file(folder / checkpoints.RUN_STATE_FILE, device, sweep=doc)


def _refit_record(sweep: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
    """The scaler, shape and step of a sweep's data, for checkpoints written before they carried them.

    The scaler depends only on the training split of the data the sweep read with its
    flags, so it is fitted again on exactly that.
    """
    from tuning.train import load_data_arg  # the data flags' one reader

    options = sweep.get("data_options") or {}
    config = TrainConfig.from_dict(state["config"], source="trial checkpoint")
    series = load_data_arg(
        options.get("data"), zero_is_missing=bool(options.get("zero_is_missing")), freq=options.get("freq"),
        start=options.get("start"), columns=options.get("columns"), exclude_columns=options.get("exclude_columns"),
    )  # fmt: skip
    log.info("refitting the scaler on the sweep's data (%s): the checkpoint predates saved scalers", series.name)
    return prepare_data(series, config.len_source, config.len_target).model_record()
