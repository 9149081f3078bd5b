"""From a traffic series to batches: split, scale, window, index.

Windows are never materialised. Each split is an index view over one shared
(time x sensors) tensor: sample ``i`` is sensor ``i % N`` with its target starting
at step ``first + i // N``, so a batch is built by gathering from the series with
tensor indexing. That keeps memory near the size of the raw series (the filled
inputs plus a bool mask, 1.25x) and is many times faster than a per-sample
``Dataset`` behind a ``DataLoader`` for data that fits in memory.

Conventions (as in BasicTS and the METR-LA/PEMS literature): a chronological
70/10/20 split by target time; z-score scaling per sensor fitted on the training
part only; missing readings are masked out of loss and metrics and forward-filled
for the inputs; a window's inputs may reach back into the previous split, which is
the past and therefore known at prediction time.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import pandas as pd
import torch

from tuning.errors import DataError
from tuning.sources import TrafficSeries, as_series, check_sensors, step_of

log = logging.getLogger(__name__)

SPLIT_FRACTIONS = (0.7, 0.1, 0.2)
NUM_TIME_FEATURES = 4  # sin/cos of time of day, sin/cos of day of week


class Batch(NamedTuple):
    """One batch of windows. Values are scaled; ``sensor`` indexes the scaler and the sensor embedding."""

    x: torch.Tensor  # (B, len_source, 1 + F): value, then time features
    future: torch.Tensor  # (B, len_target, F): time features of the target steps (F may be 0)
    y: torch.Tensor  # (B, len_target) scaled target, arbitrary where mask is False
    mask: torch.Tensor  # (B, len_target) bool, True where the target was observed
    sensor: torch.Tensor  # (B,) sensor index
    # (B, len_source + len_target) long: time-of-day slot and day of week of every
    # input then target step; all zeros when the data has no timestamps.
    tod: torch.Tensor
    dow: torch.Tensor

    def to(self, device: torch.device, non_blocking: bool = False) -> Batch:
        return Batch(*(t.to(device, non_blocking=non_blocking) for t in self))


@dataclass(frozen=True)
class Scaler:
    """Per-sensor z-score, fitted on the training part only."""

    mean: np.ndarray  # (N,) float32
    std: np.ndarray  # (N,) float32, never zero
    # 0.0 when no training reading is below zero (speeds, counts, occupancy): a forecast
    # below it is never right, and counts forecast at night came out as -0.1 vehicles.
    # None: the data go below zero, and forecasts may too.
    floor: float | None = None

    @classmethod
    def fit(cls, values: np.ndarray) -> Scaler:
        with warnings.catch_warnings():  # a sensor without readings (kept, masked): NaN, replaced below
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(values, axis=0)
            std = np.nanstd(values, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        # A constant (or unobserved) training sensor would divide by zero.
        std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
        observed = values[np.isfinite(values)]
        floor = 0.0 if observed.size and observed.min() >= 0 else None
        return cls(mean.astype(np.float32), std.astype(np.float32), floor)

    def transform(self, values: np.ndarray) -> np.ndarray:
        out = values - self.mean
        out /= self.std  # in place: one (T, N) array fewer at the peak
        return out.astype(np.float32, copy=False)

    def inverse(self, scaled: torch.Tensor, sensor: torch.Tensor) -> torch.Tensor:
        """Undo the scaling of ``scaled`` (B, H) whose rows belong to ``sensor`` (B,)."""
        # torch.tensor copies: arrays that came through Ray's object store are read-only.
        mean = torch.tensor(self.mean, device=scaled.device)[sensor].unsqueeze(-1)
        std = torch.tensor(self.std, device=scaled.device)[sensor].unsqueeze(-1)
        return scaled.float() * std + mean

    def forecast(self, scaled: torch.Tensor, sensor: torch.Tensor) -> torch.Tensor:
        """A model's outputs in the data's units: :meth:`inverse`, held at the ``floor``."""
        values = self.inverse(scaled, sensor)
        return values if self.floor is None else values.clamp_min(self.floor)

    def scaled_floor(self, sensor: torch.Tensor) -> torch.Tensor | None:
        """The ``floor`` in scaled units of each row's ``sensor`` (B, 1), or None without one."""
        if self.floor is None:
            return None
        mean = torch.as_tensor(self.mean, dtype=torch.float32)[sensor.cpu()]
        std = torch.as_tensor(self.std, dtype=torch.float32)[sensor.cpu()]
        return ((self.floor - mean) / std).unsqueeze(-1)


