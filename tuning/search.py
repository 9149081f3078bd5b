"""Sweeps: ``run_sweep`` from Python, ``python -m tuning.search`` (``tuning-search``) from a shell.

:func:`run_sweep` runs an ASHA + Optuna sweep over a search space (a file, a name in
``search_spaces/``, a :class:`SearchSpace` or a dict) on data (a file, a DataFrame, an
array, a :class:`TrafficSeries`, prepared data, or the embedded data set) and
returns a :class:`~tuning.results.SweepResult`. :func:`resume_sweep` continues an
interrupted sweep, or extends a finished one to more trials. ``warm_start=`` seeds a
new sweep's searcher with an earlier sweep's trials (:mod:`tuning.warm_start`).

The command line is a thin layer over them: flags in, the function, the summary out.
With no arguments it runs ``search_spaces/default.yaml`` on the embedded data set;
``--address`` runs the same sweep on an existing Ray cluster (``--storage-path`` must
then be storage every node can reach).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import pickletools
import re
import shlex
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tuning import cli, lock, ray_runtime, storage
from tuning.analysis import ERROR_FILE
from tuning.cli import ArgumentParser, add_data_arguments, duration, nonneg_float, positive_int, prog_name, run_main, seed_int
from tuning.data import PreparedData
from tuning.errors import DISK_FULL_ERRNOS, DiskFullError, UserError, disk_full
from tuning.logs import configure_logging, quiet_libraries
from tuning.metrics import METRIC, MODE
from tuning.ray_runtime import RayRuntime
from tuning.results import TIME_BUDGET_FILE, SweepResult
from tuning.spaces import SearchSpace, SpaceLike, as_space
from tuning.storage import ASHA_FILE, BEST_FILE, DEFAULT_STORAGE, SWEEP_FILE, Experiment
from tuning.sweep_data import DataLike, SweepData, prepare, resolve_data, save_series
from tuning.sweep_settings import SPACE_COPY, SweepSettings, check_time_budget
from tuning.trials import trial_config
from tuning.tune_storage import repair_torn_snapshot, tune_filesystem
from tuning.warm_start import DEFAULT_TOP, WarmStart

__all__ = ["SweepResult", "SweepSettings", "main", "resume_sweep", "run_sweep"]

MODULE = "tuning.search"
log = logging.getLogger("tuning.search")


EXIT_STATUSES = f"""exit status:
  0    every trial finished, or the time budget ended the sweep after some had reported
  {cli.EXIT_TRIALS_FAILED}    trials errored: each is named on stderr with its error; the best config and the
       results come from the trials that finished (--resume retries the errored ones
       from their last checkpoint once the cause is fixed)
  {cli.EXIT_USER_ERROR}    bad input or a full disk, in one line on stderr
  {cli.EXIT_INTERRUPTED}  interrupted (Ctrl-C), or the time budget ran out before any trial reported; the
       command to resume is printed"""


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog_name(MODULE),
        description="Search training settings with Ray Tune (ASHA scheduler, Optuna TPE searcher).",
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        "--time-budget", type=duration, default=None, metavar="T",
        help="stop the sweep after T (900, 900s, 15m, 1.5h); running trials end at their last epoch, unstarted ones "
             "are left for --resume, which has the whole budget again (default: the space file's, else none)",
    )  # fmt: skip
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
        "--max-concurrent", type=positive_int, default=None, metavar="N",
        help="trials at once (default: as many as the cluster fits: CPUs / cpus-per-trial, and GPUs / gpus-per-trial "
             "when it is above 0)",
    )  # fmt: skip
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the TPE sampler (default: %(default)s)")
    p.add_argument("--address", default=None, help="join an existing Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep --name in --storage-path: an interrupted one, or a finished one with a larger "
                        "--num-samples (the trials run so far are kept)")  # fmt: skip
    p.add_argument("--warm-start", metavar="NAME", default=None,
                   help="seed the searcher with the trials of the earlier sweep NAME (in --storage-path, or a folder path); "
                        "the earlier sweep is only read")  # fmt: skip
    p.add_argument("--warm-start-top", type=positive_int, default=None, metavar="K",
                   help=f"run the earlier sweep's K best configs first (default: {DEFAULT_TOP} when the space changed, "
                        "else none: every earlier trial is known to the searcher already)")  # fmt: skip
    p.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    add_data_arguments(p)
    return p


def default_name(space: SearchSpace) -> str:
    return f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def init_ray(address: str | None) -> RayRuntime | None:
    """Connect to Ray for the sweep; None when this process is connected already (the caller owns that Ray).

    Without ``address`` or ``RAY_ADDRESS`` the sweep gets a private local Ray that
    stops with it, ``kill -9`` included (:mod:`tuning.ray_runtime`).
    """
    import ray

    if ray.is_initialized():
        return None
    return ray_runtime.connect(address, meanwhile=_import_tune)


def _import_tune() -> None:
    """Import what the Tuner needs (Ray Tune, Optuna, the trainable: ~2 s of CPU), while a private Ray starts."""
    import tuning.asha
    import tuning.reporter
    import tuning.searcher
    import tuning.trainable  # noqa: F401


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


def trials_at_once(resources: Mapping[str, float], settings: SweepSettings) -> int:
    """How many trials the cluster can run side by side: its CPUs and, for GPU trials, its GPUs.

    Tune's cap on concurrent trials should match what can run: trials beyond it wait for
    resources with configs TPE proposed before the running ones reported (and the sweep's
    time estimate would divide by too many). A fraction of a GPU is never split across two
    GPUs: 2 GPUs at 0.4 each fit 4 trials, not 5. The small epsilon keeps 1 / 0.1 at 10.
    """
    fits = [resources.get("CPU", 1.0) // settings.cpus_per_trial]
    gpus, share = resources.get("GPU", 0.0), settings.gpus_per_trial
    if 0 < share < 1:
        fits.append(math.floor(1 / share + 1e-9) * math.floor(gpus + 1e-9))
    elif share >= 1:
        fits.append(math.floor(gpus / share + 1e-9))
    return max(1, int(min(fits)))


def load_sweep_data(settings: SweepSettings, space: SearchSpace, given: SweepData | None = None) -> PreparedData:
    """Read (or take) and window the sweep's data once, and check the first trial's config, before anything is written."""
    data = prepare(settings, given)
    trial_config(space.first_point(), settings, space, source=space.source)
    return data


@contextlib.contextmanager
def _disk_full_says_how_to_resume(exp: Experiment) -> Iterator[None]:
    """A full disk anywhere in the sweep (our files, Tune's, a trial's): one line, with the command that resumes it.

    Every file is written whole, so what reached the disk stays usable and ``--resume``
    continues from it once there is room again.
    """
    try:
        yield
    except Exception as e:
        full = disk_full(e)
        if full is None:
            raise
        raise _disk_full(full.path, exp) from e


def _disk_full(path: str, exp: Experiment) -> DiskFullError:
    then = f"resume with: {_resume_command(exp)}" if exp.exists(SWEEP_FILE) else "run the same command again"
    return DiskFullError(path, f"free space on that disk, then {then}")


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


def build_tuner(
    settings: SweepSettings, space: SearchSpace, exp: Experiment, data: PreparedData, *, restore: bool,
    warm: WarmStart | None = None,
) -> Any:  # fmt: skip
    """A new Tuner for the sweep (warm-started from ``warm``), or the interrupted one restored from storage."""
    from ray import tune

    from tuning.asha import PersistentASHA
    from tuning.reporter import SweepReporter
    from tuning.searcher import build_searcher
    from tuning.sweep_eta import SweepEta
    from tuning.time_budget import TimeBudget
    from tuning.trainable import make_trainable

    trainable = tune.with_resources(
        make_trainable(data, settings, space),
        {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial},
    )
    if restore:
        # Errored trials continue from their last checkpoint. restart_errored=True
        # would abort fit() with a KeyError inside OptunaSearch (Ray 2.60).
        return tune.Tuner.restore(exp.path, trainable=trainable, resume_errored=True, storage_filesystem=tune_filesystem(exp))

    import ray

    max_concurrent = settings.max_concurrent or trials_at_once(ray.cluster_resources(), settings)
    scheduler = PersistentASHA(
        state_path=exp.file(ASHA_FILE),
        time_attr="epoch",
        max_t=settings.max_epochs,
        grace_period=settings.grace_period,
        reduction_factor=settings.reduction_factor,
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode=MODE,
            # The space travels as Optuna distributions inside the searcher (for warm starts).
            search_alg=build_searcher(
                space, seed=settings.seed, study_name=exp.name, warm=warm, num_samples=settings.num_samples
            ),
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
            storage_filesystem=tune_filesystem(exp),  # files on local storage written whole
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=2, checkpoint_score_attribute=METRIC, checkpoint_score_order=MODE
            ),
            failure_config=tune.FailureConfig(max_failures=1),
            # A restored one reads sweep.json at its run's start, so a resume may give a new budget.
            stop=TimeBudget(exp, settings.time_budget_s),
            callbacks=[SweepEta(exp, settings, concurrent=max_concurrent), *_fault_injection()],
            progress_reporter=SweepReporter(exp.path, parameter_columns=list(space.parameters)),
            verbose=1,
        ),
    )


def run_sweep(
    space: SpaceLike = "default",
    data: DataLike = None,
    *,
    name: str | None = None,
    storage_path: str | os.PathLike[str] = DEFAULT_STORAGE,
    num_samples: int | None = None,
    max_epochs: int | None = None,
    grace_period: int | None = None,
    reduction_factor: int | None = None,
    len_source: int | None = None,
    len_target: int | None = None,
    zero_is_missing: bool | None = None,
    freq: str | None = None,
    start: str | None = None,
    columns: Sequence[str] | None = None,
    exclude_columns: Sequence[str] | None = None,
    cpus_per_trial: int = 1,
    gpus_per_trial: float = 0.0,
    max_concurrent: int | None = None,
    seed: int = 0,
    warm_start: str | None = None,
    warm_start_top: int | None = None,
    time_budget_s: float | None = None,
    address: str | None = None,
) -> SweepResult:
    """Run a new sweep and return its result; the experiment folder is ``storage_path/name``.

    Args:
        space: a space file, a name in ``search_spaces/`` ("default", "wide", "smoke"),
            a :class:`~tuning.spaces.SearchSpace`, or a dict with the sections of a space
            file. A space that is no file is saved as ``sweep/space.yaml``.
        data: a ``.csv``/``.parquet``/``.npz``/``.h5`` file; a DataFrame, a (T, N) array or a
            :class:`~tuning.sources.TrafficSeries` (saved as ``sweep/data.parquet`` so
            that the sweep can resume); :class:`~tuning.data.PreparedData` (not saved: such
            a sweep resumes only with :func:`resume_sweep` given the same data); or None
            for the embedded data set.
        name: the experiment's name (default: ``<space>-<date>-<time>``).
        storage_path: a folder, or a URI every Ray node reaches.
        num_samples, max_epochs, grace_period, reduction_factor: override the space's budget.
        len_source, len_target: the windows (default 10 and 5; prepared data: its own).
        zero_is_missing, freq, start, columns, exclude_columns: as the data flags of the
            command line (freq and start for files only).
        cpus_per_trial, gpus_per_trial, max_concurrent: trial resources and parallelism.
        seed: the TPE sampler's seed.
        warm_start: an earlier sweep (a name in ``storage_path``, or its folder) whose trials
            the searcher knows from the start; it is only read.
        warm_start_top: run the earlier sweep's best K configs first (default: 3 when
            the space changed, else none).
        time_budget_s: stop the sweep after this many seconds (default: the space's
            ``budget.time_budget_s``, else no limit); the trials run by then are the sweep.
        address: a Ray cluster to join (default: ``$RAY_ADDRESS``, else a local Ray; a
            Ray this process already started is used as it is).

    Returns:
        The :class:`~tuning.results.SweepResult`; ``complete`` is False when it was
        interrupted (continue it with :func:`resume_sweep`).

    Raises:
        UserError: bad input, before anything is written (one line says what and how to fix it).
        DiskFullError: a write failed on a full disk (a ``UserError``: one line, with the resume command).
    """
    copy_space = not isinstance(space, (str, os.PathLike))
    resolved = as_space(space)
    given = resolve_data(
        data, zero_is_missing=zero_is_missing, freq=freq, start=start,
        columns=tuple(columns) if columns is not None else None,
        exclude_columns=tuple(exclude_columns) if exclude_columns is not None else None,
    )  # fmt: skip
    if given.prepared is not None:
        len_source, len_target = len_source or given.prepared.len_source, len_target or given.prepared.len_target
    exp = Experiment.at(storage_path, default_name(resolved) if name is None else name)
    with contextlib.ExitStack() as held:
        existed = exp.exists()
        held.enter_context(lock.hold(exp))  # a sweep of this name running now: refused, naming it
        held.enter_context(_disk_full_says_how_to_resume(exp))
        if existed or exp.exists(SWEEP_FILE):
            raise UserError(f"experiment {exp.path} exists; continue it with --resume (resume_sweep) or choose another --name")
        earlier = _earlier_sweep(warm_start, storage_path) if warm_start is not None else None
        # Data from memory had its sensors picked and zeros masked by resolve_data already.
        read = given.origin is None
        settings = SweepSettings.create(
            resolved, data=given.path, data_origin=given.origin, num_samples=num_samples, max_epochs=max_epochs,
            grace_period=grace_period, reduction_factor=reduction_factor, len_source=len_source, len_target=len_target,
            zero_is_missing=zero_is_missing if read else False, freq=freq, start=start,
            columns=tuple(columns) if read and columns is not None else None,
            exclude_columns=tuple(exclude_columns) if read and exclude_columns is not None else None,
            cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent, seed=seed,
            warm_start=earlier.path if earlier else None, warm_start_top=warm_start_top, time_budget_s=time_budget_s,
        )  # fmt: skip
        # Everything that can fail on bad input fails before the experiment folder has more
        # than the lock, which goes with it.
        prepared = load_sweep_data(settings, resolved, given)
        if read:  # how the zeros were read (decided now where not said): a resume reads them so too
            settings = settings.replace(zero_is_missing=prepared.zeros_missing)
        warm = _plan_warm_start(settings, resolved)
        _start_ray(address, settings, exp, held)
        if given.series is not None:
            settings = settings.replace(data=save_series(given.series, exp))
        if copy_space:
            storage.write_text(exp.file(SPACE_COPY), resolved.to_yaml())
            settings = settings.replace(space_file=exp.file(SPACE_COPY))
        settings.save(exp)
        return _fit(exp, settings, resolved, prepared, restore=False, warm=warm)


def resume_sweep(
    name: str,
    *,
    storage_path: str | os.PathLike[str] = DEFAULT_STORAGE,
    num_samples: int | None = None,
    data: DataLike = None,
    address: str | None = None,
    time_budget_s: float | None = None,
) -> SweepResult:
    """Continue the sweep ``name`` with the settings it saved; trials that finished are kept.

    Args:
        name: the experiment's name in ``storage_path``.
        num_samples: more trials than the sweep had: a finished sweep runs the extra ones
            (its trials so far are not run again). Fewer are ignored with a warning.
        data: only for a sweep started from prepared data, which is not saved: the same data.
        address: a Ray cluster to join, as in :func:`run_sweep`.
        time_budget_s: a new time budget for this run (default: the sweep's own, if any,
            which each run of the sweep has whole).
    """
    check_time_budget(time_budget_s)
    exp = Experiment.at(storage_path, name)
    settings = SweepSettings.load(exp)
    with contextlib.ExitStack() as held:
        held.enter_context(lock.hold(exp))  # the sweep running now: refused, naming its process
        held.enter_context(_disk_full_says_how_to_resume(exp))
        given = None
        if settings.data_in_memory_only:
            if data is None:
                raise UserError(
                    f"sweep {name} was started from Python with {settings.data_origin}, which was not saved; resume it from "
                    f"Python with the same data: tuning.search.resume_sweep({name!r}, storage_path={exp.storage_path!r}, data=...)"
                )
            given = resolve_data(data)
        elif data is not None:
            raise UserError(f"sweep {name} reads its data from {settings.data_label} when it resumes; leave data out")
        if num_samples is not None and (isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1):
            raise UserError(f"--num-samples must be a whole number >= 1, got {num_samples!r}")
        space = settings.load_space()
        grow = num_samples is not None and num_samples > settings.num_samples
        if num_samples is not None and not grow:
            log.warning(
                "--num-samples %d is not more than the %d trials of sweep %s; a sweep can only grow, so it is ignored",
                num_samples, settings.num_samples, name,
            )  # fmt: skip
        restore = _restorable(exp)
        prepared = load_sweep_data(settings, space, given)
        warm = None if restore else _plan_warm_start(settings, space)
        if grow:
            assert num_samples is not None
            log.info("sweep %s grows from %d to %d trials; the ones run so far are kept", name, settings.num_samples, num_samples)
            settings = settings.replace(num_samples=num_samples)
        retimed = time_budget_s is not None and time_budget_s != settings.time_budget_s
        if retimed:
            settings = settings.replace(time_budget_s=float(time_budget_s))  # type: ignore[arg-type]
        _start_ray(address, settings, exp, held)
        if grow or retimed:
            settings.save(exp)
        return _fit(exp, settings, space, prepared, restore=restore, warm=warm, extend=grow)


def _earlier_sweep(warm_start: str, storage_path: str | os.PathLike[str]) -> Experiment:
    """The experiment ``--warm-start`` names: a sweep in ``storage_path``, or a folder."""
    if "/" in warm_start or os.sep in warm_start:  # a folder (or URI), else a name in storage_path
        folder = warm_start.rstrip("/")
        parent, _, leaf = folder.rpartition("/")
        earlier = Experiment.at(parent or ".", leaf)
    else:
        earlier = Experiment.at(storage_path, warm_start)
    if not earlier.exists(SWEEP_FILE):
        raise UserError(
            f"--warm-start {warm_start}: no sweep in {earlier.path} (no {SWEEP_FILE}); check the name or give its folder"
        )
    return earlier


def _plan_warm_start(settings: SweepSettings, space: SearchSpace) -> WarmStart | None:
    """What the new searcher learns from the earlier sweep settings.warm_start names; its notes logged."""
    if settings.warm_start is None:
        return None
    from tuning.storage import resolve_storage_path
    from tuning.warm_start import plan

    parent, _, leaf = settings.warm_start.rpartition("/")
    warm = plan(Experiment(resolve_storage_path(parent), leaf), space, settings, top=settings.warm_start_top)
    for note in warm.notes:
        log.info("%s", note)
    return warm


TUNER_FILE = "tuner.pkl"
"""What ``Tuner.restore`` needs besides the snapshot: the trainable, searcher and scheduler as Tune pickled them."""


def has_trial_results(exp: Experiment) -> bool:
    """Whether any trial of the sweep has reported: a trial folder with a non-empty ``result.json``,
    or a snapshot that lists a trial (a torn one counts: it was written for trials)."""
    from tuning.analysis import newest_snapshot

    try:
        if newest_snapshot(exp.path):
            return True
    except UserError:
        return True
    return any(storage.file_size(exp.file(name, "result.json")) for name in storage.list_names(exp.path))


def _restorable(exp: Experiment) -> bool:
    """Whether Tune can restore the sweep; one killed before its first snapshot starts over.

    Only a sweep without trial results may start over: one that lost its ``tuner.pkl``
    after trials ran is refused, or every trial would run again.
    """
    from ray import tune

    if not exp.exists(TUNER_FILE) and has_trial_results(exp):
        raise UserError(
            f"{exp.file(TUNER_FILE)} is missing, so Tune cannot resume this sweep, whose trials have results: "
            f"{prog_name('tuning.export')} and {prog_name('tuning.analyze')} still read it, and "
            f"{prog_name(MODULE)} --warm-start {shlex.quote(exp.path)} --name NEW starts a new sweep that knows its trials"
        )
    restorable = exp.is_local and any(Path(exp.path).glob("experiment_state-*.json")) or not exp.is_local
    restorable = restorable and tune.Tuner.can_restore(exp.path)
    if restorable and exp.is_local:
        repair_torn_snapshot(exp)
        _check_restorable(Path(exp.path))
    if not restorable:
        # Killed before Tune's first snapshot: nothing ran to completion, so start over.
        log.warning("sweep %s stopped before its first snapshot; starting it again from scratch", exp.name)
        for part in (TUNER_FILE, ASHA_FILE):
            if exp.exists(part) and exp.is_local:
                Path(exp.file(part)).unlink()
    return restorable


def _check_restorable(folder: Path) -> None:
    """Refuse a truncated ``tuner.pkl`` or experiment snapshot before Ray starts.

    Tune would fail on them deep inside ``Tuner.restore``. The pickle is walked opcode
    by opcode (``pickletools``), which executes nothing.
    """
    from tuning.analysis import newest_snapshot

    tuner_file = folder / TUNER_FILE
    try:
        for _ in pickletools.genops(tuner_file.read_bytes()):
            pass
    except (ValueError, OSError) as e:
        raise UserError(
            f"{tuner_file} is truncated or corrupt ({e}); Tune cannot resume from it: restore it from a backup, "
            "or start a new sweep with another --name (tuning.export and tuning.analyze still read this one)"
        ) from e
    newest_snapshot(folder)


def _start_ray(address: str | None, settings: SweepSettings, exp: Experiment, held: contextlib.ExitStack) -> None:
    """Connect to Ray for the sweep until ``held`` closes, then remove what Tune staged on this node."""
    quiet_libraries()
    runtime = init_ray(address)
    if runtime is not None:
        held.callback(runtime.close)
    held.callback(ray_runtime.cleanup_staging, exp.name)
    check_resources(settings)


def _fit(
    exp: Experiment, settings: SweepSettings, space: SearchSpace, data: PreparedData, *, restore: bool,
    warm: WarmStart | None = None, extend: bool = False,
) -> SweepResult:  # fmt: skip
    """Run the Tuner to the end (or an interruption) and read the result back."""
    # Ray's new console output prints a box per trial result; the classic
    # reporter prints one status table every 30 s.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Snapshot the experiment (trial states, searcher) every 2 s instead of
    # every >= 10 s: a killed sweep then loses at most a couple of seconds.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    # Tune also snapshots whenever a trial has saved CheckpointConfig.num_to_keep checkpoints
    # since the last one, and warns when that happens within 5 s: with a checkpoint every
    # epoch that is the design here, not a problem a user can act on (0 turns the warning off).
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    tuner = build_tuner(settings, space, exp, data, restore=restore, warm=warm)
    # A sweep the time budget ended has a finished search whose stopped trials the searcher
    # was never told of: like one that grows, it needs its search opened again.
    if restore and (extend or exp.exists(TIME_BUDGET_FILE)):
        from tuning.analysis import load_sweep
        from tuning.searcher import extend as extend_tuner

        before = load_sweep(exp.path)
        ended = before[before["finished"]] if len(before) else before
        done = {t: (float(v) if math.isfinite(v) else None) for t, v in zip(ended["trial_id"], ended["last_val_mae"])}
        extend_tuner(tuner, settings.num_samples, done)
    storage.delete_file(exp.file(TIME_BUDGET_FILE))  # this run decides anew whether the budget ends it
    limit = "" if settings.time_budget_s is None else f", at most {format_duration(settings.time_budget_s)}"
    print(
        f"sweep {exp.name}: {settings.num_samples} trials of up to {settings.max_epochs} epochs{limit} ({space.source}); "
        f"results in {exp.path}"
    )
    started = time.monotonic()
    try:
        tuner.fit()
    except KeyboardInterrupt:
        print(f"interrupted; resume with:\n  {_resume_command(exp)}", file=sys.stderr)
        raise
    result = SweepResult.read(exp, settings, None)
    if not result.complete and _ended_by_time_budget(result, settings, time.monotonic() - started):
        marker = {"time_budget_s": settings.time_budget_s, "trials": len(result.trials)}
        storage.write_text(exp.file(TIME_BUDGET_FILE), json.dumps(marker))
        result = dataclasses.replace(result, complete=True, out_of_time=marker)  # as SweepResult.read would find it
    if not result.complete:
        return result
    from tuning.analysis import usable
    from tuning.export import export_best

    if usable(result.trials).empty and len(result.errored):
        return result  # nothing to export; report() names the errored trials

    return SweepResult.read(exp, settings, export_best(exp, trials=result.trials, data=data))


def _ended_by_time_budget(result: SweepResult, settings: SweepSettings, elapsed_s: float) -> bool:
    """Whether Tune stopped the sweep at its time budget: fit returned with no trial left running."""
    if settings.time_budget_s is None or elapsed_s < settings.time_budget_s:
        return False
    return len(result.trials) > 0 and bool(result.trials["finished"].all())


def format_duration(seconds: float) -> str:
    """``15 min``, ``1 h 30 min``, ``45 s``: a time budget in words."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "", f"{secs} s" if secs else ""]
    return " ".join(p for p in parts if p) or f"{seconds:g} s"


