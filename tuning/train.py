"""``python -m tuning.train``: train one model and report its test metrics.

Examples::

    python -m tuning.train --max-epochs 20                       # embedded data, defaults
    python -m tuning.train --data counts.csv --zeros-are-readings  # zeros: real readings, never outages
    python -m tuning.train --config results/NAME/best_config.json  # retrain a sweep's best
    python -m tuning.train --output results/train --resume        # continue an interrupted run
    python -m tuning.train --output results/train --overwrite     # replace the run in that folder
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tuning import checkpoints, storage
from tuning.cli import ArgumentParser, add_data_arguments, positive_int, prog_name, run_main, seed_int
from tuning.config import TrainConfig
from tuning.data import PreparedData, prepare_data
from tuning.engine import BEST_KEY, TrainingRun, TrainResult, fit
from tuning.errors import DiskFullError, UserError
from tuning.fingerprint import check_unchanged, fingerprint
from tuning.logs import configure_logging
from tuning.metrics import METRIC
from tuning.progress import EpochProgress
from tuning.sources import TrafficSeries, load_series, select_sensors, synthetic_traffic
from tuning.storage import write_atomic

MODULE = "tuning.train"
RUN_FILE = "run.json"
"""The run's data source, data flags, data fingerprint and config, beside its checkpoints."""
OUTPUT_FILES = ("model.pt", "history.csv", "metrics.json", "info.json")
log = logging.getLogger("tuning.train")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog_name(MODULE), description="Train one traffic predictor with early stopping and report test metrics."
    )
    p.add_argument(
        "--config", metavar="FILE", default=None, help="JSON or YAML of config fields (a sweep's best_config.json works)"
    )
    p.add_argument(
        "--output", metavar="DIR", default="results/train", help="where the model, history and metrics go (default: %(default)s)"
    )
    p.add_argument(
        "--max-epochs",
        type=positive_int,
        default=None,
        metavar="N",
        help="cap the epochs (default: the config's max_epochs, 100)",
    )
    p.add_argument("--seed", type=seed_int, default=None, help="random seed (default: the config's, 42)")
    p.add_argument("--device", default=None, help="auto, cpu or cuda[:N] (default: auto)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --output with the data, flags and budget it saved (run.json); flags given override them",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a previous run in --output (its files go once the new run's first checkpoint is written)",
    )
    p.add_argument(
        "--allow-data-change", action="store_true", help="with --resume: continue although the data differ from the run's"
    )
    p.add_argument("--quiet", action="store_true", help="log warnings only")
    p.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    add_data_arguments(p)
    return p


def load_data_arg(
    path: str | None,
    *,
    zero_is_missing: bool | None,
    freq: str | None,
    start: str | None,
    columns: Sequence[str] | None = None,
    exclude_columns: Sequence[str] | None = None,
    readings: str | None = None,
    dayfirst: bool | None = None,
) -> TrafficSeries:
    """The ``--data`` flag: a file, or the embedded synthetic data set (sensors S000, S001, ...)."""
    if path is None:
        return select_sensors(synthetic_traffic(), columns, exclude_columns)
    return load_series(
        path, zero_is_missing=zero_is_missing, freq=freq, start=start, columns=columns, exclude_columns=exclude_columns,
        readings=readings, dayfirst=dayfirst,
    )  # fmt: skip


def sweep_data_options(config_file: str, *, data_given: bool = False) -> dict[str, Any]:
    """The data flags saved in a best-config export (``data_options``); empty otherwise.

    Raises:
        UserError: the sweep ran on data from memory that it could not save, and no
            ``--data`` is given (the embedded data set would silently take its place).
    """
    try:
        doc = json.loads(Path(config_file).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}  # YAML or other config files: TrainConfig.from_file reports real problems
    options = doc.get("data_options") if isinstance(doc, dict) else None
    if not isinstance(options, dict):
        return {}
    if options.get("unsaved") and not data_given:
        raise UserError(
            f"{config_file}: the sweep ran on {options['unsaved']}, which it could not save; pass that data with --data FILE"
        )
    return {"path": options.get("data"), "zero_is_missing": bool(options.get("zero_is_missing")),
            "freq": options.get("freq"), "start": options.get("start"),
            "columns": _names(options.get("columns")), "exclude_columns": _names(options.get("exclude_columns"))}  # fmt: skip


def _names(value: Any) -> tuple[str, ...] | None:
    """A column list saved in JSON; anything else counts as not given."""
    return tuple(str(v) for v in value) if isinstance(value, list) else None


def previous_run(output: Path) -> list[str]:
    """The files an earlier run left in ``output`` (empty: none)."""
    found = [name for name in (RUN_FILE, *OUTPUT_FILES) if (output / name).exists()]
    if any((output / "checkpoints").glob("*.pt")):
        found.append("checkpoints/")
    return found


def read_run_file(output: Path) -> dict[str, Any] | None:
    """The record of the run in ``output`` (``run.json``), or None when there is none."""
    path = output / RUN_FILE
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read {path}: {str(e).splitlines()[0]}; restore it, or start a new run with --overwrite") from e
    if not (isinstance(doc, dict) and isinstance(doc.get("config"), dict) and isinstance(doc.get("data"), dict)):
        raise UserError(f"{path} is not a run record of tuning.train; restore it, or start a new run with --overwrite")
    return doc


def resolve_config(args: argparse.Namespace, output: Path, saved: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults, then ``--config`` (or the resumed run's config), then explicit flags; checkpoints under ``output``."""
    if args.config:
        base = TrainConfig.from_file(args.config).to_dict()
    else:
        base = dict(saved["config"]) if saved else {}
    flags = {
        "max_epochs": args.max_epochs,
        "seed": args.seed,
        "device": args.device,
        "len_source": args.len_source,
        "len_target": args.len_target,
    }
    base.update({k: v for k, v in flags.items() if v is not None})
    base["checkpoint_dir"] = str(output / "checkpoints")
    source = args.config or (str(output / RUN_FILE) if saved else "flags")
    return TrainConfig.from_dict(base, source=source)


def resolve_data_args(args: argparse.Namespace, saved: dict[str, Any] | None) -> dict[str, Any]:
    """The data source and flags: the resumed run's (or a sweep export's), then explicit flags."""
    options: dict[str, Any] = {"path": None, "zero_is_missing": None, "freq": None, "start": None,
                               "columns": None, "exclude_columns": None}  # fmt: skip
    if saved:
        options.update({k: saved["data"].get(k, v) for k, v in options.items()})
    elif args.config:
        # A sweep's best_config.json remembers the data it was searched on.
        options.update(sweep_data_options(args.config, data_given=args.data is not None))
    given = {"path": args.data, "zero_is_missing": args.zero_is_missing, "freq": args.freq, "start": args.start}
    options.update({k: v for k, v in given.items() if v is not None})
    if args.columns is not None or args.exclude_columns is not None:  # one choice of sensors replaces the other
        options.update(columns=args.columns, exclude_columns=args.exclude_columns)
    path = options["path"]
    if path is not None and not storage.is_uri(str(path)):
        options["path"] = str(Path(path).expanduser().resolve())  # a resume may start in another folder
    return options


def _clear_previous(output: Path, config: TrainConfig) -> None:
    """Remove an older run's outputs (its checkpoints go with the new run's first one)."""
    log.info("removing the previous run's outputs in %s", output)
    for name in OUTPUT_FILES:
        (output / name).unlink(missing_ok=True)
    if not config.save_checkpoints:  # no checkpoint of ours will take their place
        for old in (output / "checkpoints").glob("*.pt"):
            old.unlink()


def metrics_table(test_metrics: dict[str, dict[str, Any]]) -> str:
    """Per-horizon MAE/RMSE/MAPE of the model beside copy-last, as text."""
    rows = []
    model, base = test_metrics["model"], test_metrics["copy_last"]
    for h in range(len(model["per_horizon"]["mae"])):
        rows.append({
            "horizon": h + 1,
            **{f"model_{m}": model["per_horizon"][m][h] for m in ("mae", "rmse", "mape")},
            **{f"copy_last_{m}": base["per_horizon"][m][h] for m in ("mae", "rmse", "mape")},
        })  # fmt: skip
    rows.append({"horizon": "all", **{f"model_{m}": model[m] for m in ("mae", "rmse", "mape")},
                 **{f"copy_last_{m}": base[m] for m in ("mae", "rmse", "mape")}})  # fmt: skip
    return pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}")


def _write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, default=float).encode())


