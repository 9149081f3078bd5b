"""Shared fixtures for the core tests: a tiny synthetic series and a fast config.

Keep this module import-light (no Ray): fixtures that need heavy dependencies
import them inside the fixture body.
"""

from __future__ import annotations

import logging
import os
import re
import selectors
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tuning.config import TrainConfig
from tuning.data import PreparedData, prepare_data
from tuning.sources import TrafficSeries, synthetic_traffic

if TYPE_CHECKING:
    import pandas as pd

TINY_SENSORS = 3
TINY_DAYS = 4  # 1152 five-minute steps: ~2400 train / 340 val / 680 test windows


class _RunsCode:
    """Unpickles into ``os.system(command)``: what a crafted checkpoint does to ``torch.load(weights_only=False)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def write_malicious_checkpoint(path: Path, marker: Path) -> Path:
    """A checkpoint-looking file that creates ``marker`` if anything unpickles it unsafely."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": 1, "kind": "run", "epoch": 1, "payload": _RunsCode(f"touch {marker}")}, path)
    return path


def write_csv(series: TrafficSeries, path: Path, steps: int | None = None) -> Path:
    """A wide CSV as users have them: a timestamp column, then one column per sensor."""
    import pandas as pd

    frame = pd.DataFrame(series.values[:steps], columns=list(series.sensor_ids))
    assert series.timestamps is not None
    frame.insert(0, "timestamp", series.timestamps[:steps].strftime("%Y-%m-%d %H:%M"))
    frame.to_csv(path, index=False)
    return path


def long_table(series: TrafficSeries, id_column: str = "sensor_id") -> pd.DataFrame:
    """The series as a long table (timestamp, sensor, speed): a row per timestamp and sensor, sorted
    by sensor as exports often are."""
    import pandas as pd

    wide = pd.DataFrame(series.values, index=series.timestamps.rename("timestamp"), columns=list(series.sensor_ids))
    long = wide.rename_axis(columns=id_column).stack(future_stack=True).rename("speed").reset_index()
    return long.sort_values([id_column, "timestamp"], kind="stable").reset_index(drop=True)


def pems_station_text(series: TrafficSeries, *, ramps: int = 0) -> str:
    """The series' speeds as a Caltrans PeMS Station 5-Minute file: no header, a row per
    timestamp and station, 12 fixed fields, then 5 per lane (2 to 4 lanes, so rows differ in
    length), MM/DD/YYYY timestamps. ``ramps`` on-ramp stations (OR) follow, with flow and no speed."""
    import numpy as np

    assert series.timestamps is not None
    rows = []
    for t, stamp in enumerate(series.timestamps.strftime("%m/%d/%Y %H:%M:%S")):
        for i, sensor in enumerate(series.sensor_ids):
            speed = series.values[t, i]
            lanes = 2 + i % 3
            flow = 0 if np.isnan(speed) else int(400 - 3 * speed)
            shown = "" if np.isnan(speed) else f"{speed:.1f}"
            lane = [f"10,{flow // lanes},.0{5 + i % 4},{shown},1" for _ in range(lanes)]
            rows.append(f"{stamp},{sensor},4,101,S,ML,.{3 + i},{10 * lanes},100,{flow},.0{5 + i % 4},{shown}," + ",".join(lane))
        for r in range(ramps):
            rows.append(f"{stamp},{900000 + r},4,101,S,OR,,10,100,{40 + t % 7},,,10,{40 + t % 7},,,1")
    return "\n".join(rows) + "\n"


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


@pytest.fixture
def restore_tuning_logger() -> Iterator[None]:
    """Command-line main() configures the 'tuning' logger; undo it so no handler outlives its captured stream."""
    import logging

    logger = logging.getLogger("tuning")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """One real local Ray for the whole session (2 CPUs); yields its address.

    Sweeps run in-process against it, and subprocesses join it with ``--address``.
    """
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def wait_for_line(proc: Any, pattern: str, timeout: float, *, stream: str = "stdout") -> tuple[re.Match[str], str]:
    """Read a child's output until a line matches ``pattern``; (the match, all read so far).

    Reads the raw pipe (``os.read``), so lines already buffered by a text wrapper are
    never waited for twice; fails with what was read when the deadline passes first.
    """
    pipe = getattr(proc, stream)
    fd = pipe.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    deadline, seen = time.monotonic() + timeout, ""
    while (left := deadline - time.monotonic()) > 0 and sel.select(timeout=left):
        chunk = os.read(fd, 65536).decode(errors="replace")
        if not chunk:
            break
        seen += chunk
        found = re.search(pattern, seen, flags=re.MULTILINE)
        if found:
            return found, seen
    proc.kill()
    raise AssertionError(f"never saw {pattern!r} on the child's {stream}:\n{seen[-3000:]}")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API, moto's server, on loopback for the session; yields its URL.

    The standard AWS variables point this process and its children (sweeps, Ray's
    workers) at it, as they would at any S3-compatible store.
    """
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A new, empty bucket on the test S3 server; yields its name."""
    import uuid

    import boto3

    name = f"sweeps-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A TMPDIR for a sweep child: short enough for the Unix sockets Ray puts in its session folder."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="tt-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def sweep_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small wide CSV for sweeps run as child processes (3 sensors x 4 days)."""
    return write_csv(synthetic_traffic(num_sensors=3, num_days=4, seed=5), tmp_path_factory.mktemp("data") / "sweep.csv")


@pytest.fixture(scope="session")
def sweep_space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A search space of 4 tiny trials of up to 3 epochs (``support.TINY_SPACE``)."""
    from support import TINY_SPACE

    path = tmp_path_factory.mktemp("spaces") / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path
