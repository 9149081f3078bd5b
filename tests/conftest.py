"""Shared fixtures for the core tests: a tiny synthetic series and a fast config.

Keep this module import-light (no Ray): fixtures that need heavy dependencies
import them inside the fixture body.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tuning.config import TrainConfig
from tuning.data import PreparedData, prepare_data
from tuning.sources import TrafficSeries, synthetic_traffic

TINY_SENSORS = 3
TINY_DAYS = 4  # 1152 five-minute steps: ~2400 train / 340 val / 680 test windows


@pytest.fixture(scope="session")
def tiny_series() -> TrafficSeries:
    """3 sensors x 4 days of synthetic speeds (with a few missing readings). Treat as read-only."""
    return synthetic_traffic(num_sensors=TINY_SENSORS, num_days=TINY_DAYS)


@pytest.fixture(scope="session")
def tiny_data(tiny_series: TrafficSeries) -> PreparedData:
    """``tiny_series`` split 70/10/20 with len_source=10, len_target=5. Treat as read-only."""
    return prepare_data(tiny_series, len_source=10, len_target=5)


@pytest.fixture
def tiny_config(tmp_path: Path) -> TrainConfig:
    """A config that trains an epoch of ``tiny_data`` in well under a second on one thread.

    Checkpoints go under this test's ``tmp_path``; derive variants with ``tiny_config.replace(...)``.
    """
    return TrainConfig(hidden_size=8, batch_size=256, max_epochs=3, num_threads=1, checkpoint_dir=str(tmp_path / "checkpoints"))
