"""The training config: every knob of a run, with the documented defaults written once.

Everything outside this module (the legacy dict API, JSON/YAML files, Ray Tune's
config dict, command-line flags) is turned into a :class:`TrainConfig` by
:meth:`TrainConfig.from_dict` at exactly one boundary, so below it nothing
indexes ``config["lr"]`` and no unknown key slips through as a silent default.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tuning.errors import ConfigError

AMP_DTYPES = ("auto", "float16", "bfloat16")
CELLS = ("lstm", "gru")
LOADERS = ("tensor", "dataloader")
MODELS = ("mlp", "rnn")
LOSSES = ("mae", "mse", "huber")


# The config is three groups, each a dataclass of its own, joined into one flat
# TrainConfig. The groups carry the rules that used to be lists kept by hand:
# a sweep may search Hyperparameters only; a resumed run may change RunSettings
# only; Windows are fixed by the data preparation and change neither way.


@dataclass(frozen=True)
class Windows:
    """The forecasting task: how many past steps go in, how many future steps come out."""

    len_source: int = 10
    len_target: int = 5


@dataclass(frozen=True)
class Hyperparameters:
    """What a sweep may search: the model and how it is optimised."""

    # --- the documented defaults -------------------------------------------------
    batch_size: int = 1024
    learning_rate: float = 1e-3
    dropout_rate: float = 0.2
    gradient_clip: float = 1.0
    early_stop_patience: int = 10
    use_scheduler: bool = True
    scheduler_gamma: float = 0.95
    scheduler_step_size: int = 5
    weight_decay: float = 1e-4
    seed: int = 42

    # --- model -------------------------------------------------------------------
    # "mlp": STID-style residual MLP over the flattened window plus embeddings (the
    # default: faster and better than the RNN on the data sets measured, see README);
    # "rnn": encoder-decoder LSTM/GRU plus the same embeddings.
    model: str = "mlp"
    hidden_size: int = 64
    num_layers: int = 2
    cell: str = "lstm"  # rnn only
    # A learned vector per sensor, so shared weights can tell sensors apart (0: off).
    node_embedding_dim: int = 16
    # Learned time-of-day (one slot per step of the day) and day-of-week vectors;
    # used when the data has timestamps (0: off).
    tod_embedding_dim: int = 16
    dow_embedding_dim: int = 8

    # --- objective ---------------------------------------------------------------
    # The training loss. Every sweep ranks by the validation MAE in original units
    # whatever the loss; "mae" trains for that quantity directly (the traffic convention).
    loss: str = "mae"
    huber_delta: float = 1.0  # huber only, in units of the average sensor's std


@dataclass(frozen=True)
class RunSettings:
    """How a run is carried out; these may change when an interrupted run resumes."""

    use_mixed_precision: bool = True
    num_workers: int = 4
    pin_memory: bool = True
    save_checkpoints: bool = True
    max_epochs: int = 100
    # "auto": fp16 + GradScaler on CUDA, off on CPU (bf16 autocast measured slower
    # than fp32 for these small models on CPUs without AMX);
    # "bfloat16": bf16 autocast wherever the device supports it.
    amp_dtype: str = "auto"
    device: str = "auto"
    # 0 = every CPU this process may use.
    num_threads: int = 0
    # "tensor": whole batches by tensor indexing (fast, in memory). "dataloader":
    # the same batches through torch's DataLoader, where num_workers, pin_memory and
    # persistent workers apply.
    loader: str = "tensor"
    # Where a run keeps its checkpoints; None (the default): nowhere, so the Python API
    # writes nothing the caller did not name. `tuning.train` sets OUTPUT/checkpoints.
    checkpoint_dir: str | None = None
    keep_checkpoints: int = 2


@dataclass(frozen=True)
class TrainConfig(RunSettings, Hyperparameters, Windows):
    """All settings of one training run, flat: ``config.batch_size``, ``config.device``.

    The documented parameter table of the old training module is spread over the
    groups (see ``DOCUMENTED_DEFAULT_FIELDS``); :meth:`hyperparameters` and
    :meth:`run_settings` give each group back.
    """

    def __post_init__(self) -> None:
        _validate(self)

    # ------------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
        """Build a config from a mapping, rejecting unknown keys and coercing types.

        Args:
            values: field names to values; missing fields keep their defaults.
            source: where the values came from, used in error messages.

        Raises:
            ConfigError: on an unknown key, a value of the wrong type or out of range.
        """
        known = {f.name: f for f in fields(cls)}
        unknown = [k for k in values if k not in known]
        if unknown:
            hints = []
            for key in unknown:
                close = suggest_field(str(key))
                hints.append(f"'{key}'" + (f" (did you mean '{close}'?)" if close else ""))
            raise ConfigError(f"{source}: unknown config key {', '.join(hints)}; valid keys are {', '.join(sorted(known))}")
        kwargs = {k: _coerce(k, known[k].type, v, source) for k, v in values.items()}
        try:
            return cls(**kwargs)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Load a JSON or YAML file of config fields.

        A best-config export (``best_config.json``) holds the fields under a
        ``"config"`` key beside its metrics; that layout is accepted too.
        """
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}; pass an existing .json or .yaml file")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read config file {path}: {e}; it must be a UTF-8 JSON or YAML file") from e
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as e:  # noqa: BLE001 - any parse error is the user's file
            raise ConfigError(f"cannot parse config file {path}: {e}".splitlines()[0]) from e
        if isinstance(data, dict) and isinstance(data.get("config"), dict):
            data = data["config"]
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: must hold a mapping of config fields, got {type(data).__name__}")
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hyperparameters(self) -> dict[str, Any]:
        """The fields a sweep may search, with this config's values."""
        return {name: getattr(self, name) for name in HYPERPARAMETER_FIELDS}

    def run_settings(self) -> dict[str, Any]:
        """The fields that may change between an interrupted run and its resumption."""
        return {name: getattr(self, name) for name in RUN_SETTING_FIELDS}

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})


