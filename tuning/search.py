"""``python -m tuning.search``: an ASHA + Optuna sweep over training settings.

With no arguments it runs ``search_spaces/default.yaml`` on the embedded data set
and prints the best config beside the documented defaults. ``--resume`` continues
an interrupted sweep; ``--address`` runs the same sweep on an existing Ray cluster
(``--storage-path`` must then be storage every node can reach).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickletools
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tuning import storage
from tuning.cli import ArgumentParser, add_data_arguments, nonneg_float, positive_int, prog_name, run_main, seed_int
from tuning.config import TrainConfig
from tuning.data import PreparedData
from tuning.errors import UserError
from tuning.logs import configure_logging, quiet_libraries
from tuning.metrics import METRIC, MODE
from tuning.spaces import SearchSpace, find_space, load_space
from tuning.storage import ASHA_FILE, BEST_FILE, DEFAULT_STORAGE, SWEEP_FILE, Experiment

MODULE = "tuning.search"
log = logging.getLogger("tuning.search")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog_name(MODULE), description="Search training settings with Ray Tune (ASHA scheduler, Optuna TPE searcher)."
    )
    p.add_argument(
        "--space", metavar="FILE", default=None, help="search-space YAML, or a name in search_spaces/ (default: default)"
    )
    p.add_argument(
        "--smoke-test", action="store_true", help="run search_spaces/smoke.yaml: a few short trials to check an installation"
    )
    p.add_argument("--name", default=None, help="experiment name (default: <space>-<date>-<time>); give it again with --resume")
    p.add_argument("--storage-path", default=DEFAULT_STORAGE, metavar="DIR_OR_URI",
                   help="where experiments live; shared storage (NFS path or s3://...) on a cluster (default: %(default)s)")  # fmt: skip
    p.add_argument(
        "--num-samples", type=positive_int, default=None, metavar="N", help="trials (default: the space file's budget)"
    )
    p.add_argument(
        "--max-epochs",
        type=positive_int,
        default=None,
        metavar="N",
        help="epoch budget per trial, ASHA's max_t (default: the space file's)",
    )
    p.add_argument(
        "--grace-period",
        type=positive_int,
        default=None,
        metavar="N",
        help="epochs before ASHA may stop a trial (default: the space file's)",
    )
    p.add_argument(
        "--reduction-factor", type=positive_int, default=None, metavar="N", help="ASHA's halving rate (default: the space file's)"
    )
    p.add_argument(
        "--cpus-per-trial",
        type=positive_int,
        default=1,
        metavar="N",
        help="CPUs (and torch threads) per trial (default: %(default)s)",
    )
    p.add_argument(
        "--gpus-per-trial",
        type=nonneg_float,
        default=0.0,
        metavar="N",
        help="GPUs per trial; a fraction below 1 (e.g. 0.25) lets that many trials share one GPU (default: %(default)s)",
    )
    p.add_argument(
        "--max-concurrent", type=positive_int, default=None, metavar="N", help="trials at once (default: CPUs / cpus-per-trial)"
    )
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the TPE sampler (default: %(default)s)")
    p.add_argument("--address", default=None, help="join an existing Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted sweep --name in --storage-path")
    p.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    add_data_arguments(p)
    return p


@dataclass(frozen=True)
class SweepSettings:
    """What a sweep needs to start or resume; saved as ``sweep/sweep.json``."""

    space_file: str
    data: str | None
    len_source: int
    len_target: int
    zero_is_missing: bool
    freq: str | None
    start: str | None
    num_samples: int
    max_epochs: int
    grace_period: int
    reduction_factor: int
    cpus_per_trial: int
    gpus_per_trial: float
    max_concurrent: int | None
    seed: int
    columns: tuple[str, ...] | None = None
    exclude_columns: tuple[str, ...] | None = None

    @classmethod
    def load(cls, exp: Experiment) -> SweepSettings:
        """The settings saved in ``sweep/sweep.json``, refusing a file this version did not write.

        Keys added since a sweep was started take their defaults; an unknown key, a
        missing one or a value of the wrong type is one line naming the file and the key.
        """
        doc = storage.read_sweep_settings(exp)
        path = exp.file(SWEEP_FILE)
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(k for k in doc if k not in known)
        if unknown:
            raise UserError(f"{path} holds unknown setting(s) {unknown}; remove them or restore the file from a backup")
        missing = sorted(k for k, f in known.items() if k not in doc and f.default is MISSING)
        if missing:
            raise UserError(f"{path} lacks the setting(s) {missing}; restore the file from a backup")
        values: dict[str, Any] = {}
        for key, value in doc.items():
            kind = str(known[key].type)
            if isinstance(value, list) and kind.startswith("tuple[str"):
                value = tuple(value)
            if not _has_type(value, kind):
                raise UserError(f"{path}: setting {key!r} must be {kind}, got {value!r}; restore the file from a backup")
            values[key] = value
        return cls(**values)

    @classmethod
    def from_args(cls, args: argparse.Namespace, space: SearchSpace) -> SweepSettings:
        budget = space.budget.replace(
            num_samples=args.num_samples, max_epochs=args.max_epochs,
            grace_period=args.grace_period, reduction_factor=args.reduction_factor,
        )  # fmt: skip
        if args.reduction_factor is not None and args.reduction_factor < 2:
            raise UserError(f"--reduction-factor must be >= 2, got {args.reduction_factor}")
        budget.validate("flags")
        defaults = TrainConfig()
        return cls(
            space_file=str(Path(space.source).resolve()),
            data=str(Path(args.data).resolve()) if args.data and not storage.is_uri(args.data) else args.data,
            len_source=args.len_source or defaults.len_source,
            len_target=args.len_target or defaults.len_target,
            zero_is_missing=args.zero_is_missing,
            freq=args.freq,
            start=args.start,
            num_samples=budget.num_samples,
            max_epochs=budget.max_epochs,
            grace_period=budget.grace_period,
            reduction_factor=budget.reduction_factor,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
            max_concurrent=args.max_concurrent,
            seed=args.seed,
            columns=args.columns,
            exclude_columns=args.exclude_columns,
        )


def _has_type(value: Any, kind: str) -> bool:
    """Whether a JSON value fits a SweepSettings annotation such as ``int | None``."""
    checks = {"str": lambda v: isinstance(v, str), "bool": lambda v: isinstance(v, bool),
              "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "None": lambda v: v is None,
              "tuple[str, ...]": lambda v: isinstance(v, tuple) and all(isinstance(x, str) for x in v)}  # fmt: skip
    return any(checks[part.strip()](value) for part in kind.split("|"))


def default_name(space: SearchSpace) -> str:
    return f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING, "configure_logging": True}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(**kwargs)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot start or reach {where}: {first}; check --address / RAY_ADDRESS") from e


def check_resources(settings: SweepSettings) -> None:
    """Refuse trial sizes the cluster can never place: Tune would wait for them forever."""
    import ray

    available = ray.cluster_resources()
    cpus, gpus = available.get("CPU", 0.0), available.get("GPU", 0.0)
    if settings.cpus_per_trial > cpus:
        raise UserError(f"--cpus-per-trial {settings.cpus_per_trial} is more than the {cpus:g} CPUs of the Ray cluster; lower it")
    if settings.gpus_per_trial > 1 and not float(settings.gpus_per_trial).is_integer():
        raise UserError(
            f"--gpus-per-trial {settings.gpus_per_trial:g}: a trial takes a fraction of one GPU (e.g. 0.25) "
            "or whole GPUs (1, 2, ...), not a fraction above 1; use a whole number or a fraction below 1"
        )
    if settings.gpus_per_trial > gpus:
        raise UserError(
            f"--gpus-per-trial {settings.gpus_per_trial:g} is more than the {gpus:g} GPUs of the Ray cluster; lower it or use 0"
        )


def load_sweep_data(settings: SweepSettings, space: SearchSpace) -> PreparedData:
    """Read and window the sweep's data once, before anything is written."""
    from tuning.data import prepare_data
    from tuning.train import load_data_arg

    series = load_data_arg(
        settings.data, zero_is_missing=settings.zero_is_missing, freq=settings.freq, start=settings.start,
        columns=settings.columns, exclude_columns=settings.exclude_columns,
    )  # fmt: skip
    data = prepare_data(series, settings.len_source, settings.len_target)
    TrainConfig.from_dict({**_base_config(settings, space), **space.first_point()}, source=space.source)
    return data