def next_steps(exp: Experiment) -> str:
    """What to run after a sweep, as printed at its end."""
    where = f"--name {exp.name} --storage-path {exp.storage_path}"
    analyze, dashboard, train = (prog_name(f"tuning.{m}") for m in ("analyze", "dashboard", "train"))
    return "\n".join([
        "next:",
        f"  {analyze} {where}     # tables, learning_curves.png, metric_vs_params.png, importance",
        f"  {dashboard} {where}   # the sweep in optuna-dashboard (pip install -e \".[dashboard]\")",
        f"  {train} --config {exp.file(BEST_FILE)} --output {exp.file('final')}   # retrain the best"
        if exp.is_local
        else f"  {train} --config {BEST_FILE} --output final   # retrain the best, after copying {exp.file(BEST_FILE)} here",
    ])  # fmt: skip


# What a resumed sweep still takes from the command line; it reads the rest from sweep.json.
_RESUME_FLAGS = ("name", "storage_path", "resume", "num_samples", "time_budget", "address", "debug")


def _ignored_on_resume(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The flags given with --resume that the resumed sweep does not use."""
    defaults = vars(parser.parse_args([]))
    # Each value named by the flag that sets it: two flags may share a destination
    # (--zero-is-missing and --zeros-are-readings store True and False in zero_is_missing).
    by_dest: dict[str, list[argparse.Action]] = {}
    for action in parser._actions:
        if action.option_strings:
            by_dest.setdefault(action.dest, []).append(action)

    def flag(dest: str, value: Any) -> str:
        actions = by_dest[dest]
        return next((a for a in actions if a.const is not None and a.const == value), actions[0]).option_strings[-1]

    return [flag(k, v) for k, v in vars(args).items() if k not in _RESUME_FLAGS and v != defaults[k]]


_FULL_DISK_ERROR = re.compile(
    rf"{DiskFullError.__name__}: disk full while writing (?P<ours>.+?): "
    rf"|\[Errno (?:{'|'.join(map(str, DISK_FULL_ERRNOS))})\][^:']*(?:: '(?P<os>.+)')?"
)


def _full_disk_in(error: str | None, logdir: str) -> str | None:
    """The path a trial's error line says a full disk refused (else its folder); None for any other error."""
    found = _FULL_DISK_ERROR.search(error) if isinstance(error, str) else None
    return None if found is None else found.group("ours") or found.group("os") or logdir


def report(result: SweepResult) -> int:
    """Print the end of a sweep; the exit status (:data:`EXIT_STATUSES`).

    Errored trials come last, on stderr, after the rest of the summary: each with its
    id, the last line of its error and Tune's error file.
    """
    finished = int(result.trials["finished"].sum()) if len(result.trials) else 0
    if not result.complete:
        print(
            f"sweep interrupted with {finished}/{result.settings.num_samples} trials finished; resume with:\n  "
            f"{_resume_command(result.experiment)}",
            file=sys.stderr,
        )
        return cli.EXIT_INTERRUPTED
    errored = result.errored
    full = next((m for m in map(_full_disk_in, errored["error"], errored["logdir"]) if m), None)
    if full is not None:  # trials failed on a full disk: the sweep as a whole did
        raise _disk_full(full, result.experiment)
    if result.out_of_time is not None and result.export is None and errored.empty:
        print(
            f"the time budget ({format_duration(result.out_of_time['time_budget_s'])}) ended sweep {result.name} before "
            f"any trial reported a finite {METRIC}; give it more time:\n  {_resume_command(result.experiment)} --time-budget T",
            file=sys.stderr,
        )
        return cli.EXIT_INTERRUPTED
    if result.export is not None:
        print(result.summary())
        if result.out_of_time is not None:
            print(
                f"the time budget ({format_duration(result.out_of_time['time_budget_s'])}) ended the sweep after "
                f"{result.out_of_time['trials']} of {result.settings.num_samples} trials; the rest run with:\n  "
                f"{_resume_command(result.experiment)}"
            )
        print(f"results: {result.path}  (best config: {result.experiment.file(BEST_FILE)})")
        print(next_steps(result.experiment))
    if errored.empty:
        return 0
    for trial in errored.itertuples():
        print(f"trial {trial.trial_id} errored: {trial.error or 'no error file'} ({trial.logdir}/{ERROR_FILE})", file=sys.stderr)
    count, total = len(errored), len(result.trials)
    if count == total:
        outcome = f"every trial of sweep {result.name} errored ({count} of {total}): no best config"
    elif result.export is None:
        outcome = f"{count} of {total} trials errored and none of the others has a finite {METRIC}: no best config"
    else:
        outcome = f"{count} of {total} trials errored; the best config comes from the {total - count} others"
    print(f"{outcome}; once the cause is fixed, --resume retries the errored ones from their last checkpoint:\n  "
          f"{_resume_command(result.experiment)}", file=sys.stderr)  # fmt: skip
    return cli.EXIT_TRIALS_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def body() -> int:
        configure_logging()
        if args.resume:
            if not args.name:
                raise UserError("--resume needs the --name of the sweep to continue (see the folders in --storage-path)")
            ignored = _ignored_on_resume(parser, args)
            if ignored:
                log.warning(
                    "--resume continues with the settings saved in %s; ignoring %s",
                    Experiment.at(args.storage_path, args.name).file(SWEEP_FILE), " ".join(ignored),
                )  # fmt: skip
            result = resume_sweep(
                args.name, storage_path=args.storage_path, num_samples=args.num_samples, address=args.address,
                time_budget_s=args.time_budget,
            )  # fmt: skip
        else:
            result = run_sweep(
                args.space or ("smoke" if args.smoke_test else "default"), args.data, name=args.name,
                storage_path=args.storage_path, num_samples=args.num_samples, max_epochs=args.max_epochs,
                grace_period=args.grace_period, reduction_factor=args.reduction_factor, len_source=args.len_source,
                len_target=args.len_target, zero_is_missing=args.zero_is_missing, freq=args.freq, start=args.start,
                columns=args.columns, exclude_columns=args.exclude_columns, cpus_per_trial=args.cpus_per_trial,
                gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent, seed=args.seed,
                warm_start=args.warm_start, warm_start_top=args.warm_start_top, time_budget_s=args.time_budget,
                address=args.address,
            )  # fmt: skip
        return report(result)

    return run_main(body, prog=prog_name(MODULE), debug=args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
