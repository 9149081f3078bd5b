"""The training engine: seeded epochs, validation, checkpoints, early stopping.

The pieces are plain functions (:func:`train_one_epoch`, :func:`validate_model`,
:func:`evaluate`, :func:`save_checkpoint`, :func:`load_checkpoint`) and one class,
:class:`TrainingRun`, that owns the state of one run (model, optimizer, scheduler,
grad scaler, early stopping, histories) and can be saved and restored between
epochs. :func:`fit` drives a run to the end; the Ray Tune trainable drives the same
run epoch by epoch. Nothing here imports Ray: progress leaves through the optional
``report`` callback.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from tuning import checkpoints
from tuning.config import RUN_SETTING_FIELDS, TrainConfig
from tuning.data import Batch, EpochBatchSampler, PreparedData, WindowSet, check_same_sensors
from tuning.eager import AdamW, use_deterministic_algorithms
from tuning.errors import ConfigError, UserError
from tuning.metrics import METRIC, ErrorSums, training_loss
from tuning.model import build_model

log = logging.getLogger(__name__)

CHECKPOINT_FILE = checkpoints.RUN_STATE_FILE
BEST_FILE = checkpoints.BEST_FILE
BEST_KEY = f"best_{METRIC}"


class TrainingDivergedError(UserError, ArithmeticError):
    """The loss became NaN or Inf; the message names where and the likely fix."""

    def __init__(
        self,
        epoch: int,
        batch: int,
        learning_rate: float,
        loss: float,
        last_finite_loss: float | None,
        batches: tuple[int, int] | None = None,
    ) -> None:
        self.epoch, self.batch, self.learning_rate = epoch, batch, learning_rate
        self.loss, self.last_finite_loss = loss, last_finite_loss
        # The batches whose losses were read from the device together (first, last):
        # the batches after ``batch`` in that range were already stepped when it was seen.
        self.batches = batches or (batch, batch)
        last = "none" if last_finite_loss is None else f"{last_finite_loss:.6g}"
        where = f"epoch {epoch}, batch {batch}"
        if self.batches[0] != self.batches[1]:
            where += f" (of batches {self.batches[0]}-{self.batches[1]}, checked together)"
        super().__init__(
            f"loss became {loss} at {where} (learning rate {learning_rate:.3g}, "
            f"last finite loss {last}); lower learning_rate or set gradient_clip"
        )


BatchHook = Callable[[int, int, int], None]


class TrainResult(NamedTuple):
    """What a run returns; unpacks as ``best_model, histories, info``."""

    model: nn.Module
    histories: dict[str, list[Any]]
    info: dict[str, Any]


# ----------------------------------------------------------------------------------
# set-up


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch and ask torch for deterministic algorithms.

    With the same seed, a CPU run gives bit-identical loss histories.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # cuBLAS needs this for deterministic matmuls; harmless elsewhere.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    use_deterministic_algorithms()
    # Deterministic mode also fills every new tensor with NaN to expose reads of
    # uninitialised memory: a debugging aid that cost ~20 % of a CPU training step here.
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def resolve_device(spec: str) -> torch.device:
    """'auto' picks CUDA when present, then the CPU."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N' (N = 0, 1, ...), got {spec!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {spec!r} was asked for but CUDA is not available here; use device 'auto' or 'cpu'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0")
    return device


