"""The sweep's final model: greedy selection on validation, and the weighted mean of its members."""

from __future__ import annotations

import pytest
import torch

from tuning.config import TrainConfig
from tuning.data import PreparedData
from tuning.ensemble import MeanEnsemble, outputs, select, targets
from tuning.model import build_model


def _case(errors: list[float], cells: int = 40) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Predictions that miss a target of zeros by a constant each; every cell observed, unit scale."""
    y = torch.zeros(cells, 2)
    return [torch.full_like(y, e) for e in errors], y, torch.ones_like(y, dtype=torch.bool), torch.ones(cells)


def test_selection_adds_the_members_that_cancel_each_others_errors() -> None:
    preds, y, mask, scale = _case([1.0, -1.2, 3.0])
    chosen = select(preds, y, mask, scale)
    assert chosen.best_single_val_mae == pytest.approx(1.0)  # the best alone starts it
    assert set(chosen.counts) == {0, 1}  # the one far off never helps
    assert chosen.val_mae < 0.2 < chosen.best_single_val_mae
    assert sum(chosen.weights.values()) == pytest.approx(1.0)


def test_selection_keeps_the_best_alone_when_no_average_beats_it() -> None:
    preds, y, mask, scale = _case([0.5, 2.0, 3.0])  # all off to the same side: averaging only adds error
    chosen = select(preds, y, mask, scale)
    assert chosen.counts == {0: 1} and chosen.val_mae == chosen.best_single_val_mae == pytest.approx(0.5)


def test_selection_scores_in_the_datas_units_over_observed_cells_only() -> None:
    preds, y, mask, _ = _case([1.0, -1.0])
    mask[:, 1] = False
    scale = torch.linspace(1.0, 3.0, y.shape[0])  # each window's sensor std
    preds[1][:, 1] = 100.0  # wrong only where nothing was observed
    chosen = select(preds, y, mask, scale)
    assert chosen.best_single_val_mae == pytest.approx(float(scale.mean()))
    assert chosen.val_mae == pytest.approx(0.0)


def test_selection_scores_the_average_held_at_the_floor_as_forecasts_are() -> None:
    # a target of zeros, floor zero: -1 and +1 score 0 and 1 alone; their average is held after averaging
    preds, y, mask, scale = _case([-1.0, 1.0, 0.4])
    floor = torch.zeros(y.shape[0], 1)
    assert select(preds, y, mask, scale).best_single_val_mae == pytest.approx(0.4)
    chosen = select(preds, y, mask, scale, floor=floor)
    assert chosen.best_single_val_mae == pytest.approx(0.0) and chosen.counts == {0: 1}


def test_mean_ensemble_is_the_weighted_mean_of_its_members(tiny_data: PreparedData) -> None:
    torch.manual_seed(0)
    a = build_model(TrainConfig(hidden_size=8, dropout_rate=0.0), tiny_data.shape).eval()
    b = build_model(TrainConfig(model="rnn", hidden_size=8, dropout_rate=0.0), tiny_data.shape).eval()
    ensemble = MeanEnsemble([a, b], [3, 1]).eval()
    out_a, out_b, out = (outputs(m, tiny_data.val) for m in (a, b, ensemble))
    assert out.shape == (len(tiny_data.val), tiny_data.len_target)
    torch.testing.assert_close(out, 0.75 * out_a + 0.25 * out_b)
    y, mask, scale = targets(tiny_data.val, tiny_data)
    assert y.shape == out.shape == mask.shape and scale.shape == (len(tiny_data.val),)
    with pytest.raises(ValueError, match="one weight per member"):
        MeanEnsemble([a], [1, 2])
