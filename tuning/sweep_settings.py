"""A sweep's settings: one typed record, written to and read from ``sweep/sweep.json``.

Everything that reads a sweep back (resume, export, analyze, the dashboard, warm
starts) goes through :class:`SweepSettings`, never through the JSON's keys.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tuning import storage
from tuning.config import DEFAULTS, MAX_SEED
from tuning.errors import UserError
from tuning.spaces import SearchSpace, load_space, parse_space
from tuning.storage import SWEEP_FILE, Experiment

SPACE_COPY = "sweep/space.yaml"
"""Where a sweep started from a space that is no file (a dict, a SearchSpace) keeps it."""
DATA_COPY = "sweep/data.parquet"
"""Where a sweep started from in-memory data keeps the series, so that it can resume."""


@dataclass(frozen=True)
class SweepSettings:
    """What a sweep needs to start or resume; saved as ``sweep/sweep.json``.

    Fields added after the first release have defaults, so older files still load.
    """

    space_file: str
    # The data file the trials read (a resumed sweep reads it again); None: the embedded
    # synthetic data set, unless data_origin says the data came from memory.
    data: str | None
    len_source: int
    len_target: int
    # How exact zeros are read; None (auto: missing where they look like outages) only
    # until the sweep has read its data: sweep.json holds the decision.
    zero_is_missing: bool | None
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
    # Data passed to run_sweep as an object, e.g. "pandas DataFrame". `data` then names
    # the copy saved in the experiment, or is None where none could be saved (prepared
    # data, remote storage): such a sweep resumes only from Python, given the data again.
    data_origin: str | None = None
    # The earlier experiment whose trials seeded the searcher (tuning.warm_start), and
    # how many of its best configs were evaluated first.
    warm_start: str | None = None
    warm_start_top: int | None = None
    # Seconds of wall clock after which Tune stops the sweep (each run of it: a resumed
    # sweep has the whole budget again); None: no limit.
    time_budget_s: float | None = None

    @property
    def data_in_memory_only(self) -> bool:
        """True when the data came from memory and no copy was saved: a resume needs it again."""
        return self.data_origin is not None and self.data is None

    @property
    def data_label(self) -> str:
        """The data in words, for summaries and exports."""
        if self.data_origin is not None:
            return self.data_origin + ("" if self.data is None else f", saved as {self.data}")
        return self.data or "synthetic (embedded default)"

    def replace(self, **changes: Any) -> SweepSettings:
        return dataclasses.replace(self, **changes)

    def load_space(self) -> SearchSpace:
        """The sweep's search space, from its file (local or on the sweep's storage)."""
        if storage.is_uri(self.space_file):
            return parse_space(storage.read_text(self.space_file), self.space_file, name=Path(self.space_file).stem)
        return load_space(self.space_file)

    def save(self, exp: Experiment) -> None:
        """Write ``sweep/sweep.json`` atomically."""
        try:
            storage.write_text(exp.file(SWEEP_FILE), json.dumps(asdict(self), indent=2))
        except OSError as e:
            raise UserError(f"cannot write {exp.file(SWEEP_FILE)}: {e.strerror or e}; pass a writable --storage-path") from e

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
    def create(
        cls,
        space: SearchSpace,
        *,
        data: str | None = None,
        data_origin: str | None = None,
        num_samples: int | None = None,
        max_epochs: int | None = None,
        grace_period: int | None = None,
        reduction_factor: int | None = None,
        len_source: int | None = None,
        len_target: int | None = None,
        zero_is_missing: bool | None = None,
        freq: str | None = None,
        start: str | None = None,
        columns: tuple[str, ...] | None = None,
        exclude_columns: tuple[str, ...] | None = None,
        cpus_per_trial: int = 1,
        gpus_per_trial: float = 0.0,
        max_concurrent: int | None = None,
        seed: int = 0,
        warm_start: str | None = None,
        warm_start_top: int | None = None,
        time_budget_s: float | None = None,
    ) -> SweepSettings:
        """Settings for a new sweep: the space file's budget, overridden where a value is given.

        Each value is checked as its command-line flag would be (names in errors are the
        flags', which the Python keywords mirror).
        """
        for flag, value, low in (
            ("--num-samples", num_samples, 1), ("--max-epochs", max_epochs, 1), ("--grace-period", grace_period, 1),
            ("--reduction-factor", reduction_factor, 2), ("--len-source", len_source, 1), ("--len-target", len_target, 1),
            ("--cpus-per-trial", cpus_per_trial, 1), ("--max-concurrent", max_concurrent, 1), ("--seed", seed, 0),
            ("--warm-start-top", warm_start_top, 1),
        ):  # fmt: skip
            _check_int(flag, value, low)
        if seed > MAX_SEED:
            raise UserError(f"--seed must be <= {MAX_SEED} (2**32 - 1), got {seed}")
        if isinstance(gpus_per_trial, bool) or not isinstance(gpus_per_trial, (int, float)) or not gpus_per_trial >= 0:
            raise UserError(f"--gpus-per-trial must be a number >= 0, got {gpus_per_trial!r}")
        if not math.isfinite(gpus_per_trial):
            raise UserError(f"--gpus-per-trial must be finite, got {gpus_per_trial!r}")
        check_time_budget(time_budget_s)
        budget = space.budget.replace(
            num_samples=num_samples,
            max_epochs=max_epochs,
            grace_period=grace_period,
            reduction_factor=reduction_factor,
            time_budget_s=time_budget_s,
        )
        budget.validate("flags")
        return cls(
            space_file=space.source if storage.is_uri(space.source) else str(Path(space.source).resolve()),
            data=str(Path(data).resolve()) if data and not storage.is_uri(data) else data,
            len_source=len_source or DEFAULTS.len_source,
            len_target=len_target or DEFAULTS.len_target,
            zero_is_missing=zero_is_missing,
            freq=freq,
            start=start,
            num_samples=budget.num_samples,
            max_epochs=budget.max_epochs,
            grace_period=budget.grace_period,
            reduction_factor=budget.reduction_factor,
            cpus_per_trial=cpus_per_trial,
            gpus_per_trial=float(gpus_per_trial),
            max_concurrent=max_concurrent,
            seed=seed,
            columns=tuple(columns) if columns is not None else None,
            exclude_columns=tuple(exclude_columns) if exclude_columns is not None else None,
            data_origin=data_origin,
            warm_start=warm_start,
            warm_start_top=warm_start_top,
            time_budget_s=None if budget.time_budget_s is None else float(budget.time_budget_s),
        )


def check_time_budget(value: Any) -> None:
    """Refuse a time budget that is no positive, finite number of seconds (as ``--time-budget`` would)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise UserError(f"--time-budget must be a positive number of seconds (or 90s, 15m, 1.5h), got {value!r}")


def _check_int(flag: str, value: Any, low: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{flag} must be a whole number >= {low}, got {value!r}")


def _has_type(value: Any, kind: str) -> bool:
    """Whether a JSON value fits a SweepSettings annotation such as ``int | None``."""
    checks = {"str": lambda v: isinstance(v, str), "bool": lambda v: isinstance(v, bool),
              "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              "None": lambda v: v is None,
              "tuple[str, ...]": lambda v: isinstance(v, tuple) and all(isinstance(x, str) for x in v)}  # fmt: skip
    return any(checks[part.strip()](value) for part in kind.split("|"))