def _base_config(settings: SweepSettings, space: SearchSpace) -> dict[str, Any]:
    return {**space.base_config(), "len_source": settings.len_source, "len_target": settings.len_target}


def _resume_command(exp: Experiment) -> str:
    """The command that continues the sweep, quoted for a POSIX shell."""
    return f"{prog_name(MODULE)} --name {shlex.quote(exp.name)} --storage-path {shlex.quote(exp.storage_path)} --resume"


def _fault_injection() -> list[Any]:
    """Fault injection for resume tests: ``TUNING_FAULT_KILL_AFTER_TRIALS=N`` makes the
    search process SIGKILL itself once N trials have completed, like ``kill -9``."""
    from tuning.faults import FAULT_ENV, KillAfterTrials

    if not os.environ.get(FAULT_ENV):
        return []

    return [KillAfterTrials()]


def build_tuner(settings: SweepSettings, space: SearchSpace, exp: Experiment, data: PreparedData, *, restore: bool) -> Any:
    """A new Tuner for the sweep, or the interrupted one restored from storage."""
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from tuning.asha import PersistentASHA
    from tuning.reporter import SweepReporter
    from tuning.trainable import make_trainable

    base = _base_config(settings, space)
    trainable = tune.with_resources(
        make_trainable(data, base, settings.max_epochs),
        {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial},
    )
    if restore:
        # Errored trials continue from their last checkpoint. restart_errored=True
        # would abort fit() with a KeyError inside OptunaSearch (Ray 2.60).
        return tune.Tuner.restore(exp.path, trainable=trainable, resume_errored=True)

    import ray

    cpus = ray.cluster_resources().get("CPU", 1)
    max_concurrent = settings.max_concurrent or max(1, int(cpus // settings.cpus_per_trial))
    searcher = OptunaSearch(
        metric=METRIC,
        mode=MODE,
        points_to_evaluate=[space.first_point()],
        study_name=exp.name,
        # The seed lives in the sampler only: OptunaSearch ignores its own seed when given a sampler.
        sampler=optuna.samplers.TPESampler(seed=settings.seed, multivariate=True),
    )
    scheduler = PersistentASHA(
        state_path=exp.file(ASHA_FILE),
        time_attr="epoch",
        max_t=settings.max_epochs,
        grace_period=settings.grace_period,
        reduction_factor=settings.reduction_factor,
    )
    return tune.Tuner(
        trainable,
        param_space=space.param_space(),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode=MODE,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=settings.num_samples,
            # Without it OptunaSearch keeps only one trial pending at a time.
            max_concurrent_trials=max_concurrent,
            # ~0.2 s per trial instead of ~1.4 s for a new actor; the trainable keeps no state between trials.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=exp.name,
            storage_path=exp.storage_path,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=2, checkpoint_score_attribute=METRIC, checkpoint_score_order=MODE
            ),
            failure_config=tune.FailureConfig(max_failures=1),
            callbacks=_fault_injection(),
            progress_reporter=SweepReporter(
                exp.path,
                max_report_frequency=30,
                metric_columns=["epoch", METRIC, "val_mae", "train_loss"],
                parameter_columns=list(space.parameters),
                max_progress_rows=12,
            ),
            verbose=1,
        ),
    )


