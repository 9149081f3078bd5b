"""``python -m tuning.train``: train one model and report its test metrics.

Examples::

    python -m tuning.train --max-epochs 20                       # embedded data, defaults
    python -m tuning.train --data counts.csv --zero-is-missing
    python -m tuning.train --config results/NAME/best_config.json  # retrain a sweep's best
    python -m tuning.train --output results/train --resume        # continue an interrupted run
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from tuning.cli import ArgumentParser, add_data_arguments, positive_int, run_main
from tuning.config import TrainConfig
from tuning.data import PreparedData, prepare_data
from tuning.engine import TrainResult, fit
from tuning.errors import UserError
from tuning.logs import configure_logging
from tuning.sources import TrafficSeries, load_series, synthetic_traffic

PROG = "python -m tuning.train"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Train one traffic predictor with early stopping and report test metrics.")
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
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the config's, 42)")
    p.add_argument("--device", default=None, help="auto, cpu or cuda[:N] (default: auto)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in OUTPUT/checkpoints")
    p.add_argument("--quiet", action="store_true", help="log warnings only")
    p.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    add_data_arguments(p)
    return p


def load_data_arg(path: str | None, *, zero_is_missing: bool, freq: str | None, start: str | None) -> TrafficSeries:
    """The ``--data`` flag: a file, or the embedded synthetic data set."""
    if path is None:
        return synthetic_traffic()
    return load_series(path, zero_is_missing=zero_is_missing, freq=freq, start=start)


def sweep_data_options(config_file: str) -> dict[str, Any]:
    """The data flags saved in a best-config export (``data_options``); empty otherwise."""
    try:
        doc = json.loads(Path(config_file).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}  # YAML or other config files: TrainConfig.from_file reports real problems
    options = doc.get("data_options") if isinstance(doc, dict) else None
    if not isinstance(options, dict):
        return {}
    return {"path": options.get("data"), "zero_is_missing": bool(options.get("zero_is_missing")),
            "freq": options.get("freq"), "start": options.get("start")}  # fmt: skip


def resolve_config(args: argparse.Namespace, output: Path) -> TrainConfig:
    """Defaults, then ``--config``, then explicit flags; checkpoints under ``output``."""
    base = TrainConfig.from_file(args.config).to_dict() if args.config else {}
    flags = {
        "max_epochs": args.max_epochs,
        "seed": args.seed,
        "device": args.device,
        "len_source": args.len_source,
        "len_target": args.len_target,
    }
    base.update({k: v for k, v in flags.items() if v is not None})
    base["checkpoint_dir"] = str(output / "checkpoints")
    return TrainConfig.from_dict(base, source=args.config or "flags")


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
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float))
    os.replace(tmp, path)


def write_outputs(output: Path, result: TrainResult, data: PreparedData) -> None:
    """Model (weights, config, scaler), per-epoch history, metrics.json, info.json."""
    output.mkdir(parents=True, exist_ok=True)
    model, histories, info = result
    tmp = output / ".model.pt.tmp"
    torch.save(
        {
            "model": model.state_dict(),
            "config": info["config"],
            "input_size": data.input_size,
            "scaler_mean": data.scaler.mean,
            "scaler_std": data.scaler.std,
            "sensor_ids": list(data.sensor_ids),
        },
        tmp,
    )
    os.replace(tmp, output / "model.pt")
    flat = {k: v for k, v in histories.items() if not k.endswith("_per_horizon")}
    history = pd.DataFrame(flat)
    history.insert(0, "epoch", range(1, len(history) + 1))
    history.to_csv(output / "history.csv", index=False)
    _write_json(output / "metrics.json", info["test_metrics"])
    _write_json(output / "info.json", {k: v for k, v in info.items() if k != "test_metrics"})


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        configure_logging(30 if args.quiet else 20)
        output = Path(args.output).resolve()
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create --output {output}: {e.strerror or e}; pass a writable folder") from e
        config = resolve_config(args, output)
        data_args = {"path": args.data, "zero_is_missing": args.zero_is_missing, "freq": args.freq, "start": args.start}
        if args.data is None and args.config:
            # A sweep's best_config.json remembers the data it was searched on.
            data_args.update(sweep_data_options(args.config))
        series = load_data_arg(**data_args)
        data = prepare_data(series, config.len_source, config.len_target)
        result = fit(config, data, resume=args.resume)
        write_outputs(output, result, data)
        info = result.info
        print(f"data: {data.name}  best epoch {info['best_epoch']} of {info['epochs_run']}  val_loss {info['best_val_loss']:.5f}")
        print(metrics_table(info["test_metrics"]))
        print(f"wrote {output}/model.pt, history.csv, metrics.json")
        return 0

    return run_main(body, prog=PROG, debug=args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
