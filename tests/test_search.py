"""End-to-end sweeps on a real local Ray, real Optuna and real training on tiny data."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from conftest import write_csv
from support import child_env, run, search_cmd

from tuning import analyze, export, search, train
from tuning.analysis import CURVE_COLUMNS, TRIAL_COLUMNS, load_curves, load_sweep
from tuning.config import DEFAULTS, TrainConfig
from tuning.engine import CHECKPOINT_FILE, TrainingRun, load_checkpoint
from tuning.faults import FAULT_ENV, TRIAL_ERROR_ENV, snapshot
from tuning.metrics import METRIC
from tuning.sources import synthetic_traffic
from tuning.storage import DISK_FULL_FAULT_ENV, Experiment
from tuning.sweep_eta import expected_epochs
from tuning.trainable import REPORTED_METRICS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SPACE = """
parameters:
  learning_rate: {distribution: loguniform, low: 1.0e-4, high: 1.0e-2}
  batch_size:    {distribution: choice, values: [256, 1024]}
  dropout_rate:  {distribution: uniform, low: 0.0, high: 0.5}
fixed:
  hidden_size: 8
budget: {num_samples: 6, max_epochs: 4, grace_period: 1, reduction_factor: 2}
"""
NUM_SAMPLES, MAX_EPOCHS = 6, 4


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    series = synthetic_traffic(num_sensors=4, num_days=7, seed=3)
    values = series.values.copy()
    for start in (40, 700, 1500):  # S001 fails three times, as speed detectors do: straight to 0
        values[start : start + 12, 1] = 0.0
    return write_csv(dataclasses.replace(series, values=values), tmp_path_factory.mktemp("data") / "tiny.csv")


@pytest.fixture(scope="module")
def space_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spaces") / "tiny.yaml"
    path.write_text(SPACE)
    return path


@pytest.fixture(scope="module")
def sweep(ray_cluster: str, tiny_csv: Path, space_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One finished sweep, shared by the tests that read its results."""
    storage = tmp_path_factory.mktemp("results")
    argv = [
        "--space",
        str(space_file),
        "--data",
        str(tiny_csv),
        "--storage-path",
        str(storage),
        "--name",
        "e2e",
        "--max-concurrent",
        "1",
        "--exclude-columns",
        "S003",
    ]
    lines = _LogLines()
    logging.getLogger("tuning").addHandler(lines)
    try:
        rc = search.main(argv)
    finally:
        logging.getLogger("tuning").removeHandler(lines)
    return {"rc": rc, "exp": storage / "e2e", "storage": storage, "log": lines.messages}


