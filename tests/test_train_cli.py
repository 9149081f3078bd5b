"""Tests for ``python -m tuning.train``: outputs, resume, and one-line user errors."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from conftest import write_csv, write_malicious_checkpoint

from tuning.data import min_steps
from tuning.errors import DataError
from tuning.forecast import load_model
from tuning.sources import synthetic_traffic
from tuning.storage import DISK_FULL_FAULT_ENV
from tuning.train import main

pytestmark = pytest.mark.usefixtures("restore_tuning_logger")
REPO = Path(__file__).resolve().parents[1]
LEN_TARGET = 5
METRIC_LAYOUT = {"mae", "rmse", "mape", "per_horizon"}


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 sensors x 600 five-minute steps with a timestamp column (and a few gaps)."""
    return write_csv(synthetic_traffic(num_sensors=3, num_days=3), tmp_path_factory.mktemp("data") / "counts.csv", steps=600)


@pytest.fixture(scope="module")
def fast_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "fast.json"
    path.write_text(json.dumps({"hidden_size": 8, "batch_size": 256, "num_threads": 1, "max_epochs": 50}))
    return path


def _run(argv: Sequence[str]) -> int:
    """main() returns its status; argparse errors leave through SystemExit."""
    try:
        return main(list(argv))
    except SystemExit as e:
        return int(e.code or 0)


def _train(data_csv: Path, fast_config: Path, output: Path, *extra: str) -> int:
    args = ["--data", str(data_csv), "--config", str(fast_config), "--output", str(output), "--max-epochs", "2", *extra]
    return _run(args)


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("python -m tuning.train: error: ")
    return lines[0]


# --- outputs -------------------------------------------------------------------------------


def test_train_writes_model_history_and_metrics(
    data_csv: Path, fast_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert _train(data_csv, fast_config, out) == 0
    stdout = capsys.readouterr().out
    assert "best epoch" in stdout and "copy_last_mae" in stdout and "wrote" in stdout

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"model", "copy_last"}
    for who in ("model", "copy_last"):
        assert set(metrics[who]) == METRIC_LAYOUT
        assert set(metrics[who]["per_horizon"]) == {"mae", "rmse", "mape"}
        for name in ("mae", "rmse", "mape"):
            assert isinstance(metrics[who][name], float)
            assert len(metrics[who]["per_horizon"][name]) == LEN_TARGET

    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    for column in ("train_loss", "val_loss", "learning_rate", "val_mae", "grad_norm"):
        assert column in history.columns

    saved = torch.load(out / "model.pt", weights_only=True)  # tensors and plain values only
    assert saved["config"]["hidden_size"] == 8  # from --config
    assert saved["config"]["max_epochs"] == 2  # the flag beats the file
    assert saved["input_size"] == 5  # value + 4 time features from the timestamp column
    assert saved["sensor_ids"] == ["S000", "S001", "S002"]
    assert len(saved["scaler_mean"]) == 3

    info = json.loads((out / "info.json").read_text())
    assert info["epochs_run"] == 2
    assert info["config"]["checkpoint_dir"] == str(out.resolve() / "checkpoints")
    assert (out / "checkpoints" / "best.pt").is_file()


def test_same_seed_gives_the_same_metrics(data_csv: Path, fast_config: Path, tmp_path: Path) -> None:
    assert _train(data_csv, fast_config, tmp_path / "a", "--seed", "3") == 0
    assert _train(data_csv, fast_config, tmp_path / "b", "--seed", "3") == 0
    assert _train(data_csv, fast_config, tmp_path / "c", "--seed", "4") == 0
    a, b, c = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in "abc")
    assert a == b
    assert a["model"] != c["model"]
    assert a["copy_last"] == c["copy_last"]  # the baseline does not depend on the seed


