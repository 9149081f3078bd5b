"""The sweep's final model: its best trials averaged, the members chosen on validation.

A sweep over the four documented settings often finds configs close to the defaults:
its best trial was within 0.4 % of the defaults' on validation on the embedded data and
0-2 % on the ODOT counts, and which of the top trials scored best on the test windows
was not the one that scored best on validation. What the sweep does buy is several good
models trained differently, and their average forecast beats each of them (test MAE
0-1.8 % below the defaults' final model over 3 seeds on both data sets, where the best
trial alone won 3 runs of 6: ``benchmarks/bench_sweep_pays.py``). So the sweep's final
model is the greedy ensemble of Caruana et al.
(ICML 2004): start from the best trial, and keep adding (with replacement) the trial
whose inclusion lowers the validation MAE of the averaged forecast most, until none does.

All members come from one sweep, so they share the data's scaler, sensors and windows:
averaging their outputs in scaled units equals averaging their forecasts.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tuning.analysis import BEST_COLUMN
from tuning.metrics import masked_mae

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from tuning.data import PreparedData, WindowSet

log = logging.getLogger(__name__)

CANDIDATES = 5
"""The best trials that may join the final model."""
MAX_ROUNDS = 10
"""Greedy rounds at most; a member may be picked more than once (a larger weight)."""


class MeanEnsemble(nn.Module):
    """The weighted mean of models that share their inputs and outputs."""

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float]) -> None:
        super().__init__()
        if len(members) != len(weights) or not members:
            raise ValueError("an ensemble needs one weight per member and at least one member")
        total = float(sum(weights))
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", torch.tensor([w / total for w in weights], dtype=torch.float32))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = torch.stack([member(*inputs) for member in self.members])
        weights = torch.as_tensor(self.weights)
        return (out * weights.view(-1, *([1] * (out.dim() - 1)))).sum(dim=0)


@dataclass(frozen=True)
class Selection:
    """Which candidates the greedy search kept, how often, and what that scored."""

    counts: dict[int, int]
    """Candidate index -> times picked (its weight is count / rounds)."""
    val_mae: float
    best_single_val_mae: float

    @property
    def weights(self) -> dict[int, float]:
        rounds = sum(self.counts.values())
        return {i: c / rounds for i, c in self.counts.items()}


def outputs(model: nn.Module, windows: WindowSet, batch_size: int = 4096) -> torch.Tensor:
    """The model's outputs (scaled units) on every window, in order: (windows, len_target)."""
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        return torch.cat([model(*_inputs(b.to(device))).float().cpu() for b in windows.batches(batch_size, shuffle=False)])


def _inputs(batch: Any) -> tuple[torch.Tensor, ...]:
    return batch.x, batch.future, batch.sensor, batch.tod, batch.dow


def targets(windows: WindowSet, data: PreparedData, batch_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scaled targets, their mask and each window's sensor scale (std), in window order."""
    ys, masks, scales = [], [], []
    std = torch.as_tensor(data.scaler.std, dtype=torch.float32)
    for b in windows.batches(batch_size, shuffle=False):
        ys.append(b.y.cpu())
        masks.append(b.mask.cpu())
        scales.append(std[b.sensor.cpu()])
    return torch.cat(ys), torch.cat(masks), torch.cat(scales)


def floors(windows: WindowSet, data: PreparedData, batch_size: int = 4096) -> torch.Tensor | None:
    """Each window's forecast floor in scaled units (windows, 1), as forecasts are held (None: none)."""
    if data.scaler.floor is None:
        return None
    parts = (data.scaler.scaled_floor(b.sensor) for b in windows.batches(batch_size, shuffle=False))
    return torch.cat([p for p in parts if p is not None])


def _mae(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, scale: torch.Tensor, floor: torch.Tensor | None) -> float:
    """MAE in the data's units (scaled errors times each window's sensor std), over observed cells,
    of the forecasts the averaged outputs give (held at the floor after averaging, as forecasts are)."""
    return float(masked_mae(pred if floor is None else torch.maximum(pred, floor), y, mask, scale))


def select(
    preds: Sequence[torch.Tensor],
    y: torch.Tensor,
    mask: torch.Tensor,
    scale: torch.Tensor,
    rounds: int = MAX_ROUNDS,
    *,
    floor: torch.Tensor | None = None,
) -> Selection:
    """Caruana's greedy forward selection with replacement on the validation MAE (``floor``: see :func:`floors`)."""
    scores = [_mae(p, y, mask, scale, floor) for p in preds]
    finite = [i for i, s in enumerate(scores) if math.isfinite(s)]
    if not finite:
        raise ValueError("no candidate has a finite validation MAE")
    first = min(finite, key=lambda i: scores[i])
    picked = [first]
    total = preds[first].clone()
    best = scores[first]
    for _ in range(rounds - 1):
        n = len(picked) + 1
        trial = {i: _mae((total + preds[i]) / n, y, mask, scale, floor) for i in finite}
        i = min(trial, key=lambda k: trial[k])
        if not trial[i] < best - 1e-9:
            break
        picked.append(i)
        total += preds[i]
        best = trial[i]
    return Selection(dict(Counter(picked)), best, scores[first])


def final_model(exp_path: str, trials: pd.DataFrame, data: PreparedData, candidates: int = CANDIDATES) -> dict[str, Any] | None:
    """The ``"final_model"`` entry of ``best_config.json``: the members, their weights and scores.

    None when fewer than two of the best trials left a usable checkpoint.
    """
    from tuning.export import latest_checkpoint
    from tuning.forecast import load_model

    ranked = trials[trials[BEST_COLUMN].astype(float).map(math.isfinite)].head(candidates)
    found: list[tuple[str, str, nn.Module]] = []
    for _, row in ranked.iterrows():
        checkpoint = latest_checkpoint(row["logdir"])
        if checkpoint is None:
            continue
        try:
            found.append((str(row["trial_id"]), checkpoint, load_model(checkpoint).model))
        except Exception as e:  # a damaged checkpoint leaves that trial out, not the export
            log.warning("trial %s left out of the final model: %s", row["trial_id"], str(e).splitlines()[0])
    if len(found) < 2:
        return None
    y, mask, scale = targets(data.val, data)
    chosen = select([outputs(model, data.val) for _, _, model in found], y, mask, scale, floor=floors(data.val, data))
    return {
        "kind": "ensemble",
        "members": [{"trial_id": found[i][0], "checkpoint": found[i][1], "weight": w} for i, w in sorted(chosen.weights.items())],
        "val_mae": chosen.val_mae,
        "best_trial_val_mae": chosen.best_single_val_mae,
        "candidates": [trial_id for trial_id, _, _ in found],
    }
