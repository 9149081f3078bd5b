"""Tests for tuning.config: documented defaults, validation, coercion, files."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tuning.config import DEFAULTS, DOCUMENTED_DEFAULT_FIELDS, TrainConfig
from tuning.errors import ConfigError, UserError

# The parameter table of the old training module, written out independently of the code.
DOCUMENTED = {
    "batch_size": 1024,
    "learning_rate": 1e-3,
    "dropout_rate": 0.2,
    "use_mixed_precision": True,
    "gradient_clip": 1.0,
    "early_stop_patience": 10,
    "use_scheduler": True,
    "scheduler_gamma": 0.95,
    "scheduler_step_size": 5,
    "weight_decay": 1e-4,
    "num_workers": 4,
    "pin_memory": True,
    "seed": 42,
    "save_checkpoints": True,
}


# --- defaults ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), DOCUMENTED.items())
def test_documented_default(name: str, expected: Any) -> None:
    value = getattr(TrainConfig(), name)
    assert value == expected
    assert type(value) is type(expected)  # 1.0, not True; 1024, not 1024.0


def test_documented_fields_list_matches_table() -> None:
    assert set(DOCUMENTED_DEFAULT_FIELDS) == set(DOCUMENTED)
    assert DEFAULTS == TrainConfig()


def test_config_is_frozen_and_round_trips() -> None:
    config = TrainConfig(batch_size=64, cell="gru")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.batch_size = 1  # type: ignore[misc]
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert set(config.to_dict()) == set(TrainConfig.field_names())
    changed = config.replace(learning_rate=0.01)
    assert changed.learning_rate == 0.01 and changed.batch_size == 64 and config.learning_rate == 1e-3


# --- unknown keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("lr", "learning_rate"),
        ("learningrate", "learning_rate"),
        ("batchsize", "batch_size"),
        ("max_epoch", "max_epochs"),
        ("hiden_size", "hidden_size"),
        ("dropout", "dropout_rate"),
    ],
)
def test_unknown_key_is_named_with_a_suggestion(key: str, suggestion: str) -> None:
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({key: 1}, source="params")
    message = str(err.value)
    assert message.startswith("params: ")
    assert f"unknown config key '{key}'" in message
    assert f"did you mean '{suggestion}'" in message


def test_unknown_key_without_close_match_lists_valid_keys() -> None:
    with pytest.raises(ConfigError, match="unknown config key 'zzz'") as err:
        TrainConfig.from_dict({"zzz": 1})
    assert "did you mean" not in str(err.value)
    assert "learning_rate" in str(err.value)  # the list of valid keys


def test_unknown_key_is_a_user_error() -> None:
    with pytest.raises(UserError):
        TrainConfig.from_dict({"nope": 1})


# --- ranges --------------------------------------------------------------------------------

OUT_OF_RANGE = [
    ("batch_size", 0),
    ("batch_size", -8),
    ("learning_rate", 0.0),
    ("learning_rate", -1e-3),
    ("learning_rate", math.inf),
    ("learning_rate", math.nan),
    ("dropout_rate", 1.0),
    ("dropout_rate", -0.1),
    ("gradient_clip", -1.0),
    ("gradient_clip", math.inf),
    ("early_stop_patience", 0),
    ("scheduler_gamma", 0.0),
    ("scheduler_gamma", 1.5),
    ("scheduler_step_size", 0),
    ("weight_decay", -1e-4),
    ("num_workers", -1),
    ("seed", -1),
    ("len_source", 0),
    ("len_target", 0),
    ("hidden_size", 0),
    ("num_layers", 0),
    ("cell", "rnn"),
    ("max_epochs", 0),
    ("amp_dtype", "fp16"),
    ("device", "tpu"),
    ("num_threads", -1),
    ("loader", "threads"),
    ("keep_checkpoints", 0),
]


@pytest.mark.parametrize(("name", "value"), OUT_OF_RANGE)
def test_out_of_range_value_is_rejected_naming_field_and_value(name: str, value: Any) -> None:
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({name: value}, source="params")
    message = str(err.value)
    assert f"{name} must be" in message
    assert f"got {value!r}" in message
    assert message.startswith("params: ")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("dropout_rate", 0.0),
        ("gradient_clip", 0.0),  # 0 turns clipping off
        ("scheduler_gamma", 1.0),
        ("weight_decay", 0.0),
        ("num_workers", 0),
        ("seed", 0),
        ("num_threads", 0),  # 0 = all CPUs
        ("batch_size", 1),
        ("device", "cuda:1"),  # checked against the machine only when training starts
        ("cell", "gru"),
        ("amp_dtype", "bfloat16"),
        ("loader", "dataloader"),
    ],
)
def test_boundary_values_are_accepted(name: str, value: Any) -> None:
    assert getattr(TrainConfig.from_dict({name: value}), name) == value


def test_replace_validates() -> None:
    with pytest.raises(ConfigError, match="batch_size must be >= 1, got 0"):
        TrainConfig().replace(batch_size=0)


# --- types ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "given", "expected"),
    [
        ("learning_rate", "1e-3", 1e-3),  # YAML 1.1 reads 1e-3 as a string
        ("weight_decay", "0", 0.0),
        ("learning_rate", 1, 1.0),
        ("batch_size", "64", 64),
        ("batch_size", 64.0, 64),
        ("batch_size", np.int64(64), 64),  # Tune hands out numpy scalars
        ("learning_rate", np.float32(0.5), 0.5),
        ("use_scheduler", np.bool_(False), False),
    ],
)
def test_values_are_coerced_to_the_field_type(name: str, given: Any, expected: Any) -> None:
    value = getattr(TrainConfig.from_dict({name: given}), name)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("name", "given"),
    [
        ("batch_size", True),  # a bool is not an int
        ("seed", False),
        ("learning_rate", True),
        ("use_scheduler", 1),  # an int is not a bool
        ("use_mixed_precision", "yes"),
        ("batch_size", 1.5),
        ("batch_size", "many"),
        ("learning_rate", "fast"),
        ("cell", 3),
        ("hidden_size", None),
    ],
)
def test_values_of_the_wrong_type_are_rejected(name: str, given: Any) -> None:
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({name: given})
    assert f"{name} must be" in str(err.value)
    assert f"got {given!r}" in str(err.value)


# --- files ---------------------------------------------------------------------------------


def test_from_json_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"batch_size": 128, "learning_rate": 0.01, "cell": "gru"}))
    config = TrainConfig.from_file(path)
    assert (config.batch_size, config.learning_rate, config.cell) == (128, 0.01, "gru")
    assert config.seed == 42  # untouched fields keep their defaults


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
def test_from_yaml_file_coerces_exponent_strings(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"c{suffix}"
    path.write_text("learning_rate: 1e-3\nweight_decay: 5e-5\nbatch_size: 256\nuse_scheduler: false\n")
    config = TrainConfig.from_file(path)
    assert config.learning_rate == 1e-3 and isinstance(config.learning_rate, float)
    assert config.weight_decay == 5e-5
    assert config.batch_size == 256 and config.use_scheduler is False


def test_from_best_config_layout(tmp_path: Path) -> None:
    path = tmp_path / "best_config.json"
    path.write_text(json.dumps({"config": {"hidden_size": 16, "dropout_rate": 0.1}, "metrics": {"val_loss": 0.12}}))
    config = TrainConfig.from_file(path)
    assert (config.hidden_size, config.dropout_rate) == (16, 0.1)


@pytest.mark.parametrize(
    ("filename", "text", "expected"),
    [
        ("c.json", '{"lr": 0.1}', "unknown config key 'lr'"),
        ("c.json", '{"batch_size": 0}', "batch_size must be >= 1, got 0"),
        ("c.json", "{not json", "cannot parse config file"),
        ("c.yaml", "a: [1, 2", "cannot parse config file"),
        ("c.json", "[1, 2]", "must hold a mapping of config fields, got list"),
    ],
)
def test_bad_config_file_is_rejected_naming_the_file(tmp_path: Path, filename: str, text: str, expected: str) -> None:
    path = tmp_path / filename
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_file(path)
    message = str(err.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_missing_config_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        TrainConfig.from_file(tmp_path / "absent.json")
