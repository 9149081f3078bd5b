"""Benchmark: windowed tensor batches vs a per-sample DataLoader over materialised windows.

Compares, in one run, on the same model and the same samples:

1. training throughput (samples/s) of :func:`tuning.engine.train_one_epoch` fed by
   ``PreparedData.train.batches(...)`` (index views over one shared series), against
   the old kind of loop: a per-sample ``torch.utils.data.Dataset`` over windows
   materialised with numpy, behind ``DataLoader(shuffle=True, num_workers=4,
   persistent_workers=True, pin_memory=False)`` and behind ``num_workers=0``;
2. memory: bytes held by each data set, and the process RSS growth while building it
   (what the build keeps, and its peak).

Every contender gets a fresh model from :class:`tuning.engine.TrainingRun` with the
same config and seed, one warm-up pass, then ``--repeats`` timed passes of the first
``--max-batches`` batches of an epoch; the contenders take turns round by round, so
background load hits them alike, and the median pass is reported.

Run from the repository root::

    .venv/bin/python benchmarks/bench_data_pipeline.py            # defaults: 200 sensors x 28 days
    .venv/bin/python benchmarks/bench_data_pipeline.py --help
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import itertools
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch.utils.data import DataLoader, Dataset, RandomSampler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from tuning.config import TrainConfig  # noqa: E402
from tuning.data import Batch, PreparedData, WindowSet, prepare_data  # noqa: E402
from tuning.engine import TrainingRun, available_cpus, train_one_epoch  # noqa: E402
from tuning.sources import synthetic_traffic  # noqa: E402

THREADS = 2
TARGET_VS_WORKERS = 2.0  # ours >= 2x the DataLoader with --workers
TARGET_VS_NO_WORKERS = 1.3  # ours >= 1.3x the DataLoader with num_workers=0
TARGET_MEMORY = 0.25  # ours <= 1/4 of the materialised windows


# ----------------------------------------------------------------------------------
# memory


def _proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process in bytes (Linux), {} elsewhere."""
    out: dict[str, int] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def rss_bytes() -> int | None:
    try:
        import psutil  # type: ignore[import-not-found]

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        return _proc_status().get("VmRSS")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so a later read gives this phase's peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc), so that a build's RSS growth is not
    hidden by reusing memory an earlier step freed but the allocator kept."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure_build(build: Callable[[], object]) -> tuple[object, int | None, int | None]:
    """Build something; return it with the RSS growth it keeps (live) and its peak RSS growth."""
    release_free_memory()
    can_peak = reset_peak_rss()
    before = rss_bytes()
    obj = build()
    peak = _proc_status().get("VmHWM") if can_peak else None
    release_free_memory()  # what the build freed no longer counts: "live" is what it keeps
    after = rss_bytes()
    live = None if before is None or after is None else after - before
    peak_growth = None if before is None or peak is None else max(peak, after or 0) - before
    return obj, live, peak_growth


def tensor_bytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:,.1f} MiB"


# ----------------------------------------------------------------------------------
# the old kind of data set


def materialise(windows: WindowSet) -> dict[str, np.ndarray]:
    """Every window of ``windows`` as its own rows, in the same sample order.

    Sample ``i`` is sensor ``i % N`` at start ``windows.first + i // N``, exactly as
    :meth:`WindowSet.__getitem__` gathers it; built with strided views so the only
    large allocations are the outputs themselves (the old data set's best case).
    """
    inputs = windows.tensors.inputs.numpy()  # (T, N)
    observed = windows.tensors.observed.numpy()
    feats = windows.tensors.time_features.numpy()  # (T, F)
    starts, n, ls, lt, nf = windows.num_starts, windows.num_sensors, windows.len_source, windows.len_target, feats.shape[1]
    src = slice(windows.first - ls, windows.first - ls + starts)  # window a covers steps [a, a + ls)
    tgt = slice(windows.first, windows.first + starts)
    x = np.empty((starts, n, ls, 1 + nf), np.float32)
    x[..., 0] = sliding_window_view(inputs, ls, axis=0)[src]  # (starts, N, ls)
    future = np.empty((starts, n, lt, nf), np.float32)
    if nf:
        x[..., 1:] = sliding_window_view(feats, ls, axis=0)[src].transpose(0, 2, 1)[:, None]
        future[...] = sliding_window_view(feats, lt, axis=0)[tgt].transpose(0, 2, 1)[:, None]
    y = np.ascontiguousarray(sliding_window_view(inputs, lt, axis=0)[tgt])
    mask = np.ascontiguousarray(sliding_window_view(observed, lt, axis=0)[tgt])
    # calendar slots of every input and target step, per window (the same for all sensors)
    span = slice(windows.first - ls, windows.first - ls + starts)
    tod = sliding_window_view(windows.tensors.tod.numpy(), ls + lt)[span]  # (starts, ls + lt)
    dow = sliding_window_view(windows.tensors.dow.numpy(), ls + lt)[span]
    s = starts * n
    return {
        "tod": np.ascontiguousarray(np.broadcast_to(tod[:, None], (starts, n, ls + lt))).reshape(s, ls + lt),
        "dow": np.ascontiguousarray(np.broadcast_to(dow[:, None], (starts, n, ls + lt))).reshape(s, ls + lt),
        "x": x.reshape(s, ls, 1 + nf),
        "future": future.reshape(s, lt, nf),
        "y": y.reshape(s, lt),
        "mask": mask.reshape(s, lt),
        "sensor": np.tile(np.arange(n, dtype=np.int64), starts),
    }


