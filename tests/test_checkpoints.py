"""Tests for tuning.checkpoints: one safe format, atomic writes, and runs that survive bad files."""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_malicious_checkpoint

from tuning import checkpoints
from tuning.config import TrainConfig
from tuning.data import PreparedData
from tuning.engine import TrainingDivergedError, TrainingRun, fit, load_checkpoint


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


# --- the format ----------------------------------------------------------------------------


def test_a_run_checkpoint_loads_with_weights_only(tiny_config: TrainConfig, tiny_data: PreparedData) -> None:
    fit(tiny_config.replace(max_epochs=1), tiny_data)
    folder = Path(tiny_config.checkpoint_dir or "")
    for name in ("epoch_0001.pt", checkpoints.BEST_FILE):
        # torch's own safe loader, not ours: the file needs nothing but tensors and plain values
        doc = torch.load(folder / name, weights_only=True)
        assert doc["format"] == checkpoints.FORMAT_VERSION
    state = torch.load(folder / "epoch_0001.pt", weights_only=True)
    assert state["kind"] == checkpoints.RUN
    assert isinstance(state["rng"]["python"], list) and isinstance(state["rng"]["numpy"][1], torch.Tensor)
    assert torch.load(folder / checkpoints.BEST_FILE, weights_only=True)["kind"] == checkpoints.MODEL


