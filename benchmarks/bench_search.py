"""Benchmark: this project's sweep against what a user would pick instead.

Same data, model family, search space (``search_spaces/default.yaml``), epoch budget and
seeds under each contender:

* ``ours``: ``python -m tuning.search`` (ASHA + Optuna TPE on Ray Tune), run in-process
  through ``tuning.search.run_sweep`` with a fresh local Ray, whose start and shutdown count;
* ``optuna``: plain Optuna in one process: the same seeded multivariate TPE sampler,
  Optuna's ``HyperbandPruner`` (the space's grace period and reduction factor) pruning
  on each epoch's validation MAE, trials driven epoch by epoch through
  ``tuning.engine.TrainingRun`` with every CPU, no Ray;
* ``random``: random search on Ray Tune (``BasicVariantGenerator``), every trial trained
  to the full budget (no scheduler, no early stopping), the project's trainable;
* ``defaults``: the documented defaults trained once, patience 10, up to 100 epochs.

Per contender and seed it records wall time, epochs trained, the best validation MAE, the
test MAE of the best trial's own best weights (no retraining: its kept checkpoint's best
weights, evaluated on the test split) and the anytime curve (best validation MAE so far
against wall time and against epochs trained). Two probes measure the fixed cost of a
sweep (Ray start + first trial start + shutdown; ``--smoke-test`` wall time) and the
throughput of an epoch inside a trial against the same epoch outside Ray.

Run ``python benchmarks/bench_search.py`` (``--quick``: one seed, few trials, for
development). Writes ``runs.csv``, ``summary.csv``, ``curves.csv``, ``probes.csv`` and
``anytime.png`` into ``--out`` (default ``results/bench``).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuning import checkpoints, search  # noqa: E402
from tuning.config import TrainConfig  # noqa: E402
from tuning.data import PreparedData, prepare_data  # noqa: E402
from tuning.engine import Objective, Precision, TrainingDivergedError, TrainingRun, evaluate, fit  # noqa: E402
from tuning.metrics import METRIC  # noqa: E402
from tuning.model import build_model  # noqa: E402
from tuning.optuna_study import distribution  # noqa: E402
from tuning.ray_runtime import RayRuntime  # noqa: E402
from tuning.searcher import startup_trials  # noqa: E402
from tuning.sources import load_series, synthetic_traffic  # noqa: E402
from tuning.spaces import SearchSpace, find_space, load_space  # noqa: E402
from tuning.sweep_settings import SweepSettings  # noqa: E402

ODOT = ROOT.parent / "shared" / "data" / "odot_counts" / "counts_wide_15min.csv"
CONTENDERS = ("ours", "optuna", "random", "defaults")
COLORS = {"ours": "tab:blue", "optuna": "tab:orange", "random": "tab:green", "defaults": "tab:gray"}
log = logging.getLogger("bench_search")


# ----------------------------------------------------------------------------------
# what a contender leaves behind


@dataclass
class Event:
    """One epoch finished somewhere in a search."""

    wall_s: float  # since the contender started (Ray's start included)
    trial: str
    epoch: int
    val_mae: float


@dataclass
class Run:
    data: str
    contender: str
    seed: int
    wall_s: float = 0.0
    events: list[Event] = field(default_factory=list)
    test_mae: float = math.nan
    trials: int = 0
    load_before: float = 0.0
    load_after: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return len(self.events)

    @property
    def best_val_mae(self) -> float:
        finite = [e.val_mae for e in self.events if math.isfinite(e.val_mae)]
        return min(finite, default=math.nan)

    def curve(self) -> pd.DataFrame:
        """Best validation MAE so far after each epoch trained, in the order epochs finished."""
        rows, best = [], math.inf
        for n, e in enumerate(sorted(self.events, key=lambda e: e.wall_s), start=1):
            if math.isfinite(e.val_mae):
                best = min(best, e.val_mae)
            rows.append({"epochs": n, "wall_s": e.wall_s, "best_val_mae": best if math.isfinite(best) else math.nan})
        return pd.DataFrame(rows, columns=["epochs", "wall_s", "best_val_mae"])

    def epochs_to_reach(self, target: float) -> float:
        curve = self.curve()
        hit = curve[curve["best_val_mae"] <= target]
        return float(hit["epochs"].iloc[0]) if len(hit) else math.nan

    def at_epochs(self, epochs: int) -> tuple[float, float]:
        """(best val MAE, wall time) once ``epochs`` epochs were trained."""
        curve = self.curve()
        row = curve.iloc[min(epochs, len(curve)) - 1]
        return float(row["best_val_mae"]), float(row["wall_s"])


@dataclass(frozen=True)
class Setup:
    data_name: str
    data_path: Path | None  # None: the embedded data set
    data: PreparedData
    space: SearchSpace
    space_file: Path
    trials: int
    epochs: int
    seed: int
    work: Path
    defaults_max_epochs: int = 100
    cpus: int = 2

    @property
    def train_seed(self) -> int:
        return 42 + self.seed

    def base(self) -> dict[str, Any]:
        """Fixed config fields of every trial: the space's, the run's seed, no files."""
        return {**self.space.base_config(), "seed": self.train_seed, "save_checkpoints": False}


def test_mae(config: dict[str, Any], weights: dict[str, torch.Tensor], data: PreparedData) -> float:
    """Test MAE (original units) of given weights: the best trial's own, not retrained."""
    cfg = TrainConfig.from_dict({**config, "checkpoint_dir": None}, source="checkpoint")
    model = build_model(cfg, data.shape)
    model.load_state_dict(weights)
    device = torch.device("cpu")
    metrics = evaluate(model, data.test, data, Precision(None, False), device, objective=Objective.for_run(cfg, data, device))
    return float(metrics["model"]["mae"])