def available_cpus() -> int:
    """CPUs this process may run on (respects affinity masks and containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def limit_threads(num_threads: int) -> int:
    """Use at most ``num_threads`` CPU threads (0: every CPU available)."""
    n = num_threads or available_cpus()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


@dataclass(frozen=True)
class Precision:
    """How the forward pass runs: autocast dtype (or None) and whether to scale the loss."""

    dtype: torch.dtype | None
    use_grad_scaler: bool

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    @property
    def name(self) -> str:
        return "off" if self.dtype is None else str(self.dtype).removeprefix("torch.")


def cpu_supports_bf16() -> bool:
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(config: TrainConfig, device: torch.device) -> Precision:
    """Pick the mixed-precision mode; where it cannot help, turn it off with one log line."""
    if not config.use_mixed_precision:
        return Precision(None, False)
    if device.type == "cuda":
        if config.amp_dtype == "bfloat16":
            if torch.cuda.is_bf16_supported():
                return Precision(torch.bfloat16, False)
            log.info("mixed precision: this GPU has no bf16; using float16 with GradScaler")
        return Precision(torch.float16, True)
    if device.type == "cpu" and config.amp_dtype == "bfloat16":
        if cpu_supports_bf16():
            return Precision(torch.bfloat16, False)
        log.info("mixed precision off: this CPU has no native bf16 (AVX512-BF16/AMX); training in float32")
        return Precision(None, False)
    log.info(
        "mixed precision off on %s: it is on by default only for CUDA (set amp_dtype='bfloat16' to force bf16)",
        device.type,
    )
    return Precision(None, False)


# ----------------------------------------------------------------------------------
# epoch pieces


@dataclass
class EpochStats:
    loss: float
    grad_norm: float
    grad_norm_max: float
    batches: int


def _forward(model: nn.Module, batch: Batch, precision: Precision, device: torch.device) -> torch.Tensor:
    with torch.autocast(device.type, dtype=precision.dtype or torch.float32, enabled=precision.enabled):
        pred = model(batch.x, batch.future, batch.sensor, batch.tod, batch.dow)
    return pred.float()  # the loss is always computed in float32


@dataclass(frozen=True)
class Objective:
    """The training loss of a run: its kind, and a weight per sensor.

    Values are z-scored per sensor, so an unweighted loss would count a unit of
    error on a quiet sensor (small std) as much as many units on a busy one. The
    weight ``std / mean(std)`` undoes that: the scaled-unit loss is then the
    original-unit loss over a constant, so MAE training minimises the very
    quantity every sweep ranks by (validation MAE in original units), while the
    loss keeps the magnitude that learning rates and gradient clipping expect.
    """

    kind: str
    sensor_weight: torch.Tensor | None  # (N,) on the training device
    huber_delta: float = 1.0

    @classmethod
    def for_run(cls, config: TrainConfig, data: PreparedData, device: torch.device) -> Objective:
        std = torch.tensor(data.scaler.std, dtype=torch.float32)
        return cls(config.loss, (std / std.mean()).to(device), config.huber_delta)

    def __call__(self, pred: torch.Tensor, batch: Batch) -> torch.Tensor:
        weight = None if self.sensor_weight is None else self.sensor_weight[batch.sensor]
        return training_loss(self.kind, pred, batch.y, batch.mask, weight, self.huber_delta)


MSE = Objective("mse", None)
"""Unweighted masked MSE: the loss of callers that name none."""


CUDA_SYNC_EVERY = 50
"""Training batches between two reads of the losses from a GPU (see :func:`train_one_epoch`)."""


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    grad_scaler: torch.amp.GradScaler,
    precision: Precision,
    device: torch.device,
    *,
    gradient_clip: float = 1.0,
    epoch: int = 0,
    objective: Objective = MSE,
    sync_every: int | None = None,
) -> EpochStats:
    """One pass over the training batches.

    The step order is fixed: autocast forward, ``scale(loss).backward()``,
    ``unscale_``, ``clip_grad_norm_`` (its return value, the unclipped norm, is
    recorded), ``step``, ``update``, ``zero_grad(set_to_none=True)``.

    Losses and grad norms stay where they were computed. The losses are read (and
    checked for NaN/Inf) every ``sync_every`` batches, the norms once at the end:
    on a GPU, reading a value waits for all queued work, so reading every batch
    would idle the device between steps. Default: every batch on the CPU, where a
    read costs nothing and the error comes before the bad step; every
    :data:`CUDA_SYNC_EVERY` batches elsewhere. The sums are taken in the same
    order either way, so the statistics do not depend on ``sync_every``.

    Raises:
        TrainingDivergedError: on a NaN or Inf loss, naming epoch, batch (and the
            range of batches read together), learning rate and the last finite loss.
    """
    every = sync_every or (1 if device.type == "cpu" else CUDA_SYNC_EVERY)
    model.train()
    lr = optimizer.param_groups[0]["lr"]
    total = 0.0
    pending: list[torch.Tensor] = []  # losses not yet read, 0-dim, on the device
    norms: list[torch.Tensor] = []
    last_finite: float | None = None
    n = 0
    optimizer.zero_grad(set_to_none=True)
    non_blocking = device.type == "cuda"

    def read_losses(last: int) -> None:
        nonlocal total, last_finite
        first = last - len(pending) + 1
        for offset, value in enumerate(torch.stack(pending).tolist()):  # one device-to-host read
            if not math.isfinite(value):
                raise TrainingDivergedError(epoch, first + offset, lr, value, last_finite, (first, last))
            last_finite = value
            total += value
        pending.clear()

    for n, batch in enumerate(batches, start=1):
        batch = batch.to(device, non_blocking=non_blocking)  # a no-op for batches built on the device
        pred = _forward(model, batch, precision, device)
        loss = objective(pred, batch)
        pending.append(loss.detach())
        if len(pending) >= every:
            read_losses(n)
        grad_scaler.scale(loss).backward()
        grad_scaler.unscale_(optimizer)
        max_norm = gradient_clip if gradient_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        grad_scaler.step(optimizer)
        grad_scaler.update()
        optimizer.zero_grad(set_to_none=True)
        norms.append(norm.detach())
    if n == 0:
        raise ValueError("the training split yielded no batch")
    if pending:
        read_losses(n)
    values = torch.stack(norms).double().cpu().numpy()
    finite_norms = values[np.isfinite(values)] if np.isfinite(values).any() else np.array([float("nan")])
    return EpochStats(total / n, float(np.mean(finite_norms)), float(np.max(finite_norms)), n)


@torch.no_grad()
def validate_model(
    model: nn.Module,
    windows: WindowSet,
    data: PreparedData,
    precision: Precision,
    device: torch.device,
    batch_size: int = 4096,
    objective: Objective = MSE,
) -> dict[str, Any]:
    """Validation loss (the training objective) and metrics in original units.

    Returns:
        ``loss`` plus ``mae``, ``rmse``, ``mape`` and ``per_horizon`` (see
        :class:`~tuning.metrics.ErrorSums`).
    """
    metrics = evaluate(model, windows, data, precision, device, batch_size=batch_size, baseline=False, objective=objective)
    return metrics["model"]


@torch.no_grad()
def evaluate(
    model: nn.Module | None,
    windows: WindowSet,
    data: PreparedData,
    precision: Precision,
    device: torch.device,
    *,
    batch_size: int = 4096,
    baseline: bool = True,
    objective: Objective = MSE,
) -> dict[str, dict[str, Any]]:
    """Metrics of the model and of the copy-last-value baseline on the same windows.

    Returns:
        ``{"model": {...}, "copy_last": {...}}``; each holds mae, rmse, mape,
        per_horizon and (model only) ``loss``, the training objective in scaled units.
    """
    if model is not None:
        model.eval()
    sums = {"model": ErrorSums(windows.len_target), "copy_last": ErrorSums(windows.len_target)}
    sq, count = 0.0, 0
    for batch in windows.batches(batch_size, shuffle=False):
        batch = batch.to(device)
        target = data.scaler.inverse(batch.y, batch.sensor)
        if model is not None:
            pred = _forward(model, batch, precision, device)
            cells = int(batch.mask.sum())
            sq += float(objective(pred, batch)) * cells  # the batch's mean back to a sum
            count += cells
            sums["model"].add(data.scaler.forecast(pred, batch.sensor), target, batch.mask)
        if baseline:
            last = batch.x[:, -1:, 0].expand_as(batch.y)
            sums["copy_last"].add(data.scaler.inverse(last, batch.sensor), target, batch.mask)
    out: dict[str, dict[str, Any]] = {}
    if model is not None:
        out["model"] = {"loss": sq / max(count, 1), **sums["model"].result()}
    if baseline:
        out["copy_last"] = sums["copy_last"].result()
    return out


# ----------------------------------------------------------------------------------
# checkpoints (the format lives in tuning.checkpoints; these names stay for callers)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write a run's state atomically (see :func:`tuning.checkpoints.save`)."""
    return checkpoints.save(path, checkpoints.RUN, state)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU, running no code (see :func:`tuning.checkpoints.load`)."""
    return checkpoints.load(path)


# ----------------------------------------------------------------------------------
# the run


class EarlyStopping:
    """Patience on the validation loss; one instance per run, never shared."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best = float("inf")
        self.best_epoch = 0
        self.counter = 0

    def step(self, value: float, epoch: int) -> bool:
        """Record an epoch's value; True when it is a new best."""
        if value < self.best:
            self.best, self.best_epoch, self.counter = value, epoch, 0
            return True
        self.counter += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.counter >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "counter": self.counter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.counter = state["best"], state["best_epoch"], state["counter"]


