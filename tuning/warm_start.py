"""Warm starts: a new sweep whose searcher already knows an earlier sweep's trials.

Ray's ``Tuner.restore`` continues one experiment; it cannot seed a new study (ray
#18847). Here the earlier sweep's trials are read (never written) and turned into
what the new study's Optuna sampler takes:

- ``known``: trials whose configs lie in the new space go to the sampler as
  evaluated trials with their values (complete, pruned by ASHA, or failed), so TPE
  models them from the first proposal on;
- ``first``: where the space changed, the earlier top K configs, moved into the new
  space, are evaluated first (after the documented defaults), so the new sweep
  measures the earlier best under its own settings.

Each earlier trial's full config is rebuilt with :func:`tuning.trials.trial_config`,
so a parameter the earlier sweep fixed (or left at its default) and the new one
searches takes the value the trial really ran with. Values outside the new range are
clipped into it, choices it lacks fall back to the new space's default, parameters it
no longer searches are dropped; :attr:`WarmStart.notes` says so, one line per kind.
No Ray here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from optuna.trial import TrialState

from tuning.analysis import BEST_COLUMN, load_curves, load_sweep
from tuning.config import TrainConfig
from tuning.errors import UserError
from tuning.metrics import METRIC
from tuning.optuna_study import trial_state
from tuning.spaces import Param, SearchSpace
from tuning.storage import Experiment
from tuning.sweep_settings import SweepSettings
from tuning.trials import trial_config

DEFAULT_TOP = 3
"""Earlier configs evaluated first when the space changed and no ``--warm-start-top`` is given."""


@dataclass(frozen=True)
class KnownTrial:
    """An earlier trial as the new study's sampler sees it."""

    params: dict[str, Any]
    state: TrialState  # COMPLETE, PRUNED (stopped by ASHA) or FAIL (errored, diverged)
    value: float | None  # the best validation MAE it reached; None when it failed
    intermediate: list[float] = field(default_factory=list)  # per epoch, from epoch 1


@dataclass(frozen=True)
class WarmStart:
    """What a new sweep takes from an earlier one."""

    source: str
    same_space: bool
    known: list[KnownTrial]
    first: list[dict[str, Any]]
    notes: list[str]


@dataclass
class _Projection:
    """An earlier config moved into the new space, and what had to change."""

    params: dict[str, Any]
    clipped: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not (self.clipped or self.replaced)


def _project(config: TrainConfig, space: SearchSpace) -> _Projection:
    out = _Projection({})
    defaults = space.first_point()
    for name, p in space.parameters.items():
        value = getattr(config, name)
        if p.contains(value):
            out.params[name] = value
        elif p.distribution == "choice":
            out.params[name] = defaults[name]
            out.replaced.append(name)
        else:
            out.params[name] = _clip(p, value)
            out.clipped.append(name)
    return out


def _clip(p: Param, value: Any) -> Any:
    assert p.low is not None and p.high is not None
    clipped = min(max(float(value), p.low), p.high)
    return int(round(clipped)) if p.distribution == "int" else clipped


def _values(curve: pd.DataFrame) -> list[float]:
    finite = curve[np.isfinite(curve[METRIC].to_numpy(dtype=float))].sort_values("epoch")
    return [float(v) for v in finite[METRIC]]


