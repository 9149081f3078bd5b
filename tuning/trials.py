"""A trial's full config: built in one place, and read back from the trial's checkpoint.

The trainable builds each trial's :class:`TrainConfig` with :func:`trial_config`
and saves it in every checkpoint; the export reads it back from there
(:func:`saved_trial_config`), and rebuilds it with the same function only where no
checkpoint is left. No Ray here: export and analysis use it without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuning import checkpoints, storage
from tuning.config import TrainConfig
from tuning.spaces import SearchSpace
from tuning.sweep_settings import SweepSettings


def trial_config(
    sampled: Mapping[str, Any], settings: SweepSettings, space: SearchSpace, *, num_threads: int = 0, source: str = "trial config"
) -> TrainConfig:
    """The full config of the trial that samples ``sampled`` in this sweep.

    The space's fixed fields, then the sampled values, then what the sweep decides:
    the windows, the epoch budget (ASHA's ``max_t``), the threads, and no engine
    checkpoints (Tune keeps a trial's checkpoints).
    """
    values = {
        **space.base_config(),
        **sampled,
        "len_source": settings.len_source,
        "len_target": settings.len_target,
        "max_epochs": settings.max_epochs,
        "num_threads": num_threads,
        "save_checkpoints": False,
    }
    return TrainConfig.from_dict(values, source=source)


def checkpoint_folders(logdir: str) -> list[Path]:
    """A local trial folder's checkpoints, newest first; empty for a remote one."""
    if storage.is_uri(logdir):
        return []
    return sorted(Path(logdir).glob("checkpoint_*"), reverse=True)


def saved_trial_config(logdir: str) -> TrainConfig | None:
    """The config a trial trained with, as its newest readable checkpoint holds it; None without one."""
    found = checkpoints.load_first((f / checkpoints.RUN_STATE_FILE for f in checkpoint_folders(logdir)), checkpoints.RUN)
    if found is None:
        return None
    path, state = found
    return TrainConfig.from_dict(state["config"], source=str(path))