class SeriesTensors(NamedTuple):
    """The shared storage that the window views index into."""

    inputs: torch.Tensor  # (T, N) float32, scaled and forward-filled
    observed: torch.Tensor  # (T, N) bool
    time_features: torch.Tensor  # (T, F) float32, F = 0 without timestamps
    tod: torch.Tensor  # (T,) long time-of-day slot, zeros without timestamps
    dow: torch.Tensor  # (T,) long day of week (Monday 0), zeros without timestamps

    def to(self, device: torch.device) -> SeriesTensors:
        return SeriesTensors(*(t.to(device) for t in self))


class WindowSet(torch.utils.data.Dataset[Batch]):
    """The windows of one split: an index view, not a copy.

    Sample ``i`` predicts sensor ``i % N`` for target steps
    ``[t, t + len_target)`` from input steps ``[t - len_source, t)`` where
    ``t = first + i // N``.
    """

    def __init__(self, tensors: SeriesTensors, first: int, num_starts: int, len_source: int, len_target: int) -> None:
        super().__init__()
        self.tensors = tensors
        self.first = first
        self.num_starts = num_starts
        self.len_source = len_source
        self.len_target = len_target
        self.num_sensors = tensors.inputs.shape[1]
        # Batches are gathered where the series lives: on a GPU, indices and offsets are
        # device tensors too, so building a batch copies nothing from the host.
        self.device = tensors.inputs.device
        self._src = torch.arange(-len_source, 0, device=self.device)
        self._tgt = torch.arange(0, len_target, device=self.device)
        self._all = torch.arange(-len_source, len_target, device=self.device)

    def __len__(self) -> int:
        return self.num_starts * self.num_sensors

    def to(self, device: torch.device, tensors: SeriesTensors | None = None) -> WindowSet:
        """The same windows over the series on ``device``.

        Args:
            tensors: the series already moved there, so that splits sharing one series
                share one copy of it on the device.
        """
        if tensors is None:
            if self.device == device:
                return self
            tensors = self.tensors.to(device)
        return WindowSet(tensors, self.first, self.num_starts, self.len_source, self.len_target)

    @property
    def target_steps(self) -> tuple[int, int]:
        """The half-open range of time steps this split predicts."""
        return self.first, self.first + self.num_starts - 1 + self.len_target

    def __getitem__(self, index: torch.Tensor | list[int] | np.ndarray) -> Batch:
        """Gather a whole batch of windows. Used directly and by DataLoader workers."""
        idx = torch.as_tensor(index, dtype=torch.long, device=self.device)
        n_sens = self.num_sensors
        t0 = self.first + torch.div(idx, n_sens, rounding_mode="floor")
        sensor = idx % n_sens
        src_t = t0.unsqueeze(1) + self._src  # (B, Ls)
        tgt_t = t0.unsqueeze(1) + self._tgt  # (B, Lt)
        flat_inputs = self.tensors.inputs.view(-1)
        flat_obs = self.tensors.observed.view(-1)
        col = sensor.unsqueeze(1)
        values = flat_inputs[src_t * n_sens + col].unsqueeze(-1)  # (B, Ls, 1)
        y = flat_inputs[tgt_t * n_sens + col]
        mask = flat_obs[tgt_t * n_sens + col]
        feats = self.tensors.time_features
        if feats.shape[1]:
            x = torch.cat([values, feats[src_t]], dim=-1)
            future = feats[tgt_t]
        else:
            x = values
            future = feats.new_zeros((len(idx), self.len_target, 0))
        steps = t0.unsqueeze(1) + self._all  # (B, Ls + Lt)
        return Batch(x, future, y, mask, sensor, self.tensors.tod[steps], self.tensors.dow[steps])

    def batches(self, batch_size: int, *, shuffle: bool, seed: int = 0) -> Iterator[Batch]:
        """Yield whole batches; with ``shuffle`` their order depends on ``seed`` only."""
        for index in batch_indices(len(self), batch_size, shuffle=shuffle, seed=seed, device=self.device):
            yield self[index]


