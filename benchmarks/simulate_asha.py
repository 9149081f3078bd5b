"""ASHA's grace period and reduction factor, replayed on a search benchmark's random-search curves.

``bench_search.py``'s random search trains every trial to the full budget, so its
``events.csv`` holds complete learning curves. This script draws 24 of them in random
order, runs them two at a time (the benchmark's 2 CPUs) through Ray's own ASHA scheduler
(a trial at a rung stops when its value is worse than the ``1 - 1/reduction_factor``
quantile of the values recorded there before it) and reports, per setting, how often the sweep
reaches random search's final best within a third of random search's epochs. TPE is not
replayed: the trials come in random order, so this compares schedulers, not searchers.

    python benchmarks/simulate_asha.py benchmarks/results/embedded-2core-idle benchmarks/results/odot-2core-idle
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

SETTINGS = [(3, 3), (2, 4), (2, 3), (3, 2), (1, 3), (1, 4), (4, 3), (5, 3)]


def simulate(
    curves: list[np.ndarray], order: np.ndarray, grace: int, rf: int, target: float, workers: int = 2
) -> tuple[int, float]:
    """Epochs trained by the sweep, and the epochs until its best reached ``target`` (inf: never).

    The decisions are Ray's own: every epoch's result goes to an ``AsyncHyperBandScheduler``
    configured as the sweep configures it.
    """
    scheduler = AsyncHyperBandScheduler(
        time_attr="epoch", metric="val_mae", mode="min", max_t=len(curves[0]), grace_period=grace, reduction_factor=rf
    )
    queue: list[int] = [int(t) for t in order]
    running: list[tuple[SimpleNamespace, int]] = []
    epochs, best, hit = 0, np.inf, np.inf
    while queue or running:
        while len(running) < workers and queue:
            trial = SimpleNamespace(trial_id=str(queue.pop(0)))
            scheduler.on_trial_add(None, trial)  # type: ignore[arg-type]
            running.append((trial, 0))
        still = []
        for trial, epoch in running:  # every running trial trains one epoch per round
            value = float(curves[int(trial.trial_id)][epoch])
            epoch += 1
            epochs += 1
            best = min(best, value)
            if best <= target and not np.isfinite(hit):
                hit = epochs
            decision = scheduler.on_trial_result(None, trial, {"epoch": epoch, "val_mae": value})  # type: ignore[arg-type]
            if decision == TrialScheduler.CONTINUE:
                still.append((trial, epoch))
            else:
                scheduler.on_trial_remove(None, trial)  # type: ignore[arg-type]
        running = still
    return epochs, hit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path, nargs="+", help="bench_search.py output folders (runs.csv, events.csv)")
    p.add_argument("--sweeps", type=int, default=400, help="simulated sweeps per setting (default: %(default)s)")
    p.add_argument("--trials", type=int, default=24)
    args = p.parse_args()
    for folder in args.results:
        events = pd.read_csv(folder / "events.csv", dtype={"trial": str})
        runs = pd.read_csv(folder / "runs.csv")
        random_events = events[events["contender"] == "random"]
        curves = [g.sort_values("epoch")["val_mae"].to_numpy() for _, g in random_events.groupby(["seed", "trial"])]
        budget = max(len(c) for c in curves)
        curves = [c for c in curves if len(c) == budget]
        target = float(runs[runs["contender"] == "random"]["best_val_mae"].median())
        rng = np.random.default_rng(0)
        orders = [rng.choice(len(curves), args.trials, replace=False) for _ in range(args.sweeps)]
        print(f"{folder}: {len(curves)} curves of {budget} epochs; target {target:.4f} (random search's median best)")
        print("grace  rf   reached within 1/3   reached at all   epochs per sweep (median)")
        for grace, rf in SETTINGS:
            results = [simulate(curves, order, grace, rf, target) for order in orders]
            epochs = np.array([r[0] for r in results])
            hits = np.array([r[1] for r in results])
            third = args.trials * budget / 3
            print(
                f"{grace:5d} {rf:3d}   {np.mean(hits <= third):19.2f}   {np.mean(np.isfinite(hits)):14.2f}   {np.median(epochs):.0f}"
            )


if __name__ == "__main__":
    main()
