"""Fault injection for the resume tests (``TUNING_FAULT_KILL_AFTER_TRIALS=N``) and errored trials.

The search process SIGKILLs itself, as ``kill -9`` would, once Tune's state records N
finished trials and at least one trial mid-flight with a checkpoint Tune has registered: a
deterministic point at which some trials are durably done and another must continue from
its checkpoint. It first writes that state to storage and waits for the copy, and kills
only if storage then holds it, so the kill comes between Tune's copies to storage, never
during one (a torn file is a different fault, tested on its own). With
``TUNING_FAULT_SIGNAL=SIGSTOP`` the process stops itself there instead, so that a test
can look at the live sweep (its lock) and then ``kill -9`` it from outside. A
module of its own so that Tune can pickle the callback into ``tuner.pkl`` by
reference; the variable is read when the callback runs, so the restored copy in a
resumed sweep stays quiet. The storage may be a folder or a URI (``s3://...``).

``TUNING_FAULT_TRIAL_ERROR=defaults`` makes the documented defaults' trial raise once it
has reported its first epoch (:func:`fail_trial`, called by the trainable): a sweep in
which one trial, with real metrics, ends as ERROR while the others finish (or, in a
sweep of one trial, all trials error). The variable must reach Ray's workers: the sweep starts its own Ray.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

from ray import cloudpickle
from ray.tune import Callback

from tuning.analysis import newest_snapshot
from tuning.errors import UserError

FAULT_ENV = "TUNING_FAULT_KILL_AFTER_TRIALS"
FAULT_SIGNAL_ENV = "TUNING_FAULT_SIGNAL"
TRIAL_ERROR_ENV = "TUNING_FAULT_TRIAL_ERROR"
EPOCH_SECONDS_ENV = "TUNING_FAULT_EPOCH_SECONDS"


def slow_epoch(sampled: dict[str, Any]) -> None:
    """Pause a trial after each report for ``TUNING_FAULT_EPOCH_SECONDS`` (the kill tests' slow trials).

    The kill point needs a snapshot that shows a finished trial beside a running one
    with a checkpoint, and the same again once Tune's uploads are through. Tiny trials
    on a fast machine can finish between those looks, so the kill tests make every
    epoch last this long: a slower trial, not a wait for anything. The defaults' trial
    (the first) takes twice as long, so that it is still running when the trial started
    beside it finishes: in lockstep the two ended within a snapshot of each other.
    """
    seconds = float(os.environ.get(EPOCH_SECONDS_ENV) or 0)
    if seconds > 0:
        time.sleep(seconds * (2 if _is_defaults(sampled) else 1))


def _is_defaults(sampled: dict[str, Any]) -> bool:
    """Whether a trial's sampled values are the documented defaults (the sweep's first trial)."""
    from tuning.config import DEFAULTS

    return all(getattr(DEFAULTS, k) == v for k, v in sampled.items())


class InjectedTrialError(RuntimeError):
    """The error :func:`fail_trial` raises in a trial."""


def fail_trial(sampled: dict[str, Any], epoch: int) -> None:
    """Raise before an epoch in the trial ``TUNING_FAULT_TRIAL_ERROR=defaults`` names (``epoch``: those done so far).

    The documented defaults' trial fails once it has reported an epoch, so it has
    metrics, and its retry from that checkpoint fails at once.
    """
    if os.environ.get(TRIAL_ERROR_ENV) == "defaults" and epoch >= 1 and _is_defaults(sampled):
        raise InjectedTrialError(f"injected fault: the defaults' trial fails after epoch {epoch} ({TRIAL_ERROR_ENV}=defaults)")


@dataclass(frozen=True)
class SnapshotTrial:
    status: str
    last_epoch: int | None
    checkpoint_epoch: int | None
    """Epoch of the newest checkpoint Tune registered: what a resumed trial continues from.

    The last result can name a newer checkpoint that Tune has not registered yet (it
    does so once the trial's save task returns); the trial would repeat those epochs.
    """

    @property
    def checkpointed(self) -> bool:
        return self.checkpoint_epoch is not None


def _checkpoint_epoch(runtime: dict[str, Any]) -> int | None:
    """The epoch of the trial's latest registered checkpoint (Tune pickles its checkpoint manager)."""
    blob = runtime.get("checkpoint_manager")
    if not isinstance(blob, dict) or "value" not in blob:
        return None
    # Tune's own file, written by this test's sweep: Tune unpickles it the same way on restore.
    latest = cloudpickle.loads(bytes.fromhex(blob["value"])).latest_checkpoint_result
    return None if latest is None else latest.metrics.get("epoch")


def snapshot(experiment_dir: str) -> dict[str, SnapshotTrial]:
    """Each trial's status in the newest experiment snapshot on storage (a folder or a URI); empty while it is torn."""
    try:
        records = newest_snapshot(experiment_dir)
    except (OSError, json.JSONDecodeError, UserError):
        return {}  # half-written (a copy in flight, or a kill tore it): no decision on it
    out = {}
    for trial, runtime in records:
        last = runtime.get("last_result") or {}
        out[trial["trial_id"]] = SnapshotTrial(trial["status"], last.get("epoch"), _checkpoint_epoch(runtime))
    return out


def _controller() -> Any | None:
    """The running Tune controller, which a callback is not given: found among the live objects."""
    from ray.tune.execution.tune_controller import TuneController

    return next((obj for obj in gc.get_objects() if isinstance(obj, TuneController)), None)


def _live(trial: Any) -> SnapshotTrial:
    """A trial as the controller holds it now, read as :func:`snapshot` reads it from storage."""
    # run_metadata's result, as the snapshot stores it (Trial.last_result may ask a pending trial's actor)
    last, latest = trial.run_metadata.last_result, trial.latest_checkpoint_result
    return SnapshotTrial(trial.status, last.get("epoch"), None if latest is None else latest.metrics.get("epoch"))


class KillAfterTrials(Callback):
    """SIGKILL the search process at the point :mod:`tuning.faults` describes."""

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        limit = os.environ.get(FAULT_ENV)
        if not limit or not trials:
            return
        # Decided on the controller's own state, which holds still while this callback runs:
        # the snapshot on storage lags it by an upload, and a window of a second or two
        # (a trial stopped by ASHA while another has one epoch left) could pass between two
        # uploads unseen, so that the sweep ended without its fault (S3, about one run in five).
        live = {t.trial_id: _live(t) for t in trials}
        if not _kill_point(live, int(limit)):
            return
        controller = _controller()
        if controller is None:
            return
        # Write this state to storage now and wait for the copy: storage then holds one whole
        # copy showing the point (never a kill during a copy; a torn file is another fault).
        controller.checkpoint(force=True, wait=True)
        storage = trials[0].storage
        remote = storage.storage_filesystem.type_name == "s3"  # else a local filesystem (possibly wrapped)
        where = f"s3://{storage.experiment_fs_path}" if remote else storage.experiment_fs_path
        if _kill_point(snapshot(where), int(limit)):
            os.kill(os.getpid(), signal.SIGSTOP if os.environ.get(FAULT_SIGNAL_ENV) == "SIGSTOP" else signal.SIGKILL)


def _kill_point(state: dict[str, SnapshotTrial], finished_trials: int) -> bool:
    finished = sum(t.status == "TERMINATED" for t in state.values())
    return finished >= finished_trials and any(t.status == "RUNNING" and t.checkpointed for t in state.values())