def batch_indices(
    n: int, batch_size: int, *, shuffle: bool, seed: int = 0, device: torch.device | None = None
) -> Iterator[torch.Tensor]:
    """The sample indices of each batch: one seeded permutation cut into batches.

    The permutation is drawn on the CPU (the same order on every device) and copied to
    ``device`` once per epoch; its batches are slices of it there.
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(n)
    if device is not None and device.type != "cpu":
        order = order.to(device)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


class EpochBatchSampler(torch.utils.data.Sampler[torch.Tensor]):
    """The tensor path's batches for a DataLoader that lives across epochs.

    A DataLoader with persistent workers is created once per run; ``set_seed``
    before each epoch gives it the same order :meth:`WindowSet.batches` would use.
    """

    def __init__(self, num_samples: int, batch_size: int) -> None:
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, 0

    def set_seed(self, seed: int) -> None:
        self.seed = seed

    def __iter__(self) -> Iterator[torch.Tensor]:
        return batch_indices(self.num_samples, self.batch_size, shuffle=True, seed=self.seed)

    def __len__(self) -> int:
        return -(-self.num_samples // self.batch_size)


@dataclass
class PreparedData:
    """Everything a training run needs from the data, ready to index."""

    name: str
    scaler: Scaler
    train: WindowSet
    val: WindowSet
    test: WindowSet
    len_source: int
    len_target: int
    num_sensors: int
    sensor_ids: tuple[str, ...]
    # Time-of-day slots (steps per day) for the calendar embeddings; 0 without timestamps.
    steps_per_day: int = 0
    # The series' step ('5min'); None without timestamps. New data must have the same.
    freq: str | None = None
    # Day-of-week embedding rows: 7, or 0 when the training part misses a weekday (see weekdays_seen).
    days_of_week: int = 7
    # How many weekdays the training part covers (0 without timestamps).
    weekdays_in_training: int = 7
    # Sensors without a reading in the training part: masked everywhere, forecast as NaN.
    untrained_sensors: tuple[str, ...] = ()
    # Exact zeros were read as missing (TrafficSeries.zeros_missing): new data must be read so too.
    zeros_missing: bool = False
    # A long table's readings column (TrafficSeries.readings): new long tables are read from it.
    readings: str | None = None
    # Ambiguous dates were read day first (TrafficSeries.dayfirst): new data's are read so too.
    dayfirst: bool = False

    def to(self, device: torch.device) -> PreparedData:
        """The same data with its series on ``device``: copied once, shared by the splits that share it."""
        if all(w.device == device for w in (self.train, self.val, self.test)):
            return self
        moved: dict[int, SeriesTensors] = {}

        def view(windows: WindowSet) -> WindowSet:
            key = id(windows.tensors)
            if key not in moved:
                moved[key] = windows.tensors.to(device)
            return windows.to(device, moved[key])

        return dataclasses.replace(self, train=view(self.train), val=view(self.val), test=view(self.test))

    @property
    def num_time_features(self) -> int:
        return int(self.train.tensors.time_features.shape[1])

    @property
    def input_size(self) -> int:
        return 1 + self.num_time_features

    @property
    def shape(self) -> DataShape:
        """What a model built for this data must know about it."""
        return DataShape(self.input_size, self.num_sensors, self.steps_per_day, self.days_of_week)

    def model_record(self) -> dict[str, Any]:
        """What a saved model needs besides its weights to forecast from new data (tensors and plain values).

        Model files and run checkpoints carry it, so a model folder is self-contained:
        the scaler fitted on this training split, the sensors in column order, the
        data's shape and step, how its zeros were read (see :mod:`tuning.forecast`).
        """
        return {
            "data_shape": list(self.shape),
            "input_size": self.input_size,
            "scaler_mean": torch.tensor(self.scaler.mean, dtype=torch.float32),  # copies: arrays from Ray are read-only
            "scaler_std": torch.tensor(self.scaler.std, dtype=torch.float32),
            "scaler_floor": self.scaler.floor,
            "sensor_ids": list(self.sensor_ids),
            "freq": self.freq,
            "untrained_sensors": list(self.untrained_sensors),
            "zeros_missing": self.zeros_missing,
            "readings": self.readings,
            "dayfirst": self.dayfirst,
        }


class DataShape(NamedTuple):
    """The data-dependent sizes of a model: saved with it, checked against new data."""

    input_size: int  # features per input step: 1 value + cyclic time features
    num_sensors: int  # rows of the sensor embedding
    steps_per_day: int  # rows of the time-of-day embedding; 0 without timestamps
    # rows of the day-of-week embedding: 7, or 0 when the training part misses a weekday
    # (files written before this field was saved had 7)
    days_of_week: int = 7


class _Named(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def sensor_ids(self) -> tuple[str, ...]: ...


def check_same_sensors(saved: tuple[str, ...] | list[str], data: _Named, what: str) -> None:
    """Refuse data whose sensors differ from the ones a model was trained on.

    The sensor embedding has one learned row per sensor, in column order: another
    set of sensors, or the same ones in another order, would silently use wrong rows.
    """
    saved = tuple(saved)
    if saved == data.sensor_ids:
        return
    if len(saved) != len(data.sensor_ids):
        raise DataError(
            f"{data.name}: has {len(data.sensor_ids)} sensors but {what} was trained on {len(saved)}; "
            "use data with the same sensor columns"
        )
    diff = [(a, b) for a, b in zip(saved, data.sensor_ids) if a != b]
    raise DataError(
        f"{data.name}: sensor columns differ from the ones {what} was trained on "
        f"(first difference: {diff[0][1]!r} where {diff[0][0]!r} was); use the same sensor columns in the same order"
    )


def steps_per_day(timestamps: pd.DatetimeIndex | None) -> int:
    """Time-of-day slots for a series: one per step of the day, from its median step length."""
    if timestamps is None or len(timestamps) < 2:
        return 0
    step = float(np.median((timestamps[1:] - timestamps[:-1]).total_seconds())) / 60.0  # minutes
    if not step > 0 or step >= 1440:
        return 1  # daily or coarser data: time of day carries nothing
    return int(np.ceil(1440.0 / step))


def weekdays_seen(dow: torch.Tensor) -> int:
    """How many of the 7 weekdays occur among the given day-of-week indices.

    A day-of-week embedding row gets gradients only from the days it sees in training;
    with a week of data the test part falls on days the training part never had, whose
    rows would stay at their random start. (Measured on a week of the embedded data
    whose test fell on two unseen weekdays: test MAE 1.727 with the embedding, 1.681
    without.)
    """
    return int(torch.unique(dow).numel())


_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def unseen_kind_of_day(train_dow: torch.Tensor, test_dow: torch.Tensor) -> list[str]:
    """The test part's days of a kind the training part never had (weekend vs working day), by name.

    Traffic on a Sunday is not a Monday's: a model trained on working days alone forecasts
    rush hours that never come. A week of data split 70/10/20 from a Monday puts the test
    part on the weekend.
    """
    train, test = set(torch.unique(train_dow).tolist()), set(torch.unique(test_dow).tolist())
    weekend = {5, 6}
    kinds = [weekend, set(range(5))]
    missing = [kind & test for kind in kinds if not kind & train]
    return [_DAY_NAMES[d] for d in sorted(set().union(*missing))]


def _warn_unseen_kind_of_day(name: str, train_dow: torch.Tensor, test_dow: torch.Tensor) -> None:
    days = unseen_kind_of_day(train_dow, test_dow)
    if days:
        log.warning(
            "%s: the test part (last 20 %%) falls on %s, a kind of day the training part (first 70 %%) never had; "
            "its test scores measure days the model never learned (give two weeks or more of data)",
            name, " and ".join(days),
        )  # fmt: skip


def calendar_indices(timestamps: pd.DatetimeIndex | None, num_steps: int, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Time-of-day slot (0 .. slots-1) and day of week (0 .. 6) of every step; zeros when unknown."""
    if timestamps is None or slots == 0:
        zeros = np.zeros(num_steps, dtype=np.int64)
        return zeros, zeros.copy()
    minutes = (timestamps.hour * 60 + timestamps.minute + timestamps.second / 60.0).to_numpy(dtype=np.float64)
    tod = np.minimum((minutes / 1440.0 * slots).astype(np.int64), slots - 1)
    return tod, timestamps.dayofweek.to_numpy().astype(np.int64)