def best_checkpoint_test_mae(trial_dir: Path, data: PreparedData) -> float:
    """The kept checkpoint of a Tune trial with the lowest best-so-far, its best weights on the test split."""
    best: dict[str, Any] | None = None
    for folder in sorted(trial_dir.glob("checkpoint_*")):
        state = checkpoints.load(folder / checkpoints.RUN_STATE_FILE, checkpoints.RUN)
        if best is None or state["early_stopping"]["best"] < best["early_stopping"]["best"]:
            best = state
    if best is None:
        return math.nan
    return test_mae(best["config"], best["best_state"], data)


@contextmanager
def load_window(run: Run) -> Iterator[None]:
    run.load_before = os.getloadavg()[0]
    yield
    run.load_after = os.getloadavg()[0]


def start_ray(cpus: int) -> None:
    """A local Ray of ``cpus`` CPUs for the contenders that drive Ray Tune themselves.

    The CPU count is given so that the benchmark can run on a share of a bigger machine
    (``taskset -c 0,1``): ``ray.init`` counts every core of the machine, not the process's
    (``ours`` runs the sweep's own private Ray, which counts the process's).
    """
    import ray

    ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING, configure_logging=True)


def _timeline(t0: float, events: list[Event], first: dict[str, float]) -> Any:
    """A Tune callback that timestamps every epoch's result as the driver receives it."""
    from ray import tune

    class Timeline(tune.Callback):
        def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any) -> None:
            now = time.perf_counter()
            if not first:
                first["result_at"] = now - t0
                # The epoch's own time (training and validation), not Tune's time_this_iter_s: a
                # function trainable's first "iteration" also holds its set-up (model, optimizer).
                # (A diverged epoch reports no epoch time: Tune's figure then, set-up included.)
                first["epoch_s"] = float(result.get("epoch_time_s", result.get("time_this_iter_s", 0.0)))
            value = result.get(METRIC, math.nan)
            events.append(Event(now - t0, trial.trial_id, int(result["epoch"]), float(value) if value is not None else math.nan))

    return Timeline()


def _trial_dir(exp: Path, trial_id: str) -> Path:
    found = [p for p in exp.iterdir() if p.is_dir() and trial_id in p.name]
    if len(found) != 1:
        raise RuntimeError(f"expected one folder of trial {trial_id} in {exp}, found {found}")
    return found[0]


def _best_trial(events: list[Event]) -> str:
    finite = [e for e in events if math.isfinite(e.val_mae)]
    return min(finite, key=lambda e: e.val_mae).trial


# ----------------------------------------------------------------------------------
# the contenders


