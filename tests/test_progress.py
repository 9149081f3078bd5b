"""``tuning.train``'s progress: the batch hook, the ETA lines, the bar, and Ctrl-C's resume command."""

from __future__ import annotations

import io
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_for_line, write_csv
from support import ctrl_c_works

from tuning.config import TrainConfig
from tuning.data import PreparedData
from tuning.engine import fit
from tuning.progress import EpochProgress, format_duration
from tuning.sources import TrafficSeries

ROOT = Path(__file__).resolve().parents[1]


def test_the_batch_hook_counts_every_batch_of_every_epoch(tiny_data: PreparedData, tiny_config: TrainConfig) -> None:
    seen: list[tuple[int, int, int]] = []
    fit(tiny_config.replace(max_epochs=2, save_checkpoints=False), tiny_data, on_batch=lambda *a: seen.append(a))
    batches = -(-len(tiny_data.train) // tiny_config.batch_size)
    assert seen == [(e, b, batches) for e in (1, 2) for b in range(1, batches + 1)]


def test_without_a_terminal_one_eta_line_per_epoch(
    tiny_data: PreparedData, tiny_config: TrainConfig, caplog: pytest.LogCaptureFixture
) -> None:
    stream = io.StringIO()
    config = tiny_config.replace(max_epochs=3, save_checkpoints=False)
    with caplog.at_level(logging.INFO, logger="tuning"), EpochProgress(3, stream=stream) as progress:
        fit(config, tiny_data, report=progress.epoch_done, on_batch=progress.batch_done)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress:")]
    assert len(lines) == 3
    assert re.fullmatch(
        r"progress: epoch 1/3, [\d.]+ s per epoch, ETA \S+ for 2 more \(early stopping may end sooner\)", lines[0]
    )
    assert lines[-1].endswith("done")
    assert stream.getvalue() == ""  # no bar off a terminal


def test_on_a_terminal_a_bar_moves_through_the_epochs(tiny_data: PreparedData, tiny_config: TrainConfig) -> None:
    stream = io.StringIO()
    with EpochProgress(2, stream=stream, bar=True) as progress:
        fit(tiny_config.replace(max_epochs=2, save_checkpoints=False), tiny_data,
            report=progress.epoch_done, on_batch=progress.batch_done)  # fmt: skip
        assert progress._bar.n == pytest.approx(2.0)
    text = stream.getvalue()
    assert "epoch 1/2" in text and "epoch 2/2" in text
    assert "2.0/2 epochs" in text and "100%" in text


def test_format_duration() -> None:
    assert format_duration(59.6) == "01:00"
    assert format_duration(3725) == "1:02:05"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_prints_the_command_that_resumes(tiny_series: TrafficSeries, tmp_path: Path) -> None:
    data = write_csv(tiny_series, tmp_path / "tiny.csv")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    argv = ["--data", str(data), "--output", str(tmp_path / "out"), "--max-epochs", "500", "--seed", "3"]
    proc = subprocess.Popen([sys.executable, "-m", "tuning.train", *argv], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env, cwd=tmp_path, preexec_fn=ctrl_c_works)  # fmt: skip
    # the progress line comes after the epoch's checkpoint is written
    wait_for_line(proc, r"progress: epoch 1/500", 300, stream="stderr")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    found = re.search(r"interrupted; resume with:\n  (.+)\n", err)
    assert found, err
    command = shlex.split(found.group(1))
    assert command[:3] == ["python", "-m", "tuning.train"] and command[-1] == "--resume"
    assert command[3:-1] == argv
    # The printed command works (with an epoch cap, so the test stays short).
    resumed = subprocess.run([sys.executable, *command[1:], "--max-epochs", "2"], capture_output=True,
                             text=True, env=env, cwd=tmp_path, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stderr
    assert (tmp_path / "out" / "model.pt").is_file()
