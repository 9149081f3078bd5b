"""The old training module's public names, as thin documented aliases.

Code written against ``TrainingFuncs_02`` keeps working with the same call shapes::

    best_model, histories, info = trainModelByDefaultSetting(10, 5, trainData, testData, verbose=True)
    params = getDefaultModelParams(10, 5, trainData, batch_size=512)
    params["early_stop_patience"] = 15
    best_model, histories, info = trainModel(params, trainData, testData, verbose=True)

``trainData``/``testData`` may be a (time x sensors) NumPy array, a pandas
DataFrame or a :class:`~tuning.sources.TrafficSeries`. New code should call
:func:`tuning.train_model` (or :func:`tuning.engine.fit`) directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias, Union

import numpy as np
import pandas as pd

from tuning.config import TrainConfig
from tuning.data import prepare_data
from tuning.engine import TrainResult, fit
from tuning.logs import configure_logging
from tuning.sources import TrafficSeries

DataLike: TypeAlias = Union[TrafficSeries, np.ndarray, pd.DataFrame]  # noqa: UP007


def train_model(
    config: TrainConfig | Mapping[str, Any],
    train_data: DataLike,
    test_data: DataLike | None = None,
    *,
    verbose: bool = False,
    resume: bool = False,
) -> TrainResult:
    """Prepare the data for ``config``'s windows and train.

    Args:
        config: a :class:`TrainConfig` or a mapping of its fields.
        train_data: the series to train and validate on (split 7:1 when
            ``test_data`` is given, else 70/10/20 with its own test part).
        test_data: an optional separate test series.
        verbose: log each epoch to stderr.
        resume: continue from the newest checkpoint in ``config.checkpoint_dir``.
    """
    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_dict(config, source="parameters")
    if verbose:
        configure_logging()
    data = prepare_data(train_data, config.len_source, config.len_target, test_data=test_data)
    return fit(config, data, resume=resume)


def getDefaultModelParams(len_source: int, len_target: int, dataset: DataLike | None = None, **overrides: Any) -> dict[str, Any]:
    """Alias: every config field with its default, as a plain dict to edit.

    ``dataset`` is accepted for the old call shape; the model's input size is
    derived from the data at training time, so it is not needed here.
    """
    del dataset
    return TrainConfig.from_dict(
        {"len_source": len_source, "len_target": len_target, **overrides}, source="getDefaultModelParams"
    ).to_dict()


def trainModel(
    parameters: Mapping[str, Any], trainData: DataLike, testData: DataLike | None = None, verbose: bool = True
) -> TrainResult:
    """Alias of :func:`train_model` with the old argument names."""
    return train_model(parameters, trainData, testData, verbose=verbose)


def trainModelByDefaultSetting(
    len_source: int, len_target: int, trainData: DataLike, testData: DataLike | None = None, verbose: bool = True
) -> TrainResult:
    """Alias: train with the documented defaults for the given windows."""
    return train_model(TrainConfig(len_source=len_source, len_target=len_target), trainData, testData, verbose=verbose)
