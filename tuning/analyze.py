"""``python -m tuning.analyze``: tables, plots and warnings for one sweep.

Prints the top trials and the hyperparameter importance, and writes into the
experiment folder ``trials.csv``, ``trials.parquet``, ``curves.parquet``,
``learning_curves.png``, ``metric_vs_params.png``, ``importance.{json,csv,png}``
and ``optuna.db`` (the sweep as an Optuna study, for ``python -m tuning.dashboard``,
``optuna-dashboard`` and ``optuna.visualization``); warns when the best value of a
hyperparameter lies at the edge of its search range (the optimum may lie beyond it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import pandas as pd

from tuning import storage
from tuning.analysis import BEST_COLUMN, boundary_warnings, load_curves, load_sweep, relocate
from tuning.cli import ArgumentParser, positive_int, prog_name, run_main
from tuning.importance import IMPORTANCE_CSV, IMPORTANCE_JSON, param_importance, write_importance
from tuning.logs import quiet_libraries
from tuning.optuna_study import STUDY_FILE, build_trials, write_study
from tuning.plots import plot_learning_curves, plot_metric_vs_params
from tuning.storage import DEFAULT_STORAGE, Experiment

MODULE = "tuning.analyze"
OUTPUTS = ("trials.csv", "trials.parquet", "curves.parquet", "learning_curves.png", "metric_vs_params.png", STUDY_FILE,
           IMPORTANCE_JSON, IMPORTANCE_CSV)  # fmt: skip
"""Files every run writes; ``importance.png`` too when the importance could be computed."""


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog_name(MODULE), description="Summarise a sweep: top trials, tables, learning curves, boundary warnings."
    )
    p.add_argument("--name", required=True, help="the sweep's experiment name")
    p.add_argument("--storage-path", default=DEFAULT_STORAGE, metavar="DIR", help="where the sweep lives (default: %(default)s)")
    p.add_argument("--top", type=positive_int, default=5, metavar="N", help="trials to print (default: %(default)s)")
    p.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    return p


def analyze(exp: Experiment, top: int = 5) -> list[str]:
    """Write the tables and plots; return the boundary warnings as text.

    An experiment on remote storage (``s3://...``) is read from a local copy of its
    small files, and what analyze writes is uploaded beside it.
    """
    from tuning.sweep_settings import SweepSettings

    space = SweepSettings.load(exp).load_space()
    params = list(space.parameters)
    with storage.local_view(exp.path) as folder:
        trials = load_sweep(folder)
        if not exp.is_local:
            trials = relocate(trials, folder, exp.path)
        curves = load_curves(folder)
        trials.to_csv(folder / "trials.csv", index=False)
        trials.to_parquet(folder / "trials.parquet", index=False)
        curves.to_parquet(folder / "curves.parquet", index=False)
        plot_learning_curves(curves, folder / "learning_curves.png", trials=trials)
        plot_metric_vs_params(trials, curves, space, folder / "metric_vs_params.png")
        study_trials = build_trials(trials, curves, space)
        write_study(folder, exp.name, study_trials, space)
        importance = param_importance(study_trials, params)
        written = [*OUTPUTS[:-2], *(p.name for p in write_importance(importance, folder))]
        if not exp.is_local:
            for name in written:
                storage.write_bytes(exp.file(name), (folder / name).read_bytes())
    cols = [
        "trial_id",
        "status",
        *params,
        BEST_COLUMN,
        "best_val_rmse",
        "epochs_run",
        "stopped_by_asha",
        "diverged",
        "is_default",
    ]
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(f"{len(trials)} trials in {exp.path}; top {min(top, len(trials))} by {BEST_COLUMN}:")
        print(trials[cols].head(top).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\n".join(importance.lines()))
    warnings = [str(w) for w in boundary_warnings(trials, space)]
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"wrote into {exp.path}: " + ", ".join(written))
    print(f"dashboard: python -m tuning.dashboard --name {exp.name} --storage-path {exp.storage_path}")
    return warnings


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        quiet_libraries()
        analyze(Experiment.at(args.storage_path, args.name), args.top)
        return 0

    return run_main(body, prog=prog_name(MODULE), debug=args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