# Names other code bases use for our fields; difflib alone misses short ones like "lr".
_ALIASES = {
    "lr": "learning_rate", "dropout": "dropout_rate", "wd": "weight_decay", "bs": "batch_size",
    "patience": "early_stop_patience", "epochs": "max_epochs", "clip": "gradient_clip",
    "grad_clip": "gradient_clip", "gamma": "scheduler_gamma", "step_size": "scheduler_step_size",
    "hidden": "hidden_size", "layers": "num_layers", "amp": "use_mixed_precision", "input_len": "len_source",
    "output_len": "len_target", "family": "model", "model_type": "model", "criterion": "loss",
    "node_dim": "node_embedding_dim", "tod_dim": "tod_embedding_dim", "dow_dim": "dow_embedding_dim",
}  # fmt: skip


def suggest_field(name: str) -> str | None:
    """The config field a mistyped or foreign name most likely means, if any."""
    if name in _ALIASES:
        return _ALIASES[name]
    close = difflib.get_close_matches(name, TrainConfig.field_names(), n=1)
    return close[0] if close else None


def _coerce(name: str, annotation: Any, value: Any, source: str) -> Any:
    """Turn values from JSON, YAML or Tune into the field's type.

    YAML 1.1 reads ``1e-3`` as a string and Tune hands out numpy scalars, so
    numeric strings and numpy numbers are accepted; bools are never taken as ints.
    """
    kind = str(annotation)
    bad = ConfigError(f"{source}: {name} must be {kind}, got {value!r}")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if hasattr(value, "item") and isinstance(value.item(), bool):
            return value.item()
        raise bad
    if isinstance(value, bool):
        raise bad
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if kind == "int":
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise bad from None
        if isinstance(value, int):
            return value
        raise bad
    if kind == "float":
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if kind in ("str", "str | None"):
        if isinstance(value, str) or (value is None and kind != "str"):
            return value
        raise bad
    return value