def run_ours(s: Setup) -> Run:
    """``tuning.search.run_sweep`` (what ``python -m tuning.search`` runs) in this process, with the
    private local Ray the sweep starts (timed) and stops when it ends (timed)."""
    run = Run(s.data_name, "ours", s.seed, trials=s.trials)
    name = f"ours-{s.data_name}-{s.seed}"
    first: dict[str, float] = {}
    original_init, original_callbacks = search.init_ray, search._fault_injection

    with load_window(run):
        t0 = time.perf_counter()

        def timed_init(address: str | None) -> RayRuntime | None:
            start = time.perf_counter()
            runtime = original_init(address)  # the product's own start: the keeper process and its Ray
            run.extra["ray_start_s"] = time.perf_counter() - start
            run.extra["ray_ready_at_s"] = time.perf_counter() - t0
            assert runtime is not None, "the benchmark process must not be connected to a Ray already"
            close = runtime.close

            def timed_close() -> None:
                start = time.perf_counter()
                close()
                run.extra["shutdown_s"] = time.perf_counter() - start

            runtime.close = timed_close  # type: ignore[method-assign]
            return runtime

        # The sweep's one hook for extra Tune callbacks (fault injection in tests).
        search.init_ray = timed_init  # type: ignore[assignment]
        search._fault_injection = lambda: [_timeline(t0, run.events, first)]
        try:
            result = search.run_sweep(
                str(s.space_file), None if s.data_path is None else str(s.data_path), name=name,
                storage_path=str(s.work), num_samples=s.trials, max_epochs=s.epochs, seed=s.seed,
            )  # fmt: skip
        finally:
            search.init_ray, search._fault_injection = original_init, original_callbacks
        end = time.perf_counter()  # run_sweep stopped its Ray (timed_close) before it returned
    if not result.complete:
        raise RuntimeError(f"sweep {name} did not complete")
    run.wall_s = end - t0
    # first trial start: from Ray being up to the first epoch beginning inside a trial
    run.extra["first_trial_start_s"] = first["result_at"] - first["epoch_s"] - run.extra["ray_ready_at_s"]
    run.extra["fixed_cost_s"] = run.extra["ray_start_s"] + run.extra["first_trial_start_s"] + run.extra["shutdown_s"]
    run.test_mae = best_checkpoint_test_mae(_trial_dir(s.work / name, _best_trial(run.events)), s.data)
    return run


def trial_inputs(space: SearchSpace, data: PreparedData, epochs: int, **fixed: Any) -> tuple[SweepSettings, SearchSpace]:
    """What ``tuning.trainable.make_trainable`` takes, for trials run outside ``tuning.search``:
    the sweep's settings (windows, epoch budget) and its space with ``fixed`` added."""
    space = dataclasses.replace(space, fixed={**space.fixed, **fixed})
    settings = SweepSettings.create(
        space, max_epochs=epochs, grace_period=1, len_source=data.len_source, len_target=data.len_target
    )
    return settings, space


def run_random(s: Setup) -> Run:
    """Random search on Ray Tune, every trial to the full budget, the project's trainable."""
    import ray
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from tuning.trainable import make_trainable

    run = Run(s.data_name, "random", s.seed, trials=s.trials)
    name = f"random-{s.data_name}-{s.seed}"
    # Patience as long as the budget: nothing ends a trial early.
    settings, space = trial_inputs(s.space, s.data, s.epochs, **s.base(), early_stop_patience=s.epochs)
    first: dict[str, float] = {}
    with load_window(run):
        t0 = time.perf_counter()
        start_ray(s.cpus)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        tuner = tune.Tuner(
            tune.with_resources(make_trainable(s.data, settings, space), {"cpu": 1}),
            param_space=s.space.param_space(),
            tune_config=tune.TuneConfig(
                metric=METRIC, mode="min", search_alg=BasicVariantGenerator(random_state=s.seed),
                num_samples=s.trials, max_concurrent_trials=cpus, reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=name, storage_path=str(s.work), verbose=0, callbacks=[_timeline(t0, run.events, first)],
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2, checkpoint_score_attribute=METRIC, checkpoint_score_order="min"),
            ),
        )  # fmt: skip
        tuner.fit()
        ray.shutdown()
        run.wall_s = time.perf_counter() - t0
    run.test_mae = best_checkpoint_test_mae(_trial_dir(s.work / name, _best_trial(run.events)), s.data)
    return run


