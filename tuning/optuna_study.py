"""A finished (or running) sweep as an Optuna study, so Optuna's tools can read it.

Ray Tune keeps its trials in its own files; ``optuna-dashboard`` and
``optuna.visualization`` read an Optuna storage. This module translates one into the
other: every Tune trial becomes an Optuna trial with its searched parameters and
their distributions (from the space file), its per-epoch validation metric as
intermediate values, its value and its state:

- ``COMPLETE``: ran its epoch budget or stopped on its own (early stopping);
- ``PRUNED``: ASHA stopped it;
- ``FAIL``: it errored, diverged (NaN/Inf loss) or never reported a finite value;
- ``RUNNING``: not finished yet (a sweep still running or interrupted).

A trial's value is the best (lowest) validation metric over its epochs, the same
number ``load_sweep`` ranks trials by and ``best_config.json`` exports, so the
dashboard's best trial is the sweep's best trial.

The study is written to ``optuna.db`` (SQLite) in the experiment folder, built in a
temporary file and moved into place, so re-running rewrites it whole and a reader
never sees half of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from tuning.analysis import BEST_COLUMN, load_curves, load_sweep
from tuning.metrics import METRIC, MODE
from tuning.spaces import Param, SearchSpace

STUDY_FILE = "optuna.db"
FINGERPRINT_ATTR = "tuning_fingerprint"
"""Study attribute holding a hash of the trials it was built from (to tell when it is outdated)."""
_USER_ATTRS = ("trial_id", "status", "epochs_run", "best_epoch", "best_val_mae", "stopped_by_asha", "diverged",
               "stopped_early", "is_default", "logdir")  # fmt: skip


def storage_url(folder: str | Path) -> str:
    """The SQLAlchemy URL of the study file in an experiment folder."""
    return f"sqlite:///{Path(folder).resolve() / STUDY_FILE}"


def distribution(p: Param) -> BaseDistribution:
    """The Optuna distribution of one parameter of a space file (log where sampled on a log scale)."""
    if p.distribution == "choice":
        return CategoricalDistribution(list(p.values))
    assert p.low is not None and p.high is not None
    if p.distribution == "int":
        return IntDistribution(int(p.low), int(p.high), log=p.log)
    return FloatDistribution(p.low, p.high, log=p.log)


def _plain(value: Any) -> Any:
    """numpy scalars and NaN as JSON-friendly Python values."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _param_value(dist: BaseDistribution, value: Any) -> Any:
    value = _plain(value)
    if isinstance(dist, CategoricalDistribution):
        # The choice object itself: pandas may hand back 1024.0 for the choice 1024.
        return next((c for c in dist.choices if c == value), value)
    if isinstance(dist, IntDistribution):
        return int(value)
    return float(value)


def trial_state(row: pd.Series) -> TrialState:
    """How one ``load_sweep`` row maps onto Optuna's trial states (see the module docstring)."""
    if row["diverged"] or row["status"] == "ERROR":
        return TrialState.FAIL
    if not row["finished"]:
        return TrialState.RUNNING
    if not math.isfinite(float(row[BEST_COLUMN])):
        return TrialState.FAIL
    return TrialState.PRUNED if row["stopped_by_asha"] else TrialState.COMPLETE