def _check(ok: bool, name: str, must: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{name} must be {must}, got {value!r}")


MAX_SEED = 2**32 - 1
"""NumPy's legacy seeding, which ``set_seed`` uses, takes 0 to 2**32 - 1."""
MAX_LEARNING_RATE = 10.0
"""AdamW moves each weight by about the learning rate per step: above this, nothing trains."""
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _validate(c: TrainConfig) -> None:
    finite = math.isfinite
    _check(c.batch_size >= 1, "batch_size", ">= 1", c.batch_size)
    _check(
        finite(c.learning_rate) and 0 < c.learning_rate <= MAX_LEARNING_RATE,
        "learning_rate", f"> 0 and <= {MAX_LEARNING_RATE:g}", c.learning_rate,
    )  # fmt: skip
    _check(0.0 <= c.dropout_rate < 1.0, "dropout_rate", "in [0, 1)", c.dropout_rate)
    _check(finite(c.gradient_clip) and c.gradient_clip >= 0, "gradient_clip", ">= 0 (0 turns clipping off)", c.gradient_clip)
    _check(c.early_stop_patience >= 1, "early_stop_patience", ">= 1", c.early_stop_patience)
    _check(0.0 < c.scheduler_gamma <= 1.0, "scheduler_gamma", "in (0, 1]", c.scheduler_gamma)
    _check(c.scheduler_step_size >= 1, "scheduler_step_size", ">= 1", c.scheduler_step_size)
    _check(finite(c.weight_decay) and c.weight_decay >= 0, "weight_decay", ">= 0", c.weight_decay)
    _check(c.num_workers >= 0, "num_workers", ">= 0", c.num_workers)
    _check(0 <= c.seed <= MAX_SEED, "seed", f">= 0 and <= {MAX_SEED} (2**32 - 1)", c.seed)
    _check(c.len_source >= 1, "len_source", ">= 1", c.len_source)
    _check(c.len_target >= 1, "len_target", ">= 1", c.len_target)
    _check(c.hidden_size >= 1, "hidden_size", ">= 1", c.hidden_size)
    _check(c.num_layers >= 1, "num_layers", ">= 1", c.num_layers)
    _check(c.cell in CELLS, "cell", f"one of {CELLS}", c.cell)
    _check(c.model in MODELS, "model", f"one of {MODELS}", c.model)
    _check(c.loss in LOSSES, "loss", f"one of {LOSSES}", c.loss)
    _check(finite(c.huber_delta) and c.huber_delta > 0, "huber_delta", "> 0", c.huber_delta)
    for name in ("node_embedding_dim", "tod_embedding_dim", "dow_embedding_dim"):
        _check(getattr(c, name) >= 0, name, ">= 0 (0 turns it off)", getattr(c, name))
    _check(c.max_epochs >= 1, "max_epochs", ">= 1", c.max_epochs)
    _check(c.amp_dtype in AMP_DTYPES, "amp_dtype", f"one of {AMP_DTYPES}", c.amp_dtype)
    _check(bool(_DEVICE.fullmatch(c.device)), "device", "'auto', 'cpu', 'cuda' or 'cuda:N' (N = 0, 1, ...)", c.device)
    _check(c.num_threads >= 0, "num_threads", ">= 0 (0 = all CPUs available)", c.num_threads)
    _check(c.loader in LOADERS, "loader", f"one of {LOADERS}", c.loader)
    _check(c.keep_checkpoints >= 1, "keep_checkpoints", ">= 1", c.keep_checkpoints)


HYPERPARAMETER_FIELDS = tuple(f.name for f in fields(Hyperparameters))
"""Fields a sweep may search."""
RUN_SETTING_FIELDS = tuple(f.name for f in fields(RunSettings))
"""Fields that may change when an interrupted run resumes."""
WINDOW_FIELDS = tuple(f.name for f in fields(Windows))
"""Fields fixed by the data preparation: neither searched nor changed on resume."""

DEFAULTS = TrainConfig()
"""The documented defaults; the first trial of every sweep."""

DOCUMENTED_DEFAULT_FIELDS = (
    "batch_size", "learning_rate", "dropout_rate", "use_mixed_precision", "gradient_clip",
    "early_stop_patience", "use_scheduler", "scheduler_gamma", "scheduler_step_size",
    "weight_decay", "num_workers", "pin_memory", "seed", "save_checkpoints",
)  # fmt: skip


__all__ = [
    "TrainConfig", "Hyperparameters", "RunSettings", "Windows", "DEFAULTS", "DOCUMENTED_DEFAULT_FIELDS",
    "HYPERPARAMETER_FIELDS", "RUN_SETTING_FIELDS", "WINDOW_FIELDS",
]  # fmt: skip
