"""The sweep's Optuna searcher as Ray Tune runs it: built (warm-started or cold) and extended.

Two things Tune does not offer directly, kept in this one Ray adapter:

- a warm start (:mod:`tuning.warm_start`): the searcher gets the space as Optuna
  distributions, so its study exists at once and the earlier trials go into it
  through ``OptunaSearch.add_evaluated_point`` (its ``evaluated_rewards`` would
  add the defaults as evaluated instead of running them);
- more trials for a restored sweep: ``Tuner.restore`` keeps ``num_samples`` from
  ``tuner.pkl`` and the search generator's saved state, so :func:`extend` swaps in
  a generator that raises the count once its state is restored (Ray 2.60's
  ``Tuner._local_tuner._tune_config``; ``tests/test_resume_extend.py`` fails loudly
  if that moves).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
from ray.tune.search import ConcurrencyLimiter, Searcher, SearchGenerator
from ray.tune.search.optuna import OptunaSearch

from tuning.errors import UserError
from tuning.metrics import METRIC, MODE
from tuning.optuna_study import distribution
from tuning.spaces import SearchSpace
from tuning.warm_start import WarmStart


def startup_trials(num_samples: int) -> int:
    """Random proposals before TPE models the results: a third of a small sweep, at most Optuna's 10.

    With Optuna's default of 10, a 12-trial sweep is a random search: in the default
    sweep half of those 10 drew learning rates under 3.5e-4, which ASHA then cut at the
    first rung on every data set tried.
    """
    return min(10, max(4, num_samples // 3))


def build_searcher(
    space: SearchSpace, *, seed: int, study_name: str, warm: WarmStart | None = None, num_samples: int | None = None
) -> OptunaSearch:
    """TPE over ``space``: the documented defaults first, then a warm start's first configs.

    The warm start's known trials are in the sampler's study before the first proposal.
    """
    from optuna.trial import TrialState

    searcher = OptunaSearch(
        space={name: distribution(p) for name, p in space.parameters.items()},
        metric=METRIC,
        mode=MODE,
        points_to_evaluate=[space.first_point(), *(warm.first if warm else [])],
        study_name=study_name,
        # The seed lives in the sampler only: OptunaSearch ignores its own seed when given a sampler.
        sampler=optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            n_startup_trials=startup_trials(num_samples or space.budget.num_samples),
            constant_liar=True,
        ),
    )
    for trial in warm.known if warm else []:
        searcher.add_evaluated_point(
            trial.params,
            trial.value if trial.value is not None else float("nan"),
            error=trial.state == TrialState.FAIL,
            pruned=trial.state == TrialState.PRUNED,
            intermediate_values=trial.intermediate or None,
        )
    return searcher


class MoreTrials(SearchGenerator):
    """A restored search generator that goes on until ``num_samples`` trials exist.

    Its count is raised to ``num_samples`` (a sweep that grows), and it is no longer
    finished while fewer trials than that were created: a stop ends a generator for
    good (Ctrl-C, the time budget's stopper), and a resumed sweep must run the rest.
    """

    def __init__(self, searcher: Searcher, num_samples: int, done: Mapping[str, float | None] | None = None) -> None:
        super().__init__(searcher)
        self.num_samples = num_samples
        self.done = dict(done or {})

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self._total_samples = max(self._total_samples, self.num_samples)
        if self._counter < self._total_samples:
            self._finished = False

    def restore_from_dir(self, dirpath: str) -> None:
        super().restore_from_dir(dirpath)
        # Tune ends the running trials of a stopped experiment (Ctrl-C, the time budget)
        # without telling the searcher: its concurrency limiter would count them as running
        # for ever and never suggest again. Each is told now, with its last validation MAE.
        live: set[str] = getattr(self.searcher, "live_trials", set())
        for trial_id in sorted(live & self.done.keys()):
            value = self.done[trial_id]
            self.searcher.on_trial_complete(trial_id, result=None if value is None else {METRIC: value})


def extend(tuner: Any, num_samples: int, done: Mapping[str, float | None] | None = None) -> None:
    """Let a restored Tuner run until ``num_samples`` trials exist (the first ones are not re-run).

    Every resume goes through here, also one that does not grow the sweep: the stop
    that ended the last run may have marked the search finished. ``done``: the trials
    that ended so far, each with its last validation MAE (None: none reported).
    """
    tune_config: Any = getattr(getattr(tuner, "_local_tuner", None), "_tune_config", None)
    searcher = getattr(tune_config, "search_alg", None)
    if not isinstance(searcher, Searcher):
        raise UserError(
            "this Ray version restores tuners in a way tuning.searcher.extend does not know, so the sweep cannot "
            "resume; start a new sweep with --warm-start NAME, which knows its trials"
        )
    if tune_config.max_concurrent_trials:
        # Tune wraps a Searcher in this itself, but not a SearchGenerator; its saved state is restored into it.
        searcher = ConcurrencyLimiter(searcher, max_concurrent=tune_config.max_concurrent_trials)
        tune_config.max_concurrent_trials = None
    tune_config.search_alg = MoreTrials(searcher, num_samples, done)