@dataclass
class TrainingRun:
    """The state of one training run, advanced one epoch at a time.

    Create it, optionally :meth:`load_state_dict` from a checkpoint, then call
    :meth:`run_epoch` until :attr:`finished`; :meth:`result` returns the model with
    the best weights loaded.
    """

    config: TrainConfig
    data: PreparedData
    device_spec: str | None = None
    epoch: int = 0
    histories: dict[str, list[Any]] = field(default_factory=dict)
    resumed_from_epoch: int | None = None
    on_batch: BatchHook | None = None
    """Called after each training batch with (epoch, batch, batches): progress bars."""

    def __post_init__(self) -> None:
        c = self.config
        if (c.len_source, c.len_target) != (self.data.len_source, self.data.len_target):
            raise ConfigError(
                f"config windows len_source={c.len_source}, len_target={c.len_target} differ from the "
                f"prepared data's {self.data.len_source}, {self.data.len_target}; prepare the data with the same windows"
            )
        self.threads = limit_threads(c.num_threads)
        torch.set_float32_matmul_precision("high")
        set_seed(c.seed)
        self.device = resolve_device(self.device_spec or c.device)
        self.precision = resolve_precision(c, self.device)
        # On a GPU the series is copied there once and every batch is gathered there.
        self.windows = self.data.to(self.device)
        self.model = build_model(c, self.data.shape).to(self.device)
        if c.dow_embedding_dim > 0 and 0 < self.data.weekdays_in_training < 7:
            log.info(
                "%s: the training part (first 70 %%) covers %d of 7 weekdays, so no day-of-week input: an unseen "
                "day's would be untrained noise at test time (give about 10 days or more to use it)",
                self.data.name, self.data.weekdays_in_training,
            )  # fmt: skip
        self.objective = Objective.for_run(c, self.data, self.device)
        # CUDA: the fused AdamW takes GradScaler's inf check on the device; the default
        # one would read it on the host every step (a sync per batch).
        fused = True if self.device.type == "cuda" else None
        self.optimizer = AdamW(self.model.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay, fused=fused)
        self.scheduler = (
            torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=c.scheduler_step_size, gamma=c.scheduler_gamma)
            if c.use_scheduler
            else None
        )
        self.grad_scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.use_grad_scaler)
        self.early_stopping = EarlyStopping(c.early_stop_patience)
        self.best_state = copy.deepcopy(self.model.state_dict())
        self.stopped_early = False
        self.train_time_s = 0.0
        self._loader: DataLoader[Batch] | None = None  # created on first use (loader="dataloader")

    # --- state -----------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.stopped_early or self.epoch >= self.config.max_epochs

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this run is now."""
        return {
            "epoch": self.epoch,
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "grad_scaler": self.grad_scaler.state_dict(),
            "early_stopping": self.early_stopping.state_dict(),
            "best_state": self.best_state,
            "stopped_early": self.stopped_early,
            "histories": self.histories,
            **self.data.model_record(),  # sensors, scaler, shape, step: a checkpoint forecasts on its own
            "train_time_s": self.train_time_s,
            "rng": checkpoints.rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = TrainConfig.from_dict(state["config"], source="checkpoint")
        if "sensor_ids" in state:
            check_same_sensors(state["sensor_ids"], self.data, "the checkpoint")
        changed = sorted(k for k, v in saved.to_dict().items() if getattr(self.config, k) != v and k not in RUN_SETTING_FIELDS)
        if changed:
            raise ConfigError(
                f"the checkpoint was written with other settings for {', '.join(changed)}; "
                "resume with the same config or start a new run in another folder"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(_for_this_optimizer(state["optimizer"], self.optimizer))
        if self.scheduler and state["scheduler"]:
            self.scheduler.load_state_dict(state["scheduler"])
        self.grad_scaler.load_state_dict(state["grad_scaler"])
        self.early_stopping.load_state_dict(state["early_stopping"])
        self.best_state = state["best_state"]
        self.stopped_early = state["stopped_early"]
        self.histories = state["histories"]
        self.train_time_s = state.get("train_time_s", 0.0)
        self.epoch = state["epoch"]
        self.resumed_from_epoch = self.epoch
        checkpoints.set_rng_state(state["rng"])

    # --- one epoch -------------------------------------------------------------------
    def _train_batches(self) -> Iterable[Batch]:
        # The shuffle order depends on (seed, epoch) only, so a resumed run sees the
        # same batches as an uninterrupted one, whichever loader serves them.
        shuffle_seed = self.config.seed * 100_003 + self.epoch
        c = self.config
        if c.loader == "tensor":
            return self.windows.train.batches(c.batch_size, shuffle=True, seed=shuffle_seed)
        windows = self.data.train  # DataLoader workers gather on the host
        if self._loader is None:
            from torch.utils.data import DataLoader

            workers = c.num_workers
            self._loader = DataLoader(
                windows,
                batch_size=None,  # the sampler yields whole batches; workers gather them
                sampler=EpochBatchSampler(len(windows), c.batch_size),
                # Its own generator: drawing the workers' base seed from the global RNG
                # would shift every dropout mask against the tensor path.
                generator=torch.Generator().manual_seed(c.seed),
                num_workers=workers,
                pin_memory=c.pin_memory and self.device.type == "cuda",
                persistent_workers=workers > 0,
                prefetch_factor=4 if workers > 0 else None,
            )
        sampler = self._loader.sampler
        assert isinstance(sampler, EpochBatchSampler)
        sampler.set_seed(shuffle_seed)
        return self._loader

    def _counted(self, batches: Iterable[Batch]) -> Iterable[Batch]:
        """``batches``, telling :attr:`on_batch` after each one."""
        if self.on_batch is None:
            return batches
        hook, epoch, total = self.on_batch, self.epoch + 1, -(-len(self.data.train) // self.config.batch_size)

        def counted() -> Iterable[Batch]:
            for n, batch in enumerate(batches, start=1):
                yield batch
                hook(epoch, n, total)

        return counted()

    def run_epoch(self) -> dict[str, Any]:
        """Train and validate one epoch, step the scheduler, update early stopping.

        Returns:
            The epoch's metrics: epoch, train_loss, val_loss, val_mae, val_rmse,
            val_mape, learning_rate, grad_norm, is_best, patience_counter.
        """
        c = self.config
        epoch = self.epoch + 1
        lr = self.optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        stats = train_one_epoch(
            self.model, self._counted(self._train_batches()), self.optimizer, self.grad_scaler, self.precision, self.device,
            gradient_clip=c.gradient_clip, epoch=epoch, objective=self.objective,
        )  # fmt: skip
        val = validate_model(self.model, self.windows.val, self.data, self.precision, self.device, objective=self.objective)
        if not (math.isfinite(val["loss"]) and math.isfinite(val["mae"])):
            raise TrainingDivergedError(epoch, 0, lr, val["loss"], stats.loss)
        if self.scheduler:
            self.scheduler.step()
        elapsed = time.perf_counter() - start
        self.train_time_s += elapsed
        # Early stopping and the kept weights follow the quantity the sweep ranks by.
        is_best = self.early_stopping.step(val["mae"], epoch)
        if is_best:
            self.best_state = copy.deepcopy(self.model.state_dict())
        self.epoch = epoch
        self.stopped_early = self.early_stopping.should_stop and epoch < c.max_epochs
        metrics = {
            "epoch": epoch,
            "train_loss": stats.loss,
            "val_loss": val["loss"],
            "val_mae": val["mae"],
            "val_rmse": val["rmse"],
            "val_mape": val["mape"],
            "learning_rate": lr,
            "grad_norm": stats.grad_norm,
            "grad_norm_max": stats.grad_norm_max,
            "epoch_time_s": elapsed,
        }
        for key, value in metrics.items():
            if key != "epoch":
                self.histories.setdefault(key, []).append(value)
        self.histories.setdefault("val_mae_per_horizon", []).append(val["per_horizon"]["mae"])
        self.histories.setdefault("val_rmse_per_horizon", []).append(val["per_horizon"]["rmse"])
        metrics.update({"is_best": is_best, "patience_counter": self.early_stopping.counter, BEST_KEY: self.early_stopping.best})
        log.info(
            "epoch %3d/%d  train_loss %.5f  val_loss %.5f  val_mae %.4f  lr %.2e  grad_norm %.3f  patience %d/%d  %.1fs%s",
            epoch, c.max_epochs, stats.loss, val["loss"], val["mae"], lr, stats.grad_norm,
            self.early_stopping.counter, c.early_stop_patience, elapsed, "  ⭐" if is_best else "",
        )  # fmt: skip
        return metrics

    # --- the end ---------------------------------------------------------------------
    def best_model(self) -> nn.Module:
        model = build_model(self.config, self.data.shape).to(self.device)
        model.load_state_dict(self.best_state)
        model.eval()
        return model

    def result(self, *, test: bool = True) -> TrainResult:
        """The best model, the histories and the run's info (with test metrics)."""
        model = self.best_model()
        info: dict[str, Any] = {
            "best_epoch": self.early_stopping.best_epoch,
            BEST_KEY: self.early_stopping.best,
            "stopped_early": self.stopped_early,
            "epochs_run": self.epoch,
            "device": str(self.device),
            "mixed_precision": self.precision.enabled,
            "amp_dtype": self.precision.name,
            "threads": self.threads,
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "train_time_s": self.train_time_s,
            "resumed_from_epoch": self.resumed_from_epoch,
            "data": self.data.name,
            "config": self.config.to_dict(),
        }
        if test:
            test_metrics = evaluate(model, self.windows.test, self.data, self.precision, self.device, objective=self.objective)
            info["test_loss"] = test_metrics["model"].pop("loss")
            info["test_metrics"] = test_metrics
        return TrainResult(model, self.histories, info)


