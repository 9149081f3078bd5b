"""``python -m tuning.export``: write the best trial's full config as ``best_config.json``.

The file holds the complete training config (fixed fields, windows and the
searched values), so ``python -m tuning.train --config .../best_config.json``
retrains that model; beside it sit the trial's metrics, id and checkpoint, and
the documented defaults' metrics from the same sweep for comparison.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

from tuning import storage
from tuning.analysis import BEST_COLUMN, ERRORED, DefaultsComparison, load_sweep, usable
from tuning.cli import ArgumentParser, prog_name, run_main
from tuning.config import DEFAULTS, TrainConfig
from tuning.data import PreparedData
from tuning.errors import UserError
from tuning.storage import BEST_FILE, DEFAULT_STORAGE, Experiment
from tuning.trials import saved_trial_config, trial_config

log = logging.getLogger(__name__)

MODULE = "tuning.export"
_METRIC_KEYS = (BEST_COLUMN, "best_val_rmse", "best_val_loss", "best_epoch", "epochs_run", "status")


def latest_checkpoint(logdir: str) -> str | None:
    """The trial's newest checkpoint; it carries the best epoch's weights as ``best_state``."""
    found = [name for name in storage.list_names(logdir) if name.startswith("checkpoint_")]
    return f"{logdir}/{found[-1]}" if found else None


def best_config(exp: Experiment, trials: pd.DataFrame | None = None, data: PreparedData | None = None) -> dict[str, Any]:
    """The best trial of a sweep as the ``best_config.json`` document.

    The trial's config is read back from its checkpoint (what it trained with), and
    built the way the trainable built it only where no checkpoint is left. Given the
    sweep's data, the best trials' weighted average chosen on validation is recorded
    as ``"final_model"`` (:mod:`tuning.ensemble`; local sweeps).
    """
    from tuning.sweep_settings import SweepSettings

    settings = SweepSettings.load(exp)
    trials = load_sweep(exp.path) if trials is None else trials
    # Errored trials never count: neither as the best nor as the defaults' metrics.
    ok = usable(trials)
    if ok.empty:
        raise UserError(f"{exp.path}: no trial without an error has reported a finite validation loss yet; nothing to export")
    best = ok.iloc[0]
    space = settings.load_space()
    searched = list(space.parameters)
    trial = saved_trial_config(best["logdir"]) or trial_config(
        {k: best[k] for k in searched if k in best}, settings, space, source=f"{exp.path} best trial"
    )
    # The sweep's own run settings (a trial's threads, no engine checkpoints) are not the model's.
    trial = trial.replace(num_threads=DEFAULTS.num_threads, save_checkpoints=DEFAULTS.save_checkpoints)
    config = final_config(trial, searched)
    defaults = ok[ok["is_default"].astype(bool)]
    errored_defaults = trials[trials["is_default"].astype(bool) & (trials["status"] == ERRORED)]
    return {
        "experiment": exp.path,
        "trial_id": best["trial_id"],
        "config": config.to_dict(),
        "searched": searched,
        # A sweep's trials run on a rung budget (ASHA's max_t, a short patience) to rank
        # configs cheaply; the exported config trains to convergence instead.
        "sweep_budget": _budget(trial),
        "final_budget": _budget(config),
        "metrics": {k: _plain(best[k]) for k in _METRIC_KEYS},
        "defaults_metrics": {k: _plain(defaults.iloc[0][k]) for k in _METRIC_KEYS} if len(defaults) else None,
        # Why defaults_metrics is null when the defaults' trial errored: its id and error.
        "defaults_errored": (
            {"trial_id": errored_defaults.iloc[0]["trial_id"], "error": errored_defaults.iloc[0]["error"]}
            if len(errored_defaults) and not len(defaults)
            else None
        ),
        "checkpoint": latest_checkpoint(best["logdir"]),
        "final_model": _final_model(exp, ok, data),
        "data": settings.data_label,
        # what `tuning.train --config` reads when it is given no --data
        "data_options": {
            "data": settings.data,
            "zero_is_missing": settings.zero_is_missing,
            "freq": settings.freq,
            "start": settings.start,
            "columns": settings.columns,
            "exclude_columns": settings.exclude_columns,
            # data from memory that could not be saved: tuning.train then needs --data
            "unsaved": settings.data_origin if settings.data_in_memory_only else None,
        },
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _final_model(exp: Experiment, trials: pd.DataFrame, data: PreparedData | None) -> dict[str, Any] | None:
    """The best trials' ensemble (:func:`tuning.ensemble.final_model`) where it can be built here."""
    if data is None or not exp.is_local:
        return None
    from tuning.ensemble import final_model

    return final_model(exp.path, trials, data)