def plan(earlier: Experiment, space: SearchSpace, settings: SweepSettings, *, top: int | None = None) -> WarmStart:
    """Read the earlier sweep in ``earlier`` and plan the warm start of a sweep over ``space``.

    Args:
        earlier: the finished (or interrupted) sweep to learn from; only read.
        space: the new sweep's space.
        settings: the new sweep's settings (to say where the earlier one differs).
        top: earlier best configs to evaluate first; default :data:`DEFAULT_TOP` when
            the space changed, none when it did not (its trials are all known then).

    Raises:
        UserError: the earlier sweep is missing or has no trial with a result.
    """
    old_settings = SweepSettings.load(earlier)
    old_space = old_settings.load_space()
    trials = load_sweep(earlier.path)
    curves = load_curves(earlier.path)
    done = trials[trials["epochs_run"] > 0] if len(trials) else trials
    if done.empty:
        raise UserError(
            f"--warm-start {earlier.name}: the sweep in {earlier.path} has no trial with a result yet; nothing to learn from"
        )
    same_space = old_space.parameters == space.parameters
    by_trial = {tid: group for tid, group in curves.groupby("trial_id")} if len(curves) else {}

    known: list[KnownTrial] = []
    ranked: list[dict[str, Any]] = []  # projected configs of trials with a finite value, best first
    clipped: dict[str, int] = {}
    replaced: dict[str, int] = {}
    unfinished = 0
    for _, row in done.iterrows():  # load_sweep sorts best first
        config = trial_config({k: row[k] for k in old_space.parameters}, old_settings, old_space,
                              source=f"{earlier.path} trial {row['trial_id']}")  # fmt: skip
        projection = _project(config, space)
        for name in projection.clipped:
            clipped[name] = clipped.get(name, 0) + 1
        for name in projection.replaced:
            replaced[name] = replaced.get(name, 0) + 1
        state = trial_state(row)
        if state == TrialState.RUNNING:
            unfinished += 1
            continue
        finite = math.isfinite(float(row[BEST_COLUMN]))
        if finite:
            ranked.append(projection.params)
        if projection.exact:
            value = float(row[BEST_COLUMN]) if state != TrialState.FAIL else None
            curve = by_trial.get(row["trial_id"], curves.iloc[0:0])
            known.append(KnownTrial(projection.params, state, value, _values(curve)))

    count = DEFAULT_TOP if top is None and not same_space else top or 0
    first: list[dict[str, Any]] = []
    for params in ranked:
        if len(first) >= count:
            break
        if params != space.first_point() and params not in first:
            first.append(params)

    notes = [f"warm start from {earlier.path}: {len(known)} of its {len(trials)} trials go to the sampler as evaluated"
             + (f"; its best {len(first)} config(s) run first, after the defaults" if first else "")]  # fmt: skip
    if not same_space:
        notes.append(f"the search space changed ({old_space.source} -> {space.source})")
    dropped = [n for n in old_space.parameters if n not in space.parameters]
    if dropped:
        notes.append(f"parameters the new space does not search are dropped: {', '.join(dropped)}")
    added = [n for n in space.parameters if n not in old_space.parameters]
    if added:
        notes.append(f"parameters the earlier sweep did not search take the values its trials ran with: {', '.join(added)}")
    if clipped:
        notes.append("values outside the new ranges are clipped into them (those trials only run first, never count as known): "
                     + ", ".join(f"{n} ({c} trials)" for n, c in clipped.items()))  # fmt: skip
    if replaced:
        notes.append("choices the new space lacks become its default (those trials only run first): "
                     + ", ".join(f"{n} ({c} trials)" for n, c in replaced.items()))  # fmt: skip
    if unfinished:
        notes.append(f"{unfinished} unfinished trial(s) of the earlier sweep are left out")
    differs = _differences(old_settings, old_space, settings, space)
    if differs:
        notes.append(
            f"the earlier sweep ran with other settings ({'; '.join(differs)}); its values guide the sampler all the same"
        )
    return WarmStart(earlier.path, same_space, known, first, notes)


def _differences(old: SweepSettings, old_space: SearchSpace, new: SweepSettings, space: SearchSpace) -> list[str]:
    """Settings that make the earlier trials' values not quite comparable with the new ones."""
    out = []
    for name in ("data", "data_origin", "len_source", "len_target", "max_epochs", "columns", "exclude_columns"):
        if getattr(old, name) != getattr(new, name):
            out.append(f"{name} {getattr(old, name)} -> {getattr(new, name)}")
    fixed = sorted(set(old_space.fixed) | set(space.fixed))
    old_base, new_base = TrainConfig.from_dict(old_space.fixed), TrainConfig.from_dict(space.fixed)
    for name in fixed:
        if name in space.parameters or name in old_space.parameters:
            continue
        if getattr(old_base, name) != getattr(new_base, name):
            out.append(f"fixed {name} {getattr(old_base, name)} -> {getattr(new_base, name)}")
    return out