def write_outputs(output: Path, result: TrainResult, data: PreparedData, data_options: dict[str, Any] | None = None) -> None:
    """Model (weights, config, scaler, sensors, step, data flags), per-epoch history, metrics.json, info.json.

    ``data_options`` are the loader flags (``zero_is_missing``, ``columns``...): ``tuning.predict``
    reads new data the same way.
    """
    output.mkdir(parents=True, exist_ok=True)
    model, histories, info = result
    payload = {"model": model.state_dict(), "config": info["config"], **data.model_record()}
    if data_options is not None:
        payload["data_options"] = dict(data_options)
    checkpoints.save(output / "model.pt", checkpoints.MODEL, payload)
    flat = {k: v for k, v in histories.items() if not k.endswith("_per_horizon")}
    history = pd.DataFrame(flat)
    history.insert(0, "epoch", range(1, len(history) + 1))
    write_atomic(output / "history.csv", history.to_csv(index=False).encode())
    _write_json(output / "metrics.json", info["test_metrics"])
    _write_json(output / "info.json", {k: v for k, v in info.items() if k != "test_metrics"})


def resume_command(argv: Sequence[str] | None) -> str:
    """This command again with ``--resume``: it continues from the newest checkpoint."""
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a not in ("--resume", "--overwrite")]
    return shlex.join([*prog_name(MODULE).split(), *args, "--resume"])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        configure_logging(30 if args.quiet else 20)
        output = Path(args.output).resolve()
        if args.resume and args.overwrite:
            raise UserError("--resume continues the run in --output and --overwrite replaces it; pass one of them")
        previous = previous_run(output) if output.is_dir() else []
        if previous and not (args.resume or args.overwrite):
            raise UserError(
                f"--output {output} holds a previous run ({', '.join(previous)}); continue it with --resume, "
                "replace it with --overwrite, or choose another --output"
            )
        saved = read_run_file(output) if args.resume else None
        if args.resume and saved is None and previous:
            log.warning("%s has no %s (an older version wrote it); resuming with the flags given", output, RUN_FILE)
        config = resolve_config(args, output, saved)
        # before the data is read: a bad --output fails at once, in one line
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create --output {output}: {e.strerror or e}; pass a writable folder") from e
        data_args = resolve_data_args(args, saved)
        series = load_data_arg(**data_args)
        data_args["zero_is_missing"] = series.zeros_missing  # auto decided: a resume reads the data the same way
        current = fingerprint(series, data_args["path"])
        if saved is not None:
            check_unchanged(
                saved.get("fingerprint"), current, where=str(output / RUN_FILE), allow=args.allow_data_change, log=log
            )
        data = prepare_data(series, config.len_source, config.len_target)
        record = {"data": data_args, "fingerprint": current.to_dict(), "config": config.to_dict()}
        replacing = bool(previous) and args.overwrite
        # Over an earlier run (--resume or --overwrite), the record changes only once this
        # run's first checkpoint is on disk: a resume that fails keeps the old record intact.
        pending = bool(previous)
        if not pending:
            _write_json(output / RUN_FILE, record)

        def after_epoch(metrics: dict[str, Any], run: TrainingRun) -> None:
            nonlocal pending
            progress.epoch_done(metrics)
            if pending:
                if replacing:  # the old run may go now
                    _clear_previous(output, config)
                _write_json(output / RUN_FILE, record)
                pending = False

        try:
            with EpochProgress(config.max_epochs, bar=False if args.quiet else None) as progress:
                result = fit(config, data, resume=args.resume, report=after_epoch, on_batch=progress.batch_done)
            write_outputs(output, result, data, data_args)
        except KeyboardInterrupt:
            if config.save_checkpoints:
                print(f"interrupted; resume with:\n  {resume_command(argv)}", file=sys.stderr)
            raise
        except DiskFullError as e:
            # The checkpoints written so far are whole (atomic writes): the run continues from the newest.
            again = f"resume with: {resume_command(argv)}" if config.save_checkpoints else "run it again"
            raise DiskFullError(e.path, f"free space on that disk, then {again}") from e
        info = result.info
        print(f"data: {data.name}  best epoch {info['best_epoch']} of {info['epochs_run']}  {METRIC} {info[BEST_KEY]:.5f}")
        print(metrics_table(info["test_metrics"]))
        print(f"wrote {output}/model.pt, history.csv, metrics.json")
        return 0

    return run_main(body, prog=prog_name(MODULE), debug=args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