def run_optuna(s: Setup) -> Run:
    """Plain Optuna in one process: seeded multivariate TPE, HyperbandPruner on each epoch's val MAE."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run = Run(s.data_name, "optuna", s.seed, trials=s.trials)
    budget = s.space.budget
    best: dict[str, Any] = {"value": math.inf}
    threads = s.cpus

    def objective(trial: optuna.Trial) -> float:
        values: dict[str, Any] = {}
        for name, p in s.space.parameters.items():
            d = distribution(p)
            if isinstance(d, optuna.distributions.CategoricalDistribution):
                values[name] = trial.suggest_categorical(name, d.choices)  # type: ignore[arg-type]
            elif isinstance(d, optuna.distributions.IntDistribution):
                values[name] = trial.suggest_int(name, d.low, d.high, log=d.log)
            else:
                values[name] = trial.suggest_float(name, d.low, d.high, log=d.log)
        config = TrainConfig.from_dict({**s.base(), **values, "max_epochs": s.epochs, "num_threads": threads})
        training = TrainingRun(config, s.data, "cpu")
        while not training.finished:
            try:
                metrics = training.run_epoch()
            except TrainingDivergedError:
                run.events.append(Event(time.perf_counter() - t0, str(trial.number), training.epoch + 1, math.nan))
                return math.inf
            run.events.append(Event(time.perf_counter() - t0, str(trial.number), metrics["epoch"], metrics[METRIC]))
            if training.early_stopping.best < best["value"]:
                best.update(value=training.early_stopping.best, state=copy.deepcopy(training.best_state),
                            config=config.to_dict())  # fmt: skip
            trial.report(metrics[METRIC], metrics["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()
        return training.early_stopping.best

    with load_window(run):
        t0 = time.perf_counter()
        study = optuna.create_study(
            # HyperbandPruner puts a trial in a bracket by a hash of the study's name and the
            # trial's number: a fixed name makes the brackets, like the sampler, follow the seed.
            study_name=f"bench-{s.data_name}-{s.seed}",
            direction="minimize",
            # The sweep's own sampler settings (tuning.searcher): as many random trials before
            # TPE models the results; constant_liar only matters with trials in parallel.
            sampler=optuna.samplers.TPESampler(
                seed=s.seed, multivariate=True, n_startup_trials=startup_trials(s.trials), constant_liar=True
            ),
            pruner=optuna.pruners.HyperbandPruner(
                min_resource=budget.grace_period, max_resource=s.epochs, reduction_factor=budget.reduction_factor
            ),
        )
        study.enqueue_trial(s.space.first_point())  # the documented defaults first, as in ours
        study.optimize(objective, n_trials=s.trials)
        run.wall_s = time.perf_counter() - t0
    run.test_mae = test_mae(best["config"], best["state"], s.data)
    return run


def run_defaults(s: Setup) -> Run:
    """The documented defaults, trained once with patience-based early stopping."""
    run = Run(s.data_name, "defaults", s.seed, trials=1)
    config = TrainConfig(seed=s.train_seed, save_checkpoints=False, num_threads=s.cpus, max_epochs=s.defaults_max_epochs)
    with load_window(run):
        t0 = time.perf_counter()
        _, _, info = fit(
            config, s.data,
            report=lambda m, _r: run.events.append(Event(time.perf_counter() - t0, "defaults", m["epoch"], m[METRIC])),
        )  # fmt: skip
        run.wall_s = time.perf_counter() - t0
    run.test_mae = float(info["test_metrics"]["model"]["mae"])
    return run


RUNNERS: dict[str, Callable[[Setup], Run]] = {
    "ours": run_ours, "optuna": run_optuna, "random": run_random, "defaults": run_defaults,
}  # fmt: skip


# ----------------------------------------------------------------------------------
# probes: fixed cost and the epoch inside a trial


def probe_smoke_test(work: Path) -> float:
    """Wall time of ``python -m tuning.search --smoke-test`` as a user runs it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tuning.search", "--smoke-test", "--storage-path", str(work), "--name", "smoke"],
        check=True, env=env, cwd=str(work), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - start


