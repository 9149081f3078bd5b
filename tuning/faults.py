"""Fault injection for the resume tests (``TUNING_FAULT_KILL_AFTER_TRIALS=N``).

The search process SIGKILLs itself, as ``kill -9`` would, once Tune's snapshot on
storage records N finished trials: a deterministic point at which some trials are
durably done and others are mid-flight. A module of its own so that Tune can
pickle the callback into ``tuner.pkl`` by reference; the variable is read when the
callback runs, so a restored copy in a resumed sweep stays quiet.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from ray.tune import Callback

FAULT_ENV = "TUNING_FAULT_KILL_AFTER_TRIALS"


def snapshot_finished(experiment_dir: str) -> int:
    """Finished trials in the newest experiment snapshot on (local) storage."""
    states = sorted(Path(experiment_dir).glob("experiment_state-*.json"))
    if not states:
        return 0
    try:
        doc = json.loads(states[-1].read_text())
    except (OSError, json.JSONDecodeError):
        return 0  # being written right now
    return sum(json.loads(t)["status"] == "TERMINATED" for t, _ in doc["trial_data"])


class KillAfterTrials(Callback):
    """SIGKILL the search process once the snapshot on storage holds N finished trials."""

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        limit = os.environ.get(FAULT_ENV)
        if not limit or not trials:
            return
        if snapshot_finished(trials[0].storage.experiment_fs_path) >= int(limit):
            os.kill(os.getpid(), signal.SIGKILL)