def build_trials(trials: pd.DataFrame, curves: pd.DataFrame, space: SearchSpace) -> list[FrozenTrial]:
    """One FrozenTrial per sweep trial, in the order Tune created them.

    Args:
        trials: :func:`tuning.analysis.load_sweep`'s frame.
        curves: :func:`tuning.analysis.load_curves`'s frame.
        space: the sweep's search space (for the distributions).
    """
    dists = {name: distribution(p) for name, p in space.parameters.items()}
    by_trial = {tid: group for tid, group in curves.groupby("trial_id")} if len(curves) else {}
    ordered = trials.assign(_order=trials["trial_index"].fillna(math.inf)).sort_values(["_order", "trial_id"])
    out = []
    for _, row in ordered.iterrows():
        state = trial_state(row)
        curve = by_trial.get(row["trial_id"], curves.iloc[0:0])
        finite = curve[np.isfinite(curve[METRIC].to_numpy(dtype=float))]
        trial = optuna.trial.create_trial(
            state=state,
            value=float(row[BEST_COLUMN]) if state in (TrialState.COMPLETE, TrialState.PRUNED) else None,
            params={name: _param_value(dist, row[name]) for name, dist in dists.items()},
            distributions=dists,
            user_attrs={key: _plain(row[key]) for key in _USER_ATTRS},
            intermediate_values={int(e): float(v) for e, v in zip(finite["epoch"], finite[METRIC])},
        )
        stamps = curve["timestamp"].dropna() if "timestamp" in curve else pd.Series(dtype=float)
        if len(stamps):
            # Tune stamps each report (whole seconds); the first report came one epoch after the start.
            end = dt.datetime.fromtimestamp(float(stamps.iloc[-1]))
            elapsed = float(row["time_total_s"]) if math.isfinite(float(row["time_total_s"])) else 0.0
            trial.datetime_start = end - dt.timedelta(seconds=elapsed)
            trial.datetime_complete = end if state.is_finished() else None
        out.append(trial)
    return out


def fingerprint(trials: Sequence[FrozenTrial], space: SearchSpace) -> str:
    """A hash of everything the study holds; equal hashes mean an up-to-date study."""
    doc = {
        "metric": METRIC,
        "space": {name: repr(distribution(p)) for name, p in space.parameters.items()},
        "trials": [
            # Not the datetimes: a trial that never reported gets "now" as its start.
            [t.state.name, t.value, t.params, t.intermediate_values, t.user_attrs]
            for t in trials
        ],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def direction() -> optuna.study.StudyDirection:
    return optuna.study.StudyDirection.MINIMIZE if MODE == "min" else optuna.study.StudyDirection.MAXIMIZE


def stored_fingerprint(folder: str | Path, name: str) -> str | None:
    """The fingerprint of the study in ``folder``; None when there is none or it cannot be read."""
    if not (Path(folder) / STUDY_FILE).is_file():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.load_study(study_name=name, storage=storage_url(folder))
    except Exception:  # noqa: BLE001 - a missing study, an older schema or a damaged file: rebuild it
        return None
    value = study.user_attrs.get(FINGERPRINT_ATTR)
    return str(value) if value is not None else None


def write_study(folder: str | Path, name: str, trials: Sequence[FrozenTrial], space: SearchSpace) -> Path:
    """Write ``trials`` as the study ``name`` into ``folder/optuna.db``, replacing what was there."""
    folder = Path(folder).resolve()
    target = folder / STUDY_FILE
    tmp = folder / f".{STUDY_FILE}.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    try:
        study = optuna.create_study(storage=f"sqlite:///{tmp}", study_name=name, direction=direction())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([METRIC])  # the dashboard's axis label instead of "Objective 0"
        study.set_user_attr("metric", METRIC)
        study.set_user_attr("value", f"best {METRIC} over the trial's epochs")
        study.set_user_attr("experiment", str(folder))
        study.set_user_attr("space_file", space.source)
        study.set_user_attr(FINGERPRINT_ATTR, fingerprint(trials, space))
        study.add_trials(trials)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def sweep_trials(folder: str | Path, space: SearchSpace) -> list[FrozenTrial]:
    """The sweep in ``folder`` as FrozenTrials (read from Tune's files)."""
    return build_trials(load_sweep(folder), load_curves(folder), space)


def ensure_study(folder: str | Path, name: str, space: SearchSpace) -> tuple[Path, bool]:
    """Write the study unless ``optuna.db`` already holds these exact trials.

    Returns:
        The study file and whether it was (re)written.
    """
    trials = sweep_trials(folder, space)
    if stored_fingerprint(folder, name) == fingerprint(trials, space):
        return Path(folder).resolve() / STUDY_FILE, False
    return write_study(folder, name, trials, space), True