def time_features(timestamps: pd.DatetimeIndex | None, num_steps: int) -> np.ndarray:
    """Cyclic time-of-day and day-of-week encodings, (T, 4); (T, 0) when unknown."""
    if timestamps is None:
        return np.zeros((num_steps, 0), dtype=np.float32)
    minutes = (timestamps.hour * 60 + timestamps.minute + timestamps.second / 60.0).to_numpy(dtype=np.float64)
    tod = 2 * np.pi * minutes / 1440.0
    dow = 2 * np.pi * (timestamps.dayofweek.to_numpy(dtype=np.float64) + minutes / 1440.0) / 7.0
    return np.stack([np.sin(tod), np.cos(tod), np.sin(dow), np.cos(dow)], axis=1).astype(np.float32)


def _tensors(series: TrafficSeries, scaler: Scaler, slots: int) -> SeriesTensors:
    raw = series.values
    observed = ~np.isnan(raw)
    scaled = scaler.transform(raw)  # a new (T, N) float32 array, filled in place below
    # Forward-fill in place, a block of sensors at a time: pandas' ffill().fillna().to_numpy()
    # held up to three more copies of the series at once.
    steps = np.arange(scaled.shape[0], dtype=np.int32)[:, None]
    for lo in range(0, scaled.shape[1], 64):
        block = slice(lo, lo + 64)
        last = np.where(observed[:, block], steps, 0)
        np.maximum.accumulate(last, axis=0, out=last)
        scaled[:, block] = np.take_along_axis(scaled[:, block], last, axis=0)
    np.copyto(scaled, 0.0, where=np.isnan(scaled))  # before a sensor's first reading
    feats = time_features(series.timestamps, series.num_steps)
    tod, dow = calendar_indices(series.timestamps, series.num_steps, slots)
    return SeriesTensors(
        torch.from_numpy(np.ascontiguousarray(scaled)), torch.from_numpy(observed), torch.from_numpy(feats),
        torch.from_numpy(tod), torch.from_numpy(dow),
    )  # fmt: skip


