"""The model families, their embeddings and the training losses, on tiny data."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from tuning.config import TrainConfig
from tuning.data import DataShape, PreparedData, check_same_sensors, prepare_data
from tuning.engine import MSE, Objective, Precision, TrainingRun, train_one_epoch
from tuning.errors import DataError
from tuning.metrics import masked_huber, masked_mae, masked_mse, training_loss
from tuning.model import MLPForecaster, RNNForecaster, build_model
from tuning.sources import TrafficSeries, synthetic_traffic

CPU = torch.device("cpu")
OFF = Precision(None, False)

FAMILIES = [
    pytest.param({"model": "mlp"}, id="mlp"),
    pytest.param({"model": "mlp", "num_layers": 1, "hidden_size": 16}, id="mlp-1-layer"),
    pytest.param({"model": "rnn", "cell": "lstm", "num_layers": 1}, id="rnn-lstm"),
    pytest.param({"model": "rnn", "cell": "gru", "num_layers": 1}, id="rnn-gru"),
    pytest.param({"model": "rnn", "cell": "lstm", "num_layers": 2}, id="rnn-lstm-2-layers"),
    pytest.param({"model": "rnn", "cell": "gru", "num_layers": 2}, id="rnn-gru-2-layers"),
    pytest.param({"model": "mlp", "node_embedding_dim": 0, "tod_embedding_dim": 0, "dow_embedding_dim": 0}, id="mlp-no-emb"),
    pytest.param({"model": "rnn", "node_embedding_dim": 0, "tod_embedding_dim": 0, "dow_embedding_dim": 0}, id="rnn-no-emb"),
    pytest.param({"model": "mlp", "loss": "mse"}, id="mlp-mse"),
    pytest.param({"model": "mlp", "loss": "huber", "huber_delta": 0.5}, id="mlp-huber"),
    pytest.param({"model": "rnn", "loss": "huber"}, id="rnn-huber"),
]


def _train_steps(config: TrainConfig, data: PreparedData, steps: int = 15) -> list[float]:
    """Loss on one fixed batch before and after ``steps`` optimiser steps on it."""
    torch.manual_seed(0)
    model = build_model(config, data.shape)
    objective = Objective.for_run(config, data, CPU)
    batch = data.train[torch.arange(0, len(data.train), max(1, len(data.train) // 256))]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    losses = []
    for _ in range(steps):
        stats = train_one_epoch(model, [batch], optimizer, scaler, OFF, CPU, gradient_clip=1.0, objective=objective)
        losses.append(stats.loss)
    return losses


@pytest.mark.parametrize("changes", FAMILIES)
def test_every_family_and_option_trains(changes: dict[str, Any], tiny_data: PreparedData) -> None:
    config = TrainConfig(**{"hidden_size": 16, "dropout_rate": 0.0, **changes})
    model = build_model(config, tiny_data.shape)
    expected = MLPForecaster if config.model == "mlp" else RNNForecaster
    assert isinstance(model, expected)
    batch = tiny_data.train[torch.arange(7)]
    out = model(batch.x, batch.future, batch.sensor, batch.tod, batch.dow)
    assert out.shape == (7, tiny_data.len_target)
    losses = _train_steps(config, tiny_data)
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.8 * losses[0], losses  # it learns


def test_embeddings_have_one_row_per_sensor_and_time_slot(tiny_data: PreparedData) -> None:
    shape = tiny_data.shape._replace(days_of_week=7)  # as if training had seen every weekday
    model = build_model(TrainConfig(node_embedding_dim=4, tod_embedding_dim=3, dow_embedding_dim=2), shape)
    emb = model.embeddings
    assert tiny_data.steps_per_day == 288  # 5-minute steps
    assert emb.node.weight.shape == (tiny_data.num_sensors, 4)
    assert emb.tod.weight.shape == (288, 3) and emb.dow.weight.shape == (7, 2)
    off = build_model(TrainConfig(node_embedding_dim=0, tod_embedding_dim=0, dow_embedding_dim=0), shape)
    assert off.embeddings.node is None and off.embeddings.tod is None and off.embeddings.dow is None


def test_batches_carry_each_steps_calendar_slot(tiny_series: TrafficSeries, tiny_data: PreparedData) -> None:
    windows = tiny_data.val
    batch = windows[torch.tensor([0, 5 * tiny_data.num_sensors + 1])]
    stamps = tiny_series.timestamps
    assert stamps is not None
    for row, index in enumerate((0, 5 * tiny_data.num_sensors + 1)):
        t0 = windows.first + index // tiny_data.num_sensors
        steps = stamps[t0 - windows.len_source : t0 + windows.len_target]
        expected_tod = (steps.hour * 60 + steps.minute) // 5
        assert batch.tod[row].tolist() == list(expected_tod)
        assert batch.dow[row].tolist() == list(steps.dayofweek)
        assert int(batch.sensor[row]) == index % tiny_data.num_sensors


def test_sensor_identity_changes_the_forecast(tiny_data: PreparedData) -> None:
    """Same window, other sensor index: only the sensor embedding can tell them apart."""
    torch.manual_seed(0)
    model = build_model(TrainConfig(tod_embedding_dim=0, dow_embedding_dim=0, dropout_rate=0.0), tiny_data.shape).eval()
    batch = tiny_data.train[torch.tensor([0, 0])]
    sensor = torch.tensor([0, 1])
    out = model(batch.x, batch.future, sensor, batch.tod, batch.dow)
    assert not torch.allclose(out[0], out[1])


def test_no_timestamps_means_no_calendar_and_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    values = np.random.default_rng(0).normal(50, 5, size=(600, 2)).astype(np.float32)
    with caplog.at_level(logging.INFO, logger="tuning.data"):
        data = prepare_data(values, 10, 5)
    assert data.steps_per_day == 0
    lines = [r.getMessage() for r in caplog.records if "no timestamps" in r.getMessage()]
    assert len(lines) == 1 and "--freq" in lines[0]
    model = build_model(TrainConfig(), data.shape)
    assert model.embeddings.tod is None and model.embeddings.dow is None and model.embeddings.node is not None
    assert _train_steps(TrainConfig(hidden_size=16), data, steps=5)[-1] > 0


def test_other_sensors_are_refused(tiny_data: PreparedData) -> None:
    check_same_sensors(tiny_data.sensor_ids, tiny_data, "the model")  # the same: fine
    with pytest.raises(DataError, match="has 3 sensors but the model was trained on 2"):
        check_same_sensors(("S000", "S001"), tiny_data, "the model")
    with pytest.raises(DataError, match="sensor columns differ from the ones the model was trained on .*'S002' where 'X' was"):
        check_same_sensors(("S000", "S001", "X"), tiny_data, "the model")


def test_data_shape_is_what_the_model_needs(tiny_data: PreparedData) -> None:
    # 4 days: the training part misses weekdays, so no day-of-week rows
    assert tiny_data.shape == DataShape(tiny_data.input_size, 3, 288, 0)
    assert DataShape(*[2, 3, 288]).days_of_week == 7  # files saved before the field: they had 7


@pytest.mark.parametrize(("days", "start", "seen"), [(7, "2024-01-04", 5), (11, "2024-01-04", 7)])
def test_day_of_week_input_only_when_training_saw_every_weekday(
    days: int, start: str, seen: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A week of data: the test part falls on weekdays training never had, whose rows would stay random."""
    series = synthetic_traffic(num_sensors=2, num_days=days)
    stamps = pd.date_range(start, periods=series.num_steps, freq="5min")
    series = dataclasses.replace(series, timestamps=stamps)
    data = prepare_data(series, 10, 5)
    with caplog.at_level(logging.INFO, logger="tuning.engine"):
        model = TrainingRun(TrainConfig(dow_embedding_dim=4, num_threads=1), data).model
    lines = [r.getMessage() for r in caplog.records if "weekdays" in r.getMessage()]
    assert model.embeddings.tod is not None  # time of day is seen every day either way
    if seen < 7:
        assert data.days_of_week == 0 and model.embeddings.dow is None
        assert len(lines) == 1 and f"covers {seen} of 7 weekdays" in lines[0]
        # the forecast cannot depend on the day of week it was never trained on
        batch = data.test[torch.arange(4)]
        other = (batch.dow + 3) % 7
        model.eval()
        assert torch.equal(
            model(batch.x, batch.future, batch.sensor, batch.tod, batch.dow),
            model(batch.x, batch.future, batch.sensor, batch.tod, other),
        )
    else:
        assert data.days_of_week == 7 and model.embeddings.dow is not None and not lines


