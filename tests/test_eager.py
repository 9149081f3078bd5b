"""Tests for tuning.eager: torch's AdamW and determinism without the compiler import."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from tests.support import ROOT
from tuning.eager import AdamW


def _train(
    optimizer_cls: type[torch.optim.Optimizer], fused: bool | None = None, scaled: bool = False, steps: int = 6
) -> tuple[list[torch.Tensor], list[float], dict]:
    """A few clipped, scheduled steps, then the optimizer saved and loaded into a fresh one, then more steps."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y = torch.randn(64, 6), torch.randn(64, 3)

    def make(params):  # type: ignore[no-untyped-def]
        optimizer = optimizer_cls(params, lr=3e-3, weight_decay=1e-2, fused=fused)
        return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)

    optimizer, scheduler = make(model.parameters())
    scaler = torch.amp.GradScaler("cpu", enabled=scaled)
    losses = []
    for step in range(steps):
        if step == steps // 2:  # a resume: the state goes through state_dict / load_state_dict
            saved_opt, saved_sched = optimizer.state_dict(), scheduler.state_dict()
            optimizer, scheduler = make(model.parameters())
            optimizer.load_state_dict(saved_opt)
            scheduler.load_state_dict(saved_sched)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        losses.append(loss.item())
    return [p.detach().clone() for p in model.parameters()], losses, optimizer.state_dict()


@pytest.mark.parametrize(
    ("fused", "scaled"),
    [(None, False), (True, True)],
    ids=["default", "fused-with-grad-scaler"],  # the second: the engine's CUDA path (the scaler's inf check inside the step)
)
def test_adamw_updates_exactly_as_torchs(fused: bool | None, scaled: bool) -> None:
    ours, ours_losses, ours_state = _train(AdamW, fused, scaled)
    theirs, their_losses, their_state = _train(torch.optim.AdamW, fused, scaled)
    assert ours_losses == their_losses
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert ours_state["param_groups"] == their_state["param_groups"]
    for key, state in their_state["state"].items():
        assert all(torch.equal(state[k], ours_state["state"][key][k]) for k in state)
    # The update ran without autograd, as torch's wrapper has it: no graph hangs on the weights.
    assert all(p.grad_fn is None for p in ours)


def _python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_training_and_resuming_do_not_import_the_compiler() -> None:
    # In a fresh process: torch's own AdamW imports torch._dynamo (~1.5 CPU-s) at its first
    # call; a run, its checkpoint and a resume from it must not.
    out = _python(
        """
        import sys, torch
        from tuning.config import TrainConfig
        from tuning.data import prepare_data
        from tuning.engine import TrainingRun
        from tuning.sources import synthetic_traffic

        data = prepare_data(synthetic_traffic(num_sensors=4, num_days=3), 10, 5)
        config = TrainConfig(hidden_size=8, batch_size=256, max_epochs=2, num_threads=1, save_checkpoints=False)
        run = TrainingRun(config, data)
        run.run_epoch()
        resumed = TrainingRun(config, data)
        resumed.load_state_dict(run.state_dict())
        resumed.run_epoch()
        print("torch._dynamo" in sys.modules, torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
        """
    )
    assert out == "False True True"


def test_determinism_reaches_inductor_once_it_is_loaded() -> None:
    # Where someone compiles in the same process, Inductor's own flag is set as torch's function sets it.
    out = _python(
        """
        import torch, torch._inductor.config as inductor_config
        from tuning.eager import use_deterministic_algorithms

        inductor_config.deterministic = False
        use_deterministic_algorithms()
        print(inductor_config.deterministic, torch.are_deterministic_algorithms_enabled())
        """
    )
    assert out == "True True"


def test_step_hooks_run_once_per_step() -> None:
    # torch wraps each optimizer class's step once more for its hooks (also this subclass's):
    # the hooks must see every step once, as with torch's AdamW.
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    model = nn.Linear(3, 1)
    torch.optim.AdamW(model.parameters())  # torch's class wrapped first, as in a process that used it
    seen: list[str] = []
    handle = register_optimizer_step_pre_hook(lambda optimizer, args, kwargs: seen.append(type(optimizer).__module__))
    try:
        optimizer = AdamW(model.parameters())
        for _ in range(2):
            model(torch.randn(4, 3)).sum().backward()
            optimizer.step()
    finally:
        handle.remove()
    assert seen == ["tuning.eager", "tuning.eager"]
