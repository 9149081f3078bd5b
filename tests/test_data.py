"""Tests for tuning.data: window offsets, splits, scaling, masking, bad data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tuning.data import NUM_TIME_FEATURES, PreparedData, WindowSet, min_steps, prepare_data, split_bounds, time_features
from tuning.errors import DataError
from tuning.sources import TrafficSeries

LS, LT = 10, 5


def _filled_scaled(values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Reference: z-score, then forward-fill each sensor, leading gaps as 0 (the mean)."""
    scaled = (values.astype(np.float64) - mean) / std
    out = scaled.copy()
    for col in range(out.shape[1]):
        last = 0.0
        for t in range(out.shape[0]):
            if np.isnan(out[t, col]):
                out[t, col] = last
            else:
                last = out[t, col]
    return out


def _expected_windows(windows: WindowSet, series: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source/target time steps and sensors of every sample, from the documented formula."""
    n = windows.num_sensors
    i = np.arange(len(windows))
    t = windows.first + i // n
    sensor = i % n
    src = t[:, None] + np.arange(-windows.len_source, 0)
    tgt = t[:, None] + np.arange(windows.len_target)
    return src, tgt, sensor, series[src, sensor[:, None]]


def _all(windows: WindowSet):  # noqa: ANN202 - a Batch
    return windows[torch.arange(len(windows))]


def _series(values: np.ndarray, with_timestamps: bool = True) -> TrafficSeries:
    values = values.astype(np.float32)
    stamps = pd.date_range("2024-01-01", periods=len(values), freq="5min") if with_timestamps else None
    ids = tuple(f"s{i}" for i in range(values.shape[1]))
    return TrafficSeries(values, stamps, ids, "test-series")


# --- windows and splits --------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_window_offsets_match_the_series(tiny_series: TrafficSeries, tiny_data: PreparedData, split: str) -> None:
    windows: WindowSet = getattr(tiny_data, split)
    filled = _filled_scaled(tiny_series.values, tiny_data.scaler.mean, tiny_data.scaler.std)
    src, tgt, sensor, expected_x = _expected_windows(windows, filled)
    batch = _all(windows)
    n = len(windows)
    assert batch.x.shape == (n, LS, 1 + NUM_TIME_FEATURES)
    assert batch.y.shape == batch.mask.shape == (n, LT)
    np.testing.assert_allclose(batch.x[..., 0].numpy(), expected_x, rtol=0, atol=1e-5)
    np.testing.assert_allclose(batch.y.numpy(), filled[tgt, sensor[:, None]], rtol=0, atol=1e-5)
    assert np.array_equal(batch.mask.numpy(), ~np.isnan(tiny_series.values[tgt, sensor[:, None]]))
    assert np.array_equal(batch.sensor.numpy(), sensor)
    feats = time_features(tiny_series.timestamps, tiny_series.num_steps)
    assert np.array_equal(batch.x[..., 1:].numpy(), feats[src])
    assert np.array_equal(batch.future.numpy(), feats[tgt])


def test_windows_index_any_order(tiny_data: PreparedData) -> None:
    windows = tiny_data.val
    order = torch.tensor([17, 3, 3, len(windows) - 1, 0])
    picked = windows[order]
    whole = _all(windows)
    assert torch.equal(picked.x, whole.x[order]) and torch.equal(picked.y, whole.y[order])


def test_splits_are_chronological_70_10_20_by_target_time(tiny_series: TrafficSeries, tiny_data: PreparedData) -> None:
    steps = tiny_series.num_steps
    train_end, val_end = split_bounds(steps)
    assert (train_end, val_end) == (round(0.7 * steps), round(0.8 * steps))
    assert tiny_data.train.target_steps == (LS, train_end)
    assert tiny_data.val.target_steps == (train_end, val_end)
    assert tiny_data.test.target_steps == (val_end, steps)
    # Every target step of every window lies in its split; the splits do not overlap.
    for windows, (lo, hi) in [
        (tiny_data.train, (0, train_end)),
        (tiny_data.val, (train_end, val_end)),
        (tiny_data.test, (val_end, steps)),
    ]:
        _, tgt, _, _ = _expected_windows(windows, np.zeros((steps, tiny_data.num_sensors)))
        assert lo <= tgt.min() and tgt.max() < hi
        # and the split uses every possible start: one window per sensor per start step
        assert len(windows) == (hi - max(lo, LS) - LT + 1) * tiny_data.num_sensors


def test_splits_are_index_views_over_one_series(tiny_data: PreparedData) -> None:
    pointers = {w.tensors.inputs.data_ptr() for w in (tiny_data.train, tiny_data.val, tiny_data.test)}
    assert len(pointers) == 1
    assert tiny_data.train.tensors.observed.data_ptr() == tiny_data.test.tensors.observed.data_ptr()
    # memory near the raw series, not len_source times it
    assert tiny_data.train.tensors.inputs.shape == (1152, 3)


def test_batches_cover_each_window_once_in_a_seeded_order(tiny_data: PreparedData) -> None:
    windows = tiny_data.val

    def sensors_and_firsts(seed: int) -> list[torch.Tensor]:
        return [torch.stack([b.sensor, b.x[:, 0, 0]]) for b in windows.batches(100, shuffle=True, seed=seed)]

    first, again, other = sensors_and_firsts(1), sensors_and_firsts(1), sensors_and_firsts(2)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    sizes = [b.y.shape[0] for b in windows.batches(100, shuffle=False)]
    assert sum(sizes) == len(windows) and max(sizes) == 100
    ordered = torch.cat([b.sensor for b in windows.batches(100, shuffle=False)])
    assert torch.equal(ordered, torch.arange(len(windows)) % windows.num_sensors)


@pytest.mark.parametrize(("with_timestamps", "num_features"), [(True, NUM_TIME_FEATURES), (False, 0)])
def test_time_features_present_only_with_timestamps(with_timestamps: bool, num_features: int) -> None:
    values = np.random.default_rng(0).normal(50, 5, (200, 2))
    data = prepare_data(_series(values, with_timestamps), LS, LT)
    batch = data.train[torch.arange(4)]
    assert data.num_time_features == num_features
    assert data.input_size == 1 + num_features
    assert batch.x.shape == (4, LS, 1 + num_features)
    assert batch.future.shape == (4, LT, num_features)


def test_time_features_are_cyclic_encodings() -> None:
    stamps = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 06:00", "2024-01-03 12:00"])  # a Monday
    feats = time_features(stamps, 3)
    np.testing.assert_allclose(feats[:, 0], [0.0, 1.0, 0.0], atol=1e-6)  # sin(time of day)
    np.testing.assert_allclose(feats[:, 1], [1.0, 0.0, -1.0], atol=1e-6)  # cos(time of day)
    np.testing.assert_allclose(feats[2, 2:], [np.sin(2 * np.pi * 2.5 / 7), np.cos(2 * np.pi * 2.5 / 7)], atol=1e-6)
    assert time_features(None, 7).shape == (7, 0)


# --- scaling -------------------------------------------------------------------------------


def test_scaler_is_fitted_on_the_training_part_only() -> None:
    values = np.random.default_rng(1).normal(60, 8, (400, 3))
    train_end, _ = split_bounds(400)
    base = prepare_data(values, LS, LT)
    np.testing.assert_allclose(base.scaler.mean, values[:train_end].mean(0), rtol=1e-5)
    np.testing.assert_allclose(base.scaler.std, values[:train_end].std(0), rtol=1e-5)

    later = values.copy()
    later[train_end:] = later[train_end:] * 10 + 500  # change the validation and test parts
    changed = prepare_data(later, LS, LT)
    assert np.array_equal(changed.scaler.mean, base.scaler.mean)
    assert np.array_equal(changed.scaler.std, base.scaler.std)

    earlier = values.copy()
    earlier[: train_end // 2] += 100  # the training part does move it
    assert not np.array_equal(prepare_data(earlier, LS, LT).scaler.mean, base.scaler.mean)


def test_the_forecast_floor_is_zero_for_data_that_never_go_below_it() -> None:
    counts = np.random.default_rng(2).poisson(3, (400, 2)).astype(np.float32)  # zeros at night, never below
    scaler = prepare_data(counts, LS, LT).scaler
    assert scaler.floor == 0.0
    sensor = torch.tensor([0, 1])
    below = torch.full((2, 3), -50.0)  # scaled units: far below zero in the data's units
    assert (scaler.inverse(below, sensor) < 0).all()  # targets and baselines stay as they are
    assert (scaler.forecast(below, sensor) == 0).all()
    torch.testing.assert_close(scaler.inverse(scaler.scaled_floor(sensor).expand(2, 3), sensor), torch.zeros(2, 3))
    counts[5, 0] = -1.0  # data that go below zero (differences, anomalies): forecasts may too
    assert prepare_data(counts, LS, LT).scaler.floor is None


def test_separate_test_data_uses_the_training_scaler() -> None:
    rng = np.random.default_rng(2)
    train, test = rng.normal(60, 8, (320, 2)), rng.normal(60, 8, (100, 2))
    data = prepare_data(train, LS, LT, test_data=test)
    train_end = round(320 * 7 / 8)  # 7:1 train/val split of the training series
    np.testing.assert_allclose(data.scaler.mean, train[:train_end].mean(0), rtol=1e-5)
    assert data.val.target_steps == (train_end, 320)
    assert data.test.target_steps == (LS, 100)
    expected = (test - data.scaler.mean) / data.scaler.std
    np.testing.assert_allclose(data.test.tensors.inputs.numpy(), expected, atol=1e-5)
    assert data.test.tensors.inputs.data_ptr() != data.train.tensors.inputs.data_ptr()


def test_constant_sensor_gets_unit_std() -> None:
    values = np.random.default_rng(3).normal(60, 8, (300, 3))
    values[:, 1] = 42.0
    data = prepare_data(values, LS, LT)
    assert data.scaler.std[1] == 1.0
    assert data.scaler.mean[1] == pytest.approx(42.0)
    inputs = data.train.tensors.inputs
    assert torch.isfinite(inputs).all()
    assert torch.equal(inputs[:, 1], torch.zeros(300))


# --- missing readings ----------------------------------------------------------------------


@pytest.mark.parametrize("with_timestamps", [True, False])
def test_missing_readings_are_masked_and_forward_filled(with_timestamps: bool) -> None:
    rng = np.random.default_rng(4)
    values = rng.normal(60, 8, (300, 2))
    values[rng.random(values.shape) < 0.1] = np.nan
    values[0:3, 0] = np.nan  # leading gap: nothing to carry forward
    values[100:120, 1] = np.nan  # an outage
    data = prepare_data(_series(values, with_timestamps), LS, LT)
    observed = data.train.tensors.observed.numpy()
    inputs = data.train.tensors.inputs.numpy()
    assert np.array_equal(observed, ~np.isnan(values))
    assert not np.isnan(inputs).any()
    np.testing.assert_allclose(inputs, _filled_scaled(values, data.scaler.mean, data.scaler.std), atol=1e-5)
    assert np.all(inputs[0:3, 0] == 0.0)
    assert np.all(inputs[100:120, 1] == inputs[99, 1])
    # a window's mask is False exactly where its target was missing
    batch = _all(data.train)
    _, tgt, sensor, _ = _expected_windows(data.train, values)
    assert np.array_equal(batch.mask.numpy(), ~np.isnan(values[tgt, sensor[:, None]]))


def test_zero_is_missing_masks_zeros() -> None:
    values = np.random.default_rng(5).normal(60, 8, (300, 2))
    values[50:55, 0] = 0.0
    data = prepare_data(values, LS, LT, zero_is_missing=True)
    assert not data.train.tensors.observed[50:55, 0].any()
    assert data.train.tensors.observed[45:50, 0].all()


# --- bad data ------------------------------------------------------------------------------


@pytest.mark.parametrize(("len_source", "len_target"), [(10, 5), (3, 1), (24, 12)])
def test_shortest_series_is_min_steps(len_source: int, len_target: int) -> None:
    need = min_steps(len_source, len_target)
    values = np.random.default_rng(6).normal(60, 8, (need, 2))
    data = prepare_data(values, len_source, len_target)
    assert min(len(data.train), len(data.val), len(data.test)) >= 1
    with pytest.raises(DataError) as err:
        prepare_data(values[:-1], len_source, len_target)
    message = str(err.value)
    assert f"{need - 1} time steps are too short" in message
    assert f"at least {need} steps" in message
    assert f"len_source={len_source}" in message and f"len_target={len_target}" in message


def test_a_sensor_without_training_readings_is_kept_but_neither_trained_nor_scored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A dead detector of real roads: it must not stop the other sensors' run, and the
    # readings it has after the training part must not be scored (no model learned it).
    values = np.random.default_rng(7).normal(60, 8, (300, 3))
    values[: split_bounds(300)[0], 2] = np.nan  # readings only in val/test
    with caplog.at_level("WARNING", logger="tuning.data"):
        data = prepare_data(values, LS, LT)
    assert "sensors ['S002'] have no reading in the training part" in caplog.text and "forecast as NaN" in caplog.text
    assert data.num_sensors == 3 and data.untrained_sensors == ("S002",)
    assert data.model_record()["untrained_sensors"] == ["S002"]
    for part in (data.train, data.val, data.test):
        batch = part[torch.arange(len(part))]
        dead = batch.sensor == 2
        assert dead.any() and not batch.mask[dead].any()  # never a target
        assert batch.mask[~dead].all()
    assert np.isfinite(values[split_bounds(300)[0] :, 2]).all()  # the caller's array is left as it was


def test_a_sensor_without_any_reading_is_kept_and_no_reading_at_all_is_rejected() -> None:
    values = np.random.default_rng(8).normal(60, 8, (300, 2))
    values[:, 0] = np.nan
    assert prepare_data(values, LS, LT).untrained_sensors == ("S000",)
    values[:, 1] = np.nan
    with pytest.raises(DataError, match="no sensor has a single reading"):
        prepare_data(values, LS, LT)
    values = np.random.default_rng(8).normal(60, 8, (300, 2))
    values[: split_bounds(300)[0]] = np.nan
    with pytest.raises(DataError, match=r"no sensor has a reading in the training part \(the first 210 steps\)"):
        prepare_data(values, LS, LT)


def test_test_data_with_other_sensors_is_rejected() -> None:
    rng = np.random.default_rng(9)
    with pytest.raises(DataError, match="test data has 3 sensors but training data has 2"):
        prepare_data(rng.normal(60, 8, (300, 2)), LS, LT, test_data=rng.normal(60, 8, (100, 3)))


def test_too_short_test_data_names_the_test_data() -> None:
    rng = np.random.default_rng(10)
    with pytest.raises(DataError) as err:
        prepare_data(rng.normal(60, 8, (300, 2)), LS, LT, test_data=rng.normal(60, 8, (12, 2)))
    message = str(err.value)
    assert "test data" in message and "12 time steps" in message


# --- a test part on a kind of day training never had ----------------------------------------


def _days_from(start: str, days: int) -> TrafficSeries:
    stamps = pd.date_range(start, periods=days * 288, freq="5min")
    values = (60 + 5 * np.sin(np.arange(len(stamps)) / 50.0))[:, None].astype(np.float32)
    return TrafficSeries(values, stamps, ("S0",), f"{days} days from {start}")


@pytest.mark.parametrize(
    ("start", "days", "warned"),
    [
        ("2024-01-01", 7, "Saturday and Sunday"),  # a Monday: the test part is the weekend
        ("2012-03-01", 7, None),  # a Thursday (METR-LA's first day): training had both kinds of day
        ("2024-01-01", 14, None),  # two weeks: training had a weekend
    ],
)
def test_a_test_part_on_a_kind_of_day_training_never_had_is_said(
    start: str, days: int, warned: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="tuning.data"):
        prepare_data(_days_from(start, days), 10, 5)
    lines = [r.getMessage() for r in caplog.records if "a kind of day the training part" in r.getMessage()]
    if warned is None:
        assert lines == []
    else:
        assert len(lines) == 1 and f"falls on {warned}, a kind of day" in lines[0]
