"""Bad input, one table: every row is refused with ONE line on stderr and exit status 2.

Each row runs a real command line (``tuning.train``, ``tuning.search``, ``tuning.export``,
``tuning.analyze``): in-process through ``main(argv)`` where that is enough, as
``python -m tuning.X`` in a subprocess where a hang must be caught (a FIFO) or the real
entry point shown. No row starts Ray: they all fail before it would. The table holds
the cases issue 8 found (tracebacks and hangs before it) beside cases that were
already clean, so a regression in either shows up here.
"""

from __future__ import annotations

import json
import os
import pickle
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_csv

from tuning import analyze, export, search, train
from tuning.search import SweepSettings
from tuning.sources import synthetic_traffic
from tuning.spaces import SPACES_DIR
from tuning.storage import SWEEP_FILE, Experiment

pytestmark = pytest.mark.usefixtures("restore_tuning_logger")
REPO = Path(__file__).resolve().parents[1]
MAINS: dict[str, Callable[[list[str]], int]] = {
    "train": train.main, "search": search.main, "export": export.main, "analyze": analyze.main,
}  # fmt: skip
SWEEP = "sweep1"  # the experiment every sweep row reads, in {storage}


@dataclass(frozen=True)
class Case:
    """One bad input: the command, its flags (``{name}`` fills from the ``inputs`` files) and what the line must say."""

    id: str
    command: str
    argv: tuple[str, ...]
    expect: str
    damage: Callable[[Path], None] | None = None  # spoils the experiment folder first
    subprocess: bool = False
    new: bool = True  # a traceback, hang or wrong answer before issue 8; False: already clean


# --- ways to spoil a sweep folder -------------------------------------------------------------


def _sweep_json(text: str) -> Callable[[Path], None]:
    def damage(exp: Path) -> None:
        (exp / SWEEP_FILE).write_text(text)

    return damage


def _set(key: str, value: object) -> Callable[[Path], None]:
    def damage(exp: Path) -> None:
        doc = json.loads((exp / SWEEP_FILE).read_text())
        (exp / SWEEP_FILE).write_text(json.dumps({**doc, key: value}))

    return damage


def _truncate(pattern: str) -> Callable[[Path], None]:
    def damage(exp: Path) -> None:
        (path,) = exp.glob(pattern)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])  # a copy or a write cut short

    return damage


def _lose_tuner_pkl(exp: Path) -> None:
    """A sweep whose trials reported, without its tuner.pkl (deleted, or not copied along): a resume started it over."""
    (exp / "tuner.pkl").unlink()
    trial = exp / "train_trial_0a1b2c3d_1_2026-01-01_00-00-00"
    trial.mkdir()
    (trial / "result.json").write_text(json.dumps({"trial_id": "0a1b2c3d", "epoch": 1, "val_mae": 1.5}) + "\n")


TRAIN_OUT = ("--output", "{out}")
STORE = ("--storage-path", "{storage}")
RESUME = ("--resume", "--name", SWEEP, *STORE)
NAMED = ("--name", SWEEP, *STORE)

