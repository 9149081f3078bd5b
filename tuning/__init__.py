"""Hyperparameter search for traffic-forecasting models with Ray Tune.

The core (config, data, model, engine) never imports Ray; ``tuning.trainable`` and
``tuning.search`` do.
"""

from __future__ import annotations

from tuning.config import DEFAULTS, TrainConfig
from tuning.data import PreparedData, prepare_data
from tuning.engine import TrainingDivergedError, TrainingRun, TrainResult, fit, set_seed, train_one_epoch, validate_model
from tuning.errors import ConfigError, DataError, UserError
from tuning.forecast import Forecaster, load_model
from tuning.legacy import getDefaultModelParams, train_model, trainModel, trainModelByDefaultSetting
from tuning.metrics import METRIC, MODE
from tuning.sources import TrafficSeries, load_series, synthetic_traffic

__version__ = "0.1.0"

__all__ = [
    "DEFAULTS", "METRIC", "MODE", "ConfigError", "DataError", "Forecaster", "PreparedData", "TrafficSeries", "TrainConfig",
    "TrainResult", "TrainingDivergedError", "TrainingRun", "UserError", "fit", "getDefaultModelParams",
    "load_model", "load_series", "prepare_data", "set_seed", "synthetic_traffic", "trainModel", "trainModelByDefaultSetting",
    "train_model", "train_one_epoch", "validate_model",
]  # fmt: skip
