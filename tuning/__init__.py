"""Hyperparameter search for traffic-forecasting models with Ray Tune.

The core (config, data, model, engine) never imports Ray; ``tuning.trainable`` and
``tuning.search`` do.

The names below load on first use (PEP 562): ``import tuning.<module>`` runs this
file first, and the small processes that need no torch (the private Ray's keeper,
``tuning.ray_runtime``) would otherwise import torch and pandas for nothing: ~3 s
of CPU at every sweep's start on a 2-core machine, and more at its exit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuning.config import DEFAULTS, TrainConfig
    from tuning.data import PreparedData, prepare_data
    from tuning.engine import TrainingDivergedError, TrainingRun, TrainResult, fit, set_seed, train_one_epoch, validate_model
    from tuning.errors import ConfigError, DataError, UserError
    from tuning.forecast import Forecaster, load_model
    from tuning.legacy import getDefaultModelParams, train_model, trainModel, trainModelByDefaultSetting
    from tuning.metrics import METRIC, MODE
    from tuning.sources import TrafficSeries, load_series, synthetic_traffic

__version__ = "0.1.0"

_HOMES = {
    "tuning.config": ("DEFAULTS", "TrainConfig"),
    "tuning.data": ("PreparedData", "prepare_data"),
    "tuning.engine": (
        "TrainingDivergedError", "TrainingRun", "TrainResult", "fit", "set_seed", "train_one_epoch", "validate_model",
    ),
    "tuning.errors": ("ConfigError", "DataError", "UserError"),
    "tuning.forecast": ("Forecaster", "load_model"),
    "tuning.legacy": ("getDefaultModelParams", "train_model", "trainModel", "trainModelByDefaultSetting"),
    "tuning.metrics": ("METRIC", "MODE"),
    "tuning.sources": ("TrafficSeries", "load_series", "synthetic_traffic"),
}  # fmt: skip
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "DEFAULTS", "METRIC", "MODE", "ConfigError", "DataError", "Forecaster", "PreparedData", "TrafficSeries", "TrainConfig",
    "TrainResult", "TrainingDivergedError", "TrainingRun", "UserError", "fit", "getDefaultModelParams",
    "load_model", "load_series", "prepare_data", "set_seed", "synthetic_traffic", "trainModel", "trainModelByDefaultSetting",
    "train_model", "train_one_epoch", "validate_model",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'tuning' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
