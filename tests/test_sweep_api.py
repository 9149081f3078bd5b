"""The sweep from Python (``run_sweep``/``resume_sweep``/``SweepResult``) and growing a finished sweep.

Real local Ray, real Optuna, real training on tiny data; the fast tests at the top
need no Ray.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from tuning import search, train
from tuning.config import TrainConfig
from tuning.data import prepare_data
from tuning.engine import Precision, evaluate
from tuning.ensemble import CANDIDATES, MeanEnsemble
from tuning.errors import UserError
from tuning.fingerprint import fingerprint
from tuning.forecast import load_model
from tuning.results import SweepResult
from tuning.sources import load_series, synthetic_traffic
from tuning.spaces import as_space, find_space, load_space
from tuning.storage import SWEEP_FILE, Experiment
from tuning.sweep_data import prepare, resolve_data, save_series
from tuning.sweep_settings import DATA_COPY, SPACE_COPY, SweepSettings

pytestmark = pytest.mark.usefixtures("restore_tuning_logger")

SPACE: dict[str, Any] = {
    "parameters": {
        "learning_rate": {"distribution": "loguniform", "low": 1e-4, "high": 1e-2},
        "dropout_rate": {"distribution": "uniform", "low": 0.0, "high": 0.5},
    },
    "fixed": {"hidden_size": 8, "batch_size": 256},
    "budget": {"num_samples": 4, "max_epochs": 2, "grace_period": 1, "reduction_factor": 2},
}


def _frame() -> pd.DataFrame:
    series = synthetic_traffic(num_sensors=3, num_days=4, seed=5)
    assert series.timestamps is not None
    return pd.DataFrame(series.values, index=series.timestamps, columns=list(series.sensor_ids))


# --- no Ray ---------------------------------------------------------------------------


def test_a_space_from_a_dict_or_an_object_matches_the_file(tmp_path: Path) -> None:
    from_file = load_space(find_space("default"))
    again = as_space(from_file.to_dict())
    assert again.parameters == from_file.parameters and again.fixed == from_file.fixed and again.budget == from_file.budget
    assert as_space(from_file).parameters == from_file.parameters
    (tmp_path / "s.yaml").write_text(from_file.to_yaml())
    assert load_space(tmp_path / "s.yaml").parameters == from_file.parameters
    with pytest.raises(
        UserError, match="search space \\(dict\\): parameter 'lr' is not a config field \\(did you mean 'learning_rate'"
    ):
        as_space({"parameters": {"lr": {"distribution": "uniform", "low": 0, "high": 1}}})


def test_data_from_memory_is_saved_so_that_it_reads_back_identical(tmp_path: Path) -> None:
    frame = _frame()
    frame.iloc[3, 1] = 0.0
    given = resolve_data(frame, zero_is_missing=True, exclude_columns=("S001",))
    assert given.path is None and given.origin == "pandas DataFrame" and given.series is not None
    assert given.series.sensor_ids == ("S000", "S002")
    exp = Experiment.at(tmp_path, "mem")
    path = save_series(given.series, exp)
    assert path == exp.file(DATA_COPY)
    again = load_series(path)
    assert fingerprint(again).sha256 == fingerprint(given.series).sha256
    assert again.sensor_ids == ("S000", "S002")
    np.testing.assert_array_equal(again.values, given.series.values)
    # the array and the series forms too (no timestamps: none saved)
    array = resolve_data(frame.to_numpy())
    assert array.origin == "numpy array (1152, 3)"
    assert (
        array.series is not None
        and fingerprint(load_series(save_series(array.series, exp) or "")).sha256 == fingerprint(array.series).sha256
    )


@pytest.mark.parametrize(
    ("data", "options", "message"),
    [
        (_frame(), {"freq": "5min"}, "freq and start apply to data files"),
        ([1, 2, 3], {}, "data must be a file path, a pandas DataFrame, a numpy array, a TrafficSeries or PreparedData, got list"),
        (prepare_data(synthetic_traffic(num_sensors=2, num_days=2)), {"zero_is_missing": True}, "data is already prepared"),
    ],
)
def test_data_a_sweep_cannot_take_is_refused(data: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        resolve_data(data, **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_samples": 0}, "--num-samples must be a whole number >= 1, got 0"),
        ({"reduction_factor": 1}, "--reduction-factor must be a whole number >= 2, got 1"),
        ({"cpus_per_trial": 1.5}, "--cpus-per-trial must be a whole number >= 1, got 1.5"),
        ({"seed": 2**40}, "--seed must be <= 4294967295"),
        ({"gpus_per_trial": -1}, "--gpus-per-trial must be a number >= 0, got -1"),
        ({"grace_period": 5, "max_epochs": 2}, "grace_period \\(5\\) must be <= max_epochs \\(2\\)"),
    ],
)
def test_settings_from_python_are_checked_like_the_flags(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        SweepSettings.create(as_space(SPACE), **options)


def test_run_sweep_refuses_an_existing_experiment_before_starting_ray(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(UserError, match="exists; continue it with --resume"):
        search.run_sweep(SPACE, _frame(), name="taken", storage_path=tmp_path)


def _write_settings(exp: Path, **changes: Any) -> None:
    settings = SweepSettings.create(as_space(SPACE)).replace(**changes)
    (exp / "sweep").mkdir(parents=True)
    (exp / SWEEP_FILE).write_text(json.dumps(settings.__dict__, default=list))


def test_a_sweep_on_prepared_data_resumes_from_python_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_settings(tmp_path / "prep", data_origin="PreparedData 'synthetic(seed=0)'")
    assert search.main(["--name", "prep", "--storage-path", str(tmp_path), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "sweep prep was started from Python with PreparedData 'synthetic(seed=0)', which was not saved" in err[0]
    assert "tuning.search.resume_sweep('prep'" in err[0]
    with pytest.raises(UserError, match="reads its data from synthetic"):
        _write_settings(tmp_path / "synth")
        search.resume_sweep("synth", storage_path=tmp_path, data=_frame())


# --- real sweeps -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_sweep(ray_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 4-trial sweep started from Python on a DataFrame with a dict space, then read back."""
    storage = tmp_path_factory.mktemp("api")
    result = search.run_sweep(SPACE, _frame(), name="api", storage_path=storage, max_concurrent=2, seed=1)
    return {"result": result, "storage": storage, "exp": storage / "api"}