class MaterialisedWindows(Dataset):
    """The old per-sample data set: one window per ``__getitem__``, collated by the DataLoader."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.x, self.future, self.y = arrays["x"], arrays["future"], arrays["y"]
        self.mask, self.sensor = arrays["mask"], arrays["sensor"]
        self.tod, self.dow = arrays["tod"], arrays["dow"]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(
        self, i: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int, torch.Tensor, torch.Tensor]:
        return (
            torch.from_numpy(self.x[i]),
            torch.from_numpy(self.future[i]),
            torch.from_numpy(self.y[i]),
            torch.from_numpy(self.mask[i]),
            int(self.sensor[i]),
            torch.from_numpy(self.tod[i]),
            torch.from_numpy(self.dow[i]),
        )


def check_identical(windows: WindowSet, arrays: dict[str, np.ndarray], count: int = 4096, seed: int = 0) -> None:
    """Both data sets must yield the same sample for the same index."""
    idx = torch.randint(len(windows), (count,), generator=torch.Generator().manual_seed(seed))
    idx = torch.cat([idx, torch.tensor([0, len(windows) - 1])])
    ours = windows[idx]
    theirs = [torch.from_numpy(arrays[k][idx.numpy()]) for k in Batch._fields]
    for name, a, b in zip(Batch._fields, ours, theirs):
        if a.shape != b.shape or a.dtype != b.dtype or not torch.equal(a, b):
            raise AssertionError(f"materialised windows differ from WindowSet in field {name!r}")


# ----------------------------------------------------------------------------------
# contenders


@dataclass
class Contender:
    name: str
    make_batches: Callable[[int], Iterable[Batch]]  # pass number -> batches of one (truncated) epoch
    run: TrainingRun
    times: list[float] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)
    loss: float = float("nan")
    data_only_sps: float | None = None
    close: Callable[[], None] = lambda: None

    @property
    def median_sps(self) -> float:
        return statistics.median(s / t for s, t in zip(self.samples, self.times))

    @property
    def range_sps(self) -> tuple[float, float]:
        rates = [s / t for s, t in zip(self.samples, self.times)]
        return min(rates), max(rates)


def _counted(batches: Iterable[Batch], counter: list[int], limit: int | None) -> Iterator[Batch]:
    for batch in itertools.islice(batches, limit):
        counter[0] += len(batch.y)
        yield batch


def one_pass(c: Contender, pass_no: int, limit: int | None) -> tuple[float, int, float]:
    counter = [0]
    run = c.run
    start = time.perf_counter()
    stats = train_one_epoch(
        run.model, _counted(c.make_batches(pass_no), counter, limit), run.optimizer, run.grad_scaler, run.precision,
        run.device, gradient_clip=run.config.gradient_clip, epoch=pass_no,
    )  # fmt: skip
    return time.perf_counter() - start, counter[0], stats.loss


def data_only(c: Contender, pass_no: int, limit: int | None) -> float:
    counter = [0]
    start = time.perf_counter()
    for _ in _counted(c.make_batches(pass_no), counter, limit):
        pass
    return counter[0] / (time.perf_counter() - start)


def ours(data: PreparedData, config: TrainConfig) -> Contender:
    run = TrainingRun(config, data, "cpu")

    def make(pass_no: int) -> Iterable[Batch]:
        # the same seeded order as TrainingRun uses
        return data.train.batches(config.batch_size, shuffle=True, seed=config.seed * 100_003 + pass_no)

    return Contender("WindowSet.batches (ours)", make, run)


def dataloader(
    data: PreparedData, dataset: MaterialisedWindows, config: TrainConfig, workers: int, limit: int | None
) -> Contender:
    run = TrainingRun(config, data, "cpu")
    gen = torch.Generator().manual_seed(config.seed)
    common = dict(batch_size=config.batch_size, num_workers=workers, persistent_workers=workers > 0, pin_memory=False)
    if limit is None:
        loader = DataLoader(dataset, shuffle=True, generator=gen, **common)
    else:
        # What shuffle=True builds (a RandomSampler), cut to the timed batches so an epoch
        # ends cleanly: no prefetched batches of a cut epoch are left for the next pass to
        # drain, and idle persistent workers use no CPU while other contenders run.
        sampler = RandomSampler(dataset, num_samples=min(len(dataset), limit * config.batch_size), generator=gen)
        loader = DataLoader(dataset, sampler=sampler, **common)

    def make(pass_no: int) -> Iterable[Batch]:
        return (Batch(*b) for b in loader)

    def close() -> None:
        it = getattr(loader, "_iterator", None)
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()

    name = f"DataLoader, {workers} worker{'s' if workers != 1 else ''}"
    return Contender(name, make, run, close=close)


# ----------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--sensors", type=int, default=200, help="sensors of the synthetic series")
    p.add_argument("--days", type=int, default=28, help="days of the synthetic series (288 steps a day)")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="batch size of every contender")
    p.add_argument(
        "--max-batches", type=int, default=150, help="time only the first N batches of an epoch per pass (0: whole epoch)"
    )
    p.add_argument("--workers", type=int, default=4, help="num_workers of the multi-process DataLoader contender")
    p.add_argument("--repeats", type=int, default=3, help="timed passes per contender (round robin; the median is reported)")
    p.add_argument("--no-data-only", action="store_true", help="skip the data-only pass (iterate batches without training)")
    p.add_argument("--verbose", action="store_true", help="print every timed pass")
    p.add_argument("--seed", type=int, default=TrainConfig.seed, help="seed of the model, the optimiser and the shuffles")
    args = p.parse_args(argv)
    for name in ("sensors", "days", "batch_size", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.max_batches < 0 or args.workers < 1:
        p.error("--max-batches must be >= 0 and --workers >= 1")
    return args


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(THREADS)
    # We print our own note on oversubscription below.
    warnings.filterwarnings("ignore", message="This DataLoader will create", category=UserWarning)
    limit = args.max_batches or None
    config = TrainConfig(batch_size=args.batch_size, num_threads=THREADS, device="cpu", seed=args.seed)
    load0 = os.getloadavg()
    cpus = available_cpus()

    print("== data pipeline benchmark ==")
    print(
        f"torch {torch.__version__}, numpy {np.__version__}; {cpus} CPUs available, torch threads {THREADS}; "
        f"load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}"
    )
    if args.workers + THREADS > cpus:
        print(
            f"note: num_workers={args.workers} plus {THREADS} training threads oversubscribe the {cpus} CPUs here; "
            "that is the old module's setting and the point of the comparison"
        )

    # --- data ---------------------------------------------------------------------
    series = synthetic_traffic(num_sensors=args.sensors, num_days=args.days)
    prepare_data(synthetic_traffic(num_sensors=2, num_days=2))  # warm lazy imports/allocators out of the measurement
    data, ours_live, ours_peak = measure_build(functools.partial(prepare_data, series))
    assert isinstance(data, PreparedData)
    del series
    st = data.train.tensors
    ours_bytes = tensor_bytes(st.inputs, st.observed, st.time_features)
    arrays, mat_live, mat_peak = measure_build(lambda: materialise(data.train))
    assert isinstance(arrays, dict)
    mat_bytes = sum(a.nbytes for a in arrays.values())
    per_sample = mat_bytes / len(data.train)
    all_splits = int(per_sample * (len(data.train) + len(data.val) + len(data.test)))
    check_identical(data.train, arrays)
    T, N = st.inputs.shape
    print(
        f"data: synthetic {N} sensors x {T} steps, len_source {data.len_source}, len_target {data.len_target}, "
        f"{data.num_time_features} time features; {len(data.train):,} train windows "
        f"({-(-len(data.train) // args.batch_size)} batches of {args.batch_size}); "
        "materialised windows checked identical to WindowSet's"
    )

    # --- throughput -----------------------------------------------------------------
    dataset = MaterialisedWindows(arrays)
    contenders = [
        ours(data, config),
        dataloader(data, dataset, config, args.workers, limit),
        dataloader(data, dataset, config, 0, limit),
    ]
    timed = "whole epoch" if limit is None else f"first {limit} batches"
    print(
        f"model: {config.cell} hidden {config.hidden_size}, {config.num_layers} layer, batch {config.batch_size}, "
        f"{sum(p.numel() for p in contenders[0].run.model.parameters())} parameters, precision {contenders[0].run.precision.name}; "
        f"timing {timed} of an epoch, 1 warm-up + {args.repeats} timed pass(es) each, round robin"
    )
    try:
        for c in contenders:
            one_pass(c, 0, limit)  # warm-up: starts persistent workers, touches every allocation path
        for r in range(1, args.repeats + 1):
            for c in contenders:
                elapsed, n, loss = one_pass(c, r, limit)
                c.times.append(elapsed)
                c.samples.append(n)
                c.loss = loss
                if args.verbose:
                    print(
                        f"  pass {r}: {c.name:<26} {n / elapsed:>10,.0f} samples/s  ({elapsed:.2f} s, loadavg {os.getloadavg()[0]:.2f})"
                    )
        if not args.no_data_only:
            for c in contenders:
                c.data_only_sps = data_only(c, args.repeats + 1, limit)
    finally:
        for c in contenders:
            c.close()
    load1 = os.getloadavg()

    # --- report ---------------------------------------------------------------------
    base = contenders[0].median_sps
    print()
    print(
        f"{'contender':<26} {'train samples/s':>15} {'(min-max)':>17} {'ms/batch':>9} {'data-only/s':>12} "
        f"{'last loss':>9} {'ours is':>8}"
    )
    for c in contenders:
        lo, hi = c.range_sps
        ms = 1e3 * config.batch_size / c.median_sps
        do = "-" if c.data_only_sps is None else f"{c.data_only_sps:,.0f}"
        print(
            f"{c.name:<26} {c.median_sps:>15,.0f} {f'({lo:,.0f}-{hi:,.0f})':>17} {ms:>9.1f} {do:>12} "
            f"{c.loss:>9.4f} {base / c.median_sps:>7.2f}x"
        )
    best = contenders[0].range_sps[1]
    print(
        "  best pass of each (least disturbed by other load): ours is "
        + ", ".join(f"{best / c.range_sps[1]:.2f}x {c.name}" for c in contenders[1:])
    )
    print()
    print(f"{'data set':<34} {'bytes held':>12} {'RSS growth':>13} {'RSS peak':>12}")
    print(f"{'WindowSet (shared SeriesTensors)':<34} {mib(ours_bytes):>12} {mib(ours_live):>13} {mib(ours_peak):>12}")
    print(f"{'materialised train windows':<34} {mib(mat_bytes):>12} {mib(mat_live):>13} {mib(mat_peak):>12}")
    print(f"{'  (all three splits, computed)':<34} {mib(all_splits):>12}")
    print(
        "  ours = inputs + observed + time_features, which serve all three splits; materialised = x, future, y, mask, "
        "sensor of the train split only; RSS from " + ("psutil" if _has_psutil() else "/proc/self/status")
    )

    # --- targets ----------------------------------------------------------------------
    vs_workers = base / contenders[1].median_sps
    vs_none = base / contenders[2].median_sps
    mem_ratio = ours_bytes / mat_bytes
    rss_ratio = None if not ours_peak or not mat_peak else ours_peak / mat_peak
    checks = [
        (
            f"throughput >= {TARGET_VS_WORKERS:g}x DataLoader num_workers={args.workers}",
            f"{vs_workers:.2f}x",
            vs_workers >= TARGET_VS_WORKERS,
        ),
        (f"throughput >= {TARGET_VS_NO_WORKERS:g}x DataLoader num_workers=0", f"{vs_none:.2f}x", vs_none >= TARGET_VS_NO_WORKERS),
        (f"memory (bytes held) <= 1/{1 / TARGET_MEMORY:g} of materialised", f"{mem_ratio:.3f}", mem_ratio <= TARGET_MEMORY),
    ]
    if rss_ratio is not None:
        checks.append(
            (f"memory (RSS peak) <= 1/{1 / TARGET_MEMORY:g} of materialised", f"{rss_ratio:.3f}", rss_ratio <= TARGET_MEMORY)
        )
    print()
    for label, value, ok in checks:
        print(f"{_verdict(ok)}  {label:<52} {value:>8}")
    passed = sum(ok for *_, ok in checks)
    print()
    print(
        f"SUMMARY: {passed}/{len(checks)} targets met; ours {base:,.0f} samples/s = {vs_workers:.2f}x DataLoader({args.workers} workers), "
        f"{vs_none:.2f}x DataLoader(0 workers); memory {mem_ratio:.3f}x of materialised windows; "
        f"load average {load0[0]:.2f} -> {load1[0]:.2f}"
    )
    return 0


def _has_psutil() -> bool:
    try:
        import psutil  # type: ignore[import-not-found]  # noqa: F401

        return True
    except ImportError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
