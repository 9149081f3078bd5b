"""Fault injection for the resume tests (``TUNING_FAULT_KILL_AFTER_TRIALS=N``).

The search process SIGKILLs itself, as ``kill -9`` would, once Tune's snapshot on
storage records N finished trials and at least one trial mid-flight with a
checkpoint: a deterministic point at which some trials are durably done and
another must continue from its checkpoint. A module of its own so that Tune can
pickle the callback into ``tuner.pkl`` by reference; the variable is read when the
callback runs, so the restored copy in a resumed sweep stays quiet.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray.tune import Callback

from tuning.analysis import newest_snapshot
from tuning.errors import UserError

FAULT_ENV = "TUNING_FAULT_KILL_AFTER_TRIALS"


@dataclass(frozen=True)
class SnapshotTrial:
    status: str
    last_epoch: int | None
    checkpointed: bool


def snapshot(experiment_dir: str) -> dict[str, SnapshotTrial]:
    """Each trial's status in the newest experiment snapshot on (local) storage."""
    try:
        records = newest_snapshot(Path(experiment_dir))
    except (OSError, json.JSONDecodeError, UserError):
        return {}  # being written right now
    out = {}
    for trial, runtime in records:
        last = runtime.get("last_result") or {}
        out[trial["trial_id"]] = SnapshotTrial(trial["status"], last.get("epoch"), bool(last.get("checkpoint_dir_name")))
    return out


class KillAfterTrials(Callback):
    """SIGKILL the search process at the point :mod:`tuning.faults` describes."""

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        limit = os.environ.get(FAULT_ENV)
        if not limit or not trials:
            return
        state = snapshot(trials[0].storage.experiment_fs_path).values()
        finished = sum(t.status == "TERMINATED" for t in state)
        mid_flight = any(t.status == "RUNNING" and t.checkpointed for t in state)
        if finished >= int(limit) and mid_flight:
            os.kill(os.getpid(), signal.SIGKILL)
