"""How long a sweep will take, said once its first epoch has been timed.

Tune's status table says how long a sweep has run, never how long it will. On the
embedded data that does not matter (a few minutes), but on a real network (200 sensors x
months of 5-minute steps) an epoch takes most of a minute on 2 cores, and the default
budget (12 trials, ASHA up to 100 epochs) runs for hours: a user should learn that
from the first epoch, with the flag that bounds it, not after an afternoon.

The estimate replays ASHA's rule (a trial stops at a rung when its result is worse than
the top ``1/reduction_factor`` of those recorded there before it, stopped ones included) over trials of random
quality, so it counts the epochs Ray's ``AsyncHyperBandScheduler`` would grant them.
Early stopping with patience only shortens trials (on the embedded data the default sweep
trained 151 epochs of the 421 this grants), so the figure is worded as the most to expect;
TPE's later trials pass more rungs than random ones, which leans the other way. It is an
order of magnitude to plan by. A module of its own so that Tune
can pickle the callback into ``tuner.pkl`` by reference.
"""

from __future__ import annotations

import bisect
import logging
import random
from typing import Any

from ray.tune import Callback

from tuning.storage import Experiment
from tuning.sweep_settings import SweepSettings

log = logging.getLogger("tuning.search")

SIMULATED_SWEEPS = 200
"""Replays averaged per estimate: the mean of the epoch count settles to ~1 % by then."""


def asha_milestones(grace_period: int, reduction_factor: int, max_epochs: int) -> list[int]:
    """The epochs below ``max_epochs`` at which ASHA may stop a trial, earliest first (Ray 2.60's ``_Bracket``)."""
    milestones = []
    epoch = grace_period
    while epoch < max_epochs:
        milestones.append(epoch)
        epoch *= reduction_factor
    return milestones


def expected_epochs(num_samples: int, grace_period: int, reduction_factor: int, max_epochs: int, *, seed: int = 0) -> float:
    """Mean epochs a sweep of ``num_samples`` trials trains under ASHA, trials of random quality.

    Between ``num_samples * grace_period`` (every trial stopped at the first rung) and
    ``num_samples * max_epochs`` (none stopped). Trials are taken in the order they start,
    as with one trial at a time; concurrency changes which trial a rung sees first, not
    how many epochs the rungs grant on average.
    """
    milestones = asha_milestones(grace_period, reduction_factor, max_epochs)
    rng = random.Random(seed)
    keep = 1.0 - 1.0 / reduction_factor
    sweeps = _sweeps(num_samples)
    total = 0
    for _ in range(sweeps):
        recorded: list[list[float]] = [[] for _ in milestones]  # each kept sorted
        for _ in range(num_samples):
            quality = rng.random()
            epochs = max_epochs
            for rung, milestone in zip(recorded, milestones, strict=True):
                stop = bool(rung) and quality < _percentile(rung, keep)
                bisect.insort(rung, quality)  # a stopped trial's result counts at its rung too
                if stop:
                    epochs = milestone
                    break
            total += epochs
    return total / sweeps


def _sweeps(num_samples: int) -> int:
    """:data:`SIMULATED_SWEEPS`, fewer for sweeps of thousands of trials, whose mean varies less (~10 ms in all)."""
    return max(10, min(SIMULATED_SWEEPS, 2400 // max(num_samples, 1)))


def _percentile(ordered: list[float], q: float) -> float:
    """``numpy.percentile(values, 100 * q)`` of sorted values, linear interpolation, as Ray's cutoff takes it."""
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def estimate_line(epoch_s: float, settings: SweepSettings, *, concurrent: int, trials_done: int = 0) -> str:
    """The one line a sweep logs once its first epoch is timed (``trials_done``: finished in earlier runs)."""
    from tuning.search import format_duration

    left = max(settings.num_samples - trials_done, 1)
    at_once = max(1, min(concurrent, left))
    epochs = expected_epochs(left, settings.grace_period, settings.reduction_factor, settings.max_epochs)
    likely = epochs * epoch_s / at_once
    longest = left * settings.max_epochs * epoch_s / at_once
    which = f"the rest of the sweep ({left} of {settings.num_samples} trials)" if trials_done else f"its {left} trials"
    line = (
        f"sweep: an epoch takes ~{_seconds(epoch_s)} here; with {at_once} trial{'s' if at_once > 1 else ''} at once, "
        f"{which} may take up to about {format_duration(_rounded(likely))} (~{epochs:.0f} epochs as ASHA stops weak "
        f"trials, fewer as early stopping ends converged ones; {format_duration(_rounded(longest))} if neither stopped any)"
    )
    budget = settings.time_budget_s
    if budget is not None:
        if budget < likely:
            line += f"; the time budget ends it after {format_duration(budget)}"
    elif likely > 15 * 60:
        line += "; --time-budget (e.g. 1h) bounds it, and --resume continues it later"
    return line


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def _rounded(seconds: float) -> float:
    """Whole minutes from ten minutes up, whole seconds below: the estimate is no finer."""
    return round(seconds / 60) * 60 if seconds >= 600 else round(seconds)


class SweepEta(Callback):
    """Logs :func:`estimate_line` after the first epoch reported in this run of the sweep.

    A resumed run says it again, for the trials it has left, with the settings the sweep
    has now (``--resume`` may give more trials or a new time budget).
    """

    def __init__(self, exp: Experiment, settings: SweepSettings, *, concurrent: int) -> None:
        self.exp = exp
        self.settings = settings
        self.concurrent = concurrent
        self._said = False
        self._reload = False

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any) -> None:
        epoch_s = result.get("epoch_time_s")
        if self._said or not isinstance(epoch_s, int | float) or not epoch_s > 0:
            return
        self._said = True
        if self._reload:
            try:
                self.settings = SweepSettings.load(self.exp)
            except Exception as e:  # a log line must never stop a sweep: estimate with the settings it started with
                log.debug("sweep estimate: %s", e)
        done = sum(1 for t in trials if t.status in ("TERMINATED", "ERROR"))
        log.info("%s", estimate_line(float(epoch_s), self.settings, concurrent=self.concurrent, trials_done=done))

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Unpickled for a resumed run, which says its own estimate.
        self.__dict__.update(state)
        self._said = False
        self._reload = True
