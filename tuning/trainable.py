"""The Ray Tune function trainable: the one adapter between Tune and the engine.

Tune's API for reporting and checkpointing has changed several times; every call
to it is in this module (and the search entry point), so the engine stays
Ray-free. Per epoch the trainable reports the validation loss and metrics and a
checkpoint holding the whole :class:`~tuning.engine.TrainingRun` state; on start it
restores from Tune's checkpoint, so paused, retried and resumed trials continue
where they stopped.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import ray
import torch
from ray import tune

from tuning import checkpoints
from tuning.config import TrainConfig
from tuning.data import PreparedData
from tuning.engine import BEST_KEY, TrainingDivergedError, TrainingRun
from tuning.metrics import METRIC
from tuning.spaces import SearchSpace
from tuning.sweep_settings import SweepSettings
from tuning.trials import trial_config
from tuning.tune_storage import readable

log = logging.getLogger(__name__)

# Every epoch's report carries these keys (analysis and tests import this list).
REPORTED_METRICS = (
    "epoch", METRIC, "val_loss", "val_rmse", "val_mape", "train_loss", "learning_rate",
    "grad_norm", BEST_KEY, "diverged", "epoch_time_s",
)  # fmt: skip
DIVERGED_LOSS = float("inf")
"""The value a diverged trial reports: the worst possible, so the searcher avoids its region."""


def _trial_cpus() -> int:
    try:
        return max(1, int(tune.get_context().get_trial_resources().head_cpus))
    except Exception:  # noqa: BLE001 - outside a trial (direct call in a test)
        return 1


def _staging_parent() -> Path:
    """Where a report's checkpoint is staged before Tune copies it to storage.

    The trial's working folder in Ray's session folder, not the system temporary
    folder: a worker killed mid-report leaves its staging folder where the sweep's
    cleanup removes it (``tuning.ray_runtime``), never in /tmp.
    """
    try:
        return Path(tune.get_context().get_storage().trial_working_directory)
    except Exception:  # noqa: BLE001 - outside a Tune session (a direct call in a test)
        return Path(tempfile.gettempdir())


def _report(metrics: dict[str, Any], run: TrainingRun) -> None:
    parent = _staging_parent()
    parent.mkdir(parents=True, exist_ok=True)
    # A new folder per report: an actor of a killed driver may still be finishing the same trial.
    with tempfile.TemporaryDirectory(prefix=".report-checkpoint-", dir=parent) as folder:
        checkpoints.save(Path(folder) / checkpoints.RUN_STATE_FILE, checkpoints.RUN, run.state_dict())
        # The node, so that a sweep on a cluster shows where each trial ran.
        node = ray.get_runtime_context().get_node_id()
        tune.report({**metrics, "node_id": node}, checkpoint=tune.Checkpoint.from_directory(folder))


def kept_checkpoints(checkpoint: tune.Checkpoint) -> list[tune.Checkpoint]:
    """``checkpoint`` and the older ones Tune kept beside it in the trial's folder, newest first."""
    assert checkpoint.filesystem is not None  # Checkpoint() resolves one from the path
    fs, path = readable(checkpoint.filesystem), checkpoint.path.rstrip("/")
    parent, name = path.rsplit("/", 1)
    try:
        infos = fs.get_file_info(pafs.FileSelector(parent))
    except OSError:
        infos = []
    older = sorted((i.path for i in infos if i.base_name.startswith("checkpoint_") and i.base_name < name), reverse=True)
    return [tune.Checkpoint(p, filesystem=fs) for p in (checkpoint.path, *older)]


