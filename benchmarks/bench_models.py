"""Benchmark: the model families, side by side, for speed and for forecast quality.

1. speed: training samples per second of the MLP and the RNN (LSTM, GRU) at equal
   hidden size and layers, on the same batches and threads (target: MLP >= 3x RNN);
2. quality: the default config trained to early stopping beside the round-1 model
   (1-layer LSTM of 32, no embeddings, MSE loss) on the embedded data and, where
   ``../shared/data`` is present, the ODOT counts: test MAE against copy-last, epochs and
   training time (targets: default <= 0.90x copy-last on the embedded data; on the ODOT
   counts <= 0.77x in at most half the round-1 model's time).

Run ``python benchmarks/bench_models.py`` (``--quick`` for speed only, fewer batches).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

from tuning.config import TrainConfig
from tuning.data import PreparedData, prepare_data
from tuning.engine import TrainingRun, fit, train_one_epoch
from tuning.sources import TrafficSeries, load_series, synthetic_traffic

ROUND1 = {
    "model": "rnn", "cell": "lstm", "hidden_size": 32, "num_layers": 1, "loss": "mse",
    "node_embedding_dim": 0, "tod_embedding_dim": 0, "dow_embedding_dim": 0,
}  # fmt: skip
"""The round-1 default model, expressed in today's config."""
ODOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "odot_counts" / "counts_wide_15min.csv"
TARGET_SPEEDUP = 3.0


def samples_per_second(config: TrainConfig, data: PreparedData, batches: int, repeats: int) -> float:
    """Best of ``repeats`` timed passes over the same ``batches`` training batches."""
    run = TrainingRun(config, data, "cpu")
    fixed = list(data.train.batches(config.batch_size, shuffle=True, seed=0))[:batches]
    best = 0.0
    for _ in range(repeats + 1):  # the first pass warms up
        start = time.perf_counter()
        train_one_epoch(
            run.model, fixed, run.optimizer, run.grad_scaler, run.precision, run.device,
            gradient_clip=config.gradient_clip, objective=run.objective,
        )  # fmt: skip
        best = max(best, sum(len(b.y) for b in fixed) / (time.perf_counter() - start))
    return best


def speed(args: argparse.Namespace) -> bool:
    data = prepare_data(synthetic_traffic(num_sensors=200, num_days=7), 10, 5)
    print(f"\nspeed: 200 sensors x 7 days, batch 1024, {args.threads} thread(s), best of {args.repeats} passes")
    print(f"{'hidden':>6} {'layers':>6} {'mlp':>10} {'lstm':>10} {'gru':>10} {'mlp/lstm':>9} {'mlp/gru':>8}")
    ok = True
    for hidden, layers in ((32, 1), (64, 2), (128, 2)):
        base = TrainConfig(hidden_size=hidden, num_layers=layers, num_threads=args.threads, save_checkpoints=False)
        sps = {
            name: samples_per_second(base.replace(**changes), data, args.batches, args.repeats)
            for name, changes in (("mlp", {"model": "mlp"}), ("lstm", {"model": "rnn", "cell": "lstm"}),
                                  ("gru", {"model": "rnn", "cell": "gru"}))
        }  # fmt: skip
        ratio_lstm, ratio_gru = sps["mlp"] / sps["lstm"], sps["mlp"] / sps["gru"]
        ok &= min(ratio_lstm, ratio_gru) >= TARGET_SPEEDUP
        print(
            f"{hidden:>6} {layers:>6} {sps['mlp']:>10,.0f} {sps['lstm']:>10,.0f} {sps['gru']:>10,.0f} "
            f"{ratio_lstm:>8.1f}x {ratio_gru:>7.1f}x"
        )
    print(f"MLP >= {TARGET_SPEEDUP:g}x the RNN at equal size: {'met' if ok else 'MISSED'}")
    return ok


def quality_row(label: str, series: TrafficSeries, changes: dict[str, object], threads: int) -> dict[str, float]:
    data = prepare_data(series, 10, 5)
    config = TrainConfig(save_checkpoints=False, num_threads=threads, **changes)  # type: ignore[arg-type]
    start = time.perf_counter()
    _, _, info = fit(config, data)
    seconds = time.perf_counter() - start
    test = info["test_metrics"]
    ratio = test["model"]["mae"] / test["copy_last"]["mae"]
    print(
        f"{label:<28} {test['model']['mae']:>9.4f} {test['copy_last']['mae']:>9.4f} {ratio:>7.3f}x "
        f"{info['epochs_run']:>6} {seconds:>8.1f}"
    )
    return {"ratio": ratio, "seconds": seconds}


def quality(args: argparse.Namespace) -> bool:
    print(f"\nquality: trained to early stopping (patience 10, at most 100 epochs), {args.threads} thread(s)")
    print(f"{'data / model':<28} {'test MAE':>9} {'copy-last':>9} {'ratio':>8} {'epochs':>6} {'seconds':>8}")
    embedded = synthetic_traffic()
    ok = quality_row("embedded / default (mlp)", embedded, {}, args.threads)["ratio"] <= 0.90
    quality_row("embedded / round-1 lstm", embedded, ROUND1, args.threads)
    if ODOT.is_file():
        odot = load_series(ODOT)
        new = quality_row("odot / default (mlp)", odot, {}, args.threads)
        old = quality_row("odot / round-1 lstm", odot, ROUND1, args.threads)
        ok &= new["ratio"] <= 0.77 and new["seconds"] <= 0.5 * old["seconds"]
        print(f"odot: default {new['ratio']:.3f}x copy-last in {new['seconds'] / old['seconds']:.2f}x the round-1 time")
    else:
        print(f"(no {ODOT}: ODOT rows skipped)")
    print(f"quality targets: {'met' if ok else 'MISSED'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--batches", type=int, default=40, help="timed batches per pass (speed)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes (speed)")
    p.add_argument("--quick", action="store_true", help="speed only")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    ok = speed(args)
    if not args.quick:
        ok &= quality(args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
