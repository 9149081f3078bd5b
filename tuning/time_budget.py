"""The sweep's time budget: a Tune stopper that each run of a sweep has whole.

Tune's own ``time_budget_s`` pickles its clock with the experiment, so a sweep it
stopped is out of time for good: ``--resume`` would stop at once, and a new
``--time-budget`` could not reach it. This stopper starts its clock at the first
step of every run, restored or new; a restored one reads the budget from
``sweep/sweep.json`` then, so a resume with ``--time-budget`` applies the new one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ray.tune.stopper import Stopper

from tuning.storage import Experiment

log = logging.getLogger("tuning.search")


class TimeBudget(Stopper):
    """Stops every trial, and the search, once this run of the sweep has used its time budget."""

    def __init__(self, exp: Experiment, seconds: float | None) -> None:
        self.exp = exp
        self._seconds = seconds
        self._deadline: float | None = None
        self._reload = False

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        now = time.monotonic()
        if self._deadline is None:
            if self._reload:
                from tuning.sweep_settings import SweepSettings

                self._seconds = SweepSettings.load(self.exp).time_budget_s
                self._reload = False
            self._deadline = now + self._seconds if self._seconds is not None else float("inf")
        if now < self._deadline:
            return False
        if self._deadline != float("-inf"):
            log.info("time budget of %.0f s used: stopping the running trials", self._seconds)
            self._deadline = float("-inf")  # said once; stays out of time
        return True

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Unpickled for a resumed run: its clock starts again at its first step, with
        # the budget the sweep has now.
        self.__dict__.update(state)
        self._deadline = None
        self._reload = True
