"""ASHA whose rungs survive an interrupted sweep.

Ray 2.60 does not save scheduler state (ray issue #30838): ``Tuner.restore``
unpickles the scheduler from ``tuner.pkl`` as it was when the sweep started, so
every rung is empty again and each resumed trial runs to the full budget. This
subclass writes its rungs to a JSON file in the experiment folder after every
decision and reads it back on the first hook after a restore, so a resumed sweep
stops trials exactly as an uninterrupted one would.

The file lives in a subfolder on purpose: Tune copies the top-level ``*.json``
files of an experiment into its staging folder on restore and later syncs them
back, which would overwrite a fresher file at the top level with a stale copy.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from tuning import storage

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

_VERSION = 1


class PersistentASHA(AsyncHyperBandScheduler):
    """:class:`AsyncHyperBandScheduler` with its state in ``state_path`` (JSON).

    Also records which trials it stopped before ``max_t`` (``stopped``), which
    Tune's results do not tell apart from trials that finished.
    """

    def __init__(self, state_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state_path = state_path
        self.stopped: dict[str, float] = {}
        self._loaded = False  # also False in the copy Tune unpickles on restore
        self._saved_brackets: dict[str, int] = {}

    # --- state ----------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        index = {id(b): i for i, b in enumerate(self._brackets)}
        return {
            "version": _VERSION,
            "metric": self._metric,
            "mode": self._mode,
            "time_attr": self._time_attr,
            "max_t": self._max_t,
            "num_stopped": self._num_stopped,
            "trial_bracket": {**self._saved_brackets, **{t: index[id(b)] for t, b in self._trial_info.items()}},
            "rungs": [[[milestone, dict(recorded)] for milestone, recorded in b._rungs] for b in self._brackets],
            "stopped": self.stopped,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != _VERSION or len(state["rungs"]) != len(self._brackets):
            raise ValueError(f"{self.state_path}: scheduler state of another layout; start the sweep under a new --name")
        for bracket, saved in zip(self._brackets, state["rungs"], strict=True):
            if [m for m, _ in bracket._rungs] != [m for m, _ in saved]:
                raise ValueError(
                    f"{self.state_path}: rung milestones changed (other max_t or grace period); keep the budget when resuming"
                )
            bracket._rungs = [(m, {k: float(v) for k, v in rec.items()}) for m, rec in saved]
        self._num_stopped = state["num_stopped"]
        self._saved_brackets = dict(state["trial_bracket"])
        self.stopped = dict(state["stopped"])

    def _save(self) -> None:
        storage.write_text(self.state_path, json.dumps(self.get_state()))

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            if storage.exists(self.state_path):
                self.set_state(json.loads(storage.read_text(self.state_path)))

    # --- hooks ----------------------------------------------------------------------
    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self._ensure_loaded()
        super().on_trial_add(tune_controller, trial)
        saved = self._saved_brackets.pop(trial.trial_id, None)
        if saved is not None:  # a restored trial keeps its bracket
            self._trial_info[trial.trial_id] = self._brackets[saved]
        self._save()

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        self._ensure_loaded()
        if trial.trial_id in self.stopped:
            # Stopped before a crash that came ahead of Tune's snapshot: stay stopped.
            return TrialScheduler.STOP
        if not _finite(result.get(str(self._metric))):
            # A diverged trial (Inf loss) ends anyway; recorded in a rung, its -inf
            # would turn the percentile cutoff into NaN and stop pruning altogether.
            return TrialScheduler.STOP
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and result.get(self._time_attr, 0) < self._max_t:
            self.stopped[trial.trial_id] = result[self._time_attr]
        self._save()
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> None:
        self._ensure_loaded()
        if _finite(result.get(str(self._metric))):
            super().on_trial_complete(tune_controller, trial, result)
        else:
            self._trial_info.pop(trial.trial_id, None)
        self._save()

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._ensure_loaded()
        self._trial_info.pop(trial.trial_id, None)  # the base class's `del` fails on unknown ids
        self._save()


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