# Flags whose values a resumed sweep takes from sweep.json instead.
_SETTING_FLAGS = ("data", "len_source", "len_target", "zero_is_missing", "freq", "start", "columns", "exclude_columns",
                  "num_samples", "max_epochs", "grace_period", "reduction_factor", "max_concurrent")  # fmt: skip


def _prepare_experiment(args: argparse.Namespace) -> tuple[Experiment, SweepSettings, SearchSpace, bool]:
    """Resolve the experiment, its settings and whether to restore, before Ray starts."""
    if args.resume:
        if not args.name:
            raise UserError("--resume needs the --name of the sweep to continue (see the folders in --storage-path)")
        exp = Experiment.at(args.storage_path, args.name)
        settings = SweepSettings.load(exp)
        ignored = [f"--{k.replace('_', '-')}" for k in _SETTING_FLAGS if getattr(args, k) not in (None, False)]
        if args.space or args.smoke_test or ignored:
            log.warning("--resume continues with the settings saved in %s; ignoring the other sweep flags", exp.file(SWEEP_FILE))
        space = load_space(settings.space_file)
        from ray import tune

        restorable = exp.is_local and any(Path(exp.path).glob("experiment_state-*.json")) or not exp.is_local
        restorable = restorable and tune.Tuner.can_restore(exp.path)
        if restorable and exp.is_local:
            _check_restorable(Path(exp.path))
        if not restorable:
            # Killed before Tune's first snapshot: nothing ran to completion, so start over.
            log.warning("sweep %s stopped before its first snapshot; starting it again from scratch", exp.name)
            for part in ("tuner.pkl", ASHA_FILE):
                if exp.exists(part) and exp.is_local:
                    Path(exp.file(part)).unlink()
        return exp, settings, space, restorable
    space = load_space(find_space(args.space or ("smoke" if args.smoke_test else "default")))
    exp = Experiment.at(args.storage_path, default_name(space) if args.name is None else args.name)
    if exp.exists():
        raise UserError(f"experiment {exp.path} exists; continue it with --resume or choose another --name")
    settings = SweepSettings.from_args(args, space)
    return exp, settings, space, False


