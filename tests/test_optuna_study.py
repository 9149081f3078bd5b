"""Fast checks of the study mapping, importance, the defaults comparison and quiet logs (no Ray)."""

from __future__ import annotations

import logging

import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from tuning.analysis import BEST_COLUMN, compare_with_defaults
from tuning.importance import MIN_TRIALS, param_importance
from tuning.logs import quiet_libraries
from tuning.metrics import METRIC
from tuning.optuna_study import distribution, trial_state
from tuning.spaces import Param


@pytest.mark.parametrize(
    ("row", "state"),
    [
        ({"status": "TERMINATED", "finished": True, "stopped_by_asha": False, "diverged": False, BEST_COLUMN: 0.1},
         TrialState.COMPLETE),
        ({"status": "TERMINATED", "finished": True, "stopped_by_asha": True, "diverged": False, BEST_COLUMN: 0.2},
         TrialState.PRUNED),
        ({"status": "TERMINATED", "finished": True, "stopped_by_asha": False, "diverged": True, BEST_COLUMN: float("inf")},
         TrialState.FAIL),
        ({"status": "ERROR", "finished": True, "stopped_by_asha": False, "diverged": False, BEST_COLUMN: 0.3},
         TrialState.FAIL),
        ({"status": "TERMINATED", "finished": True, "stopped_by_asha": False, "diverged": False, BEST_COLUMN: float("nan")},
         TrialState.FAIL),
        ({"status": "RUNNING", "finished": False, "stopped_by_asha": False, "diverged": False, BEST_COLUMN: 0.4},
         TrialState.RUNNING),
    ],
)  # fmt: skip
def test_trial_states(row: dict[str, object], state: TrialState) -> None:
    assert trial_state(pd.Series(row)) == state


def test_distributions_follow_the_space_file() -> None:
    assert distribution(Param("lr", "loguniform", 1e-4, 1e-2, log=True)) == FloatDistribution(1e-4, 1e-2, log=True)
    assert distribution(Param("d", "uniform", 0.0, 0.6)) == FloatDistribution(0.0, 0.6)
    assert distribution(Param("h", "int", 16, 128, log=True)) == IntDistribution(16, 128, log=True)
    assert distribution(Param("n", "int", 1, 3)) == IntDistribution(1, 3)
    assert distribution(Param("c", "choice", values=("lstm", "gru"))) == CategoricalDistribution(["lstm", "gru"])


def _trials(n: int) -> list[optuna.trial.FrozenTrial]:
    dists = {"a": FloatDistribution(0, 1), "b": CategoricalDistribution([1, 2])}
    # the value depends on a alone
    return [optuna.trial.create_trial(value=abs(i / n - 0.3), params={"a": i / n, "b": 1 + i % 2}, distributions=dists)
            for i in range(n)]  # fmt: skip


def test_importance_ranks_the_parameter_that_matters() -> None:
    result = param_importance(_trials(30), ["a", "b"])
    assert result.skipped is None
    assert list(result.importances) == ["a", "b"]
    assert result.importances["a"] > 0.8
    assert sum(result.importances.values()) == pytest.approx(1.0)


def test_importance_skips_with_a_reason() -> None:
    few = param_importance(_trials(MIN_TRIALS - 1), ["a", "b"])
    assert few.importances == {} and f"needs at least {MIN_TRIALS}" in (few.skipped or "")
    one = param_importance(_trials(20), ["a"])
    assert one.importances == {}
    assert one.lines() == ["importance: skipped: the space searches one parameter (a); importance ranks two or more"]
    failed = [optuna.trial.create_trial(state=TrialState.FAIL, params=t.params, distributions=t.distributions)
              for t in _trials(10)]  # fmt: skip
    assert "0 trial(s) reported a finite value" in (param_importance(failed, ["a", "b"]).skipped or "")


def test_defaults_stopped_early_are_compared_at_their_last_epoch() -> None:
    trials = pd.DataFrame({
        "trial_id": ["b", "d"], BEST_COLUMN: [0.5, 0.9], "is_default": [False, True],
        "epochs_run": [4, 1], "stopped_by_asha": [False, True],
    })  # fmt: skip
    curves = pd.DataFrame({"trial_id": ["b"] * 4 + ["d"], "epoch": [1, 2, 3, 4, 1], METRIC: [1.0, 0.7, 0.6, 0.5, 0.9]})
    comparison = compare_with_defaults(trials, curves)
    assert comparison is not None and comparison.epoch == 1
    text = "\n".join(comparison.lines())
    assert "the defaults ran 1 epoch(s) (stopped by ASHA), the best trial 4" in text
    assert "at epoch 1: best 1 vs defaults 0.9" in text and "+11.1%" in text


def test_defaults_that_ran_as_long_are_compared_directly() -> None:
    trials = pd.DataFrame({"trial_id": ["b", "d"], BEST_COLUMN: [0.5, 0.6], "is_default": [False, True],
                           "epochs_run": [2, 2], "stopped_by_asha": [False, False]})  # fmt: skip
    curves = pd.DataFrame({"trial_id": ["b", "b", "d", "d"], "epoch": [1, 2, 1, 2], METRIC: [0.7, 0.5, 0.8, 0.6]})
    comparison = compare_with_defaults(trials, curves)
    assert comparison is not None
    assert comparison.lines() == ["  both ran 2 epochs; at epoch 2: best 0.5 vs defaults 0.6 val_loss (-16.7%)".replace(
        "val_loss", METRIC)]  # fmt: skip


def test_quiet_libraries_drops_only_the_noise(caplog: pytest.LogCaptureFixture) -> None:
    quiet_libraries()
    assert optuna.logging.get_verbosity() == logging.WARNING
    auth = logging.getLogger("ray._private.authentication.authentication_token_setup")
    with caplog.at_level(logging.WARNING, logger=auth.name):
        auth.warning("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out.")
        auth.warning("Token authentication is disabled for this Ray cluster. Anyone with network access ...")
    assert [r.getMessage()[:33] for r in caplog.records] == ["Token authentication is disabled "]
    quiet_libraries()  # idempotent: one filter, not two
    assert len(auth.filters) == 1