CASES = [
    # --- configs and training flags ---
    Case("lr-1e300-config", "train", ("--config", "{lr_config}", *TRAIN_OUT), "learning_rate must be > 0 and <= 10, got 1e+300"),
    Case("device-cudaX-config", "train", ("--config", "{device_config}", *TRAIN_OUT), "device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    Case("device-cudaX-flag", "train", ("--device", "cudaX", *TRAIN_OUT), "device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    Case("device-cuda:-1-flag", "train", ("--device", "cuda:-1", *TRAIN_OUT), "got 'cuda:-1'"),
    Case("seed-2^40-config", "train", ("--config", "{seed_config}", *TRAIN_OUT), "seed must be >= 0 and <= 4294967295"),
    Case("seed-2^40-flag-train", "train", ("--seed", str(2**40), *TRAIN_OUT), "--seed: must be <= 4294967295"),
    Case("seed-2^40-flag-search", "search", ("--smoke-test", "--seed", str(2**40), *STORE), "--seed: must be <= 4294967295"),
    Case("unknown-config-key", "train", ("--config", "{lr_alias_config}", *TRAIN_OUT), "unknown config key 'lr'", new=False),
    Case("max-epochs-0", "train", ("--max-epochs", "0", *TRAIN_OUT), "--max-epochs: must be >= 1", new=False),
    Case("len-source-0", "train", ("--len-source", "0", *TRAIN_OUT), "--len-source: must be >= 1", new=False),
    # --- experiment names ---
    Case("time-budget-soon", "search", ("--smoke-test", "--time-budget", "soon", *STORE),
         "--time-budget: must be seconds or a duration such as 90s, 15m or 1.5h, got 'soon'", new=False),
    Case("space-time-budget-negative", "search", ("--space", "{space_time}", *STORE),
         "budget.time_budget_s must be a number of seconds > 0, got -5", new=False),
    Case("name-300-chars", "search", ("--smoke-test", "--name", "a" * 300, *STORE), "experiment name is 300 characters long"),
    Case("name-starts-with-dash", "search", ("--smoke-test", "--name=-x", *STORE), "experiment name '-x' must"),
    Case("name-starts-with-dash-subprocess", "search", ("--smoke-test", "--name=-x", *STORE), "experiment name '-x'", subprocess=True),
    Case("name-is-a-path", "search", ("--smoke-test", "--name", "../escape", *STORE), "experiment name '../escape'", new=False),
    Case("existing-experiment", "search", ("--smoke-test", *NAMED), "exists; continue it with --resume", new=False),
    Case("resume-unknown-sweep", "search", ("--resume", "--name", "never-ran", *STORE), "no sweep named 'never-ran'", new=False),
    Case("export-unknown-sweep", "export", ("--name", "never-ran", *STORE), "no sweep named 'never-ran'", new=False),
    # --- a damaged sweep folder ---
    *(
        Case(f"sweep-json-corrupt-{cmd}", cmd, args, "sweep.json is corrupt", damage=_sweep_json('{"space_file": "/x", "da'))
        for cmd, args in (("export", NAMED), ("analyze", NAMED), ("search", RESUME))
    ),
    *(
        Case(f"sweep-json-unknown-key-{cmd}", cmd, args, "sweep.json holds unknown setting(s) ['bogus']", damage=_set("bogus", 1))
        for cmd, args in (("export", NAMED), ("analyze", NAMED), ("search", RESUME))
    ),
    Case("sweep-json-not-an-object", "export", NAMED, "must hold a JSON object of sweep settings, got list", damage=_sweep_json("[]")),
    Case("sweep-json-wrong-type", "search", RESUME, "setting 'num_samples' must be int, got 'x'", damage=_set("num_samples", "x")),
    Case("tuner-pkl-truncated", "search", RESUME, "tuner.pkl is truncated or corrupt", damage=_truncate("tuner.pkl")),
    Case("tuner-pkl-missing-after-trials", "search", RESUME, "tuner.pkl is missing, so Tune cannot resume this sweep",
         damage=_lose_tuner_pkl),  # fmt: skip
    *(
        Case(f"experiment-state-truncated-{cmd}", cmd, args, "is truncated or corrupt (JSONDecodeError",
             damage=_truncate("experiment_state-*.json"))  # fmt: skip
        for cmd, args in (("export", NAMED), ("analyze", NAMED), ("search", RESUME))
    ),
    # --- data files ---
    Case("fifo-data-train", "train", ("--data", "{fifo}", *TRAIN_OUT), "is not a regular file", subprocess=True),
    Case("fifo-data-search", "search", ("--smoke-test", "--data", "{fifo}", *STORE), "is not a regular file", subprocess=True),
    Case("npz-not-a-zip", "train", ("--data", "{not_zip_npz}", *TRAIN_OUT), "is not a .npz archive"),
    Case("off-grid-freq", "train", ("--data", "{csv}", "--freq", "7min", *TRAIN_OUT), "is not on the grid of 7min steps"),
    Case("columns-unknown", "train", ("--data", "{csv}", "--columns", "S000,nope", *TRAIN_OUT), "--columns names ['nope']"),
    Case("columns-and-exclude", "train", ("--data", "{csv}", "--columns", "S000", "--exclude-columns", "S001", *TRAIN_OUT),
         "not allowed with argument"),  # fmt: skip
    Case("columns-empty-name", "train", ("--data", "{csv}", "--columns", "S000,", *TRAIN_OUT), "--columns: must be column names"),
    Case("covariate-column", "train", ("--data", "{weather_csv}", *TRAIN_OUT), "or pick the sensor columns with --columns"),
    Case("long-table-two-value-columns", "train", ("--data", "{long_csv}", *TRAIN_OUT),
         "a long table (a row per 'timestamp' and sensor 'station') needs one column of readings, but has several "
         "value columns ['flow', 'speed']"),  # fmt: skip
    Case("report-days-without-year", "train", ("--data", "{no_year_report}", *TRAIN_OUT),
         "a time of day per row and a day per column, but the days have no year (Mon 03/04 ... Tue 03/05): write the "
         "year into the header"),  # fmt: skip
    Case("times-without-dates", "train", ("--data", "{times_csv}", *TRAIN_OUT),
         "timestamp column 'Time' holds times of day without dates (00:00 ...); add the date"),  # fmt: skip
    Case("data-pattern-matches-nothing", "train", ("--data", "{missing}_day_*.csv", *TRAIN_OUT), "no file matches", new=False),
    Case("missing-data-file", "train", ("--data", "{missing}", *TRAIN_OUT), "data file not found", new=False),
    Case("data-is-a-directory", "train", ("--data", "{storage}", *TRAIN_OUT), "is a folder without data files", new=False),
    Case("unsupported-data-type", "train", ("--data", "{space_lr}", *TRAIN_OUT), "unsupported file type '.yaml'", new=False),
    Case("config-as-data", "train", ("--data", "{lr_config}", *TRAIN_OUT),
         "an object of settings (learning_rate), not a table of readings; a training config goes to --config",
         new=False),  # fmt: skip
    # --- search spaces ---
    Case("space-hidden-size-1e9", "search", ("--space", "{space_hidden}", *STORE), "high=1e+09 is above the sane bound 4096 for hidden_size"),
    Case("space-learning-rate-1e300", "search", ("--space", "{space_lr}", *STORE), "learning_rate must be > 0 and <= 10, got 1e+300"),
    Case("space-fixed-layers-1000", "search", ("--space", "{space_layers}", *STORE), "value=1000 is above the sane bound 16 for num_layers"),
    Case("space-file-missing", "search", ("--space", "{missing}.yaml", *STORE), "search-space file not found", new=False),
    # --- storage and cluster (a hang before issue 8: each subprocess row fails if it runs past 90 s) ---
    Case("storage-s3-unreachable", "search", ("--smoke-test", "--storage-path", "s3://unreachable"), "s3://unreachable"),
    Case("storage-unknown-scheme", "search", ("--smoke-test", "--storage-path", "foo://bar"), "--storage-path foo://bar: Unrecognized"),
    Case("export-storage-s3-x", "export", ("--name", SWEEP, "--storage-path", "s3://x"), "s3://x", subprocess=True),
    Case("address-nobody-listens", "search", ("--smoke-test", "--data", "{csv}", "--address", "127.0.0.1:1", "--name", "a", *STORE),
         "cannot reach the Ray cluster at 127.0.0.1:1", subprocess=True),
]  # fmt: skip


def _write_space(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The files the rows name: tiny data, configs, spaces, a FIFO and a sweep folder to spoil."""
    root = tmp_path_factory.mktemp("inputs")
    series = synthetic_traffic(num_sensors=3, num_days=2)
    configs = root / "configs"
    configs.mkdir()
    for name, doc in {"lr": {"learning_rate": 1e300}, "device": {"device": "cudaX"}, "seed": {"seed": 2**40},
                      "lr_alias": {"lr": 0.01}}.items():  # fmt: skip
        (configs / f"{name}.json").write_text(json.dumps(doc))
    weather = pd.DataFrame({"timestamp": series.timestamps.strftime("%Y-%m-%d %H:%M"), "S000": series.values[:, 0]})
    weather["weather"] = np.where(np.arange(len(weather)) % 2, "rain", "sun")
    weather.to_csv(root / "weather.csv", index=False)
    long = weather[["timestamp"]].merge(pd.DataFrame({"station": [400001, 400017]}), how="cross")
    long.assign(flow=120.0, speed=61.5).to_csv(root / "long.csv", index=False)  # read wide, 'station' was a sensor
    (root / "bad.npz").write_text("not a zip archive: someone renamed a text file")
    hours = "".join(f"{h:02d}:00,{100 + h},{200 + h}\n" for h in range(24))  # a count report: its days say no year
    (root / "report.csv").write_text("Time,Mon 03/04,Tue 03/05\n" + hours)  # read wide: two "sensors", days of today
    (root / "times.csv").write_text(
        "Time,S1\n" + "".join(f"{h:02d}:{m:02d},{h + m}\n" for h in range(24) for m in (0, 30))
    )  # pandas dated the times today
    os.mkfifo(root / "fifo.csv")
    spaces = root / "spaces"
    spaces.mkdir()
    budget = "budget: {num_samples: 2, max_epochs: 1, grace_period: 1, reduction_factor: 2}\n"
    storage = root / "results"
    exp = storage / SWEEP
    (exp / "sweep").mkdir(parents=True)
    settings = SweepSettings(
        space_file=str(SPACES_DIR / "smoke.yaml"), data=None, len_source=10, len_target=5, zero_is_missing=False, freq=None,
        start=None, num_samples=2, max_epochs=1, grace_period=1, reduction_factor=2, cpus_per_trial=1, gpus_per_trial=0.0,
        max_concurrent=None, seed=0,
    )  # fmt: skip
    (exp / SWEEP_FILE).write_text(json.dumps(asdict(settings)))
    (exp / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps({"trial_data": [], "runner_data": {}}))
    (exp / "tuner.pkl").write_bytes(pickle.dumps({"_param_space": {"lr": list(range(200))}, "name": SWEEP}))
    return {
        "csv": str(write_csv(series, root / "tiny.csv")),
        "weather_csv": str(root / "weather.csv"),
        "long_csv": str(root / "long.csv"),
        "not_zip_npz": str(root / "bad.npz"),
        "no_year_report": str(root / "report.csv"),
        "times_csv": str(root / "times.csv"),
        "fifo": str(root / "fifo.csv"),
        "missing": str(root / "nope"),
        "config_dir": str(configs),
        **{f"{name}_config": str(configs / f"{name}.json") for name in ("lr", "device", "seed", "lr_alias")},
        "space_hidden": _write_space(spaces / "hidden.yaml",
                                     "parameters:\n  hidden_size: {distribution: int, low: 16, high: 1000000000}\n" + budget),
        "space_lr": _write_space(spaces / "lr.yaml",
                                 "parameters:\n  learning_rate: {distribution: loguniform, low: 1.0e-4, high: 1.0e+300}\n" + budget),
        "space_layers": _write_space(spaces / "layers.yaml", "parameters:\n  learning_rate: {distribution: loguniform, "
                                     "low: 1.0e-4, high: 1.0e-2}\nfixed: {num_layers: 1000}\n" + budget),
        "space_time": _write_space(spaces / "time.yaml", "parameters:\n  learning_rate: {distribution: loguniform, "
                                   "low: 1.0e-4, high: 1.0e-2}\nbudget: {num_samples: 2, max_epochs: 1, grace_period: 1, time_budget_s: -5}\n"),
        "storage": str(storage),
    }  # fmt: skip


def _run(case: Case, argv: list[str], cwd: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    if case.subprocess:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        try:
            proc = subprocess.run(
                [sys.executable, "-m", f"tuning.{case.command}", *argv],
                cwd=cwd, env=env, capture_output=True, text=True, timeout=90,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            pytest.fail(f"python -m tuning.{case.command} {shlex.join(argv)} hung")
        return proc.returncode, proc.stderr
    try:
        rc = MAINS[case.command](argv)
    except SystemExit as e:  # argparse's own errors
        rc = int(e.code or 0)
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_exit_2(
    case: Case, inputs: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = dict(inputs)
    if case.damage is not None:
        storage = tmp_path / "results"
        shutil.copytree(inputs["storage"], storage)
        case.damage(storage / SWEEP)
        values["storage"] = str(storage)
    values["out"] = str(tmp_path / "out")
    argv = [arg.format(**values) for arg in case.argv]
    before = sorted(p.relative_to(values["storage"]) for p in Path(values["storage"]).rglob("*"))

    rc, err = _run(case, argv, tmp_path, capsys)

    lines = err.strip().splitlines()
    assert rc == 2, err[-3000:]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"python -m tuning.{case.command}: error: ")
    assert case.expect in lines[0]
    # Refused before anything was written: no experiment, no run folder.
    assert sorted(p.relative_to(values["storage"]) for p in Path(values["storage"]).rglob("*")) == before
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_the_table_counts() -> None:
    """The README's reliability section quotes these numbers."""
    assert len(CASES) == len({c.id for c in CASES})
    assert (sum(c.new for c in CASES), sum(not c.new for c in CASES)) == (41, 15)


# --- what used to fail and must now work ------------------------------------------------------


def test_printed_resume_command_parses_back(tmp_path: Path) -> None:
    """The command printed after Ctrl-C gives the same name and storage to a shell and to argparse."""
    exp = Experiment.at(tmp_path / "my results; rm -rf x", "x-1.v2")
    argv = shlex.split(search._resume_command(exp))
    assert argv[:3] == ["python", "-m", "tuning.search"]
    args = search.build_parser().parse_args(argv[3:])
    assert (args.name, args.storage_path, args.resume) == (exp.name, exp.storage_path, True)


@pytest.fixture
def fortran_values() -> np.ndarray:
    """What ``DataFrame.to_numpy()`` returns for a frame of float columns: a Fortran-ordered array."""
    series = synthetic_traffic(num_sensors=3, num_days=2)
    values = pd.DataFrame(series.values, columns=list(series.sensor_ids)).to_numpy()
    assert values.flags.f_contiguous and not values.flags.c_contiguous
    return values


def test_fortran_order_array_trains_in_the_python_api(fortran_values: np.ndarray, tmp_path: Path) -> None:
    from tuning import train_model

    config = {"hidden_size": 8, "batch_size": 256, "max_epochs": 1, "num_threads": 1, "checkpoint_dir": str(tmp_path / "c")}
    model, histories, info = train_model(config, fortran_values)
    assert info["epochs_run"] == 1 and np.isfinite(histories["train_loss"][0])
    # the same numbers as the C-ordered copy gives
    _, again, _ = train_model({**config, "checkpoint_dir": str(tmp_path / "d")}, np.ascontiguousarray(fortran_values))
    assert again["train_loss"] == histories["train_loss"]


def test_fortran_order_npz_trains_on_the_command_line(fortran_values: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "fortran.npz"
    np.savez(path, data=fortran_values)  # np.save keeps the Fortran order in the file
    assert np.load(path)["data"].flags.f_contiguous
    out = tmp_path / "run"
    argv = ["--data", str(path), "--max-epochs", "1", "--output", str(out), "--quiet", "--config", str(_fast_config(tmp_path))]
    assert train.main(argv) == 0
    assert torch.load(out / "model.pt", weights_only=False)["sensor_ids"] == ["S000", "S001", "S002"]


def _fast_config(folder: Path) -> Path:
    path = folder / "fast.json"
    path.write_text(json.dumps({"hidden_size": 8, "batch_size": 256, "num_threads": 1}))
    return path


def test_columns_flags_pick_the_sensors_train_sees(inputs: dict[str, str], tmp_path: Path) -> None:
    config = str(_fast_config(tmp_path))
    common = ["--data", inputs["weather_csv"], "--max-epochs", "1", "--quiet", "--config", config]
    assert train.main([*common, "--columns", "S000", "--output", str(tmp_path / "a")]) == 0
    assert train.main([*common, "--exclude-columns", "weather", "--output", str(tmp_path / "b")]) == 0
    for run in ("a", "b"):
        assert torch.load(tmp_path / run / "model.pt", weights_only=False)["sensor_ids"] == ["S000"]
    # --resume reads the file with the run's own choice of columns (else 'weather' would be refused)
    assert train.main(["--output", str(tmp_path / "a"), "--resume", "--max-epochs", "2", "--quiet"]) == 0
    assert json.loads((tmp_path / "a" / "info.json").read_text())["resumed_from_epoch"] == 1