def probe_epoch_inside_trial(data: PreparedData, work: Path, cpus: int, *, epochs: int, rounds: int) -> dict[str, float]:
    """Seconds per epoch of the default config: ``fit`` as ``tuning.train`` runs it (checkpoint
    per epoch) against one Tune trial with every CPU, ``rounds`` of each after a first ``fit``,
    first epoch of each run left out, median."""
    import ray
    from ray import tune

    from tuning.trainable import make_trainable

    def outside() -> list[float]:
        stamps: list[float] = []
        config = TrainConfig(max_epochs=epochs, num_threads=cpus, checkpoint_dir=str(work / f"train-{len(stamps)}-{time.time()}"))
        start = time.perf_counter()
        fit(config, data, report=lambda _m, _r: stamps.append(time.perf_counter()))
        times = [b - a for a, b in zip([start, *stamps], stamps)]
        return times[1:]

    settings, space = trial_inputs(SearchSpace("probe", "probe", "", {}), data, epochs, early_stop_patience=epochs)

    def inside() -> list[float]:
        events: list[Event] = []
        start_ray(cpus)
        tuner = tune.Tuner(
            tune.with_resources(make_trainable(data, settings, space), {"cpu": cpus}),
            param_space={},
            tune_config=tune.TuneConfig(num_samples=1),
            run_config=tune.RunConfig(name=f"inside-{time.time()}", storage_path=str(work), verbose=0,
                                      callbacks=[_timeline(time.perf_counter(), events, {})]),
        )  # fmt: skip
        results = tuner.fit()
        ray.shutdown()
        frame = results[0].metrics_dataframe
        return list(frame["time_this_iter_s"])[1:]

    # Epochs of one process vary by up to +-25 % on a shared VM, so the two sides alternate over
    # several rounds (drifting load falls on both) and the ratio is of medians over all of them.
    out, ins = outside(), []
    for _ in range(rounds):
        ins += inside()
        out += outside()
    median_out, median_in = statistics.median(out), statistics.median(ins)
    print(f"epoch seconds outside Ray: {' '.join(f'{t:.2f}' for t in out)}; inside a trial: {' '.join(f'{t:.2f}' for t in ins)}")
    return {"epoch_outside_s": median_out, "epoch_inside_s": median_in, "inside_over_outside": median_in / median_out}


# ----------------------------------------------------------------------------------
# report


def summarize(runs: list[Run]) -> pd.DataFrame:
    """Median and range over seeds per data set and contender, with the targets' ratios."""
    rows = []
    by_key = {(r.data, r.contender, r.seed): r for r in runs}
    for data, contender in sorted({(r.data, r.contender) for r in runs}, key=lambda k: (k[0], CONTENDERS.index(k[1]))):
        group = [r for r in runs if (r.data, r.contender) == (data, contender)]
        per_seed: dict[str, list[float]] = {k: [] for k in ("wall_s", "epochs", "best_val_mae", "test_mae",
                                                            "epochs_to_random_best", "vs_optuna_mae", "vs_optuna_wall")}  # fmt: skip
        for r in group:
            per_seed["wall_s"].append(r.wall_s)
            per_seed["epochs"].append(r.epochs)
            per_seed["best_val_mae"].append(r.best_val_mae)
            per_seed["test_mae"].append(r.test_mae)
            rand, opt = by_key.get((data, "random", r.seed)), by_key.get((data, "optuna", r.seed))
            if rand is not None and rand.epochs:
                # never reached: infinitely many epochs, so a seed that misses counts against the median
                reached = r.epochs_to_reach(rand.best_val_mae)
                per_seed["epochs_to_random_best"].append(reached / rand.epochs if math.isfinite(reached) else math.inf)
            if opt is not None and r.epochs and opt.epochs:
                common = min(r.epochs, opt.epochs)
                (mine, my_wall), (theirs, their_wall) = r.at_epochs(common), opt.at_epochs(common)
                per_seed["vs_optuna_mae"].append(mine / theirs)
                per_seed["vs_optuna_wall"].append(my_wall / their_wall)
        row: dict[str, Any] = {"data": data, "contender": contender, "seeds": len(group)}
        for key, values in per_seed.items():
            known = [v for v in values if not math.isnan(v)]
            row[key] = statistics.median(known) if known else math.nan
            row[f"{key}_min"] = min(known, default=math.nan)
            row[f"{key}_max"] = max(known, default=math.nan)
            if key == "epochs_to_random_best":
                row["reached_random_best"] = f"{sum(math.isfinite(v) for v in known)}/{len(values)}"
        rows.append(row)
    return pd.DataFrame(rows)