def restore_run(config: TrainConfig, data: PreparedData, checkpoint: tune.Checkpoint | None) -> TrainingRun:
    """A run for the trial: continued from its newest readable checkpoint, or new.

    A torn or corrupt checkpoint must not doom the trial: the older one Tune kept is
    tried next, and with none readable the trial starts again from scratch, with a
    warning each time. A checkpoint that would run code is refused (the trial errors
    with that message) and never executed.
    """
    if checkpoint is None:
        return TrainingRun(config, data)
    for candidate in kept_checkpoints(checkpoint):
        try:
            with candidate.as_directory() as folder:
                state = checkpoints.load(Path(folder) / checkpoints.RUN_STATE_FILE, checkpoints.RUN)
        except checkpoints.UnsafeCheckpointError:
            raise
        except (checkpoints.CheckpointError, OSError) as e:
            log.warning("trial checkpoint %s unusable (%s); trying the one before it", candidate.path, e)
            continue
        run = TrainingRun(config, data)
        run.load_state_dict(state)
        if candidate.path != checkpoint.path:
            log.warning("trial continues from the older checkpoint %s (epoch %d)", candidate.path, run.epoch)
        return run
    log.warning("no readable checkpoint for this trial (newest %s); restarting it from scratch", checkpoint.path)
    return TrainingRun(config, data)


def make_trainable(data: PreparedData, settings: SweepSettings, space: SearchSpace) -> Callable[[dict[str, Any]], None]:
    """The function Tune runs per trial, with the data put into the object store once.

    Args:
        data: prepared windows, shared by all trials through Ray's object store.
        settings: the sweep's settings (windows, epoch budget).
        space: the sweep's space (its fixed fields).
    """
    return tune.with_parameters(train_trial, data=data, settings=settings, space=space)


def hide_gpus_unless_given() -> None:
    """A trial that Ray gave no GPU trains on the CPU, whatever GPUs the machine has.

    Ray 2.60 no longer hides the GPUs from a worker given none (ray-project/ray#54868), so
    device "auto" put every trial of ``--gpus-per-trial 0`` on a GPU machine's GPU, unknown to
    Ray's accounting: 8 trials of its 16 CPUs shared one H200, where a smaller card runs out
    of memory. Called before the trial touches CUDA (which reads the variable once, at its
    start), as Ray's own ``RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=1`` would do on a cluster set up so.
    """
    if not ray.get_gpu_ids():
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def train_trial(config: dict[str, Any], data: PreparedData, settings: SweepSettings, space: SearchSpace) -> None:
    """Train one trial, reporting every epoch; a diverged trial reports and ends."""
    # One "Checkpoint successfully created" INFO line per epoch per trial drowns the status table.
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    hide_gpus_unless_given()
    threads = _trial_cpus()
    # The one place a trial's config is built (tuning.trials); every checkpoint keeps it.
    cfg = trial_config(config, settings, space, num_threads=threads)
    run = restore_run(cfg, data, tune.get_checkpoint())
    while not run.finished:
        if os.environ.get("TUNING_FAULT_TRIAL_ERROR"):  # errored-trial tests (tuning.faults)
            from tuning.faults import fail_trial

            fail_trial(config, run.epoch)
        try:
            metrics = run.run_epoch()
        except TrainingDivergedError as e:
            log.warning("trial diverged: %s", e)
            # No checkpoint: there is nothing worth resuming from a diverged run.
            tune.report({
                "epoch": run.epoch + 1, METRIC: DIVERGED_LOSS, "val_loss": math.nan, "val_rmse": math.nan,
                "val_mape": math.nan, "train_loss": e.loss, "learning_rate": e.learning_rate, "grad_norm": math.nan,
                BEST_KEY: run.early_stopping.best, "diverged": True, "stopped_early": False,
            })  # fmt: skip
            return
        metrics = {key: metrics[key] for key in REPORTED_METRICS if key in metrics}
        metrics.update(diverged=False, stopped_early=run.stopped_early)
        _report(metrics, run)
        if os.environ.get("TUNING_FAULT_EPOCH_SECONDS"):  # the kill tests' slow trials (tuning.faults)
            from tuning.faults import slow_epoch

            slow_epoch(config)
    # Free what a reused actor would otherwise keep until the next trial.
    del run
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
