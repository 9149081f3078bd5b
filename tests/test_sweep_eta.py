"""The sweep's time estimate: ASHA's epochs replayed, and the line a user reads."""

from __future__ import annotations

import random

import pytest
from ray.tune.schedulers import TrialScheduler
from ray.tune.schedulers.async_hyperband import _Bracket

from tuning.spaces import find_space, load_space
from tuning.sweep_eta import _sweeps, asha_milestones, estimate_line, expected_epochs
from tuning.sweep_settings import SweepSettings


class _Trial:
    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id


def _ray_epochs(num_samples: int, grace: int, factor: int, max_t: int, seed: int = 0) -> float:
    """The same replay through Ray's own bracket, epoch by epoch, as the scheduler calls it."""
    rng = random.Random(seed)
    total = 0
    for sweep in range(_sweeps(num_samples)):
        bracket = _Bracket(grace, max_t, factor, s=0)
        for n in range(num_samples):
            quality, epochs = rng.random(), max_t
            for epoch in range(1, max_t + 1):
                if bracket.on_result(_Trial(f"{sweep}-{n}"), epoch, quality) == TrialScheduler.STOP:
                    epochs = epoch
                    break
            total += epochs
    return total / _sweeps(num_samples)


@pytest.mark.parametrize(("num_samples", "grace", "factor", "max_t"), [(12, 3, 3, 100), (6, 1, 2, 4), (24, 2, 4, 20)])
def test_the_replay_grants_the_epochs_rays_bracket_grants(num_samples: int, grace: int, factor: int, max_t: int) -> None:
    assert expected_epochs(num_samples, grace, factor, max_t) == pytest.approx(_ray_epochs(num_samples, grace, factor, max_t))


def test_milestones_are_rays() -> None:
    assert asha_milestones(3, 3, 100) == [m for m, _ in reversed(_Bracket(3, 100, 3, s=0)._rungs)] == [3, 9, 27, 81]


def test_thousands_of_trials_are_estimated_with_fewer_replays() -> None:
    # A replay of 3,000 trials took 88 s inside Tune's driver before rungs were kept sorted and replays fewer
    assert _sweeps(12) == 200 and _sweeps(3000) == 10
    assert 3000 * 3 < expected_epochs(3000, 3, 3, 100) < 3000 * 100


def test_epochs_lie_between_every_trial_stopped_at_once_and_none_stopped() -> None:
    assert expected_epochs(1, 3, 3, 100) == 100  # a lone trial is never stopped
    assert expected_epochs(12, 100, 3, 100) == 1200  # no rung below the budget
    assert 12 * 3 < expected_epochs(12, 3, 3, 100) < 12 * 100


def _settings(time_budget_s: float | None = None) -> SweepSettings:
    return SweepSettings.create(
        load_space(find_space("default")), num_samples=12, max_epochs=100, grace_period=3, reduction_factor=3,
        time_budget_s=time_budget_s,
    )  # fmt: skip


def test_the_line_names_the_pace_the_likely_time_and_the_longest() -> None:
    epochs = expected_epochs(12, 3, 3, 100)
    line = estimate_line(50.0, _settings(), concurrent=2)
    assert line.startswith("sweep: an epoch takes ~50 s here; with 2 trials at once, its 12 trials may take up to about ")
    assert f"(~{epochs:.0f} epochs as ASHA stops weak trials, fewer as early stopping ends converged ones; 8 h 20 min if" in line
    assert line.endswith("; --time-budget (e.g. 1h) bounds it, and --resume continues it later")


def test_a_short_sweep_needs_no_advice_and_a_time_budget_is_named_when_it_ends_sooner() -> None:
    assert "--time-budget" not in estimate_line(0.4, _settings(), concurrent=2)
    assert estimate_line(50.0, _settings(time_budget_s=1800.0), concurrent=2).endswith("; the time budget ends it after 30 min")


def test_a_resumed_sweep_counts_the_trials_it_has_left() -> None:
    line = estimate_line(10.0, _settings(), concurrent=4, trials_done=10)
    assert "with 2 trials at once, the rest of the sweep (2 of 12 trials) may take up to about" in line


@pytest.mark.parametrize(
    ("resources", "cpus_per_trial", "gpus_per_trial", "expected"),
    [
        ({"CPU": 2.0}, 1, 0.0, 2),  # CPUs alone, as on this machine
        ({"CPU": 16.0, "GPU": 1.0}, 2, 0.25, 4),  # four trials share the GPU, though the CPUs fit eight
        ({"CPU": 16.0, "GPU": 1.0}, 1, 0.1, 10),  # 1 / 0.1 is 9.999... in floating point
        ({"CPU": 4.0, "GPU": 8.0}, 2, 1.0, 2),  # the CPUs are the narrower limit
        ({"CPU": 1.0}, 2, 0.0, 1),  # never fewer than one
        ({"CPU": 64.0, "GPU": 2.0}, 1, 0.4, 4),  # a trial's 0.4 is never split across two GPUs: 2 per GPU
        ({"CPU": 64.0, "GPU": 3.0}, 1, 0.4, 6),
    ],
)
def test_trials_at_once_counts_gpus_as_well_as_cpus(
    resources: dict[str, float], cpus_per_trial: int, gpus_per_trial: float, expected: int
) -> None:
    from tuning.search import trials_at_once

    settings = SweepSettings.create(
        load_space(find_space("default")), cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial
    )
    assert trials_at_once(resources, settings) == expected