# --- losses ---------------------------------------------------------------------------


def _reference(kind: str, pred: np.ndarray, target: np.ndarray, mask: np.ndarray, weight: np.ndarray, delta: float) -> float:
    err = np.abs(pred - target) * weight[:, None]
    if kind == "mae":
        cell = err
    elif kind == "mse":
        cell = err**2
    else:
        cell = np.where(err <= delta, 0.5 * err**2, delta * (err - 0.5 * delta))
    return float(cell[mask].sum() / mask.sum())


@pytest.mark.parametrize("kind", ["mae", "mse", "huber"])
def test_losses_match_numpy_and_ignore_missing_cells(kind: str) -> None:
    rng = np.random.default_rng(1)
    pred, target = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)) * 2
    mask = rng.random((6, 4)) > 0.3
    weight = rng.uniform(0.5, 2.0, 6)
    target_t = torch.tensor(np.where(mask, target, np.nan))  # missing cells hold NaN
    got = training_loss(kind, torch.tensor(pred), target_t, torch.tensor(mask), torch.tensor(weight), 0.7)
    assert float(got) == pytest.approx(_reference(kind, pred, target, mask, weight, 0.7), rel=1e-9)
    assert torch.isfinite(got)


def test_unweighted_losses_are_the_plain_masked_means() -> None:
    pred, target, mask = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 5.0]]), torch.tensor([[True, True]])
    assert float(masked_mae(pred, target, mask)) == 2.0
    assert float(masked_mse(pred, target, mask)) == 5.0
    assert float(masked_huber(pred, target, mask, delta=1.0)) == pytest.approx((0.5 + 2.5) / 2)


def test_objective_weighs_sensors_by_their_scale(tiny_data: PreparedData) -> None:
    """MAE training in scaled units equals the original-unit MAE over a constant."""
    objective = Objective.for_run(TrainConfig(loss="mae"), tiny_data, CPU)
    std = torch.tensor(tiny_data.scaler.std)
    assert torch.allclose(objective.sensor_weight, std / std.mean())
    batch = tiny_data.val[torch.arange(300)]
    pred = batch.y + 0.1 * torch.randn_like(batch.y)
    scaled = float(objective(pred, batch))
    original = tiny_data.scaler.inverse(pred, batch.sensor) - tiny_data.scaler.inverse(batch.y, batch.sensor)
    mae = float(original.abs()[batch.mask].mean())
    assert scaled * float(std.mean()) == pytest.approx(mae, rel=1e-5)
    assert MSE.sensor_weight is None