def test_rng_states_round_trip_through_a_file(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    checkpoints.save(tmp_path / "rng.pt", checkpoints.RUN, {"rng": checkpoints.rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    checkpoints.set_rng_state(checkpoints.load(tmp_path / "rng.pt", checkpoints.RUN)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


@pytest.mark.parametrize("value", [np.zeros(3), np.float64(1.0), object(), {1.5: "x"}])
def test_saving_anything_but_tensors_and_plain_values_is_a_bug(tmp_path: Path, value: object) -> None:
    with pytest.raises(TypeError, match="checkpoint"):
        checkpoints.save(tmp_path / "x.pt", checkpoints.RUN, {"value": value})
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_a_malicious_checkpoint_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = write_malicious_checkpoint(tmp_path / "epoch_0001.pt", marker)
    with pytest.raises(checkpoints.UnsafeCheckpointError, match=r"refusing checkpoint .*epoch_0001.pt: loading it would call"):
        load_checkpoint(path)  # the engine's name for it, as callers use it
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "cannot read checkpoint"),
        (b"PK\x03\x04 torn zip", "cannot read checkpoint"),
    ],
)
def test_corrupt_files_are_checkpoint_errors(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "state.pt"
    path.write_bytes(content)
    with pytest.raises(checkpoints.CheckpointError, match=expected) as info:
        checkpoints.load(path)
    assert "\n" not in str(info.value)


def test_a_torch_file_of_another_program_is_refused(tmp_path: Path) -> None:
    torch.save({"epoch": 3, "weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(checkpoints.CheckpointError, match="not a tuning checkpoint of format 1"):
        checkpoints.load(tmp_path / "other.pt")


def test_a_checkpoint_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    checkpoints.save(tmp_path / "best.pt", checkpoints.MODEL, {"model": {}})
    with pytest.raises(checkpoints.CheckpointError, match="'model' file where a 'run' checkpoint was expected"):
        checkpoints.load(tmp_path / "best.pt", checkpoints.RUN)


# --- runs in a folder ---------------------------------------------------------------------


def test_a_new_run_keeps_an_older_one_until_its_first_checkpoint(tiny_config: TrainConfig, tiny_data: PreparedData) -> None:
    folder = Path(tiny_config.checkpoint_dir or "")
    fit(tiny_config.replace(max_epochs=3), tiny_data)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert set(before) == {"epoch_0002.pt", "epoch_0003.pt", checkpoints.BEST_FILE}
    # Diverges in its first epoch (AdamW's decay multiplies the weights by -9 per step): it must
    # leave the older run as it was.
    with pytest.raises(TrainingDivergedError):
        fit(tiny_config.replace(learning_rate=10.0, weight_decay=1.0, gradient_clip=0.0, batch_size=64), tiny_data)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    # A new run that gets going replaces it.
    fit(tiny_config.replace(max_epochs=1, seed=5), tiny_data)
    assert sorted(p.name for p in folder.iterdir()) == [checkpoints.BEST_FILE, "epoch_0001.pt"]
    assert load_checkpoint(folder / checkpoints.BEST_FILE)["config"]["seed"] == 5


def test_resume_skips_a_corrupt_newest_checkpoint(
    tiny_config: TrainConfig, tiny_data: PreparedData, caplog: pytest.LogCaptureFixture
) -> None:
    folder = Path(tiny_config.checkpoint_dir or "")
    fit(tiny_config.replace(max_epochs=2), tiny_data)
    _truncate(folder / "epoch_0002.pt")
    with caplog.at_level(logging.WARNING, logger="tuning"):
        _, histories, info = fit(tiny_config.replace(max_epochs=3), tiny_data, resume=True)
    assert info["resumed_from_epoch"] == 1 and info["epochs_run"] == 3
    assert len(histories["train_loss"]) == 3
    assert "epoch_0002.pt" in caplog.text and "trying the checkpoint before it" in caplog.text


def test_resume_refuses_a_malicious_checkpoint(tiny_config: TrainConfig, tiny_data: PreparedData, tmp_path: Path) -> None:
    folder = Path(tiny_config.checkpoint_dir or "")
    fit(tiny_config.replace(max_epochs=1), tiny_data)
    marker = tmp_path / "pwned"
    write_malicious_checkpoint(folder / "epoch_0002.pt", marker)
    with pytest.raises(checkpoints.UnsafeCheckpointError, match="epoch_0002.pt"):
        fit(tiny_config.replace(max_epochs=3), tiny_data, resume=True)
    assert not marker.exists()


def test_the_python_api_writes_no_checkpoints_by_default(
    tiny_data: PreparedData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(hidden_size=8, batch_size=256, max_epochs=1, num_threads=1)
    assert config.checkpoint_dir is None and config.save_checkpoints
    fit(config, tiny_data)
    assert not list(tmp_path.iterdir())


# --- a Tune trial's restore ------------------------------------------------------------------


@pytest.fixture
def trial_dir(tiny_config: TrainConfig, tiny_data: PreparedData, tmp_path: Path) -> Path:
    """A trial folder as Tune keeps it: two checkpoint folders (epochs 1 and 2) with state.pt."""
    trial = tmp_path / "trial_0001"
    run = TrainingRun(tiny_config.replace(max_epochs=2, checkpoint_dir=None), tiny_data)
    for index in range(2):
        run.run_epoch()
        checkpoints.save(trial / f"checkpoint_{index:06d}" / checkpoints.RUN_STATE_FILE, checkpoints.RUN, run.state_dict())
    return trial


def _restore(trial: Path, config: TrainConfig, data: PreparedData) -> TrainingRun:
    from ray import tune

    from tuning.trainable import restore_run

    newest = tune.Checkpoint.from_directory(str(trial / "checkpoint_000001"))
    return restore_run(config.replace(max_epochs=2, checkpoint_dir=None), data, newest)


def test_trial_restores_from_its_newest_checkpoint(trial_dir: Path, tiny_config: TrainConfig, tiny_data: PreparedData) -> None:
    assert _restore(trial_dir, tiny_config, tiny_data).epoch == 2


def test_trial_checkpoints_on_the_sweeps_filesystem_are_read_where_they_lie(
    trial_dir: Path, tiny_config: TrainConfig, tiny_data: PreparedData
) -> None:
    """A sweep on local storage hands Tune tuning.tune_storage's filesystem; reading needs no copy to /tmp."""
    import pyarrow.fs as pafs
    from ray import tune

    from tuning.storage import Experiment
    from tuning.trainable import kept_checkpoints, restore_run
    from tuning.tune_storage import tune_filesystem

    newest = tune.Checkpoint(str(trial_dir / "checkpoint_000001"), filesystem=tune_filesystem(Experiment.at(trial_dir, "x")))
    kept = kept_checkpoints(newest)
    assert [Path(c.path).name for c in kept] == ["checkpoint_000001", "checkpoint_000000"]
    assert all(isinstance(c.filesystem, pafs.LocalFileSystem) for c in kept)
    assert restore_run(tiny_config.replace(max_epochs=2, checkpoint_dir=None), tiny_data, newest).epoch == 2


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_a_corrupt_trial_checkpoint_falls_back_to_the_one_before(
    trial_dir: Path, tiny_config: TrainConfig, tiny_data: PreparedData, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    newest = trial_dir / "checkpoint_000001" / checkpoints.RUN_STATE_FILE
    _truncate(newest) if damage == "truncated" else newest.unlink()
    with caplog.at_level(logging.WARNING, logger="tuning"):
        run = _restore(trial_dir, tiny_config, tiny_data)
    assert run.epoch == 1 and run.histories["train_loss"] and len(run.histories["train_loss"]) == 1
    assert "checkpoint_000001" in caplog.text and "older checkpoint" in caplog.text


def test_a_trial_with_no_readable_checkpoint_starts_again(
    trial_dir: Path, tiny_config: TrainConfig, tiny_data: PreparedData, caplog: pytest.LogCaptureFixture
) -> None:
    _truncate(trial_dir / "checkpoint_000001" / checkpoints.RUN_STATE_FILE)
    shutil.rmtree(trial_dir / "checkpoint_000000")
    with caplog.at_level(logging.WARNING, logger="tuning"):
        run = _restore(trial_dir, tiny_config, tiny_data)
    assert run.epoch == 0 and not run.histories
    assert "restarting it from scratch" in caplog.text


def test_a_malicious_trial_checkpoint_is_refused_and_never_runs(
    trial_dir: Path, tiny_config: TrainConfig, tiny_data: PreparedData, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    write_malicious_checkpoint(trial_dir / "checkpoint_000001" / checkpoints.RUN_STATE_FILE, marker)
    with pytest.raises(checkpoints.UnsafeCheckpointError, match="refusing checkpoint"):
        _restore(trial_dir, tiny_config, tiny_data)
    assert not marker.exists()