def steps_after(timestamps: pd.DatetimeIndex, count: int) -> pd.DatetimeIndex:
    """The ``count`` timestamps after the last one, at the series' step."""
    step = pd.tseries.frequencies.to_offset(step_of(timestamps))
    return pd.date_range(timestamps[-1], periods=count + 1, freq=step)[1:]


def forecast_batch(series: TrafficSeries, scaler: Scaler, slots: int, len_source: int, len_target: int) -> Batch:
    """The windows whose targets are the ``len_target`` steps after the end of ``series``: one per sensor.

    They are built exactly as training builds its windows: the series, extended by
    ``len_target`` unobserved steps (so their calendar inputs are known), is scaled and
    forward-filled by the same code, so a forecast from data ending at step ``t`` is the
    model's prediction for the training-style window whose targets start at ``t``.

    Args:
        series: at least ``len_source`` steps; timestamps (when given) on a regular grid.
        scaler, slots: the model's scaler and time-of-day slots (0: no calendar inputs).
    """
    values = series.values
    num_steps, n_sens = values.shape
    first = num_steps - len_source  # the window's first input step
    # The forward fill of the window reaches back to each sensor's last reading at or
    # before its first step; older rows cannot change it, so they are left out.
    seen = ~np.isnan(values[: first + 1])
    last_seen = np.where(seen.any(axis=0), seen.shape[0] - 1 - np.argmax(seen[::-1], axis=0), first)
    lo = int(min(first, last_seen.min()))
    timestamps = None if series.timestamps is None else series.timestamps[lo:].append(steps_after(series.timestamps, len_target))
    padded = np.concatenate([values[lo:], np.full((len_target, n_sens), np.nan, dtype=np.float32)])
    extended = TrafficSeries(padded, timestamps, series.sensor_ids, series.name)
    windows = WindowSet(_tensors(extended, scaler, slots), num_steps - lo, 1, len_source, len_target)
    return windows[torch.arange(n_sens)]


