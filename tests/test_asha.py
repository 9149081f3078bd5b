"""PersistentASHA: the rungs survive a restart, so decisions match an uninterrupted run."""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from types import SimpleNamespace

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from tuning.asha import PersistentASHA
from tuning.storage import load_stopped

SETTINGS = {"time_attr": "epoch", "metric": "val_loss", "mode": "min", "max_t": 9, "grace_period": 1, "reduction_factor": 3}


def _events(seed: int = 0, trials: int = 16) -> list[tuple[str, int, float]]:
    """Interleaved (trial, epoch, val_loss) results of trials with different quality."""
    rng = random.Random(seed)
    quality = {f"t{i:02d}": rng.uniform(0.5, 2.0) for i in range(trials)}
    events = []
    for start in range(0, trials, 4):  # four trials at a time, like max_concurrent=4
        group = list(quality)[start : start + 4]
        for epoch in range(1, 10):
            for t in group:
                events.append((t, epoch, quality[t] / epoch**0.5 + rng.uniform(0, 0.05)))
    return events


def _replay(scheduler: AsyncHyperBandScheduler, events: list[tuple[str, int, float]], stopped: set[str]) -> list[str]:
    """Feed results as Tune would; a stopped trial reports nothing more."""
    decisions = []
    for trial_id, epoch, loss in events:
        if trial_id in stopped:
            continue
        trial = SimpleNamespace(trial_id=trial_id)
        if trial_id not in scheduler._trial_info:
            scheduler.on_trial_add(None, trial)
        action = scheduler.on_trial_result(None, trial, {"epoch": epoch, "val_loss": loss})
        decisions.append(f"{trial_id}@{epoch}:{action}")
        if action == TrialScheduler.STOP:
            stopped.add(trial_id)
            scheduler.on_trial_complete(None, trial, {"epoch": epoch, "val_loss": loss})
    return decisions


def test_decisions_after_a_restart_match_an_uninterrupted_run(tmp_path: Path) -> None:
    events = _events()
    half = len(events) // 2

    reference = PersistentASHA(state_path=str(tmp_path / "ref" / "asha.json"), **SETTINGS)
    expected = _replay(reference, events, set())

    state = tmp_path / "run" / "asha.json"
    first = PersistentASHA(state_path=str(state), **SETTINGS)
    pickled = pickle.dumps(first)  # what Tune keeps in tuner.pkl: the state at the start
    stopped: set[str] = set()
    got = _replay(first, events[:half], stopped)
    assert state.is_file()

    # Tune's restore unpickles the scheduler as it was at the start, then re-adds the trials
    restored = pickle.loads(pickled)
    for trial_id in {t for t, _, _ in events[:half]} - stopped:
        restored.on_trial_add(None, SimpleNamespace(trial_id=trial_id))
    got += _replay(restored, events[half:], stopped)

    assert got == expected
    assert any(d.endswith(":STOP") and "@9" not in d for d in expected), "the scenario must make ASHA stop trials early"
    assert load_stopped(str(state)) == load_stopped(str(tmp_path / "ref" / "asha.json"))


def test_stock_asha_forgets_its_rungs_on_restore(tmp_path: Path) -> None:
    """The control: without the saved state the decisions differ (ray issue #30838)."""
    events = _events()
    half = len(events) // 2
    expected = _replay(AsyncHyperBandScheduler(**SETTINGS), events, set())
    first = AsyncHyperBandScheduler(**SETTINGS)
    pickled = pickle.dumps(first)
    stopped: set[str] = set()
    got = _replay(first, events[:half], stopped)
    restored = pickle.loads(pickled)
    for trial_id in {t for t, _, _ in events[:half]} - stopped:
        restored.on_trial_add(None, SimpleNamespace(trial_id=trial_id))
    got += _replay(restored, events[half:], stopped)
    assert got != expected


def test_stopped_trials_are_recorded_and_stay_stopped(tmp_path: Path) -> None:
    state = tmp_path / "asha.json"
    sched = PersistentASHA(state_path=str(state), **SETTINGS)
    _replay(sched, _events(), set())
    stopped = load_stopped(str(state))
    assert stopped and all(1 <= epoch < 9 for epoch in stopped.values())
    # a trial that resumes after a crash (Tune had not yet seen it stop) is stopped again at once
    again = pickle.loads(pickle.dumps(PersistentASHA(state_path=str(state), **SETTINGS)))
    trial_id, epoch = next(iter(stopped.items()))
    again.on_trial_add(None, SimpleNamespace(trial_id=trial_id))
    # the best loss of all, one epoch on: stock ASHA would let it continue
    result = {"epoch": epoch + 1, "val_loss": 0.0}
    assert again.on_trial_result(None, SimpleNamespace(trial_id=trial_id), result) == TrialScheduler.STOP


def test_no_state_file_means_no_stopped_trials(tmp_path: Path) -> None:
    assert load_stopped(str(tmp_path / "missing.json")) == {}


def test_diverged_results_stay_out_of_the_rungs(tmp_path: Path) -> None:
    sched = PersistentASHA(state_path=str(tmp_path / "asha.json"), **SETTINGS)
    good, bad = SimpleNamespace(trial_id="good"), SimpleNamespace(trial_id="bad")
    for t in (good, bad):
        sched.on_trial_add(None, t)
    assert sched.on_trial_result(None, good, {"epoch": 1, "val_loss": 0.5}) == TrialScheduler.CONTINUE
    assert sched.on_trial_result(None, bad, {"epoch": 1, "val_loss": float("inf")}) == TrialScheduler.STOP
    sched.on_trial_complete(None, bad, {"epoch": 1, "val_loss": float("inf")})
    recorded = {tid for _, rec in sched._brackets[0]._rungs for tid in rec}
    assert recorded == {"good"}
    # pruning still works: a worse finite trial at the same rung is stopped
    worse = SimpleNamespace(trial_id="worse")
    sched.on_trial_add(None, worse)
    assert sched.on_trial_result(None, worse, {"epoch": 1, "val_loss": 0.9}) == TrialScheduler.STOP