def _spread(row: pd.Series, key: str, fmt: str) -> str:
    value, lo, hi = row[key], row[f"{key}_min"], row[f"{key}_max"]
    if math.isnan(value):
        return "-"

    def one(v: float) -> str:
        return "never" if v == math.inf else format(v, fmt)

    return one(value) if lo == hi else f"{one(value)} ({one(lo)}-{one(hi)})"


def format_table(summary: pd.DataFrame) -> str:
    header = (f"{'data':<9} {'contender':<9} {'wall s':>20} {'epochs':>17} {'best val MAE':>24} {'test MAE':>24} "
              f"{'epochs to random best':>24} {'MAE vs optuna':>22} {'wall vs optuna':>22}")  # fmt: skip
    lines = [header]
    for _, row in summary.iterrows():
        lines.append(
            f"{row['data']:<9} {row['contender']:<9} {_spread(row, 'wall_s', '.0f'):>20} {_spread(row, 'epochs', '.0f'):>17} "
            f"{_spread(row, 'best_val_mae', '.4f'):>24} {_spread(row, 'test_mae', '.4f'):>24} "
            f"{_spread(row, 'epochs_to_random_best', '.2f'):>24} {_spread(row, 'vs_optuna_mae', '.3f'):>22} "
            f"{_spread(row, 'vs_optuna_wall', '.2f'):>22}"
        )
    lines.append("median over seeds (min-max); 'epochs to random best': epochs until the best val MAE reached random "
                 "search's final best, over random search's epochs; 'vs optuna': ratio at the epochs both trained")  # fmt: skip
    return "\n".join(lines)


def plot(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r.data for r in runs})
    fig, axes = plt.subplots(len(datasets), 2, figsize=(12, 4 * len(datasets)), squeeze=False)
    for i, data in enumerate(datasets):
        for r in (r for r in runs if r.data == data):
            curve = r.curve()
            label = r.contender if r.seed == min(x.seed for x in runs if x.data == data and x.contender == r.contender) else None
            for ax, x in zip(axes[i], ("wall_s", "epochs")):
                ax.step(curve[x], curve["best_val_mae"], where="post", color=COLORS[r.contender], alpha=0.8, label=label)
        finite = [r.best_val_mae for r in runs if r.data == data and math.isfinite(r.best_val_mae)]
        for ax, xlabel in zip(axes[i], ("wall time, s (Ray start included)", "epochs trained")):
            ax.set_xlabel(xlabel)
            ax.set_ylabel("best validation MAE so far")
            ax.set_title(f"{data}: one line per contender and seed")
            if finite:
                lo = min(finite)
                ax.set_ylim(lo * 0.98, lo * 1.35)
            ax.grid(alpha=0.3)
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def check_targets(summary: pd.DataFrame, probes: dict[str, float]) -> list[str]:
    lines = []

    def mark(ok: bool, value: float = 0.0) -> str:
        return "n/a " if math.isnan(value) else "PASS" if ok else "MISS"  # n/a: the contender compared with did not run

    for _, row in summary[summary["contender"] == "ours"].iterrows():
        ratio = row["epochs_to_random_best"]
        lines.append(f"{mark(ratio <= 1 / 3, ratio)}  {row['data']}: reaches random's best in <= 1/3 of "
                     f"its epochs: {ratio:.2f} (reached in {row['reached_random_best']} seeds)")  # fmt: skip
        lines.append(f"{mark(row['vs_optuna_mae'] <= 1.0, row['vs_optuna_mae'])}  {row['data']}: best val MAE <= plain Optuna's at equal epochs: "
                     f"{row['vs_optuna_mae']:.3f}x")  # fmt: skip
        lines.append(f"{mark(row['vs_optuna_wall'] <= 1.2, row['vs_optuna_wall'])}  {row['data']}: wall time <= 1.2x plain Optuna's at equal epochs: "
                     f"{row['vs_optuna_wall']:.2f}x")  # fmt: skip
    if "fixed_cost_s" in probes:
        lines.append(f"{mark(probes['fixed_cost_s'] < 8)}  fixed cost (Ray start + first trial start + shutdown) < 8 s: "
                     f"{probes['fixed_cost_s']:.1f} s = {probes['ray_start_s']:.1f} + {probes['first_trial_start_s']:.1f} + "
                     f"{probes['shutdown_s']:.1f}")  # fmt: skip
    if "smoke_test_s" in probes:
        lines.append(f"{mark(probes['smoke_test_s'] < 20)}  --smoke-test < 20 s wall: {probes['smoke_test_s']:.1f} s")
    if "inside_over_outside" in probes:
        lines.append(f"{mark(probes['inside_over_outside'] <= 1.1)}  epoch inside a trial within 10 % of tuning.train's: "
                     f"{probes['epoch_inside_s']:.2f} s vs {probes['epoch_outside_s']:.2f} s "
                     f"({probes['inside_over_outside']:.2f}x)")  # fmt: skip
    return lines