def _without_readings(series: TrafficSeries, sensors: np.ndarray) -> TrafficSeries:
    """A copy of ``series`` in which the ``sensors`` (a boolean mask) have no readings."""
    values = series.values.copy()
    values[:, sensors] = np.nan
    return dataclasses.replace(series, values=values)


def split_bounds(num_steps: int) -> tuple[int, int]:
    """Ends of the train and validation parts of a chronological 70/10/20 split."""
    train_end = int(round(num_steps * SPLIT_FRACTIONS[0]))
    val_end = int(round(num_steps * (SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1])))
    return train_end, val_end


def _num_starts(lo: int, hi: int, len_source: int, len_target: int) -> int:
    first = max(lo, len_source)
    return max(0, hi - first - len_target + 1)


def min_steps(len_source: int, len_target: int) -> int:
    """The shortest series whose three splits each hold at least one window."""
    t = len_source + len_target
    while True:
        a, b = split_bounds(t)
        if (
            min(
                _num_starts(0, a, len_source, len_target),
                _num_starts(a, b, len_source, len_target),
                _num_starts(b, t, len_source, len_target),
            )
            >= 1
        ):
            return t
        t += 1


def prepare_data(
    data: TrafficSeries | np.ndarray | pd.DataFrame,
    len_source: int = 10,
    len_target: int = 5,
    *,
    test_data: TrafficSeries | np.ndarray | pd.DataFrame | None = None,
    zero_is_missing: bool | None = None,
) -> PreparedData:
    """Split, scale and window a series.

    Args:
        data: the series (time x sensors). Without ``test_data`` it is split
            70/10/20 into train/val/test; with it, ``data`` is split 7:1 into
            train/val and ``test_data`` is the test part (the old API's
            ``trainData``/``testData``).
        len_source: past steps the model sees.
        len_target: future steps it predicts.
        test_data: an optional separate test series with the same sensors.
        zero_is_missing: treat exact zeros as missing (METR-LA convention); None: as
            :func:`~tuning.sources.as_series` decides (where they look like outages).

    Raises:
        DataError: no sensor with a reading in the training part, or a series too short for the windows.
    """
    series = as_series(data, zero_is_missing=zero_is_missing)
    check_sensors(series)
    # The test part is read as the training part was.
    test_zeros = series.zeros_missing if zero_is_missing is None else zero_is_missing
    test_series = None if test_data is None else as_series(test_data, zero_is_missing=test_zeros, name="test data")
    if test_series is not None and test_series.num_sensors != series.num_sensors:
        raise DataError(
            f"test data has {test_series.num_sensors} sensors but training data has {series.num_sensors}; "
            "pass both with the same sensor columns"
        )
    T = series.num_steps
    if test_series is None:
        train_end, val_end = split_bounds(T)
        end = T
    else:
        train_end = int(round(T * SPLIT_FRACTIONS[0] / (SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1])))
        val_end = end = T
    counts = [
        _num_starts(0, train_end, len_source, len_target),
        _num_starts(train_end, val_end, len_source, len_target),
    ]
    if test_series is None:
        counts.append(_num_starts(val_end, end, len_source, len_target))
    else:
        counts.append(_num_starts(0, test_series.num_steps, len_source, len_target))
    if test_series is not None and counts[2] < 1:
        raise DataError(
            f"test data: {test_series.num_steps} time steps are too short for len_source={len_source} + "
            f"len_target={len_target}; pass at least {len_source + len_target} steps of test data or shorter windows"
        )
    if min(counts) < 1:
        empty = [s for s, c in zip(("train", "val", "test"), counts) if c < 1]
        need = min_steps(len_source, len_target)
        raise DataError(
            f"{series.name}: {T} time steps are too short for len_source={len_source} + len_target={len_target}: "
            f"the {'/'.join(empty)} split{'s' if len(empty) > 1 else ''} would hold no window; "
            f"use a series of at least {need} steps (70/10/20 split) or shorter windows"
        )
    dead = np.isnan(series.values[:train_end]).all(axis=0)
    if dead.all():
        raise DataError(f"{series.name}: no sensor has a reading in the training part (the first {train_end} steps); "
                        "pass data in which the sensors report")  # fmt: skip
    untrained = tuple(series.sensor_ids[i] for i in np.flatnonzero(dead))
    if untrained:
        shown = list(untrained) if len(untrained) <= 10 else [*untrained[:10], f"... {len(untrained) - 10} more"]
        log.warning(
            "%s: sensors %s have no reading in the training part (the first %d steps), as dead detectors do: "
            "kept, but neither trained on nor scored, and forecast as NaN; give data in which they report, or drop them",
            series.name, shown, train_end,
        )  # fmt: skip
        # A model cannot have learned them: their later readings stay out of every score.
        series = _without_readings(series, dead)
        test_series = None if test_series is None else _without_readings(test_series, dead)
    scaler = Scaler.fit(series.values[:train_end])
    slots = steps_per_day(series.timestamps)
    if slots == 0:
        log.info("%s has no timestamps: no time-of-day/day-of-week inputs (give --freq and --start to add them)", series.name)
    elif test_series is not None and test_series.timestamps is None:
        raise DataError("test data has no timestamps but the training data has; give both timestamps or neither")
    tensors = _tensors(series, scaler, slots)
    days = weekdays_seen(tensors.dow[:train_end]) if slots else 0
    if slots and test_series is None:
        _warn_unseen_kind_of_day(series.name, tensors.dow[:train_end], tensors.dow[val_end:])
    train = WindowSet(tensors, max(0, len_source), counts[0], len_source, len_target)
    val = WindowSet(tensors, max(train_end, len_source), counts[1], len_source, len_target)
    if test_series is None:
        test = WindowSet(tensors, max(val_end, len_source), counts[2], len_source, len_target)
    else:
        test = WindowSet(_tensors(test_series, scaler, slots), len_source, counts[2], len_source, len_target)
    return PreparedData(
        name=series.name,
        scaler=scaler,
        train=train,
        val=val,
        test=test,
        len_source=len_source,
        len_target=len_target,
        num_sensors=series.num_sensors,
        sensor_ids=series.sensor_ids,
        steps_per_day=slots,
        days_of_week=7 if days == 7 else 0,
        weekdays_in_training=days,
        untrained_sensors=untrained,
        zeros_missing=series.zeros_missing,
        readings=series.readings,
        dayfirst=series.dayfirst,
        freq=None if series.timestamps is None or series.num_steps < 2 else step_of(series.timestamps),
    )