@pytest.mark.slow
def test_run_sweep_returns_a_typed_result(api_sweep: dict[str, Any], tmp_path: Path) -> None:
    result: SweepResult = api_sweep["result"]
    assert isinstance(result, SweepResult) and result.complete
    assert result.path == str(api_sweep["exp"]) and result.name == "api"
    assert len(result.trials) == 4 and result.trials["finished"].all()
    best = result.trials.iloc[0]
    config = result.best_config
    assert isinstance(config, TrainConfig)
    assert config.learning_rate == best["learning_rate"] and config.dropout_rate == best["dropout_rate"]
    assert (config.hidden_size, config.batch_size) == (8, 256)  # the space's fixed fields
    assert result.best_result["trial_id"] == best["trial_id"]
    assert result.best_result["best_val_mae"] == pytest.approx(best["best_val_mae"])
    assert len(result.curves) == result.trials["epochs_run"].sum()
    assert result.best_config == TrainConfig.from_file(api_sweep["exp"] / "best_config.json")
    paths = result.plot(tmp_path / "plots")
    assert [p.name for p in paths] == ["learning_curves.png", "metric_vs_params.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)
    assert "best trial" in result.summary()
    loaded = SweepResult.load("api", api_sweep["storage"])
    pd.testing.assert_frame_equal(loaded.trials, result.trials)
    assert loaded.best_config == result.best_config


@pytest.mark.slow
def test_the_space_and_data_from_memory_are_kept_in_the_experiment(api_sweep: dict[str, Any]) -> None:
    exp = api_sweep["exp"]
    settings = SweepSettings.load(Experiment.at(api_sweep["storage"], "api"))
    assert settings.space_file == str(exp / SPACE_COPY)
    assert settings.load_space().parameters == as_space(SPACE).parameters
    assert (settings.data, settings.data_origin) == (str(exp / DATA_COPY), "pandas DataFrame")
    assert fingerprint(load_series(exp / DATA_COPY)).sha256 == fingerprint(resolve_data(_frame()).series).sha256  # type: ignore[arg-type]


def _results(exp: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in exp.glob("*/result.json")}


@pytest.mark.slow
def test_a_finished_sweep_grows_with_resume_and_more_samples(
    api_sweep: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Resumed from the command line (its DataFrame reads back from the saved copy) with --num-samples 6."""
    exp = api_sweep["exp"]
    before = _results(exp)
    assert len(before) == 4
    argv = ["--name", "api", "--storage-path", str(api_sweep["storage"]), "--resume", "--num-samples", "6", "--max-epochs", "9",
            "--zeros-are-readings"]  # fmt: skip
    assert search.main(argv) == 0
    err = capsys.readouterr().err
    assert "ignoring --max-epochs --zeros-are-readings" in err  # each ignored flag is named; --num-samples is not ignored
    assert "--num-samples" not in err.split("ignoring", 1)[1].splitlines()[0]
    after = _results(exp)
    assert len(after) == 6
    for trial, content in before.items():
        assert after[trial] == content, f"trial {trial} ran again"
    trials = SweepResult.load("api", api_sweep["storage"]).trials
    assert len(trials) == 6 and trials["finished"].all()
    assert sorted(trials["trial_index"]) == [1, 2, 3, 4, 5, 6]
    assert (trials["epochs_run"] <= 2).all()  # the saved max_epochs, not --max-epochs 9
    assert json.loads((exp / SWEEP_FILE).read_text())["num_samples"] == 6

    # fewer than it has: ignored, saying so
    assert search.main(["--name", "api", "--storage-path", str(api_sweep["storage"]), "--resume", "--num-samples", "3"]) == 0
    assert "--num-samples 3 is not more than the 6 trials of sweep api" in capsys.readouterr().err
    assert len(_results(exp)) == 6


@pytest.mark.slow
def test_a_sweep_on_prepared_data_resumes_with_the_data_given_again(
    ray_cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prepared = prepare_data(synthetic_traffic(num_sensors=2, num_days=3, seed=2), 8, 3)
    space = {**SPACE, "budget": {"num_samples": 1, "max_epochs": 1, "grace_period": 1, "reduction_factor": 2}}
    first = search.run_sweep(space, prepared, name="prep", storage_path=tmp_path)
    assert first.complete and len(first.trials) == 1
    assert (first.settings.len_source, first.settings.len_target) == (8, 3)  # the prepared data's windows
    assert first.settings.data_in_memory_only
    more = search.resume_sweep("prep", storage_path=tmp_path, data=prepared, num_samples=2)
    assert more.complete and len(more.trials) == 2
    # retraining the best config needs the data named: the embedded data set must not stand in for it
    argv = ["--config", str(tmp_path / "prep" / "best_config.json"), "--max-epochs", "1", "--output", str(tmp_path / "final")]
    assert train.main(argv) == 2
    assert (
        "the sweep ran on PreparedData 'synthetic(seed=2)', which it could not save; pass that data with --data"
        in capsys.readouterr().err
    )


@pytest.mark.slow
def test_the_final_model_is_chosen_on_validation_and_forecasts_as_its_members_average(
    api_sweep: dict[str, Any], tmp_path: Path
) -> None:
    exp = api_sweep["exp"]
    doc = json.loads((exp / "best_config.json").read_text())
    final = doc["final_model"]
    members = final["members"]
    assert members[0]["trial_id"] == doc["trial_id"]  # the greedy search starts from the best trial
    assert sum(m["weight"] for m in members) == pytest.approx(1.0)
    assert final["best_trial_val_mae"] == pytest.approx(doc["metrics"]["best_val_mae"], rel=1e-5)
    assert final["val_mae"] <= final["best_trial_val_mae"]
    trials_now = SweepResult.load("api", api_sweep["storage"]).trials  # another test may have grown the sweep
    assert len(final["candidates"]) == min(CANDIDATES, len(trials_now))  # every trial left a checkpoint
    assert "final model:" in api_sweep["result"].summary()
    data = prepare(SweepSettings.load(Experiment.at(api_sweep["storage"], "api")))

    def val_mae(model: torch.nn.Module) -> float:
        return float(evaluate(model, data.val, data, Precision(None, False), torch.device("cpu"), baseline=False)["model"]["mae"])

    assert val_mae(load_model(exp).model) == pytest.approx(final["val_mae"], rel=1e-5)
    assert val_mae(load_model(exp, ensemble=False).model) == pytest.approx(final["best_trial_val_mae"], rel=1e-5)

    # an average of two trials (as the export writes it where averaging wins) forecasts their weighted mean
    trials = api_sweep["result"].trials
    two = [
        {"trial_id": t, "checkpoint": str(sorted(Path(d).glob("checkpoint_*"))[-1]), "weight": w}
        for t, d, w in zip(trials["trial_id"][:2], trials["logdir"][:2], (0.75, 0.25), strict=True)
    ]
    (tmp_path / "best_config.json").write_text(json.dumps({**doc, "final_model": {**final, "members": two}}))
    average = load_model(tmp_path / "best_config.json")
    assert isinstance(average.model, MeanEnsemble) and not isinstance(load_model(exp, ensemble=False).model, MeanEnsemble)
    frame = _frame()
    parts = [load_model(m["checkpoint"]).predict(frame)["forecast"].to_numpy() for m in two]
    np.testing.assert_allclose(
        average.predict(frame)["forecast"].to_numpy(), 0.75 * parts[0] + 0.25 * parts[1], rtol=1e-4, atol=1e-4
    )
    assert val_mae(average.model) != pytest.approx(val_mae(load_model(two[0]["checkpoint"]).model))


# --- a time budget ---------------------------------------------------------------------


def test_a_time_budget_is_read_from_the_space_and_the_flag_and_checked() -> None:
    from tuning.cli import duration

    assert [duration(t) for t in ("900", "900s", "15m", "1.5h", " 2M ")] == [900, 900, 900, 5400, 120]
    for bad in ("0", "-5m", "soon", "15 minutes", "inf", "nan", ""):
        with pytest.raises(Exception, match="must be"):
            duration(bad)
    space = as_space({**SPACE, "budget": {**SPACE["budget"], "time_budget_s": 600}})
    assert space.budget.time_budget_s == 600
    assert SweepSettings.create(space).time_budget_s == 600.0
    assert SweepSettings.create(space, time_budget_s=30).time_budget_s == 30.0  # the flag wins
    assert SweepSettings.create(as_space(SPACE)).time_budget_s is None  # no budget: no limit
    with pytest.raises(UserError, match="budget.time_budget_s must be a number of seconds > 0, got -1"):
        as_space({**SPACE, "budget": {**SPACE["budget"], "time_budget_s": -1}})
    with pytest.raises(UserError, match="--time-budget must be a positive number of seconds"):
        SweepSettings.create(space, time_budget_s=0)


@pytest.mark.slow
def test_the_time_budget_ends_a_sweep_whose_trials_would_run_on_and_resume_runs_the_rest(
    ray_cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Trials of up to 10,000 epochs with no early stop: only the time budget can end them.
    space = {
        **SPACE,
        "fixed": {**SPACE["fixed"], "early_stop_patience": 1000},
        "budget": {"num_samples": 6, "max_epochs": 10_000, "grace_period": 10_000, "reduction_factor": 2},
    }
    data = synthetic_traffic(num_sensors=2, num_days=3, seed=3)
    first = search.run_sweep(space, data, name="timed", storage_path=tmp_path, time_budget_s=10)
    assert first.complete and first.out_of_time == {"time_budget_s": 10.0, "trials": len(first.trials)}
    assert 1 <= len(first.trials) < 6
    assert (first.trials["epochs_run"] < 10_000).all()
    assert first.export is not None and (tmp_path / "timed" / "best_config.json").exists()
    assert search.report(first) == 0
    out = capsys.readouterr().out
    assert f"the time budget (10 s) ended the sweep after {len(first.trials)} of 6 trials" in out
    assert "--name timed" in out and "--resume" in out
    epochs_before = dict(zip(first.trials["trial_id"], first.trials["epochs_run"], strict=True))
    # Had no trial reported in time, there is nothing to export: not a success.
    assert search.report(dataclasses.replace(first, export=None)) == 130
    assert "the time budget (10 s) ended sweep timed before any trial reported a finite val_mae" in capsys.readouterr().err

    # Read back later, the sweep is still one the budget ended, not an interrupted one.
    assert SweepResult.load("timed", tmp_path).out_of_time == first.out_of_time

    more = search.resume_sweep("timed", storage_path=tmp_path, time_budget_s=8)
    assert more.settings.time_budget_s == 8.0 and SweepSettings.load(more.experiment).time_budget_s == 8.0
    assert len(more.trials) > len(first.trials)  # the rest ran, with a budget of their own
    again = dict(zip(more.trials["trial_id"], more.trials["epochs_run"], strict=True))
    assert {t: again[t] for t in epochs_before} == epochs_before  # the first run's trials were not run again
    assert more.complete and (more.out_of_time is None or more.out_of_time["trials"] == len(more.trials))