def _check_restorable(folder: Path) -> None:
    """Refuse a truncated ``tuner.pkl`` or experiment snapshot before Ray starts.

    Tune would fail on them deep inside ``Tuner.restore``. The pickle is walked opcode
    by opcode (``pickletools``), which executes nothing.
    """
    from tuning.analysis import newest_snapshot

    tuner_file = folder / "tuner.pkl"
    try:
        for _ in pickletools.genops(tuner_file.read_bytes()):
            pass
    except (ValueError, OSError) as e:
        raise UserError(
            f"{tuner_file} is truncated or corrupt ({e}); Tune cannot resume from it: restore it from a backup, "
            "or start a new sweep with another --name (tuning.export and tuning.analyze still read this one)"
        ) from e
    newest_snapshot(folder)


def run_sweep(args: argparse.Namespace) -> int:
    exp, settings, space, restore = _prepare_experiment(args)
    # Everything that can fail on bad input fails before the experiment folder exists.
    data = load_sweep_data(settings, space)
    init_ray(args.address)
    check_resources(settings)
    if not exp.exists(SWEEP_FILE):
        try:
            storage.write_text(exp.file(SWEEP_FILE), json.dumps(asdict(settings), indent=2))
        except OSError as e:
            raise UserError(f"cannot write {exp.file(SWEEP_FILE)}: {e.strerror or e}; pass a writable --storage-path") from e
    try:
        tuner = build_tuner(settings, space, exp, data, restore=restore)
        print(
            f"sweep {exp.name}: {settings.num_samples} trials of up to {settings.max_epochs} epochs ({space.source}); results in {exp.path}"
        )
        tuner.fit()
    except KeyboardInterrupt:
        print(f"interrupted; resume with:\n  {_resume_command(exp)}", file=sys.stderr)
        raise

    from tuning.analysis import compare_with_defaults, load_curves, load_sweep
    from tuning.export import export_best, format_summary

    trials = load_sweep(exp.path)
    finished = int(trials["finished"].sum()) if len(trials) else 0
    if finished < settings.num_samples:
        print(
            f"sweep interrupted with {finished}/{settings.num_samples} trials finished; resume with:\n  {_resume_command(exp)}",
            file=sys.stderr,
        )
        return 130
    best = export_best(exp, trials=trials)
    print(format_summary(best, compare_with_defaults(trials, load_curves(exp.path))))
    print(f"results: {exp.path}  (best config: {exp.file(BEST_FILE)})")
    print(next_steps(exp))
    return 0


def next_steps(exp: Experiment) -> str:
    """What to run after a sweep, as printed at its end."""
    where = f"--name {exp.name} --storage-path {exp.storage_path}"
    analyze, dashboard, train = (prog_name(f"tuning.{m}") for m in ("analyze", "dashboard", "train"))
    return "\n".join([
        "next:",
        f"  {analyze} {where}     # tables, learning_curves.png, metric_vs_params.png, importance",
        f"  {dashboard} {where}   # the sweep in optuna-dashboard (pip install -e \".[dashboard]\")",
        f"  {train} --config {exp.file(BEST_FILE)} --output {exp.file('final')}   # retrain the best",
    ])  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        configure_logging()
        quiet_libraries()
        # Ray's new console output prints a box per trial result; the classic
        # reporter prints one status table every 30 s.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        # Snapshot the experiment (trial states, searcher) every 2 s instead of
        # every >= 10 s: a killed sweep then loses at most a couple of seconds.
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
        return run_sweep(args)

    return run_main(body, prog=prog_name(MODULE), debug=args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
