"""Benchmark: does a default sweep pay? The tuned final model beside the defaults' final model.

For each data set and seed, three models are scored on the same held-out test windows:

1. the documented defaults trained once to early stopping (``python -m tuning.train``);
2. the best trial of a default sweep (``python -m tuning.search``), its own best weights
   (``tuning.load_model(experiment, ensemble=False)``);
3. the exported best config retrained (``python -m tuning.train --config best_config.json``);
4. the sweep's final model: the best trials' average chosen on validation (what
   ``tuning.predict --name`` and ``tuning.load_model(experiment)`` forecast with).

Target (issue 6): on the embedded data and on the ODOT counts, the sweep's final model has a
lower test MAE than the defaults' final model. Prints one row per run and the median over
seeds; ``--csv`` writes the rows.

Run ``python benchmarks/bench_sweep_pays.py`` (``--data embedded`` for one data set,
``--seeds 42,43,44`` for more, ``--space wide`` for another space).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from tuning.config import TrainConfig
from tuning.data import PreparedData, prepare_data
from tuning.engine import MSE, Precision, evaluate, fit
from tuning.export import export_best
from tuning.forecast import load_model
from tuning.results import SweepResult
from tuning.search import run_sweep
from tuning.sources import TrafficSeries, load_series, synthetic_traffic
from tuning.storage import Experiment

ODOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "odot_counts" / "counts_wide_15min.csv"


def _series(name: str) -> tuple[TrafficSeries, str | None]:
    """The series and the path a sweep reads it from (None: the embedded set)."""
    if name == "embedded":
        return synthetic_traffic(), None
    path = ODOT if name == "odot" else Path(name)
    return load_series(path), str(path)


def test_mae(model: torch.nn.Module, data: PreparedData) -> float:
    metrics = evaluate(model, data.test, data, Precision(None, False), torch.device("cpu"), baseline=False, objective=MSE)
    return float(metrics["model"]["mae"])


def one_run(name: str, seed: int, space: str, threads: int, storage: Path, reuse: bool = False) -> dict[str, Any]:
    series, path = _series(name)
    data = prepare_data(series, 10, 5)
    copy_last = evaluate(None, data.test, data, Precision(None, False), torch.device("cpu"))["copy_last"]["mae"]

    start = time.perf_counter()
    _, _, info = fit(TrainConfig(seed=seed, num_threads=threads, save_checkpoints=False), data)
    defaults_s = time.perf_counter() - start
    defaults = info["test_metrics"]["model"]["mae"]

    start = time.perf_counter()
    sweep = f"{Path(name).stem}-{seed}"
    if reuse and (storage / sweep).is_dir():  # a sweep this script ran before: export it again, no new trials
        export_best(Experiment.at(storage, sweep), data=data)
        result = SweepResult.load(sweep, storage)
    else:
        result = run_sweep(space, path, name=sweep, storage_path=storage, seed=seed)
    sweep_s = time.perf_counter() - start
    best = result.export
    assert best is not None, "the sweep exported no best config"
    trial = test_mae(load_model(result.path, ensemble=False).model, data)
    ensemble = test_mae(load_model(result.path).model, data)
    final = best.get("final_model") or {}

    config = TrainConfig.from_dict({**best["config"], "num_threads": threads, "save_checkpoints": False})
    start = time.perf_counter()
    _, _, final_info = fit(config, data)
    final_s = time.perf_counter() - start
    retrained = final_info["test_metrics"]["model"]["mae"]
    searched = {k: best["config"][k] for k in best["searched"]}
    return {
        "data": name, "seed": seed, "copy_last": copy_last,
        "defaults": defaults, "best_trial": trial, "retrained": retrained, "final_model": ensemble,
        "defaults_val": info["best_val_mae"], "best_trial_val": best["metrics"]["best_val_mae"],
        "retrained_val": final_info["best_val_mae"], "final_model_val": final.get("val_mae"),
        "final_members": len(final.get("members", [])),
        "defaults_epochs": info["epochs_run"], "retrained_epochs": final_info["epochs_run"],
        "defaults_s": defaults_s, "sweep_s": sweep_s, "retrain_s": final_s,
        "best_is_defaults": bool(result.trials.iloc[0]["is_default"]),
        "best_config": json.dumps(searched),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="embedded,odot", help="comma-separated: embedded, odot or file paths")
    p.add_argument("--seeds", default="42", help="comma-separated seeds (each: a sweep seed and the training seed)")
    p.add_argument("--space", default="default", help="the sweep's space (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the two single runs (a trial has 1 CPU)")
    p.add_argument("--storage-path", default=None, help="where the sweeps go (default: a temporary folder)")
    p.add_argument("--csv", default=None, help="write the rows here")
    p.add_argument("--reuse", action="store_true", help="re-export sweeps already in --storage-path instead of running them")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    names = [n for n in args.data.split(",") if n != "odot" or ODOT.is_file()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-sweep-pays-") as tmp:
        storage = Path(args.storage_path or tmp)
        for name in names:
            for seed in (int(s) for s in args.seeds.split(",")):
                rows.append(one_run(name, seed, args.space, args.threads, storage, args.reuse))
                print(json.dumps(rows[-1]), flush=True)
    frame = pd.DataFrame(rows)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    print(f"\ntest MAE, {args.space} sweep, median over seeds {args.seeds} (ratio: to the defaults' final model)")
    print(
        f"{'data':<12} {'copy-last':>9} {'defaults':>9} {'best trial':>11} {'retrained':>10} {'final':>9} "
        f"{'trial/def':>9} {'final/def':>9}"
    )
    ok = True
    for name, g in frame.groupby("data", sort=False):
        med = {k: statistics.median(g[k]) for k in ("copy_last", "defaults", "best_trial", "retrained", "final_model")}
        print(
            f"{name:<12} {med['copy_last']:>9.4f} {med['defaults']:>9.4f} {med['best_trial']:>11.4f} {med['retrained']:>10.4f} "
            f"{med['final_model']:>9.4f} {med['best_trial'] / med['defaults']:>9.3f} {med['final_model'] / med['defaults']:>9.3f}"
        )
        ok &= med["final_model"] < med["defaults"]
    print(f"sweep pays: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