# ----------------------------------------------------------------------------------


def write_space(space: SearchSpace, path: Path, trials: int, epochs: int) -> Path:
    """The default space with the benchmark's budget (grace period and reduction factor kept)."""
    import yaml

    doc = yaml.safe_load(Path(space.source).read_text())
    doc["budget"] = {**doc.get("budget", {}), "num_samples": trials, "max_epochs": epochs}
    doc["budget"]["grace_period"] = min(doc["budget"].get("grace_period", 1), epochs)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench", help="folder for CSV and PNG (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="(default: 0 1 2; --quick: 0)")
    p.add_argument("--trials", type=int, default=None, help="trials per search (default: 24; --quick: 6)")
    p.add_argument("--epochs", type=int, default=None, help="epoch budget per trial (default: 20; --quick: 6)")
    p.add_argument("--data", nargs="+", default=["embedded", "odot"], choices=["embedded", "odot"])
    p.add_argument("--odot-file", type=Path, default=ODOT, help="the ODOT counts CSV (default: %(default)s)")
    p.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    p.add_argument("--no-probes", action="store_true", help="skip the smoke-test and inside-a-trial probes")
    p.add_argument("--probes-only", action="store_true", help="run the probes only, no contender")
    p.add_argument(
        "--cpus",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="CPUs for Ray and torch threads (default: this process's, %(default)s)",
    )
    p.add_argument("--report", type=Path, nargs="+", metavar="DIR", default=None,
                   help="only print the table and redraw the plot from the runs in these folders (into --out)")  # fmt: skip
    p.add_argument("--defaults-max-epochs", type=int, default=None, help="cap of the defaults' run (default: 100, the "
                   "documented max_epochs; --quick: the epoch budget)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="development: 1 seed, 6 trials of 6 epochs, odot only")
    args = p.parse_args(argv)
    quick = {"seeds": [0], "trials": 6, "epochs": 6} if args.quick else {"seeds": [0, 1, 2], "trials": 24, "epochs": 20}
    quick["defaults_max_epochs"] = args.epochs or quick["epochs"] if args.quick else 100
    for key, value in quick.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.quick and args.odot_file.is_file() and args.data == ["embedded", "odot"]:
        args.data = ["odot"]
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report:
        runs, probes = [], {}
        for folder in args.report:
            more, more_probes = read_runs(folder)
            runs += more
            probes.update(more_probes)
        report(runs, probes, args.out)
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-search-"))
    print(f"bench_search: {args.trials} trials x {args.epochs} epochs, seeds {args.seeds}, data {args.data}; "
          f"{args.cpus} CPUs; load {os.getloadavg()}; scratch {work}", flush=True)  # fmt: skip

    space = load_space(find_space("default"))
    space_file = write_space(space, work / "bench.yaml", args.trials, args.epochs)
    space = load_space(space_file)
    runs: list[Run] = []
    if args.probes_only:
        args.contenders = []
    for data_name in args.data:
        if data_name == "odot" and not args.odot_file.is_file():
            print(f"(no {args.odot_file}: odot skipped)")
            continue
        path = args.odot_file if data_name == "odot" else None
        data = prepare_data(load_series(path) if path else synthetic_traffic(), 10, 5)
        for seed in args.seeds:
            setup = Setup(
                data_name,
                path,
                data,
                space,
                space_file,
                args.trials,
                args.epochs,
                seed,
                work,
                args.defaults_max_epochs,
                args.cpus,
            )
            for contender in args.contenders:
                r = RUNNERS[contender](setup)
                runs.append(r)
                write_runs(runs, args.out)
                print(f"== {data_name} seed {seed} {contender}: {r.wall_s:.0f} s, {r.epochs} epochs, best val MAE "
                      f"{r.best_val_mae:.4f}, test MAE {r.test_mae:.4f}, load {r.load_before:.1f} -> {r.load_after:.1f}",
                      flush=True)  # fmt: skip

    probes: dict[str, float] = {}
    if not args.no_probes:
        probes["smoke_test_s"] = probe_smoke_test(work)
        # the first data set's epochs: 6 a run (the first one untimed), 3 rounds; --quick: 3, 1 round
        probe_data = prepare_data(load_series(args.odot_file) if args.data[0] == "odot" else synthetic_traffic(), 10, 5)
        probes.update(
            probe_epoch_inside_trial(probe_data, work, args.cpus, epochs=3 if args.quick else 6, rounds=1 if args.quick else 3)
        )
    probes["load_1min_end"] = os.getloadavg()[0]
    pd.DataFrame([probes]).to_csv(args.out / "probes.csv", index=False)
    report(runs, probes, args.out)
    return 0


def write_runs(runs: list[Run], out: Path) -> None:
    """``runs.csv`` (one row per contender and seed) and ``events.csv`` (every epoch), rewritten after each run."""
    pd.DataFrame([{"data": r.data, "contender": r.contender, "seed": r.seed, "wall_s": r.wall_s, "epochs": r.epochs,
                   "trials": r.trials, "best_val_mae": r.best_val_mae, "test_mae": r.test_mae, "load_before": r.load_before,
                   "load_after": r.load_after, **r.extra} for r in runs]).to_csv(out / "runs.csv", index=False)  # fmt: skip
    pd.DataFrame(
        [{"data": r.data, "contender": r.contender, "seed": r.seed, **e.__dict__} for r in runs for e in r.events]
    ).to_csv(out / "events.csv", index=False)


def read_runs(folder: Path) -> tuple[list[Run], dict[str, float]]:
    """The runs and probes a benchmark wrote into ``folder``."""
    runs: list[Run] = []
    has_runs = (folder / "runs.csv").is_file()  # a --probes-only folder has none
    table = pd.read_csv(folder / "runs.csv") if has_runs else pd.DataFrame()
    events = pd.read_csv(folder / "events.csv", dtype={"trial": str}) if has_runs else pd.DataFrame()
    for row in table.to_dict("records"):
        mine = events[
            (events["data"] == row["data"]) & (events["contender"] == row["contender"]) & (events["seed"] == row["seed"])
        ]
        extra = {k: float(v) for k, v in row.items() if k.endswith("_s") and k != "wall_s" and pd.notna(v)}
        runs.append(Run(row["data"], row["contender"], int(row["seed"]), float(row["wall_s"]),
                        [Event(float(e.wall_s), str(e.trial), int(e.epoch), float(e.val_mae)) for e in mine.itertuples()],
                        float(row["test_mae"]), int(row["trials"]), float(row["load_before"]), float(row["load_after"]), extra))  # fmt: skip
    probes_file = folder / "probes.csv"
    probes = pd.read_csv(probes_file).iloc[0].to_dict() if probes_file.is_file() else {}
    return runs, {k: float(v) for k, v in probes.items() if pd.notna(v)}


def report(runs: list[Run], probes: dict[str, float], out: Path) -> None:
    """Table, targets, ``summary.csv``, ``curves.csv`` and ``anytime.png`` from finished runs."""
    probes = dict(probes)
    if not runs:
        print("\n".join(check_targets(pd.DataFrame(columns=["contender"]), probes)))
        return
    ours = [r for r in runs if r.contender == "ours" and "fixed_cost_s" in r.extra]
    for key in ("ray_start_s", "first_trial_start_s", "shutdown_s", "fixed_cost_s"):
        if ours:
            probes[key] = statistics.median(r.extra[key] for r in ours)
    write_runs(runs, out)
    pd.concat([r.curve().assign(data=r.data, contender=r.contender, seed=r.seed) for r in runs]).to_csv(
        out / "curves.csv", index=False
    )
    summary = summarize(runs)
    summary.to_csv(out / "summary.csv", index=False)
    plot(runs, out / "anytime.png")
    print()
    print(format_table(summary))
    print()
    print("\n".join(check_targets(summary, probes)))
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\nload at the end: {uptime}; results in {out}")


if __name__ == "__main__":
    sys.exit(main())
