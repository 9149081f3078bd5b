"""CUDA training step: fp16 with GradScaler, its state in checkpoints, bf16, batches built on the device.

Marked ``gpu``; each test skips, saying why, on a machine without CUDA (CI has none). Run
them on a GPU machine with ``python -m pytest -m gpu``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tuning import checkpoints
from tuning.config import TrainConfig
from tuning.data import PreparedData
from tuning.engine import CUDA_SYNC_EVERY, TrainingDivergedError, TrainingRun, fit, load_checkpoint, train_one_epoch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; this machine has none"),
]

# Histories that depend only on the seed (epoch_time_s is wall-clock time).
SEEDED = ("train_loss", "val_loss", "val_mae", "val_rmse", "learning_rate", "grad_norm", "grad_norm_max")


@pytest.fixture
def gpu_config(tiny_config: TrainConfig) -> TrainConfig:
    return tiny_config.replace(device="cuda", max_epochs=3)


def test_fp16_with_grad_scaler_trains(gpu_config: TrainConfig, tiny_data: PreparedData) -> None:
    run = TrainingRun(gpu_config, tiny_data)
    assert run.precision.dtype == torch.float16 and run.precision.use_grad_scaler
    assert run.grad_scaler.is_enabled()
    # the series lives on the GPU once, shared by train and validation
    assert run.windows.train.tensors.inputs.is_cuda
    assert run.windows.train.tensors is run.windows.val.tensors
    assert run.optimizer.param_groups[0]["fused"] is True
    while not run.finished:
        run.run_epoch()
    losses = run.histories["train_loss"]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    scale = run.grad_scaler.state_dict()["scale"]
    assert isinstance(scale, float) and math.isfinite(scale) and scale > 0
    info = run.result().info
    assert info["amp_dtype"] == "float16" and info["device"].startswith("cuda")
    assert info["test_metrics"]["model"]["mae"] < info["test_metrics"]["copy_last"]["mae"] * 2


def test_resume_with_the_scaler_state_continues_identically(
    gpu_config: TrainConfig, tiny_data: PreparedData, tmp_path: Path
) -> None:
    base = gpu_config.replace(max_epochs=4, scheduler_step_size=3, scheduler_gamma=0.5)
    whole = fit(base.replace(checkpoint_dir=str(tmp_path / "whole")), tiny_data)
    fit(base.replace(max_epochs=2, checkpoint_dir=str(tmp_path / "split")), tiny_data)
    saved = load_checkpoint(tmp_path / "split" / "epoch_0002.pt")  # weights_only=True: plain values only
    scaler_state = saved["grad_scaler"]
    assert set(scaler_state) >= {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"}
    assert all(isinstance(v, (int, float)) for v in scaler_state.values()), scaler_state
    resumed = fit(base.replace(checkpoint_dir=str(tmp_path / "split")), tiny_data, resume=True)
    assert resumed.info["resumed_from_epoch"] == 2
    for key in SEEDED:
        assert resumed.histories[key] == whole.histories[key], key
    last = load_checkpoint(tmp_path / "whole" / "epoch_0004.pt")
    last_resumed = load_checkpoint(tmp_path / "split" / "epoch_0004.pt")
    assert last["grad_scaler"] == last_resumed["grad_scaler"]
    assert all(torch.equal(last["model"][k], last_resumed["model"][k]) for k in last["model"])


@pytest.mark.skipif(torch.cuda.is_available() and not torch.cuda.is_bf16_supported(), reason="this GPU has no bf16")
def test_bf16_trains(gpu_config: TrainConfig, tiny_data: PreparedData) -> None:
    run = TrainingRun(gpu_config.replace(amp_dtype="bfloat16"), tiny_data)
    assert run.precision.dtype == torch.bfloat16 and not run.grad_scaler.is_enabled()
    while not run.finished:
        run.run_epoch()
    losses = run.histories["train_loss"]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]


def test_a_training_epoch_copies_nothing_per_batch(gpu_config: TrainConfig, tiny_data: PreparedData) -> None:
    # Count host<->device copies in one epoch with the profiler: the shuffle order goes to
    # the GPU once, losses come back every CUDA_SYNC_EVERY batches, norms once at the end.
    from torch.profiler import ProfilerActivity, profile

    run = TrainingRun(gpu_config.replace(batch_size=16), tiny_data)
    batches = -(-len(tiny_data.train) // 16)
    assert batches > 2 * CUDA_SYNC_EVERY
    run.run_epoch()  # warm-up: kernels, allocator
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        train_one_epoch(
            run.model, run.windows.train.batches(16, shuffle=True, seed=5), run.optimizer, run.grad_scaler,
            run.precision, run.device, objective=run.objective,
        )  # fmt: skip
        torch.cuda.synchronize()
    names = [e.name for e in prof.events()]
    h2d = sum("Memcpy HtoD" in n for n in names)
    d2h = sum("Memcpy DtoH" in n for n in names)
    assert h2d <= 3, f"{h2d} host-to-device copies in {batches} batches"
    assert d2h <= batches // CUDA_SYNC_EVERY + 3, f"{d2h} device-to-host copies in {batches} batches"


def test_divergence_on_the_gpu_names_epoch_batch_range_and_learning_rate(
    gpu_config: TrainConfig, tiny_data: PreparedData
) -> None:
    config = gpu_config.replace(
        learning_rate=10.0, weight_decay=1.0, batch_size=64, gradient_clip=0.0, use_mixed_precision=False, max_epochs=5
    )
    with pytest.raises(TrainingDivergedError) as err:
        fit(config, tiny_data)
    e = err.value
    first, last = e.batches
    assert e.epoch >= 1 and first <= e.batch <= last and last - first < CUDA_SYNC_EVERY
    assert f"at epoch {e.epoch}, batch {e.batch}" in str(e) and "(learning rate 10," in str(e)


def test_grad_scaler_state_is_saved_as_plain_values(tmp_path: Path) -> None:
    scaler = torch.amp.GradScaler("cuda")
    param = torch.nn.Parameter(torch.ones(3, device="cuda"))
    optimizer = torch.optim.AdamW([param], fused=True)
    scaler.scale((param * 2).sum()).backward()
    scaler.step(optimizer)
    scaler.update()
    path = checkpoints.save(tmp_path / "s.pt", checkpoints.RUN, {"grad_scaler": scaler.state_dict()})
    loaded = checkpoints.load(path, checkpoints.RUN)["grad_scaler"]
    fresh = torch.amp.GradScaler("cuda")
    fresh.load_state_dict(loaded)
    assert fresh.get_scale() == scaler.get_scale()
