"""A sweep's results as one typed object: what ``run_sweep`` returns and a notebook reads.

No Ray: :meth:`SweepResult.load` opens a finished sweep folder anywhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tuning import storage
from tuning.analysis import ERRORED, compare_with_defaults, load_curves, load_sweep
from tuning.config import TrainConfig
from tuning.errors import UserError
from tuning.spaces import SearchSpace
from tuning.storage import BEST_FILE, DEFAULT_STORAGE, Experiment
from tuning.sweep_settings import SweepSettings

PLOTS = ("learning_curves.png", "metric_vs_params.png")


TIME_BUDGET_FILE = "sweep/time_budget_reached.json"
"""Written when the sweep's time budget ended its last run: its trials so far count as the sweep."""


@dataclass(frozen=True)
class SweepResult:
    """One sweep: its settings, trials, learning curves and best config.

    Attributes:
        experiment: where the sweep lives.
        settings: its settings (``sweep/sweep.json``).
        space: its search space.
        trials: :func:`tuning.analysis.load_sweep`'s frame, best trial first.
        curves: :func:`tuning.analysis.load_curves`'s frame, one row per trial and epoch.
        complete: every trial ran to its end, or the time budget ended the sweep (see
            ``out_of_time``); False after an interruption (resume it).
        export: the ``best_config.json`` document; None while no trial has a finite value.
    """

    experiment: Experiment
    settings: SweepSettings
    space: SearchSpace
    trials: pd.DataFrame
    curves: pd.DataFrame
    complete: bool
    export: dict[str, Any] | None
    out_of_time: dict[str, Any] | None = None
    """What ``time_budget_reached.json`` says when the time budget ended the sweep (``time_budget_s``,
    ``trials``): fewer trials than ``settings.num_samples`` ran; ``--resume`` runs the rest."""

    @property
    def path(self) -> str:
        return self.experiment.path

    @property
    def name(self) -> str:
        return self.experiment.name

    @property
    def best_config(self) -> TrainConfig:
        """The best trial's config with a final model's budget, as ``best_config.json`` holds it."""
        return TrainConfig.from_dict(self._export()["config"], source=f"{self.path} best config")

    @property
    def best_result(self) -> dict[str, Any]:
        """The best trial's metrics (best validation MAE, its epoch, ...) and its trial id."""
        doc = self._export()
        return {"trial_id": doc["trial_id"], **doc["metrics"]}

    @property
    def errored(self) -> pd.DataFrame:
        """The trials that errored (after their retries): ``trial_id``, ``error`` (the exception's last line), ``logdir``."""
        if self.trials.empty:
            return pd.DataFrame(columns=["trial_id", "error", "logdir"])
        return self.trials.loc[self.trials["status"] == ERRORED, ["trial_id", "error", "logdir"]].reset_index(drop=True)

    def _export(self) -> dict[str, Any]:
        if self.export is None:
            raise UserError(f"{self.path}: no trial has a finite validation MAE yet, so there is no best config")
        return self.export

    def plot(self, folder: str | os.PathLike[str] | None = None) -> list[Path]:
        """Write the standard plots (learning curves, metric against each parameter); their paths.

        Args:
            folder: where to write them (default: the experiment folder).
        """
        from tuning.plots import plot_learning_curves, plot_metric_vs_params

        if folder is None:
            if not self.experiment.is_local:
                raise UserError(f"{self.path} is remote; pass plot(folder=...) to write the plots locally")
            folder = self.path
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        return [
            plot_learning_curves(self.curves, out / PLOTS[0], trials=self.trials),
            plot_metric_vs_params(self.trials, self.curves, self.space, out / PLOTS[1]),
        ]

    def summary(self) -> str:
        """The end-of-sweep text: the best config beside the defaults, compared at the same epoch."""
        from tuning.export import format_summary

        if self.export is None:
            if len(self.trials) and len(self.errored) == len(self.trials):
                return f"sweep {self.name}: all {len(self.trials)} trials errored"
            return f"sweep {self.name}: no trial has a finite validation MAE"
        return format_summary(self.export, compare_with_defaults(self.trials, self.curves))

    @classmethod
    def load(cls, name: str, storage_path: str | os.PathLike[str] = DEFAULT_STORAGE) -> SweepResult:
        """Open the sweep ``name`` in ``storage_path`` (finished, interrupted or running)."""
        exp = Experiment.at(storage_path, name)
        settings = SweepSettings.load(exp)
        export = json.loads(storage.read_text(exp.file(BEST_FILE))) if exp.exists(BEST_FILE) else None
        return cls.read(exp, settings, export)

    @classmethod
    def read(cls, exp: Experiment, settings: SweepSettings, export: dict[str, Any] | None) -> SweepResult:
        """The result of the sweep in ``exp`` from its files, with the given export."""
        trials, curves = load_sweep(exp.path), load_curves(exp.path)
        finished = int(trials["finished"].sum()) if len(trials) else 0
        out_of_time = json.loads(storage.read_text(exp.file(TIME_BUDGET_FILE))) if exp.exists(TIME_BUDGET_FILE) else None
        # The budget's marker holds only while nothing ran after it (a resume removes it).
        if out_of_time is not None and not (finished == len(trials) == out_of_time.get("trials")):
            out_of_time = None
        complete = finished >= settings.num_samples or out_of_time is not None
        return cls(exp, settings, settings.load_space(), trials, curves, complete, export, out_of_time)