class _LogLines(logging.Handler):
    """The sweep's log messages, as its user reads them on stderr."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_sweep_runs_end_to_end(sweep: dict[str, Any]) -> None:
    assert sweep["rc"] == 0
    trials = load_sweep(sweep["exp"])
    assert len(trials) == NUM_SAMPLES
    assert trials["finished"].all()
    assert (trials["status"] == "TERMINATED").all()
    assert trials["best_val_mae"].map(math.isfinite).all()


def test_the_sweep_says_once_how_long_it_may_take(sweep: dict[str, Any]) -> None:
    (line,) = [m for m in sweep["log"] if m.startswith("sweep: an epoch takes ~")]
    epochs = expected_epochs(NUM_SAMPLES, grace_period=1, reduction_factor=2, max_epochs=MAX_EPOCHS)
    assert f"with 1 trial at once, its {NUM_SAMPLES} trials may take up to about " in line
    assert f"(~{epochs:.0f} epochs as ASHA stops weak trials" in line


def test_first_trial_is_the_documented_defaults(sweep: dict[str, Any]) -> None:
    trials = load_sweep(sweep["exp"]).set_index("trial_index").sort_index()
    first = trials.loc[1]
    defaults = TrainConfig()
    for name in ("learning_rate", "batch_size", "dropout_rate"):
        assert first[name] == getattr(defaults, name)
    assert first["is_default"]
    assert trials["is_default"].sum() == 1


def test_asha_stops_some_trials_early(sweep: dict[str, Any]) -> None:
    trials = load_sweep(sweep["exp"])
    stopped = trials[trials["stopped_by_asha"]]
    assert len(stopped) >= 1
    assert (stopped["epochs_run"] < MAX_EPOCHS).all()
    assert (trials["epochs_run"] == MAX_EPOCHS).any()
    assert not trials["diverged"].any()


def test_every_epoch_reports_metrics_and_a_checkpoint(sweep: dict[str, Any]) -> None:
    trials = load_sweep(sweep["exp"])
    for logdir in trials["logdir"]:
        rows = [json.loads(line) for line in (Path(logdir) / "result.json").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
        for row in rows:
            assert set(REPORTED_METRICS) <= set(row)
            assert row["checkpoint_dir_name"].startswith("checkpoint_")
        checkpoints = sorted(Path(logdir).glob("checkpoint_*"))
        # CheckpointConfig(num_to_keep=2) keeps the 2 best by METRIC, and Tune never deletes the latest
        assert 1 <= len(checkpoints) <= 3
        # the checkpoint restores a run exactly where the trial stood
        state = load_checkpoint(checkpoints[-1] / CHECKPOINT_FILE)
        assert state["epoch"] in [r["epoch"] for r in rows]


def test_tune_standard_files_are_kept(sweep: dict[str, Any]) -> None:
    from ray.tune import ExperimentAnalysis

    trials = load_sweep(sweep["exp"])
    for logdir in map(Path, trials["logdir"]):
        assert (logdir / "progress.csv").is_file()
        assert list(logdir.glob("events.out.tfevents*")), "TensorBoard events"
    analysis = ExperimentAnalysis(str(sweep["exp"]), default_metric=METRIC, default_mode="min")
    assert len(analysis.trials) == NUM_SAMPLES
    best = analysis.get_best_trial(scope="all")
    assert best is not None and best.trial_id == trials.iloc[0]["trial_id"]


def test_best_config_exports_and_retrains(
    sweep: dict[str, Any], tiny_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sweep["exp"] / "best_config.json"
    doc = json.loads(path.read_text())
    trials = load_sweep(sweep["exp"])
    best = trials.iloc[0]
    assert doc["trial_id"] == best["trial_id"]
    assert doc["metrics"]["best_val_mae"] == pytest.approx(best["best_val_mae"])
    assert Path(doc["checkpoint"]).is_dir()
    config = TrainConfig.from_file(path)
    assert config.learning_rate == best["learning_rate"] and config.batch_size == best["batch_size"]
    assert config.hidden_size == 8  # fixed fields travel along
    # ...but not the sweep's rung budget: the exported config trains a final model to convergence
    assert (config.max_epochs, config.early_stop_patience) == (DEFAULTS.max_epochs, DEFAULTS.early_stop_patience)
    assert doc["final_budget"] == {"max_epochs": DEFAULTS.max_epochs, "early_stop_patience": DEFAULTS.early_stop_patience}
    assert doc["sweep_budget"]["max_epochs"] == MAX_EPOCHS
    assert doc["defaults_metrics"] is not None

    # the standalone command writes the same file again
    path.unlink()
    assert export.main(["--name", "e2e", "--storage-path", str(sweep["storage"])]) == 0
    assert json.loads(path.read_text())["trial_id"] == doc["trial_id"]

    assert json.loads(path.read_text())["data_options"]["data"] == str(tiny_csv)
    # --exclude-columns travels from the sweep (sweep.json) through the export to the retrain
    assert json.loads((sweep["exp"] / "sweep" / "sweep.json").read_text())["exclude_columns"] == ["S003"]
    assert json.loads(path.read_text())["data_options"]["exclude_columns"] == ["S003"]
    # so does the reading of S001's outage zeros as missing, decided when the sweep read its data
    assert json.loads((sweep["exp"] / "sweep" / "sweep.json").read_text())["zero_is_missing"] is True
    assert json.loads(path.read_text())["data_options"]["zero_is_missing"] is True
    out = tmp_path / "retrain"
    # no --data: the export remembers the sweep's data
    rc = train.main(["--config", str(path), "--max-epochs", "1", "--output", str(out), "--quiet"])
    assert rc == 0
    assert json.loads((out / "info.json").read_text())["data"] == tiny_csv.name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"model", "copy_last"}
    assert json.loads((out / "info.json").read_text())["config"]["learning_rate"] == config.learning_rate
    assert torch.load(out / "model.pt", weights_only=False)["sensor_ids"] == ["S000", "S001", "S002"]
    assert json.loads((out / "run.json").read_text())["data"]["zero_is_missing"] is True


def test_best_trial_checkpoint_resumes_a_run(sweep: dict[str, Any], tiny_csv: Path) -> None:
    from tuning.data import prepare_data
    from tuning.sources import load_series

    doc = json.loads((sweep["exp"] / "best_config.json").read_text())
    config = TrainConfig.from_dict({**doc["config"], "num_threads": 1, "save_checkpoints": False})
    series = load_series(tiny_csv, exclude_columns=["S003"])  # as the sweep saw it
    run = TrainingRun(config, prepare_data(series, config.len_source, config.len_target))
    run.load_state_dict(load_checkpoint(Path(doc["checkpoint"]) / CHECKPOINT_FILE))
    assert run.epoch >= 1
    assert run.early_stopping.best == pytest.approx(doc["metrics"]["best_val_mae"])


def test_load_sweep_and_load_curves_columns(sweep: dict[str, Any]) -> None:
    trials = load_sweep(sweep["exp"])
    assert set(TRIAL_COLUMNS) <= set(trials.columns)
    assert {"learning_rate", "batch_size", "dropout_rate"} <= set(trials.columns)
    assert trials["best_val_mae"].is_monotonic_increasing
    curves = load_curves(sweep["exp"])
    assert list(curves.columns) == CURVE_COLUMNS
    assert len(curves) == trials["epochs_run"].sum()
    per_trial = curves.groupby("trial_id")[METRIC].min()
    for _, row in trials.iterrows():
        assert per_trial[row["trial_id"]] == pytest.approx(row["best_val_mae"])


def test_analyze_writes_tables_and_plots(sweep: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert analyze.main(["--name", "e2e", "--storage-path", str(sweep["storage"])]) == 0
    out = capsys.readouterr().out
    for name in analyze.OUTPUTS:
        assert (sweep["exp"] / name).stat().st_size > 0
    assert "top" in out
    assert len(pd.read_parquet(sweep["exp"] / "trials.parquet")) == NUM_SAMPLES
    assert list(pd.read_parquet(sweep["exp"] / "curves.parquet").columns) == CURVE_COLUMNS
    assert len(pd.read_csv(sweep["exp"] / "trials.csv")) == NUM_SAMPLES


def _files(folder: Path) -> dict[Path, int]:
    """Each file's modification time, but the lock a refused process held for a moment."""
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and p.name != "lock.json"}