def final_config(trial: TrainConfig, searched: list[str]) -> TrainConfig:
    """The best trial's config with a final model's budget instead of the sweep's.

    A sweep ranks configs after a few epochs; retraining with that short budget gives a
    model that stopped before converging, which can lose to the defaults trained to
    the end. So the final model gets the documented epoch budget and patience (a
    searched patience is kept: the sweep chose it).
    """
    budget = {"max_epochs": DEFAULTS.max_epochs}
    if "early_stop_patience" not in searched:
        budget["early_stop_patience"] = DEFAULTS.early_stop_patience
    return trial.replace(**budget)


def _budget(config: TrainConfig) -> dict[str, int]:
    return {"max_epochs": config.max_epochs, "early_stop_patience": config.early_stop_patience}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def export_best(exp: Experiment, trials: pd.DataFrame | None = None, data: PreparedData | None = None) -> dict[str, Any]:
    """Write ``best_config.json`` into the experiment folder and return it."""
    doc = best_config(exp, trials, data)
    storage.write_text(exp.file(BEST_FILE), json.dumps(doc, indent=2, default=_plain))
    return doc


def format_summary(doc: dict[str, Any], comparison: DefaultsComparison | None = None) -> str:
    """The best config beside the defaults, as a few lines of text (and the same-epoch comparison)."""
    lines = [f"best trial {doc['trial_id']}:"]
    defaults = TrainConfig().to_dict()
    for name in doc["searched"]:
        lines.append(f"  {name:<16} {doc['config'][name]!s:<24} (default {defaults[name]})")
    m, d = doc["metrics"], doc["defaults_metrics"]
    header = f"  {'':<16} {'best':>12} {'defaults':>12}"
    lines.append(header)
    for key in (BEST_COLUMN, "best_val_rmse", "best_val_loss", "epochs_run"):
        dv = "n/a" if d is None else f"{d[key]:.5g}"
        lines.append(f"  {key:<16} {m[key]:>12.5g} {dv:>12}")
    errored = doc.get("defaults_errored")
    if d is None and errored:
        lines.append(f"  the defaults' trial {errored['trial_id']} errored, so its metrics are left out: {errored['error']}")
    if comparison is not None:
        lines.extend(comparison.lines())
    final = doc.get("final_model")
    if final:
        members = ", ".join(f"{m['trial_id']} x{m['weight']:.2f}" for m in final["members"])
        lines.append(
            f"final model: the average of {len(final['members'])} trials ({members}), val_mae {final['val_mae']:.5g} "
            f"vs {final['best_trial_val_mae']:.5g} for the best trial alone"
            if len(final["members"]) > 1
            else f"final model: the best trial alone (no average of the best {len(final['candidates'])} trials scored better)"
        )
    return "\n".join(lines)


def _sweep_data(exp: Experiment) -> PreparedData | None:
    """The sweep's data for its final model; None (and one warning) where it cannot be read any more."""
    if not exp.is_local:
        return None
    from tuning.sweep_data import prepare
    from tuning.sweep_settings import SweepSettings

    settings = SweepSettings.load(exp)  # no sweep, or a damaged sweep.json: the error, not a warning
    try:
        return prepare(settings)
    except UserError as e:
        log.warning("no final model (the best trials' average) without the sweep's data: %s", e)
        return None


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog_name(MODULE), description="Export a sweep's best config to <storage-path>/<name>/best_config.json."
    )
    p.add_argument("--name", required=True, help="the sweep's experiment name")
    p.add_argument(
        "--storage-path", default=DEFAULT_STORAGE, metavar="DIR_OR_URI", help="where the sweep lives (default: %(default)s)"
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        exp = Experiment.at(args.storage_path, args.name)
        doc = export_best(exp, data=_sweep_data(exp))
        print(format_summary(doc))
        print(f"wrote {exp.file(BEST_FILE)}")
        return 0

    return run_main(body, prog=prog_name(MODULE), debug=args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