def test_resume_continues_the_run(data_csv: Path, fast_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--data", str(data_csv), "--config", str(fast_config), "--output", str(out)]
    assert _run([*args, "--max-epochs", "1"]) == 0
    assert _run([*args, "--max-epochs", "2", "--resume"]) == 0
    assert list(pd.read_csv(out / "history.csv")["epoch"]) == [1, 2]
    info = json.loads((out / "info.json").read_text())
    assert info["resumed_from_epoch"] == 1 and info["epochs_run"] == 2


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_earlier_run_is_refused_without_resume_or_overwrite(
    data_csv: Path, fast_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert _train(data_csv, fast_config, out) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert _train(data_csv, fast_config, out, "--seed", "7") == 2
    line = _one_line_error(capsys)
    assert "holds a previous run" in line and "--resume" in line and "--overwrite" in line
    assert _snapshot(out) == before
    assert _train(data_csv, fast_config, out, "--resume", "--overwrite") == 2
    assert "pass one of them" in _one_line_error(capsys)


def test_overwrite_keeps_the_old_run_until_the_new_one_checkpoints(
    data_csv: Path, fast_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["--data", str(data_csv), "--config", str(fast_config), "--output", str(out)]
    assert _run([*args, "--max-epochs", "3"]) == 0
    before = _snapshot(out)
    # A replacement that diverges in its first epoch (AdamW's decay multiplies the weights by -9
    # per step) leaves the old run whole.
    diverging = tmp_path / "diverging.json"
    settings = {"learning_rate": 10.0, "weight_decay": 1.0, "gradient_clip": 0, "batch_size": 64}
    diverging.write_text(json.dumps({**json.loads(fast_config.read_text()), **settings}))
    capsys.readouterr()
    assert _run(["--data", str(data_csv), "--config", str(diverging), "--output", str(out), "--overwrite", "--quiet"]) == 2
    assert "loss became" in _one_line_error(capsys)
    assert _snapshot(out) == before
    # One that gets going replaces it, checkpoints and outputs alike.
    assert _run([*args, "--max-epochs", "1", "--seed", "7", "--overwrite"]) == 0
    assert sorted(p.name for p in (out / "checkpoints").glob("*.pt")) == ["best.pt", "epoch_0001.pt"]
    assert json.loads((out / "run.json").read_text())["config"]["seed"] == 7
    assert list(pd.read_csv(out / "history.csv")["epoch"]) == [1]
    # --resume now continues the seed-7 run, not the older one
    assert _run(["--output", str(out), "--max-epochs", "2", "--resume"]) == 0
    info = json.loads((out / "info.json").read_text())
    assert info["resumed_from_epoch"] == 1 and info["config"]["seed"] == 7


def test_resume_continues_with_the_runs_data_flags_and_budget(data_csv: Path, fast_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--config", str(fast_config), "--output", str(out), "--len-source", "6", "--len-target", "3"]
    assert _run(["--data", str(data_csv), *args, "--max-epochs", "3", "--zero-is-missing", "--freq", "5min"]) == 0
    run_record = json.loads((out / "run.json").read_text())
    assert run_record["data"] == {"path": str(data_csv), "zero_is_missing": True, "freq": "5min", "start": None,
                                  "columns": None, "exclude_columns": None}  # fmt: skip
    assert run_record["config"]["max_epochs"] == 3 and run_record["fingerprint"]["steps"] == 600
    # As if killed during epoch 3: its checkpoint never made it.
    (out / "checkpoints" / "epoch_0003.pt").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)  # a resume may start anywhere; the run's paths are absolute
    try:
        assert _run(["--output", str(out), "--resume"]) == 0
    finally:
        os.chdir(REPO)
    info = json.loads((out / "info.json").read_text())
    assert info["data"] == data_csv.name
    assert info["resumed_from_epoch"] == 2 and info["epochs_run"] == 3
    assert (info["config"]["len_source"], info["config"]["len_target"], info["config"]["hidden_size"]) == (6, 3, 8)
    # a flag given on resume overrides the saved budget
    assert _run(["--output", str(out), "--resume", "--max-epochs", "4"]) == 0
    assert json.loads((out / "info.json").read_text())["epochs_run"] == 4
    assert json.loads((out / "run.json").read_text())["config"]["max_epochs"] == 4


def test_outage_zeros_are_read_as_missing_and_the_model_reads_new_data_so(
    fast_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    series = synthetic_traffic(num_sensors=3, num_days=3)
    values = series.values.copy()
    for start in (40, 300, 450):  # S001 fails three times, straight from its usual speed to 0
        values[start : start + 12, 1] = 0.0
    data = write_csv(dataclasses.replace(series, values=values), tmp_path / "speeds.csv", steps=600)
    base = ["--data", str(data), "--config", str(fast_config), "--max-epochs", "1", "--quiet"]
    for flags, decided in (([], True), (["--zeros-are-readings"], False), (["--zero-is-missing"], True)):
        out = tmp_path / f"run{len(flags)}{decided}"
        assert _run([*base, *flags, "--output", str(out)]) == 0
        assert json.loads((out / "run.json").read_text())["data"]["zero_is_missing"] is decided  # a resume reads them so
        assert load_model(out).zero_is_missing is decided  # and so do forecasts from new data
    capsys.readouterr()
    assert _run([*base, "--zero-is-missing", "--zeros-are-readings", "--output", str(tmp_path / "both")]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("edit", "expected", "expected_with_override"),
    [
        (lambda frame: frame.assign(S001=frame["S001"] + 1.0), "values hash", None),
        (lambda frame: frame.head(500), "shape 600x3 -> 500x3", None),
        (lambda frame: frame.rename(columns={"S002": "X"}), "values hash", "sensor columns differ from the ones the checkpoint"),
    ],
    ids=["values", "rows", "sensor-ids"],
)
def test_resume_refuses_changed_data(
    data_csv: Path,
    fast_config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit: Any,
    expected: str,
    expected_with_override: str | None,
) -> None:
    data = tmp_path / "counts.csv"
    shutil.copy(data_csv, data)
    out = tmp_path / "run"
    assert _train(data, fast_config, out, "--max-epochs", "1") == 0
    edit(pd.read_csv(data)).to_csv(data, index=False)
    before = _snapshot(out)
    capsys.readouterr()
    assert _run(["--output", str(out), "--resume", "--max-epochs", "2"]) == 2
    line = _one_line_error(capsys)
    assert f"{data}: the data changed since {out / 'run.json'} was written" in line
    assert expected in line and "--allow-data-change" in line
    assert _snapshot(out) == before
    if expected_with_override:
        # The sensor embedding has a learned row per sensor: other sensors are refused even so.
        assert _run(["--output", str(out), "--resume", "--max-epochs", "2", "--allow-data-change"]) == 2
        assert expected_with_override in capsys.readouterr().err.strip().splitlines()[-1]
        assert _snapshot(out) == before
        return
    assert _run(["--output", str(out), "--resume", "--max-epochs", "2", "--allow-data-change"]) == 0
    assert json.loads((out / "info.json").read_text())["epochs_run"] == 2


def test_resume_refuses_a_malicious_checkpoint(
    data_csv: Path, fast_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert _train(data_csv, fast_config, out, "--max-epochs", "1") == 0
    marker = tmp_path / "pwned"
    write_malicious_checkpoint(out / "checkpoints" / "epoch_0002.pt", marker)
    capsys.readouterr()
    assert _run(["--output", str(out), "--resume", "--max-epochs", "3", "--quiet"]) == 2
    line = _one_line_error(capsys)
    assert "refusing checkpoint" in line and "epoch_0002.pt" in line
    assert not marker.exists()


def test_unwritable_output_is_refused_before_training(
    data_csv: Path, fast_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert _run(["--data", str(data_csv), "--config", str(fast_config), "--output", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert "cannot create --output" in err and len(err.strip().splitlines()) == 1


def test_binary_config_file_is_refused(data_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "binary.json"
    path.write_bytes(bytes(range(256)) * 4)
    assert _run(["--data", str(data_csv), "--config", str(path), "--output", str(tmp_path / "o")]) == 2
    assert "cannot read config file" in capsys.readouterr().err


def test_window_flags_reach_the_config(data_csv: Path, fast_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _train(data_csv, fast_config, out, "--len-source", "6", "--len-target", "3", "--max-epochs", "1") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["model"]["per_horizon"]["mae"]) == 3
    assert json.loads((out / "info.json").read_text())["config"]["len_source"] == 6


# --- user errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--max-epochs", "0"], "--max-epochs"),
        (["--max-epochs", "ten"], "must be a whole number"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--len-source"], "expected one argument"),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run([*argv, "--output", str(tmp_path)]) == 2
    assert expected in _one_line_error(capsys)


def test_missing_data_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.csv"
    assert _run(["--data", str(missing), "--output", str(tmp_path / "out")]) == 2
    line = _one_line_error(capsys)
    assert "data file not found" in line and str(missing) in line
    assert not (tmp_path / "out" / "metrics.json").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"lr": 0.01}, "unknown config key 'lr'"),
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"learning_rate": "fast"}, "learning_rate must be float, got 'fast'"),
    ],
)
def test_bad_config_file(
    data_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: dict, expected: str
) -> None:
    config = tmp_path / "bad.json"
    config.write_text(json.dumps(content))
    assert _run(["--data", str(data_csv), "--config", str(config), "--output", str(tmp_path / "out")]) == 2
    line = _one_line_error(capsys)
    assert expected in line and str(config) in line


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["--config", str(tmp_path / "absent.yaml"), "--output", str(tmp_path)]) == 2
    assert "config file not found" in _one_line_error(capsys)


def test_bad_window_flag_value(data_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["--data", str(data_csv), "--len-source", "0", "--output", str(tmp_path)]) == 2
    assert "--len-source: must be >= 1, got 0" in _one_line_error(capsys)


def test_too_short_series(data_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = tmp_path / "short.csv"
    pd.read_csv(data_csv).head(20).to_csv(short, index=False)
    assert _run(["--data", str(short), "--output", str(tmp_path / "out")]) == 2
    line = _one_line_error(capsys)
    assert "20 time steps are too short" in line
    assert f"at least {min_steps(10, 5)} steps" in line


def test_debug_shows_the_exception(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data file not found"):
        main(["--data", str(tmp_path / "nope.csv"), "--output", str(tmp_path), "--debug"])


# --- the module entry point ----------------------------------------------------------------


def test_module_entry_point_runs(data_csv: Path, fast_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "tuning.train", "--max-epochs", "1", "--data", str(data_csv), "--config", str(fast_config)]
    proc = subprocess.run(
        [*cmd, "--output", str(out), "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "copy_last_mae" in proc.stdout
    assert set(json.loads((out / "metrics.json").read_text())) == {"model", "copy_last"}
    assert list(pd.read_csv(out / "history.csv")["epoch"]) == [1]


UCI = REPO.parent / "shared" / "data" / "uci_metro_interstate" / "Metro_Interstate_Traffic_Volume.csv"


@pytest.mark.skipif(not UCI.is_file(), reason=f"sample data not found at {UCI}")
def test_real_uci_file_trains_with_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file with covariates and gaps trains as is: --columns picks the sensor, the gaps are masked."""
    out, config = tmp_path / "uci", tmp_path / "big_batches.json"
    config.write_text(json.dumps({"hidden_size": 8, "batch_size": 4096, "num_threads": 1}))  # 52,551 steps
    argv = ["--data", str(UCI), "--columns", "traffic_volume", "--config", str(config), "--output", str(out)]
    assert _run([*argv, "--max-epochs", "1"]) == 0
    err = capsys.readouterr().err
    assert "2588 gaps in the timestamps" in err and "7629 rows repeat an earlier timestamp" in err
    info = json.loads((out / "info.json").read_text())
    assert info["data"] == UCI.name and info["epochs_run"] == 1
    assert torch.load(out / "model.pt", weights_only=False)["sensor_ids"] == ["traffic_volume"]


# --- a full disk --------------------------------------------------------------------------------


def test_a_full_disk_is_one_line_and_the_printed_resume_finishes(
    data_csv: Path, fast_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC injected at the second epoch's checkpoint (``TUNING_FAULT_ENOSPC``; a real one: the next test)."""
    out = tmp_path / "run"
    monkeypatch.setenv(DISK_FULL_FAULT_ENV, "epoch_0002.pt")
    assert _train(data_csv, fast_config, out, "--max-epochs", "3", "--quiet") == 2
    line = _one_line_error(capsys)
    assert f"disk full while writing {out}/checkpoints/epoch_0002.pt: free space on that disk, then resume with: " in line
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.pt", "epoch_0001.pt"]  # no temporary file left
    monkeypatch.delenv(DISK_FULL_FAULT_ENV)
    resume = shlex.split(line.split("then resume with: ", 1)[1])
    assert resume[:3] == ["python", "-m", "tuning.train"] and resume[-1] == "--resume"
    assert _run(resume[3:]) == 0
    info = json.loads((out / "info.json").read_text())
    assert (info["resumed_from_epoch"], info["epochs_run"]) == (1, 3)


RESUME_ON_A_FULL_DISK = """
mount -t tmpfs -o size=256k tmpfs "$MNT" || exit 97
"$PY" -m tuning.train --data "$CSV" --config "$CFG" --output "$MNT/run" --max-epochs 3 --quiet 2> "$OUT/first.err"
echo $? > "$OUT/first.rc"
ls "$MNT/run/checkpoints" > "$OUT/kept.txt"
mount -o remount,size=8m "$MNT"   # space freed
"$PY" -m tuning.train --output "$MNT/run" --resume --quiet 2> "$OUT/second.err"
echo $? > "$OUT/second.rc"
cp "$MNT/run/info.json" "$OUT/"
"""


def test_a_real_full_disk_then_resume(data_csv: Path, fast_config: Path, tmp_path: Path) -> None:
    """A 256 KiB tmpfs, mounted in a user and mount namespace of its own (no root needed where the
    kernel allows unprivileged user namespaces): the second epoch's 135 kB checkpoint does not fit."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no user namespaces here, so no private tmpfs: {probe.stderr.strip()}")
    (tmp_path / "mnt").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "MNT": str(tmp_path / "mnt"), "OUT": str(tmp_path), "PY": sys.executable,
           "CSV": str(data_csv), "CFG": str(fast_config)}  # fmt: skip
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", RESUME_ON_A_FULL_DISK], env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode == 97:
        pytest.skip(f"no tmpfs mount in a user namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    first = (tmp_path / "first.err").read_text().strip().splitlines()
    assert (tmp_path / "first.rc").read_text().strip() == "2", first
    assert len(first) == 1 and first[0].startswith("python -m tuning.train: error: disk full while writing "), first
    assert "/run/checkpoints/epoch_0002.pt: free space on that disk, then resume with: " in first[0]
    assert (tmp_path / "kept.txt").read_text().split() == ["best.pt", "epoch_0001.pt"]
    assert (tmp_path / "second.rc").read_text().strip() == "0", (tmp_path / "second.err").read_text()
    info = json.loads((tmp_path / "info.json").read_text())
    assert (info["resumed_from_epoch"], info["epochs_run"]) == (1, 3)