def test_a_finished_sweep_without_tuner_pkl_is_not_run_again(
    sweep: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: --resume took it for a sweep killed before its first snapshot and ran every trial again."""
    shutil.copytree(sweep["exp"], tmp_path / "e2e")
    (tmp_path / "e2e" / "tuner.pkl").unlink()
    before = _files(tmp_path / "e2e")
    assert search.main(["--resume", "--name", "e2e", "--storage-path", str(tmp_path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"{tmp_path}/e2e/tuner.pkl is missing, so Tune cannot resume this sweep, whose trials have results" in line
    assert f"--warm-start {tmp_path}/e2e --name NEW" in line
    assert _files(tmp_path / "e2e") == before  # nothing ran, nothing removed
    assert export.main(["--name", "e2e", "--storage-path", str(tmp_path)]) == 0  # the results still read


def test_only_a_sweep_without_trial_results_may_start_over(tmp_path: Path) -> None:
    """What _restorable asks before it starts a sweep over that has no tuner.pkl."""
    exp = Experiment.at(tmp_path, "s")
    (tmp_path / "s" / "sweep").mkdir(parents=True)
    assert not search.has_trial_results(exp)  # killed before Tune wrote anything
    trial = tmp_path / "s" / "train_trial_1"
    trial.mkdir()
    (trial / "result.json").write_text("")
    assert not search.has_trial_results(exp)  # a trial started, reported nothing
    (trial / "result.json").write_text('{"epoch": 1}\n')
    assert search.has_trial_results(exp)
    (trial / "result.json").unlink()
    (tmp_path / "s" / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trial_data": [], "runner_data": {}}')
    assert not search.has_trial_results(exp)  # a snapshot of no trials
    (tmp_path / "s" / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trial_data": [["{}", "{}"]]')
    assert search.has_trial_results(exp)  # torn: written for trials


def test_diverging_trial_is_marked_and_the_sweep_finishes(ray_cluster: str, tiny_csv: Path, tmp_path: Path) -> None:
    space = tmp_path / "diverge.yaml"
    # AdamW's decoupled decay multiplies each weight by (1 - learning_rate * weight_decay) per
    # step: by -3 and worse at these rates, so ~80 steps of batch 64 overflow the weights.
    space.write_text(
        "parameters:\n  learning_rate: {distribution: choice, values: [0.001, 4.0, 6.0, 8.0, 10.0]}\n"
        "fixed: {hidden_size: 8, gradient_clip: 0, weight_decay: 1.0, batch_size: 64}\n"
        "budget: {num_samples: 4, max_epochs: 2, grace_period: 1, reduction_factor: 2}\n"
    )
    argv = [
        "--space",
        str(space),
        "--data",
        str(tiny_csv),
        "--storage-path",
        str(tmp_path),
        "--name",
        "div",
        "--max-concurrent",
        "1",
    ]
    assert search.main(argv) == 0
    trials = load_sweep(tmp_path / "div")
    assert len(trials) == 4 and trials["finished"].all()
    diverged = trials[trials["diverged"]]
    assert len(diverged) >= 1
    assert (diverged["best_val_mae"] == math.inf).all()
    assert (diverged["learning_rate"] > 1).all()
    best = json.loads((tmp_path / "div" / "best_config.json").read_text())
    assert best["trial_id"] not in set(diverged["trial_id"])


def _search_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tuning.search", *args]


def _raw_epochs(logdir: Path) -> list[int]:
    path = logdir / "result.json"
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines()] if path.is_file() else []


def _killed_sweep(ray_cluster: str, tiny_csv: Path, space_file: Path, tmp_path: Path) -> dict[str, Any]:
    """A sweep SIGKILLed (like kill -9) with 2 trials done and one checkpointed mid-flight.

    Returns what it left: the resume command and environment, the mid-flight trials
    with the epoch of their registered checkpoint, and the finished trials' epochs.
    """
    # Snapshot at every step, so the kill point is seen however fast the trials run.
    env = {**os.environ, FAULT_ENV: "2", "PYTHONUNBUFFERED": "1", "TUNE_GLOBAL_CHECKPOINT_S": "0"}
    common = ["--storage-path", str(tmp_path), "--name", "killed", "--address", ray_cluster]
    first = subprocess.run(
        _search_cmd("--space", str(space_file), "--data", str(tiny_csv), "--max-concurrent", "2", *common),
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert first.returncode == -9, first.stderr[-2000:]  # SIGKILL, like kill -9
    exp = tmp_path / "killed"
    state = snapshot(str(exp))
    mid_flight = {t: s.checkpoint_epoch for t, s in state.items() if s.status == "RUNNING" and s.checkpointed}
    assert mid_flight, "the kill comes while a checkpointed trial runs"
    before = load_sweep(exp)
    done_before = before[before["finished"]]
    assert 2 <= len(done_before) < NUM_SAMPLES
    epochs_before = {t: _raw_epochs(Path(d)) for t, d in zip(done_before["trial_id"], done_before["logdir"])}
    env.pop(FAULT_ENV)
    resume = _search_cmd(*common, "--resume")
    return {"exp": exp, "env": env, "resume": resume, "mid_flight": mid_flight, "epochs_before": epochs_before}


def _assert_resumed(killed: dict[str, Any]) -> None:
    """Every trial finished; none that had finished ran again; mid-flight ones continued from their checkpoint."""
    exp = killed["exp"]
    after = load_sweep(exp).set_index("trial_id")
    assert len(after) == NUM_SAMPLES
    assert after["finished"].all()
    for trial_id, epochs in killed["epochs_before"].items():
        assert _raw_epochs(Path(after.loc[trial_id, "logdir"])) == epochs, f"finished trial {trial_id} ran again"
    for trial_id, checkpoint_epoch in killed["mid_flight"].items():
        epochs = _raw_epochs(Path(after.loc[trial_id, "logdir"]))
        # Continued from its registered checkpoint: the epochs up to it were not trained again.
        # (Epochs reported after it may be, which costs time, not results.)
        assert [e for e in epochs if e <= checkpoint_epoch] == list(range(1, checkpoint_epoch + 1))
        assert max(epochs) > checkpoint_epoch or checkpoint_epoch == MAX_EPOCHS or after.loc[trial_id, "stopped_by_asha"]
    assert (exp / "best_config.json").is_file()


def test_killed_sweep_resumes_without_rerunning_finished_trials(
    ray_cluster: str, tiny_csv: Path, space_file: Path, tmp_path: Path
) -> None:
    killed = _killed_sweep(ray_cluster, tiny_csv, space_file, tmp_path)
    second = subprocess.run(killed["resume"], env=killed["env"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "was torn" not in second.stderr
    _assert_resumed(killed)
    # The resumed run says how long the trials it has left may take, with the restored callback.
    left = NUM_SAMPLES - len(killed["epochs_before"])
    assert f"the rest of the sweep ({left} of {NUM_SAMPLES} trials) may take up to about" in second.stderr, second.stderr[-2000:]


def test_killed_sweep_with_a_torn_snapshot_resumes_from_its_complete_copy(
    ray_cluster: str, tiny_csv: Path, space_file: Path, tmp_path: Path
) -> None:
    """A kill during Tune's non-atomic write of its snapshot, done on purpose: the newest is cut short."""
    killed = _killed_sweep(ray_cluster, tiny_csv, space_file, tmp_path)
    newest = max(killed["exp"].glob("experiment_state-*.json"))
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    assert snapshot(str(killed["exp"])) == {}  # unreadable as it is
    second = subprocess.run(killed["resume"], env=killed["env"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    torn_lines = [line for line in second.stderr.splitlines() if "was torn" in line]
    assert len(torn_lines) == 1 and newest.name in torn_lines[0], second.stderr[-2000:]
    _assert_resumed(killed)


def test_trials_larger_than_the_cluster_are_refused(
    ray_cluster: str, tiny_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tune would keep such trials PENDING forever; the sweep refuses them up front."""
    argv = ["--smoke-test", "--data", str(tiny_csv), "--storage-path", str(tmp_path), "--name", "big"]
    assert search.main([*argv, "--cpus-per-trial", "64"]) == 2
    assert "--cpus-per-trial 64 is more than the 2 CPUs" in capsys.readouterr().err
    assert search.main([*argv, "--gpus-per-trial", "1"]) == 2
    assert "--gpus-per-trial 1 is more than the 0 GPUs" in capsys.readouterr().err
    assert search.main([*argv, "--gpus-per-trial", "1.5"]) == 2
    assert "a fraction of one GPU (e.g. 0.25) or whole GPUs" in capsys.readouterr().err
    assert not (tmp_path / "big").exists()


def test_a_trial_given_no_gpu_sees_none(ray_cluster: str) -> None:
    """Ray 2.60 leaves a GPU machine's CUDA_VISIBLE_DEVICES to a worker given no GPU; the trial hides it.

    Without it, device "auto" put every trial of --gpus-per-trial 0 on the GPU, unknown to
    Ray (seen on an H200: 8 trial processes on it). The task sees the variable a GPU
    machine's worker inherits, as this machine has no GPU to give one.
    """
    import ray

    from tuning.trainable import hide_gpus_unless_given

    @ray.remote(num_cpus=1, num_gpus=0)
    def visible_after() -> str | None:
        before = os.environ.get("CUDA_VISIBLE_DEVICES")
        os.environ["CUDA_VISIBLE_DEVICES"] = "0"
        try:
            hide_gpus_unless_given()
            return os.environ.get("CUDA_VISIBLE_DEVICES")
        finally:
            if before is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = before

    assert ray.get(visible_after.remote()) == ""


# --- errored trials -------------------------------------------------------------------------------


def _errored_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if " errored: " in line]


def _sweep_with_faulty_trials(tiny_csv: Path, tmp: Path, samples: int) -> subprocess.CompletedProcess[str]:
    """A sweep in a child process with its own Ray, whose workers see ``TUNING_FAULT_TRIAL_ERROR=defaults``:
    the defaults' trial (the first) reports epoch 1, then raises, and again on its retry."""
    space = tmp / "space.yaml"
    space.write_text(SPACE)
    env = child_env("errored-trials", tmp, **{TRIAL_ERROR_ENV: "defaults"})
    argv = ["--space", str(space), "--data", str(tiny_csv), "--storage-path", str(tmp / "results"), "--name", "faulty",
            "--num-samples", str(samples), "--max-epochs", "2", "--max-concurrent", "1"]  # fmt: skip
    return run(search_cmd(*argv), env, tmp)


def test_an_errored_trial_is_named_and_its_metrics_stay_out_of_the_export(tiny_csv: Path, short_tmp: Path) -> None:
    """Exit 1 naming the errored trial and why; the summary and export come from the others."""
    done = _sweep_with_faulty_trials(tiny_csv, short_tmp, samples=3)
    assert done.returncode == 1, done.stderr[-3000:]
    exp = short_tmp / "results" / "faulty"
    trials = load_sweep(exp)
    errored = trials[trials["status"] == "ERROR"]
    assert len(trials) == 3 and list(errored["is_default"]) == [True]
    (defaults_id,) = errored["trial_id"]
    assert math.isfinite(errored["best_val_mae"].iloc[0])  # it did report metrics before it failed
    assert (trials.loc[~trials["is_default"], "status"] == "TERMINATED").all()
    # stderr, after the rest of the summary: which trial, and why (the last line of Tune's error file)
    lines = _errored_lines(done.stderr)
    assert lines == [
        f"trial {defaults_id} errored: tuning.faults.InjectedTrialError: injected fault: the defaults' trial fails after "
        f"epoch 1 ({TRIAL_ERROR_ENV}=defaults) ({errored['logdir'].iloc[0]}/error.txt)"
    ], done.stderr[-3000:]
    assert "1 of 3 trials errored; the best config comes from the 2 others" in done.stderr
    assert done.stderr.splitlines()[-1].endswith(f"--name faulty --storage-path {short_tmp / 'results'} --resume")
    # the rest of the summary and the export are there, from the trials that finished
    assert f"the defaults' trial {defaults_id} errored, so its metrics are left out" in done.stdout
    assert "best trial" in done.stdout and "next:" in done.stdout
    doc = json.loads((exp / "best_config.json").read_text())
    assert doc["trial_id"] != defaults_id
    assert doc["defaults_metrics"] is None
    assert doc["defaults_errored"]["trial_id"] == defaults_id
    assert "InjectedTrialError" in doc["defaults_errored"]["error"]


def test_help_gives_the_exit_statuses() -> None:
    text = search.build_parser().format_help()
    assert (
        "exit status:\n  0    every trial finished, or the time budget ended the sweep after some had reported\n  1    trials errored: each is named on stderr"
        in text
    )
    assert "  2    bad input or a full disk" in text and "  130  interrupted" in text


def test_a_sweep_whose_trials_all_errored_exits_1_and_exports_nothing(tiny_csv: Path, short_tmp: Path) -> None:
    """Its one trial reported a finite value before it errored: still no best config from it."""
    done = _sweep_with_faulty_trials(tiny_csv, short_tmp, samples=1)
    assert done.returncode == 1, done.stderr[-3000:]
    exp = short_tmp / "results" / "faulty"
    trials = load_sweep(exp)
    assert len(trials) == 1 and (trials["status"] == "ERROR").all() and math.isfinite(trials["best_val_mae"].iloc[0])
    (line,) = _errored_lines(done.stderr)
    assert line.startswith(f"trial {trials['trial_id'].iloc[0]} errored: tuning.faults.InjectedTrialError: "), line
    assert "every trial of sweep faulty errored (1 of 1): no best config" in done.stderr
    assert not any(line.startswith("best trial") for line in done.stdout.splitlines())  # no summary of ours
    assert not (exp / "best_config.json").exists()


# --- a full disk --------------------------------------------------------------------------------


def test_a_full_disk_mid_sweep_is_one_line_and_the_printed_resume_finishes(
    ray_cluster: str, tiny_csv: Path, space_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """ENOSPC injected into the driver's 14th write of the scheduler state: a trial's start, each report and its end
    each write it, so trial 1 ended at least two trial starts earlier. (At the 8th, trial 2's first report, trial 1
    had sometimes ended within Tune's 2 s between experiment snapshots, and the snapshot still had it running.)"""
    argv = ["--space", str(space_file), "--data", str(tiny_csv), "--storage-path", str(tmp_path), "--name", "full",
            "--max-concurrent", "1"]  # fmt: skip
    monkeypatch.setenv(DISK_FULL_FAULT_ENV, "asha_state.json@14")
    assert search.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    exp = tmp_path / "full"
    resume = f"python -m tuning.search --name full --storage-path {tmp_path} --resume"
    assert err[-1] == (
        f"python -m tuning.search: error: disk full while writing {exp}/sweep/asha_state.json: free space on that disk, "
        f"then resume with: {resume}"
    ), err[-5:]
    before = load_sweep(exp)
    done = before[before["status"] == "TERMINATED"]
    assert 1 <= len(done) < NUM_SAMPLES
    epochs = {t: _raw_epochs(Path(d)) for t, d in zip(done["trial_id"], done["logdir"])}
    monkeypatch.delenv(DISK_FULL_FAULT_ENV)
    assert search.main(shlex.split(resume)[3:]) == 0
    after = load_sweep(exp).set_index("trial_id")
    assert len(after) == NUM_SAMPLES and (after["status"] == "TERMINATED").all()
    for trial_id, ran in epochs.items():
        assert _raw_epochs(Path(after.loc[trial_id, "logdir"])) == ran, f"finished trial {trial_id} ran again"
    assert (exp / "best_config.json").is_file()


def test_trials_that_fill_the_disk_stop_the_sweep_in_one_line_and_resume(
    tiny_csv: Path, space_file: Path, short_tmp: Path
) -> None:
    """ENOSPC injected into the first trial's own checkpoint writes (from the 2nd of each of its processes on,
    so its retry fails too): it errors, and the sweep reports a full disk, not an errored trial; the resume
    retries it from its checkpoint."""
    # The first trial's working folder is train_trial_<id>_1_batch_size=...: its checkpoints are staged there.
    env = child_env("trial-disk-full", short_tmp, **{DISK_FULL_FAULT_ENV: "_1_batch_size=@2"})
    store = short_tmp / "results"
    argv = ["--space", str(space_file), "--data", str(tiny_csv), "--storage-path", str(store), "--name", "full",
            "--max-concurrent", "1", "--num-samples", "3"]  # fmt: skip
    first = run(search_cmd(*argv), env, short_tmp)
    assert first.returncode == 2, first.stderr[-3000:]
    line = first.stderr.strip().splitlines()[-1]
    assert line.startswith("python -m tuning.search: error: disk full while writing "), first.stderr[-3000:]
    assert (
        f"/state.pt: free space on that disk, then resume with: python -m tuning.search --name full --storage-path {store} --resume"
        in line
    )
    before = load_sweep(store / "full")
    assert list(before.loc[before["status"] == "ERROR", "is_default"]) == [True]  # the first trial: the defaults
    done = before[before["status"] == "TERMINATED"]
    assert len(done) == 2
    epochs = {t: _raw_epochs(Path(d)) for t, d in zip(done["trial_id"], done["logdir"])}
    env.pop(DISK_FULL_FAULT_ENV)
    second = run(search_cmd(*shlex.split(line.split("resume with: ", 1)[1])[3:]), env, short_tmp)
    assert second.returncode == 0, second.stderr[-3000:]
    after = load_sweep(store / "full").set_index("trial_id")
    assert len(after) == 3 and (after["status"] == "TERMINATED").all()
    for trial_id, ran in epochs.items():
        assert _raw_epochs(Path(after.loc[trial_id, "logdir"])) == ran, f"finished trial {trial_id} ran again"


SWEEP_ON_A_FULL_DISK = """
mount -t tmpfs -o size=512k tmpfs "$MNT" || exit 97
"$PY" -m tuning.search --space "$SPACE" --data "$CSV" --storage-path "$MNT" --name full --max-concurrent 1 --num-samples 3 \
    2> "$OUT/first.err"
echo $? > "$OUT/first.rc"
cp -r "$MNT/full" "$OUT/before"
mount -o remount,size=64m "$MNT"   # space freed
"$PY" -m tuning.search --name full --storage-path "$MNT" --resume 2> "$OUT/second.err"
echo $? > "$OUT/second.rc"
cp -r "$MNT/full" "$OUT/after"
"""


def test_a_sweep_on_a_real_full_disk_stops_in_one_line_and_resumes(tiny_csv: Path, space_file: Path, short_tmp: Path) -> None:
    """Storage on a 512 KiB tmpfs (a user and mount namespace of its own, no root needed) that a sweep of
    about 1.5 MB fills wherever it happens to: Tune's copies, a trial's checkpoint, our scheduler state."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("no user namespaces here (or no unshare), so no private tmpfs")
    (short_tmp / "mnt").mkdir()
    env = child_env("full-disk", short_tmp, MNT=str(short_tmp / "mnt"), OUT=str(short_tmp), PY=sys.executable,
                    SPACE=str(space_file), CSV=str(tiny_csv))  # fmt: skip
    done = subprocess.run(["unshare", "-rm", "sh", "-c", SWEEP_ON_A_FULL_DISK], env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    if done.returncode == 97:
        pytest.skip(f"no tmpfs mount in a user namespace here: {done.stderr.strip()}")
    first = (short_tmp / "first.err").read_text().strip().splitlines()
    assert (short_tmp / "first.rc").read_text().strip() == "2", first[-20:]
    assert first[-1].startswith("python -m tuning.search: error: disk full while writing "), first[-20:]
    assert first[-1].endswith(f"then resume with: python -m tuning.search --name full --storage-path {short_tmp}/mnt --resume")
    assert (short_tmp / "second.rc").read_text().strip() == "0", (short_tmp / "second.err").read_text()[-3000:]
    before, after = load_sweep(short_tmp / "before"), load_sweep(short_tmp / "after").set_index("trial_id")
    assert (after["status"] == "TERMINATED").sum() == 3
    assert (short_tmp / "after" / "best_config.json").is_file()
    done_before = before[before["status"] == "TERMINATED"]
    for trial_id, logdir in zip(done_before["trial_id"], done_before["logdir"]):
        assert after.loc[trial_id, "status"] == "TERMINATED"  # kept, not run again
        assert _raw_epochs(Path(logdir)) == _raw_epochs(short_tmp / "after" / Path(logdir).name)