def _for_this_optimizer(saved: dict[str, Any], optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """A saved optimizer state with this optimizer's implementation flags (fused, foreach).

    A checkpoint written on a GPU (fused AdamW) may resume on the CPU and the other way
    round; the flags also decide where the loaded step counters are put.
    """
    flags = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in optimizer.param_groups]
    groups = [{**group, **own} for group, own in zip(saved["param_groups"], flags)]
    return {**saved, "param_groups": groups}


ReportFn = Callable[[dict[str, Any], TrainingRun], None]


def fit(
    config: TrainConfig,
    data: PreparedData,
    *,
    report: ReportFn | None = None,
    resume: bool = False,
    device: str | None = None,
    on_batch: BatchHook | None = None,
) -> TrainResult:
    """Train until early stopping or ``config.max_epochs``; return the best model.

    Args:
        config: the run's settings.
        data: prepared windows (see :func:`tuning.data.prepare_data`).
        report: called after every epoch with the epoch's metrics and the run
            (whose :meth:`TrainingRun.state_dict` a caller may checkpoint).
        resume: continue from the newest readable checkpoint in
            ``config.checkpoint_dir`` when there is one (a corrupt newest one is
            skipped with a warning; an unsafe one is refused).
        device: overrides ``config.device``.
        on_batch: called after each training batch with (epoch, batch, batches).

    Returns:
        ``(best_model, histories, info)``.
    """
    run = TrainingRun(config, data, device, on_batch=on_batch)
    folder = None
    if config.checkpoint_dir is not None:
        folder = checkpoints.CheckpointFolder(config.checkpoint_dir, config.keep_checkpoints, continuing=resume)
    if resume:
        if folder is None:
            raise ConfigError("resume needs checkpoint_dir: the folder of the run to continue")
        found = checkpoints.load_first(folder.epochs(), checkpoints.RUN)
        if found is None:
            log.info("no checkpoint in %s; starting from scratch", folder.path)
        else:
            run.load_state_dict(found[1])
            log.info("resumed from %s (epoch %d)", found[0], run.epoch)
    log.info(
        "training on %s (%s, %d threads, mixed precision %s): %d train / %d val / %d test windows",
        run.device, data.name, run.threads, run.precision.name, len(data.train), len(data.val), len(data.test),
    )  # fmt: skip
    while not run.finished:
        metrics = run.run_epoch()
        if folder is not None and config.save_checkpoints:
            folder.save_epoch(run.epoch, run.state_dict())
            if metrics["is_best"]:
                best = {"model": run.best_state, "config": config.to_dict(), "epoch": run.epoch, METRIC: metrics[METRIC]}
                folder.save_best(best)
        if report is not None:
            report(metrics, run)
    if run.stopped_early:
        log.info("early stop after epoch %d: no improvement for %d epochs", run.epoch, config.early_stop_patience)
    result = run.result()
    log.info("best epoch %d, %s %.5f", result.info["best_epoch"], METRIC, result.info[BEST_KEY])
    return result
