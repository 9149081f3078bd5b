"""Tests for tuning.metrics: masked metrics against NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tuning.metrics import MAPE_EPSILON, METRIC, MODE, ErrorSums, masked_mae, masked_mse

B, H = 64, 4


def _masked_mean(values: np.ndarray, keep: np.ndarray, axis: int | None) -> np.ndarray:
    """Mean of ``values`` over ``keep`` cells; nan where no cell is kept."""
    total = np.where(keep, values, 0.0).sum(axis=axis)
    count = keep.sum(axis=axis)
    return np.divide(total, count, out=np.full(np.shape(total), np.nan), where=count > 0)


def _reference(pred: np.ndarray, target: np.ndarray, mask: np.ndarray, axis: int | None) -> dict[str, np.ndarray]:
    """Masked MAE/RMSE/MAPE with plain NumPy; MAPE skips targets with |target| <= MAPE_EPSILON."""
    err = np.nan_to_num(pred - target)  # nan only where mask is False
    safe_target = np.where(mask, target, 1.0)
    keep_pct = mask & (np.abs(safe_target) > MAPE_EPSILON)
    pct = np.abs(err) / np.where(keep_pct, np.abs(safe_target), 1.0)
    return {
        "mae": _masked_mean(np.abs(err), mask, axis),
        "rmse": np.sqrt(_masked_mean(err**2, mask, axis)),
        "mape": 100 * _masked_mean(pct, keep_pct, axis),
    }


def _case(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.normal(50, 10, (B, H))
    pred = target + rng.normal(0, 3, (B, H))
    target[rng.random((B, H)) < 0.1] = 0.0  # MAPE must skip these
    target[rng.random((B, H)) < 0.05] = MAPE_EPSILON / 2  # and these
    if kind == "all observed":
        mask = np.ones((B, H), dtype=bool)
    elif kind == "random mask":
        mask = rng.random((B, H)) < 0.7
    elif kind == "one horizon unobserved":
        mask = rng.random((B, H)) < 0.7
        mask[:, 2] = False
    else:  # "nothing observed"
        mask = np.zeros((B, H), dtype=bool)
    target[~mask] = np.nan  # missing readings: must never leak into a metric
    return pred, target, mask


KINDS = ["all observed", "random mask", "one horizon unobserved", "nothing observed"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunks", [1, 3])
def test_error_sums_match_numpy(kind: str, chunks: int) -> None:
    pred, target, mask = _case(kind, seed=len(kind))
    sums = ErrorSums(H)
    for part in np.array_split(np.arange(B), chunks):  # accumulation over batches is exact
        sums.add(torch.from_numpy(pred[part]), torch.from_numpy(target[part]), torch.from_numpy(mask[part]))
    result = sums.result()
    overall = _reference(pred, target, mask, axis=None)
    per_horizon = _reference(pred, target, mask, axis=0)
    for name in ("mae", "rmse", "mape"):
        np.testing.assert_allclose(result[name], overall[name], rtol=1e-10, equal_nan=True)
        assert len(result["per_horizon"][name]) == H
        np.testing.assert_allclose(result["per_horizon"][name], per_horizon[name], rtol=1e-10, equal_nan=True)
    if kind != "nothing observed":
        assert np.isfinite([result["mae"], result["rmse"], result["mape"]]).all()


def test_error_sums_accept_float32_and_ignore_unmasked_garbage() -> None:
    pred, target, mask = _case("random mask", seed=11)
    clean, noisy = ErrorSums(H), ErrorSums(H)
    clean.add(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(mask))
    garbage = np.where(mask, target, 1e9)  # what a model sees where a reading is missing must not matter
    noisy.add(torch.from_numpy(pred), torch.from_numpy(garbage), torch.from_numpy(mask))
    assert clean.result() == noisy.result()
    single = ErrorSums(H)
    single.add(torch.from_numpy(pred).float(), torch.from_numpy(target).float(), torch.from_numpy(mask))
    assert single.result()["mae"] == pytest.approx(clean.result()["mae"], rel=1e-5)


@pytest.mark.parametrize("kind", ["all observed", "random mask", "one horizon unobserved"])
def test_masked_mse_and_mae_match_numpy_and_ignore_nan_targets(kind: str) -> None:
    pred_np, target_np, mask_np = _case(kind, seed=5)
    pred = torch.from_numpy(pred_np).requires_grad_(True)
    target, mask = torch.from_numpy(target_np), torch.from_numpy(mask_np)
    diff = (pred_np - target_np)[mask_np]
    loss = masked_mse(pred, target, mask)
    assert loss.item() == pytest.approx(np.mean(diff**2), rel=1e-10)
    assert masked_mae(pred, target, mask).item() == pytest.approx(np.mean(np.abs(diff)), rel=1e-10)
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    assert torch.equal(pred.grad[~mask], torch.zeros(int((~mask).sum()), dtype=pred.dtype))
    expected_grad = np.where(mask_np, 2 * (pred_np - np.nan_to_num(target_np)) / mask_np.sum(), 0.0)
    np.testing.assert_allclose(pred.grad.numpy(), expected_grad, rtol=1e-10)


def test_masked_mse_with_nothing_observed_is_zero_not_nan() -> None:
    pred = torch.randn(4, H, requires_grad=True)
    loss = masked_mse(pred, torch.full((4, H), float("nan")), torch.zeros(4, H, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(pred.grad, torch.zeros(4, H))


def test_metric_name_and_mode() -> None:
    assert (METRIC, MODE) == ("val_mae", "min")
