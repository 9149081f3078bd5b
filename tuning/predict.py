"""``python -m tuning.predict``: forecast the steps after the end of a data file with a saved model.

Examples::

    python -m tuning.predict --model results/train --data latest.csv --output forecasts.csv
    python -m tuning.predict --name mine --data latest.parquet --output forecasts.parquet  # a sweep's best trial
    python -m tuning.predict --model results/train                # after the embedded data set; CSV on stdout

The output is long form: ``timestamp`` (``step`` for data without timestamps),
``sensor``, ``horizon`` (1 .. len_target) and ``forecast``, one row per forecast
step and sensor.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from tuning.cli import ArgumentParser, add_zero_arguments, column_list, prog_name, run_main
from tuning.errors import UserError
from tuning.forecast import Forecaster, load_model
from tuning.logs import configure_logging
from tuning.storage import DEFAULT_STORAGE, Experiment, write_atomic
from tuning.train import load_data_arg

MODULE = "tuning.predict"
FORMATS = (".csv", ".parquet")
log = logging.getLogger("tuning.predict")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog_name(MODULE), description="Forecast the next len_target steps after the end of the data with a saved model."
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", metavar="DIR", help="the --output folder of tuning.train (or a trial checkpoint folder)")
    which.add_argument(
        "--name", metavar="NAME",
        help="a sweep: forecast with its final model, the best trials' average chosen on validation (see best_config.json)",
    )  # fmt: skip
    p.add_argument("--best-trial-only", action="store_true", help="with --name: the best trial alone instead of the average")
    p.add_argument(
        "--storage-path", metavar="DIR", default=DEFAULT_STORAGE, help="with --name: where the sweep lives (default: %(default)s)"
    )
    p.add_argument("--output", metavar="FILE", default=None, help="forecasts.csv or forecasts.parquet (default: CSV on stdout)")
    p.add_argument("--device", default="cpu", help="where the model runs: cpu or cuda[:N] (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="log warnings only")
    p.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    g = p.add_argument_group("data (read as tuning.train reads it; the model's reading of zeros and choice of sensors apply)")
    g.add_argument("--data", metavar="PATH", default=None,
                   help="the latest readings, at least len_source steps: a file (or folder, or quoted pattern) as "
                        "tuning.train reads it; default: the embedded synthetic data set")  # fmt: skip
    add_zero_arguments(g, default="as the model's training data were read")
    g.add_argument("--freq", default=None, help="the data's step, e.g. 5min; builds timestamps for a file without (with --start)")
    g.add_argument("--start", default=None, help="first timestamp for a file without timestamps (with --freq)")
    pick = g.add_mutually_exclusive_group()
    pick.add_argument("--columns", type=column_list, default=None, metavar="A,B", help="the sensor columns, comma-separated")
    pick.add_argument("--exclude-columns", type=column_list, default=None, metavar="A,B", help="columns to leave out")
    return p


def resolve_model(args: argparse.Namespace) -> Forecaster:
    """``--model DIR``, or the final model (or best trial) of the sweep ``--name`` in ``--storage-path``."""
    if args.model is not None:
        folder = Path(args.model)
        if not folder.exists():
            raise UserError(f"--model {folder} does not exist; pass the --output folder of tuning.train")
        return load_model(folder, device=args.device)
    exp = Experiment.at(args.storage_path, args.name)
    if not exp.is_local:
        raise UserError(f"{exp.path} is not a local folder; sync the experiment down first and pass --storage-path DIR")
    if not exp.exists("best_config.json"):
        raise UserError(
            f"no best_config.json in {exp.path}; check --name and --storage-path, or export the sweep with "
            f"{prog_name('tuning.export')} --name {args.name}"
        )
    return load_model(exp.path, device=args.device, ensemble=not args.best_trial_only)


def write_forecasts(frame: pd.DataFrame, output: Path) -> None:
    """CSV or Parquet by the file's suffix, written atomically."""
    if output.suffix.lower() == ".parquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        write_atomic(output, buffer.getbuffer())
    else:
        write_atomic(output, frame.to_csv(index=False).encode())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        configure_logging(30 if args.quiet else 20)
        output = None if args.output is None else Path(args.output)
        if output is not None and output.suffix.lower() not in FORMATS:
            raise UserError(f"--output {output} must end in .csv or .parquet (got {output.suffix or 'no suffix'!r})")
        forecaster = resolve_model(args)
        if args.zero_is_missing is not None:  # the flag overrides how the model reads new data
            forecaster = dataclasses.replace(forecaster, zero_is_missing=args.zero_is_missing)
        series = load_data_arg(
            args.data, zero_is_missing=forecaster.zero_is_missing, freq=args.freq,
            start=args.start, columns=args.columns, exclude_columns=args.exclude_columns, readings=forecaster.readings,
            dayfirst=forecaster.dayfirst,
        )  # fmt: skip
        frame = forecaster.predict(series)
        log.info(
            "forecast %d sensors x %d steps after the end of %s with %s",
            len(forecaster.sensor_ids), forecaster.len_target, series.name, forecaster.source,
        )  # fmt: skip
        if output is None:
            frame.to_csv(sys.stdout, index=False)
            return 0
        try:
            write_forecasts(frame, output)
        except OSError as e:
            raise UserError(f"cannot write --output {output}: {e.strerror or e}; pass a writable path") from e
        print(f"wrote {output} ({len(frame)} rows: {forecaster.len_target} steps x {len(forecaster.sensor_ids)} sensors)")
        return 0

    return run_main(body, prog=prog_name(MODULE), debug=args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
