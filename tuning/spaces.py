"""Search spaces as declarative YAML files, one per study (see ``search_spaces/``).

A file has up to four sections::

    description: what the study is for
    parameters:                      # searched; names are TrainConfig fields
      learning_rate: {distribution: loguniform, low: 1.0e-4, high: 1.0e-2}
      batch_size:    {distribution: choice, values: [256, 512, 1024, 2048, 4096]}
      dropout_rate:  {distribution: uniform, low: 0.0, high: 0.6}
      hidden_size:   {distribution: int, low: 16, high: 128, log: true}
    fixed:                           # other TrainConfig fields for every trial
      early_stop_patience: 20
    budget:                          # the scheduler's budget
      num_samples: 16                # trials
      max_epochs: 12                 # ASHA's max_t
      grace_period: 2
      reduction_factor: 3
      time_budget_s: 900             # optional: stop the sweep after this many seconds

Distributions: ``uniform`` and ``loguniform`` (floats in [low, high]), ``int``
(integers in [low, high], ``log: true`` optional) and ``choice`` (``values``).
Loading has no side effects; every problem is a :class:`SpaceError` naming the
file, the parameter, what must hold and what was given.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from tuning.config import HYPERPARAMETER_FIELDS, WINDOW_FIELDS, TrainConfig, suggest_field
from tuning.errors import ConfigError, SpaceError

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
SECTIONS = ("description", "parameters", "fixed", "budget")


def _spaces_dir() -> Path:
    """Where the shipped spaces are: the package data ``tuning.search_spaces`` of an
    install (pyproject.toml maps it to the top-level folder), or that top-level
    ``search_spaces/`` folder itself when the package runs from a source checkout."""
    spec = importlib.util.find_spec("tuning.search_spaces")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent / "search_spaces"


SPACES_DIR = _spaces_dir()

# Fields a space's `fixed` may not set either: the sweep decides where checkpoints go, how
# many threads run and the epoch budget; the windows are fixed by the data it prepares.
_RESERVED = {"checkpoint_dir", "num_threads", "device", "max_epochs", "save_checkpoints", *WINDOW_FIELDS}
# What a sweep may try, per field, beyond what a config may hold: outside these ranges
# trials only crash (out of memory, float overflow) or learn nothing, and a typo such
# as 1e9 for 1e3 would cost the whole sweep. (low, high), None for no bound of our own.
SANE_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "learning_rate": (1e-8, 10.0),
    "weight_decay": (None, 1.0),
    "batch_size": (None, 65_536),
    "hidden_size": (None, 4_096),
    "num_layers": (None, 16),
    "node_embedding_dim": (None, 1_024),
    "tod_embedding_dim": (None, 1_024),
    "dow_embedding_dim": (None, 1_024),
    "gradient_clip": (None, 1e6),
    "early_stop_patience": (None, 1_000),
    "scheduler_step_size": (None, 10_000),
    "num_workers": (None, 64),
    "keep_checkpoints": (None, 100),
}


@dataclass(frozen=True)
class Budget:
    num_samples: int = 16
    max_epochs: int = 12
    grace_period: int = 2
    reduction_factor: int = 3
    # Wall-clock seconds after which Tune stops the sweep (trials still running end at
    # their last epoch; unstarted ones are left for --resume). None: no limit. For spaces
    # whose trials differ in cost by orders of magnitude (an LSTM beside an MLP), the
    # epoch budget alone cannot say how long a sweep takes.
    time_budget_s: float | None = None

    def replace(self, **changes: float | None) -> Budget:
        values = {**self.__dict__, **{k: v for k, v in changes.items() if v is not None}}
        return Budget(**values)

    def validate(self, source: str) -> None:
        for name in ("num_samples", "max_epochs", "grace_period"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SpaceError(f"{source}: budget.{name} must be a whole number >= 1, got {value!r}")
        if not isinstance(self.reduction_factor, int) or self.reduction_factor < 2:
            raise SpaceError(f"{source}: budget.reduction_factor must be a whole number >= 2, got {self.reduction_factor!r}")
        if self.grace_period > self.max_epochs:
            raise SpaceError(f"{source}: budget.grace_period ({self.grace_period}) must be <= max_epochs ({self.max_epochs})")
        t = self.time_budget_s
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0):
            raise SpaceError(f"{source}: budget.time_budget_s must be a number of seconds > 0, got {t!r}")


@dataclass(frozen=True)
class Param:
    name: str
    distribution: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    values: tuple[Any, ...] = ()

    def to_tune(self) -> Any:
        from ray import tune

        if self.distribution == "choice":
            return tune.choice(list(self.values))
        assert self.low is not None and self.high is not None
        if self.distribution == "uniform":
            return tune.uniform(self.low, self.high)
        if self.distribution == "loguniform":
            return tune.loguniform(self.low, self.high)
        # tune.randint's upper bound is exclusive; ours is inclusive like Optuna's.
        if self.log:
            return tune.lograndint(int(self.low), int(self.high) + 1)
        return tune.randint(int(self.low), int(self.high) + 1)

    def contains(self, value: Any) -> bool:
        if self.distribution == "choice":
            return value in self.values
        assert self.low is not None and self.high is not None
        return self.low <= value <= self.high

    def to_dict(self) -> dict[str, Any]:
        """The parameter as a space file writes it."""
        if self.distribution == "choice":
            return {"distribution": "choice", "values": list(self.values)}
        spec: dict[str, Any] = {"distribution": self.distribution, "low": self.low, "high": self.high}
        if self.distribution == "int":
            spec.update(low=int(self.low or 0), high=int(self.high or 0))
            if self.log:
                spec["log"] = True
        return spec

    def describe(self) -> str:
        if self.distribution == "choice":
            return f"choice {list(self.values)}"
        return f"{self.distribution} [{self.low:g}, {self.high:g}]" + (" log" if self.log else "")


@dataclass(frozen=True)
class SearchSpace:
    """A parsed, validated space file."""

    name: str
    source: str
    description: str
    parameters: dict[str, Param]
    fixed: dict[str, Any] = field(default_factory=dict)
    budget: Budget = field(default_factory=Budget)

    def param_space(self) -> dict[str, Any]:
        """Tune's ``param_space``: one domain per searched field."""
        return {name: p.to_tune() for name, p in self.parameters.items()}

    def first_point(self) -> dict[str, Any]:
        """The documented defaults of the searched fields: the sweep's first trial."""
        defaults = TrainConfig().to_dict()
        return {name: defaults[name] for name in self.parameters}

    def base_config(self) -> dict[str, Any]:
        """The fixed fields every trial shares."""
        return dict(self.fixed)

    def to_dict(self) -> dict[str, Any]:
        """The space as the sections of a space file: ``space_from_dict(space.to_dict())`` gives it back."""
        return {
            "description": self.description,
            "parameters": {name: p.to_dict() for name, p in self.parameters.items()},
            "fixed": dict(self.fixed),
            "budget": dict(self.budget.__dict__),
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


SpaceLike = Union[str, "os.PathLike[str]", SearchSpace, Mapping[str, Any]]  # noqa: UP007
"""What :func:`as_space` takes: a file or a name in ``search_spaces/``, a space, or a mapping like a space file."""


def as_space(space: SpaceLike) -> SearchSpace:
    """A :class:`SearchSpace` from any :data:`SpaceLike`, validated as a space file would be."""
    if isinstance(space, SearchSpace):
        return space_from_dict(space.to_dict(), space.source, name=space.name)
    if isinstance(space, Mapping):
        return space_from_dict(dict(space), "search space (dict)", name="space")
    if isinstance(space, (str, os.PathLike)):
        return load_space(find_space(os.fspath(space)))
    raise SpaceError(f"a search space must be a file, a space name, a SearchSpace or a dict, got {type(space).__name__}")


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a space file.

    Raises:
        SpaceError: a missing or malformed file, an unknown section, distribution or
            config field, low above high, a log scale reaching zero, an empty space,
            or documented defaults that the space does not contain.
    """
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise SpaceError(f"search-space file not found: {src}; pass --space with a .yaml file (see search_spaces/)")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise SpaceError(f"cannot read search-space file {src}: {e}; it must be a UTF-8 YAML text file") from e
    return parse_space(text, src, name=path.stem)


def parse_space(text: str, source: str, *, name: str) -> SearchSpace:
    """A space from the text of a YAML space file (``source`` names it in errors)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise SpaceError(f"{source}: not valid YAML{at}: {getattr(e, 'problem', None) or e}") from e
    return space_from_dict(doc, source, name=name)


def space_from_dict(doc: Any, source: str, *, name: str) -> SearchSpace:
    """A space from a mapping with the sections of a space file, validated the same way.

    Raises:
        SpaceError: as :func:`load_space`, naming ``source``.
    """
    src = source
    if not isinstance(doc, dict):
        raise SpaceError(f"{src}: must be a mapping with a 'parameters' section, got {type(doc).__name__}")
    unknown = [k for k in doc if k not in SECTIONS]
    if unknown:
        raise SpaceError(f"{src}: unknown section(s) {unknown}; allowed: {list(SECTIONS)}")
    params_doc = doc.get("parameters")
    if not params_doc:
        raise SpaceError(f"{src}: the space is empty; give at least one entry under 'parameters'")
    if not isinstance(params_doc, dict):
        raise SpaceError(f"{src}: 'parameters' must map config fields to distributions, got {type(params_doc).__name__}")
    fields = set(TrainConfig.field_names())
    parameters = {name: _parse_param(src, name, spec, fields) for name, spec in params_doc.items()}

    fixed = doc.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise SpaceError(f"{src}: 'fixed' must map config fields to values, got {type(fixed).__name__}")
    for key in fixed:  # not `name`: that is the space's own name, used below
        _check_field(src, key, fields, "fixed")
        if key in parameters:
            raise SpaceError(f"{src}: '{key}' is both searched and fixed; keep it in one section")
        _check_sane(src, f"fixed '{key}'", key, fixed[key])
    try:
        TrainConfig.from_dict(fixed, source=f"{src}: fixed")
    except ConfigError as e:
        raise SpaceError(str(e)) from None

    budget_doc = doc.get("budget") or {}
    if not isinstance(budget_doc, dict):
        raise SpaceError(f"{src}: 'budget' must be a mapping, got {type(budget_doc).__name__}")
    allowed = set(Budget.__dataclass_fields__)
    bad = [k for k in budget_doc if k not in allowed]
    if bad:
        raise SpaceError(f"{src}: unknown budget key(s) {bad}; allowed: {sorted(allowed)}")
    budget = Budget(**budget_doc)
    budget.validate(src)

    space = SearchSpace(name, src, str(doc.get("description") or ""), parameters, fixed, budget)
    defaults = TrainConfig().to_dict()
    for name, p in parameters.items():
        if not p.contains(defaults[name]):
            raise SpaceError(
                f"{src}: the documented default {name}={defaults[name]!r} lies outside {p.describe()}; "
                "the first trial is the defaults, so the space must contain them"
            )
    return space


def _check_field(src: str, name: Any, fields: set[str], section: str) -> None:
    if name not in fields:
        close = suggest_field(str(name))
        hint = f" (did you mean '{close}'?)" if close else ""
        raise SpaceError(f"{src}: {section} '{name}' is not a config field{hint}; see TrainConfig for the field names")
    if name in _RESERVED:
        raise SpaceError(f"{src}: {section} '{name}' is set by the sweep itself; use the command-line flag or budget instead")
    if section == "parameter" and name not in HYPERPARAMETER_FIELDS:
        raise SpaceError(
            f"{src}: parameter '{name}' is a run setting, not a hyperparameter; set it under 'fixed' "
            f"(searchable: {', '.join(HYPERPARAMETER_FIELDS)})"
        )


def _number(src: str, name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SpaceError(f"{src}: {name}.{key} must be a number, got {value!r}")
    try:
        number = float(value)  # YAML 1.1 reads 1e-3 as a string
    except ValueError:
        raise SpaceError(f"{src}: {name}.{key} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise SpaceError(f"{src}: {name}.{key} must be finite, got {value!r}")
    return number


def _parse_param(src: str, name: Any, spec: Any, fields: set[str]) -> Param:
    _check_field(src, name, fields, "parameter")
    if not isinstance(spec, dict) or "distribution" not in spec:
        raise SpaceError(
            f"{src}: parameter '{name}' must be a mapping with a 'distribution' ({', '.join(DISTRIBUTIONS)}), got {spec!r}"
        )
    dist = spec["distribution"]
    if dist not in DISTRIBUTIONS:
        raise SpaceError(f"{src}: parameter '{name}' has unknown distribution {dist!r}; use one of {', '.join(DISTRIBUTIONS)}")
    allowed = {"distribution", "values"} if dist == "choice" else {"distribution", "low", "high", "log"}
    extra = sorted(set(spec) - allowed)
    if extra:
        raise SpaceError(
            f"{src}: parameter '{name}' ({dist}) does not take {extra}; it takes {sorted(allowed - {'distribution'})}"
        )
    if dist == "choice":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise SpaceError(f"{src}: parameter '{name}' (choice) needs a non-empty list 'values', got {values!r}")
        for v in values:
            _check_value(src, name, v)
            _check_sane(src, f"parameter '{name}'", name, v)
        return Param(name, dist, values=tuple(values))
    for key in ("low", "high"):
        if key not in spec:
            raise SpaceError(f"{src}: parameter '{name}' ({dist}) needs '{key}'")
    kind = TrainConfig.__dataclass_fields__[name].type
    if dist in ("uniform", "loguniform") and kind != "float":
        raise SpaceError(f"{src}: parameter '{name}' holds {kind} values; use distribution int or choice, not {dist}")
    if dist == "int" and kind not in ("int", "float"):
        raise SpaceError(f"{src}: parameter '{name}' holds {kind} values; use distribution choice, not int")
    log_flag = spec.get("log", False)
    if not isinstance(log_flag, bool):
        raise SpaceError(f"{src}: parameter '{name}': log must be true or false, got {log_flag!r}")
    low, high = _number(src, name, "low", spec["low"]), _number(src, name, "high", spec["high"])
    log = dist == "loguniform" or log_flag
    if low >= high:
        raise SpaceError(f"{src}: parameter '{name}': low < high must hold, got low={spec['low']!r}, high={spec['high']!r}")
    if log and low <= 0:
        raise SpaceError(f"{src}: parameter '{name}': a log scale needs low > 0, got low={spec['low']!r}")
    if dist == "int" and not (low.is_integer() and high.is_integer()):
        raise SpaceError(
            f"{src}: parameter '{name}' (int) needs whole-number bounds, got low={spec['low']!r}, high={spec['high']!r}"
        )
    _check_value(src, name, int(low) if dist == "int" else low)
    _check_value(src, name, int(high) if dist == "int" else high)
    _check_sane(src, f"parameter '{name}'", name, low, "low")
    _check_sane(src, f"parameter '{name}'", name, high, "high")
    return Param(name, dist, low=low, high=high, log=log)


def _check_value(src: str, name: str, value: Any) -> None:
    """Each bound or choice must itself be a valid value of the field."""
    try:
        TrainConfig.from_dict({name: value}, source=src)
    except ConfigError as e:
        raise SpaceError(f"{src}: parameter '{name}' allows an invalid value: {str(e).removeprefix(src + ': ')}") from None


def _check_sane(src: str, where: str, name: str, value: Any, key: str = "value") -> None:
    """Refuse a value outside the field's :data:`SANE_BOUNDS`, naming the field, the bound and the value."""
    low, high = SANE_BOUNDS.get(name, (None, None))
    if isinstance(value, str):  # YAML 1.1 reads 1e9 as a string; the config coerces it
        try:
            value = float(value)
        except ValueError:
            return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if high is not None and value > high:
        raise SpaceError(f"{src}: {where}: {key}={value:g} is above the sane bound {high:g} for {name}; narrow the range")
    if low is not None and value < low:
        raise SpaceError(f"{src}: {where}: {key}={value:g} is below the sane bound {low:g} for {name}; narrow the range")


def find_space(name_or_path: str) -> Path:
    """A path as given, else ``search_spaces/<name>.yaml`` in the project."""
    path = Path(name_or_path)
    if path.is_file() or path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        return path
    return SPACES_DIR / f"{name_or_path}.yaml"
