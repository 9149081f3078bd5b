"""Tests for the old training module's names (tuning.legacy), called as old code calls them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from torch import nn

from tuning import getDefaultModelParams, trainModel, trainModelByDefaultSetting
from tuning.config import DOCUMENTED_DEFAULT_FIELDS, TrainConfig
from tuning.errors import ConfigError, DataError


def _wave(steps: int, sensors: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None]
    return (50 + 10 * np.sin(t / 6 + np.arange(sensors)) + rng.normal(0, 1, (steps, sensors))).astype(np.float32)


@pytest.fixture
def arrays() -> tuple[np.ndarray, np.ndarray]:
    return _wave(400, 2, seed=0), _wave(120, 2, seed=1)


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty folder, to see that the legacy calls write nothing there."""
    monkeypatch.chdir(tmp_path)


def _fast(params: dict) -> dict:
    params.update(max_epochs=2, hidden_size=8, batch_size=256, num_threads=1)
    return params


def test_get_default_model_params_is_a_plain_dict_of_every_field() -> None:
    params = getDefaultModelParams(10, 5, np.zeros((50, 2)), batch_size=512)
    assert type(params) is dict
    assert set(params) == set(TrainConfig.field_names())
    assert params["batch_size"] == 512
    assert (params["len_source"], params["len_target"]) == (10, 5)
    defaults = TrainConfig()
    for name in DOCUMENTED_DEFAULT_FIELDS:
        if name != "batch_size":
            assert params[name] == getattr(defaults, name), name


def test_get_default_model_params_rejects_unknown_overrides() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'batchsize' \(did you mean 'batch_size'\?\)"):
        getDefaultModelParams(10, 5, batchsize=512)


@pytest.mark.parametrize("kind", ["numpy", "dataframe"])
def test_train_model_with_edited_params(arrays: tuple[np.ndarray, np.ndarray], tmp_path: Path, kind: str) -> None:
    train, test = arrays
    if kind == "dataframe":
        index = pd.date_range("2024-01-01", periods=len(train) + len(test), freq="5min")
        train = pd.DataFrame(train, columns=["a", "b"], index=index[: len(train)])
        test = pd.DataFrame(test, columns=["a", "b"], index=index[len(train) :])
    params = _fast(getDefaultModelParams(10, 5, train, batch_size=512))
    params["early_stop_patience"] = 15
    result = trainModel(params, train, test, verbose=False)
    best_model, histories, info = result
    assert isinstance(best_model, nn.Module)
    assert type(histories) is dict and type(info) is dict
    assert len(histories["train_loss"]) == 2
    assert info["config"]["early_stop_patience"] == 15 and info["config"]["batch_size"] == 256
    # the separate test series is the test split: its windows start after len_source steps
    assert info["test_metrics"]["model"]["mae"] > 0
    assert np.isfinite(info["test_metrics"]["copy_last"]["mae"])
    expected_inputs = 1 if kind == "numpy" else 5  # time features only with timestamps
    assert best_model.window.in_features == expected_inputs * 10  # the flattened window of the MLP
    assert not list(tmp_path.iterdir()), "the API wrote files it was not asked for"


def test_train_model_rejects_a_bad_param(arrays: tuple[np.ndarray, np.ndarray]) -> None:
    params = getDefaultModelParams(10, 5)
    params["lr"] = 0.01
    with pytest.raises(ConfigError, match="unknown config key 'lr'"):
        trainModel(params, *arrays, verbose=False)


def test_train_model_rejects_test_data_with_other_sensors(arrays: tuple[np.ndarray, np.ndarray]) -> None:
    train, _ = arrays
    with pytest.raises(DataError, match="test data has 3 sensors but training data has 2"):
        trainModel(_fast(getDefaultModelParams(10, 5)), train, _wave(100, 3, seed=2), verbose=False)


def test_train_model_by_default_setting(tmp_path: Path) -> None:
    # The documented defaults (max_epochs 100, patience 10) on a series so small that every
    # epoch is one batch of ~40 windows: measured to stop early after 11 epochs (~1 s).
    train = _wave(50, 2, seed=4)
    best_model, histories, info = trainModelByDefaultSetting(10, 5, train, verbose=False)
    assert isinstance(best_model, nn.Module)
    config = TrainConfig(len_source=10, len_target=5).to_dict()
    assert info["config"] == config
    assert info["epochs_run"] == len(histories["train_loss"]) <= 100
    assert info["stopped_early"] == (info["epochs_run"] < 100)
    assert info["best_epoch"] == int(np.argmin(histories["val_mae"])) + 1
    assert not list(tmp_path.iterdir()), "the API wrote files it was not asked for"
