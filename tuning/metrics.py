"""Masked error metrics in original units, and the names the search optimises.

Missing readings (NaN in the target, or zeros under the METR-LA convention) carry
no information about the model, so every metric averages over observed cells only.
MAPE also skips targets near zero, where a relative error is meaningless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

METRIC = "val_mae"
"""The value every sweep ranks by, early stopping watches and the kept best weights
minimise: the masked MAE on the validation split, in the data's original units,
whatever loss a trial trains with."""
MODE = "min"

MAPE_EPSILON = 1e-3


@dataclass
class ErrorSums:
    """Running sums per horizon step, so metrics over many batches are exact means."""

    horizon: int
    abs_err: torch.Tensor = field(init=False)
    sq_err: torch.Tensor = field(init=False)
    pct_err: torch.Tensor = field(init=False)
    count: torch.Tensor = field(init=False)
    pct_count: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        zeros = lambda: torch.zeros(self.horizon, dtype=torch.float64)  # noqa: E731
        self.abs_err, self.sq_err, self.pct_err = zeros(), zeros(), zeros()
        self.count, self.pct_count = zeros(), zeros()

    def add(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> None:
        """Accumulate one batch. All tensors (B, H) in original units; mask is bool."""
        pred, target, mask = pred.detach().double().cpu(), target.detach().double().cpu(), mask.cpu()
        err = torch.where(mask, pred - target, torch.zeros((), dtype=torch.float64))
        self.abs_err += err.abs().sum(0)
        self.sq_err += (err * err).sum(0)
        self.count += mask.sum(0)
        pmask = mask & (target.abs() > MAPE_EPSILON)
        pct = torch.where(pmask, (pred - target).abs() / target.abs().clamp_min(MAPE_EPSILON), 0.0)
        self.pct_err += pct.sum(0)
        self.pct_count += pmask.sum(0)

    def result(self) -> dict[str, Any]:
        """MAE, RMSE and MAPE (percent), overall and per horizon step."""
        nan = float("nan")

        def ratio(a: torch.Tensor, b: torch.Tensor) -> list[float]:
            return [float(x) / float(n) if n > 0 else nan for x, n in zip(a, b)]

        total = float(self.count.sum())
        ptotal = float(self.pct_count.sum())
        return {
            "mae": float(self.abs_err.sum()) / total if total else nan,
            "rmse": (float(self.sq_err.sum()) / total) ** 0.5 if total else nan,
            "mape": 100.0 * float(self.pct_err.sum()) / ptotal if ptotal else nan,
            "per_horizon": {
                "mae": ratio(self.abs_err, self.count),
                "rmse": [v**0.5 for v in ratio(self.sq_err, self.count)],
                "mape": [100.0 * v for v in ratio(self.pct_err, self.pct_count)],
            },
        }


def _masked_diff(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    # ``target`` may hold anything where ``mask`` is False (NaN included): those cells
    # are replaced before the subtraction so no NaN reaches the gradient.
    diff = torch.where(mask, pred - torch.where(mask, target, pred.detach()), torch.zeros_like(pred))
    return diff if weight is None else diff * weight.unsqueeze(-1)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over observed cells; ``weight`` (B,) scales each row's error."""
    diff = _masked_diff(pred, target, mask, weight)
    return (diff * diff).sum() / mask.sum().clamp_min(1)


def masked_mae(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error over observed cells; ``weight`` (B,) scales each row's error."""
    return _masked_diff(pred, target, mask, weight).abs().sum() / mask.sum().clamp_min(1)


def masked_huber(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None = None, delta: float = 1.0
) -> torch.Tensor:
    """Huber loss over observed cells: squared below ``delta``, absolute above."""
    err = _masked_diff(pred, target, mask, weight).abs()
    quad = torch.clamp(err, max=delta)
    return (0.5 * quad * quad + delta * (err - quad)).sum() / mask.sum().clamp_min(1)


def training_loss(
    kind: str, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None, huber_delta: float
) -> torch.Tensor:
    """The loss a config names ("mae", "mse" or "huber"), masked and weighted."""
    if kind == "mae":
        return masked_mae(pred, target, mask, weight)
    if kind == "mse":
        return masked_mse(pred, target, mask, weight)
    if kind == "huber":
        return masked_huber(pred, target, mask, weight, huber_delta)
    raise ValueError(f"unknown loss {kind!r}")
