"""Benchmark: the training step on the CPU and on a GPU, side by side, in one run.

Training samples per second of ``tuning.engine.train_one_epoch`` on the real batch path
(``TrainingRun.windows.train.batches``: on a GPU the series lives there and batches are
gathered there), for the default MLP and the LSTM, on the CPU (every core, float32) and
on CUDA in float32, float16 autocast with GradScaler, and bfloat16; plus one whole epoch
(training + validation, as a sweep's trial runs it) of the embedded data set per device.

Run ``python benchmarks/bench_gpu.py`` on a machine with CUDA (without one it measures
the CPU rows only). ``--out DIR`` also writes ``gpu_bench.csv``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tuning.config import TrainConfig  # noqa: E402
from tuning.data import PreparedData, prepare_data  # noqa: E402
from tuning.engine import TrainingRun, train_one_epoch  # noqa: E402
from tuning.sources import synthetic_traffic  # noqa: E402

MODES = {
    "cpu fp32": {"device": "cpu", "use_mixed_precision": False},
    "cuda fp32": {"device": "cuda", "use_mixed_precision": False},
    "cuda fp16": {"device": "cuda", "amp_dtype": "float16"},
    "cuda bf16": {"device": "cuda", "amp_dtype": "bfloat16"},
}
MODELS = {"mlp": {}, "lstm": {"model": "rnn", "cell": "lstm"}}


def _sync(run: TrainingRun) -> None:
    if run.device.type == "cuda":
        torch.cuda.synchronize()


def samples_per_second(config: TrainConfig, data: PreparedData, batches: int, repeats: int) -> float:
    """Best of ``repeats`` timed passes over ``batches`` batches (after one warm-up pass)."""
    run = TrainingRun(config, data)
    best = 0.0
    for r in range(repeats + 1):
        it = itertools.islice(run.windows.train.batches(config.batch_size, shuffle=True, seed=r), batches)
        _sync(run)
        start = time.perf_counter()
        stats = train_one_epoch(
            run.model, it, run.optimizer, run.grad_scaler, run.precision, run.device,
            gradient_clip=config.gradient_clip, objective=run.objective,
        )  # fmt: skip
        _sync(run)
        if r:
            best = max(best, stats.batches * config.batch_size / (time.perf_counter() - start))
    return best


def epoch_seconds(config: TrainConfig, data: PreparedData) -> float:
    """A whole epoch (train + validation) as a trial runs it; the second of two."""
    run = TrainingRun(config.replace(max_epochs=2), data)
    run.run_epoch()
    _sync(run)
    run.run_epoch()
    return float(run.histories["epoch_time_s"][-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cpus = len(os.sched_getaffinity(0))
    card = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"torch {torch.__version__}, {cpus} CPU threads, GPU: {card}")
    modes = {k: v for k, v in MODES.items() if v["device"] == "cpu" or torch.cuda.is_available()}
    if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        modes.pop("cuda bf16")
    big = prepare_data(synthetic_traffic(num_sensors=200, num_days=7), 10, 5)
    rows = []
    print(f"\n{'model':<5} {'batch':>5} " + " ".join(f"{m:>13}" for m in modes) + "   (train samples/s, 200 sensors x 7 days)")
    for (name, changes), bs in itertools.product(MODELS.items(), args.batch_sizes):
        cells = []
        for mode, settings in modes.items():
            config = TrainConfig(batch_size=bs, num_threads=cpus, save_checkpoints=False, **changes, **settings)  # type: ignore[arg-type]
            sps = samples_per_second(config, big, args.batches, args.repeats)
            rows.append({"what": "train_samples_per_s", "model": name, "batch_size": bs, "mode": mode, "value": sps})
            cells.append(f"{sps:>13,.0f}")
        print(f"{name:<5} {bs:>5} " + " ".join(cells))
    embedded = prepare_data(synthetic_traffic(), 10, 5)
    print(f"\nwhole epoch, embedded data ({len(embedded.train)} train windows), default config, seconds:")
    for mode, settings in modes.items():
        seconds = epoch_seconds(TrainConfig(num_threads=cpus, save_checkpoints=False, **settings), embedded)  # type: ignore[arg-type]
        rows.append({"what": "epoch_s", "model": "mlp", "batch_size": 1024, "mode": mode, "value": seconds})
        print(f"  {mode:<10} {seconds:8.3f}")
    if args.out is not None:
        import pandas as pd

        args.out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).assign(card=card, cpus=cpus).to_csv(args.out / "gpu_bench.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
