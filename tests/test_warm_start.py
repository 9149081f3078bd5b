"""Warm starts: a new sweep's searcher knows an earlier sweep's trials; the earlier sweep is only read.

One real 12-trial sweep (1 epoch each, tiny data) is the earlier sweep of every test.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from optuna.trial import TrialState

from tuning import search
from tuning.analysis import load_sweep
from tuning.config import DEFAULTS
from tuning.errors import UserError
from tuning.sources import synthetic_traffic
from tuning.spaces import as_space
from tuning.storage import Experiment
from tuning.sweep_settings import SweepSettings
from tuning.warm_start import DEFAULT_TOP, plan

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("restore_tuning_logger")]

FIRST: dict[str, Any] = {
    "parameters": {
        "learning_rate": {"distribution": "loguniform", "low": 1e-4, "high": 1e-2},
        "dropout_rate": {"distribution": "uniform", "low": 0.0, "high": 0.5},
        "batch_size": {"distribution": "choice", "values": [256, 1024]},
    },
    "fixed": {"hidden_size": 8},
    "budget": {"num_samples": 12, "max_epochs": 1, "grace_period": 1, "reduction_factor": 2},
}
LR, DROPOUT = (5e-4, 5e-3), (0.1, 0.4)
NARROW = f"""
parameters:
  learning_rate: {{distribution: loguniform, low: {LR[0]}, high: {LR[1]}}}
  dropout_rate: {{distribution: uniform, low: {DROPOUT[0]}, high: {DROPOUT[1]}}}
  batch_size: {{distribution: choice, values: [256, 1024]}}
fixed: {{hidden_size: 8}}
budget: {{num_samples: 4, max_epochs: 1, grace_period: 1, reduction_factor: 2}}
"""


def _files(folder: Path) -> dict[str, tuple[int, str]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def first(ray_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    storage = tmp_path_factory.mktemp("warm")
    data = synthetic_traffic(num_sensors=3, num_days=4, seed=7)
    result = search.run_sweep(FIRST, data, name="first", storage_path=storage, max_concurrent=2, seed=3)
    assert result.complete and len(result.trials) == 12
    return {"storage": storage, "exp": Experiment.at(storage, "first"), "trials": result.trials}


def test_a_narrowed_sweep_runs_the_earlier_best_first_and_leaves_the_earlier_sweep_alone(
    first: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = Path(first["exp"].path)
    before = _files(folder)
    space = tmp_path / "narrow.yaml"
    space.write_text(NARROW)
    argv = ["--space", str(space), "--storage-path", str(first["storage"]), "--name", "second",
            "--warm-start", "first", "--max-concurrent", "1", "--seed", "3"]  # fmt: skip
    assert search.main(argv) == 0
    err = capsys.readouterr().err
    assert f"warm start from {folder}" in err and "the search space changed" in err

    # the earlier best config, clipped into the narrowed ranges, runs right after the defaults
    best = first["trials"].iloc[0]
    expected = {
        "learning_rate": min(max(best["learning_rate"], LR[0]), LR[1]),
        "dropout_rate": min(max(best["dropout_rate"], DROPOUT[0]), DROPOUT[1]),
        "batch_size": best["batch_size"],
    }
    second = load_sweep(first["storage"] / "second").set_index("trial_index").sort_index()
    assert len(second) == 4
    assert second.loc[1, "is_default"]
    runs_first = [{k: second.loc[i, k] for k in expected} for i in range(1, 2 + DEFAULT_TOP)]
    assert any(all(math.isclose(c[k], v, rel_tol=1e-12) for k, v in expected.items()) for c in runs_first), (expected, runs_first)
    saved = SweepSettings.load(Experiment.at(first["storage"], "second"))
    assert (saved.warm_start, saved.warm_start_top) == (str(folder), None)

    assert _files(folder) == before, "the earlier experiment was written to"


def test_known_trials_change_the_tpe_proposals_of_the_same_seed(first: dict[str, Any]) -> None:
    from tuning.searcher import build_searcher

    space = as_space(FIRST)
    settings = SweepSettings.create(space)
    warm = plan(first["exp"], space, settings)
    assert warm.same_space and warm.first == []  # the same space: every trial is known, none re-run
    assert len(warm.known) == 12
    assert {t.state for t in warm.known} == {TrialState.COMPLETE}

    def proposals(**kwargs: Any) -> list[dict[str, Any]]:
        searcher = build_searcher(space, seed=11, study_name="s", **kwargs)
        return [searcher.suggest(f"t{i}") for i in range(6)]

    cold, cold_again, warm_started = proposals(), proposals(), proposals(warm=warm)
    assert cold == cold_again  # the same seed proposes the same configs...
    assert cold[0] == warm_started[0] == space.first_point()  # ...after the defaults, in both
    # ...and the earlier trials change every proposal after that (TPE models them from the start)
    assert all(c != w for c, w in zip(cold[1:], warm_started[1:]))


def test_parameters_outside_or_missing_from_the_new_space_are_handled_and_reported(first: dict[str, Any]) -> None:
    space = as_space({
        "parameters": {
            "learning_rate": {"distribution": "loguniform", "low": LR[0], "high": LR[1]},
            "batch_size": {"distribution": "choice", "values": [1024, 2048]},
            "hidden_size": {"distribution": "int", "low": 4, "high": 64},
        },
        "budget": {"num_samples": 4, "max_epochs": 1, "grace_period": 1, "reduction_factor": 2},
    })  # fmt: skip
    warm = plan(first["exp"], space, SweepSettings.create(space), top=4)
    trials: pd.DataFrame = first["trials"]
    notes = "\n".join(warm.notes)
    assert "parameters the new space does not search are dropped: dropout_rate" in notes
    assert "parameters the earlier sweep did not search take the values its trials ran with: hidden_size" in notes
    outside = int(((trials["learning_rate"] < LR[0]) | (trials["learning_rate"] > LR[1])).sum())
    small = int((trials["batch_size"] == 256).sum())
    if outside:
        assert f"clipped into them (those trials only run first, never count as known): learning_rate ({outside} trials)" in notes
    if small:
        assert (
            f"choices the new space lacks become its default (those trials only run first): batch_size ({small} trials)" in notes
        )
    assert "fixed hidden_size 8 -> 64" not in notes  # searched now: not a fixed difference
    assert len(warm.notes) == len(set(warm.notes))  # one line per kind
    # every config it passes on lies in the new space, with the hidden size the earlier trials ran with
    for params in [*warm.first, *(t.params for t in warm.known)]:
        assert set(params) == set(space.parameters)
        assert all(space.parameters[k].contains(v) for k, v in params.items())
        assert params["hidden_size"] == 8
    inside = trials[(trials["learning_rate"].between(*LR)) & (trials["batch_size"] == 1024)]
    assert len(warm.known) == len(inside)
    assert 1 <= len(warm.first) <= 4 and space.first_point() not in warm.first
    assert DEFAULTS.batch_size in space.parameters["batch_size"].values


def test_a_missing_earlier_sweep_is_refused_in_one_line(
    first: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--smoke-test", "--storage-path", str(tmp_path), "--name", "x", "--warm-start", "nope"]
    assert search.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--warm-start nope: no sweep in" in err[0]
    assert not (tmp_path / "x").exists()
    with pytest.raises(UserError, match="--warm-start-top must be a whole number >= 1, got 0"):
        search.run_sweep("smoke", name="y", storage_path=tmp_path, warm_start=first["exp"].path, warm_start_top=0)
