"""Forecasts from saved models: ``tuning.load_model``, ``Forecaster.predict`` and ``python -m tuning.predict``.

A model is trained on the first 90 % of a series; its forecasts from every window end of
the held-out 10 % must be the very numbers ``tuning.engine.evaluate`` scores on those windows.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import long_table, pems_station_text, write_csv, write_malicious_checkpoint

import tuning
from tuning import checkpoints, predict, search, train
from tuning.config import TrainConfig
from tuning.data import PreparedData, prepare_data
from tuning.engine import Precision, evaluate, fit
from tuning.errors import DataError
from tuning.forecast import Forecaster, load_model
from tuning.sources import TrafficSeries, load_series, synthetic_traffic

pytestmark = pytest.mark.usefixtures("restore_tuning_logger")
LS, LT = 10, 5
CPU = torch.device("cpu")


def _part(series: TrafficSeries, start: int | None = None, stop: int | None = None) -> TrafficSeries:
    stamps = None if series.timestamps is None else series.timestamps[start:stop]
    return TrafficSeries(np.ascontiguousarray(series.values[start:stop]), stamps, series.sensor_ids, series.name)


def _frame(series: TrafficSeries) -> pd.DataFrame:
    return pd.DataFrame(series.values, index=pd.Index(series.timestamps, name="timestamp"), columns=list(series.sensor_ids))


def _run(module: Any, argv: Sequence[str]) -> int:
    try:
        return int(module.main(list(argv)))
    except SystemExit as e:  # argparse errors
        return int(e.code or 0)


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("python -m tuning.predict: error: ")
    return err[0]


# --- a model trained on the first 90 % ----------------------------------------------------------------


@pytest.fixture(scope="module")
def series() -> TrafficSeries:
    """3 sensors x 4 days of 5-minute speeds, with missing readings."""
    return synthetic_traffic(num_sensors=3, num_days=4, seed=1)


@pytest.fixture(scope="module")
def held_out(series: TrafficSeries) -> dict[str, Any]:
    """A model trained on the first 90 %; the last 10 % (with the window before it) as its test data."""
    cut = int(0.9 * series.num_steps)
    test = _part(series, cut - LS)  # targets from step `cut` on; inputs reach back LS steps
    data = prepare_data(_part(series, 0, cut), LS, LT, test_data=test)
    config = TrainConfig(hidden_size=8, batch_size=256, max_epochs=3, num_threads=1)
    result = fit(config, data)
    return {"data": data, "test": test, "result": result}


@pytest.fixture(scope="module")
def model_dir(held_out: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    train.write_outputs(folder, held_out["result"], held_out["data"])
    return folder


def test_model_file_is_self_contained_and_loads_without_code(model_dir: Path, held_out: dict[str, Any]) -> None:
    saved = torch.load(model_dir / "model.pt", weights_only=True)
    data: PreparedData = held_out["data"]
    assert saved["freq"] == "5min"
    assert saved["sensor_ids"] == ["S000", "S001", "S002"]
    assert saved["data_shape"] == list(data.shape)  # input size, sensors, time-of-day slots, weekdays
    assert saved["data_shape"][1:3] == [3, 288]
    np.testing.assert_array_equal(saved["scaler_mean"].numpy(), data.scaler.mean)
    forecaster = tuning.load_model(model_dir)
    assert isinstance(forecaster, tuning.Forecaster)
    assert (forecaster.len_source, forecaster.len_target, forecaster.freq) == (LS, LT, "5min")


def test_forecasts_from_every_held_out_window_score_as_evaluate_does(model_dir: Path, held_out: dict[str, Any]) -> None:
    data: PreparedData = held_out["data"]
    test: TrafficSeries = held_out["test"]
    model = held_out["result"].model
    reference = evaluate(model, data.test, data, Precision(None, False), CPU, baseline=True)
    forecaster = load_model(model_dir)
    preds, truths = [], []
    for end in range(LS, test.num_steps - LT + 1):  # data up to `end`, forecast [end, end + LT)
        frame = forecaster.predict(_part(test, 0, end))
        assert list(frame.columns) == ["timestamp", "sensor", "horizon", "forecast"]
        assert list(frame["timestamp"].unique()) == list(test.timestamps[end : end + LT])
        preds.append(frame.pivot(index="horizon", columns="sensor", values="forecast")[list(test.sensor_ids)].to_numpy())
        truths.append(test.values[end : end + LT])
    pred, truth = np.stack(preds).astype(np.float64), np.stack(truths).astype(np.float64)  # (windows, LT, N)
    assert pred.shape[0] == data.test.num_starts
    observed = ~np.isnan(truth)
    err = np.where(observed, pred - truth, 0.0)
    mae, rmse = np.abs(err).sum() / observed.sum(), np.sqrt((err**2).sum() / observed.sum())
    assert mae == pytest.approx(reference["model"]["mae"], rel=1e-5)
    assert rmse == pytest.approx(reference["model"]["rmse"], rel=1e-5)
    per_horizon = np.abs(err).sum(axis=(0, 2)) / observed.sum(axis=(0, 2))
    np.testing.assert_allclose(per_horizon, reference["model"]["per_horizon"]["mae"], rtol=1e-5)
    # the training run's own test metrics are the same windows
    assert mae == pytest.approx(held_out["result"].info["test_metrics"]["model"]["mae"], rel=1e-5)
    # and against the truth: in the data's units, near the readings (an unscaled output would be ~60 mph off)
    assert mae < 0.5 * np.nanstd(truth)


def test_the_last_window_is_the_models_own_prediction(model_dir: Path, held_out: dict[str, Any]) -> None:
    data: PreparedData = held_out["data"]
    test: TrafficSeries = held_out["test"]
    windows = data.test
    last = windows.num_starts - 1
    batch = windows[torch.arange(last * 3, last * 3 + 3)]  # the last window of each sensor
    with torch.no_grad():
        scaled = held_out["result"].model.eval()(batch.x, batch.future, batch.sensor, batch.tod, batch.dow)
    expected = data.scaler.inverse(scaled, batch.sensor).numpy()  # (N, LT)
    frame = load_model(model_dir).predict(_part(test, 0, test.num_steps - LT))
    got = frame.pivot(index="sensor", columns="horizon", values="forecast").loc[list(test.sensor_ids)].to_numpy()
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected))


def test_missing_readings_in_the_last_window_are_forward_filled(
    model_dir: Path, series: TrafficSeries, caplog: pytest.LogCaptureFixture
) -> None:
    frame = _frame(series).iloc[:600]
    gappy = frame.copy()
    gappy.iloc[-4:, 0] = np.nan  # S000's last 4 readings missing
    gappy.iloc[-LS - 3 :, 2] = np.nan  # S002 silent for the whole window and before it
    forecaster = load_model(model_dir)
    got = forecaster.predict(gappy)
    assert np.isfinite(got["forecast"]).all()
    expected = forecaster.predict(gappy.ffill())  # what forward-filling by hand gives
    pd.testing.assert_frame_equal(got, expected)
    assert not got.equals(forecaster.predict(gappy.fillna(0.0)))  # not zero-filled
    assert "S002" in caplog.text and "no reading in the last 10 steps" in caplog.text


def test_zeros_are_missing_readings_when_they_were_in_training(model_dir: Path, series: TrafficSeries) -> None:
    frame = _frame(series).iloc[:600]
    zeros, gaps = frame.copy(), frame.copy()
    zeros.iloc[-3:, 1], gaps.iloc[-3:, 1] = 0.0, np.nan
    forecaster = dataclasses.replace(load_model(model_dir), zero_is_missing=True)  # as --zero-is-missing saves it
    pd.testing.assert_frame_equal(forecaster.predict(zeros), forecaster.predict(gaps))
    assert not load_model(model_dir).predict(zeros).equals(forecaster.predict(gaps))


def test_only_the_tail_is_needed(model_dir: Path, series: TrafficSeries) -> None:
    frame = _frame(series).iloc[:700]
    forecaster = load_model(model_dir)
    pd.testing.assert_frame_equal(forecaster.predict(frame.tail(LS)), forecaster.predict(frame))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda f: f.rename(columns={"S001": "X"}), "sensor columns differ"),
        (lambda f: f.drop(columns=["S002"]), "has 2 sensors but the model in"),
        (lambda f: f[["S001", "S000", "S002"]], "first difference: 'S001' where 'S000' was"),
        (lambda f: f.tail(LS - 1), "has 9 time steps but the model in .* reads the last 10"),
        (lambda f: f.iloc[::2], "has steps of 10min but the model in .* was trained on steps of 5min"),
        (lambda f: f.to_numpy(), "has no timestamps but the model in .* was trained on timestamped steps of 5min"),
        (lambda f: f.assign(S000=np.nan, S001=np.nan, S002=np.nan), "no sensor has a reading"),
    ],
    ids=["renamed", "fewer", "reordered", "too-short", "other-step", "no-timestamps", "no-reading"],
)
def test_unfit_data_is_refused(model_dir: Path, series: TrafficSeries, change: Any, expected: str) -> None:
    with pytest.raises(DataError, match=expected):
        load_model(model_dir).predict(change(_frame(series).iloc[:300]))


def test_a_sensor_without_any_reading_gets_nan_forecasts_and_the_others_do_not(
    model_dir: Path, series: TrafficSeries, caplog: pytest.LogCaptureFixture
) -> None:
    frame = _frame(series).iloc[:300]
    with caplog.at_level("WARNING", logger="tuning.forecast"):
        got = load_model(model_dir).predict(frame.assign(S001=np.nan))
    assert "sensors ['S001'] have no reading at all: forecast as NaN" in caplog.text
    dead = got["sensor"] == "S001"
    assert got.loc[dead, "forecast"].isna().all() and len(got[dead]) == LT
    expected = load_model(model_dir).predict(frame).loc[~dead.to_numpy()]
    pd.testing.assert_frame_equal(got[~dead], expected)  # the other sensors' forecasts are unchanged


def test_forecasts_of_data_that_never_go_below_zero_stay_at_or_above_it(model_dir: Path, series: TrafficSeries) -> None:
    forecaster = load_model(model_dir)
    assert forecaster.scaler.floor == 0.0  # saved with the model: speeds are never negative

    class FarBelow(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x: torch.Tensor, *_: Any) -> torch.Tensor:
            return torch.full((x.shape[0], LT), -100.0) + 0 * self.anchor

    got = dataclasses.replace(forecaster, model=FarBelow()).predict(_frame(series).iloc[:100])
    assert (got["forecast"] == 0).all()


def test_a_sensor_the_model_never_learned_is_forecast_as_nan(series: TrafficSeries, tmp_path: Path) -> None:
    values = series.values[:500].copy()
    values[:400, 1] = np.nan  # a dead detector through the training part, back at the end
    data = prepare_data(TrafficSeries(values, series.timestamps[:500], series.sensor_ids, "dead"), LS, LT)
    train.write_outputs(tmp_path, fit(TrainConfig(hidden_size=8, batch_size=256, max_epochs=1, num_threads=1), data), data)
    forecaster = load_model(tmp_path)
    assert forecaster.untrained_sensors == ("S001",)
    got = forecaster.predict(_frame(series).iloc[:500])
    assert got.loc[got["sensor"] == "S001", "forecast"].isna().all()
    assert got.loc[got["sensor"] != "S001", "forecast"].notna().all()


def test_a_long_tables_readings_column_is_read_again_for_forecasts(
    series: TrafficSeries, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # speed, flow and occupancy per row, as PeMS-style exports hold them: trained on speed,
    # the model must read speed from new tables without being told again
    def long(part: TrafficSeries) -> pd.DataFrame:
        frame = long_table(part, id_column="station")
        return frame.assign(flow=frame["speed"] * 20, occupancy=0.1)

    long(_part(series, 0, 600)).to_csv(tmp_path / "week.csv", index=False)
    latest = long(_part(series, 600, 700))
    latest.to_csv(tmp_path / "latest.csv", index=False)
    argv = ["--data", str(tmp_path / "week.csv"), "--output", str(tmp_path / "m"), "--max-epochs", "1", "--quiet"]
    assert _run(train, argv) == 2  # three value columns: which one is the user's to say
    assert "several value columns ['speed', 'flow', 'occupancy']" in capsys.readouterr().err
    assert _run(train, [*argv, "--columns", "speed"]) == 0
    forecaster = load_model(tmp_path / "m")
    assert forecaster.readings == "speed"
    expected = forecaster.predict(_part(series, 600, 700))
    assert forecaster.predict(latest)["forecast"].tolist() == expected["forecast"].tolist()
    assert _run(predict, ["--model", str(tmp_path / "m"), "--data", str(tmp_path / "latest.csv"), "--output",
                          str(tmp_path / "f.csv")]) == 0  # fmt: skip
    np.testing.assert_allclose(pd.read_csv(tmp_path / "f.csv")["forecast"], expected["forecast"], rtol=1e-5)


def test_a_folder_of_pems_station_files_trains_and_its_latest_file_forecasts(series: TrafficSeries, tmp_path: Path) -> None:
    # a PeMS district's days as the clearinghouse serves them, one .txt.gz per day: trained on
    # speed from the folder; the latest file, read alone, needs no --columns
    stations = dataclasses.replace(series, values=np.round(series.values, 1), sensor_ids=("400001", "400017", "400101"))
    days = tmp_path / "d04"
    days.mkdir()
    for day in range(3):
        part = _part(stations, 288 * day, 288 * (day + 1))
        (days / part.timestamps[0].strftime("d04_text_station_5min_%Y_%m_%d.txt.gz")).write_bytes(
            gzip.compress(pems_station_text(part, ramps=1).encode())
        )
    latest = _part(stations, 864, 900)
    (tmp_path / "latest.txt").write_text(pems_station_text(latest, ramps=1))
    argv = ["--data", str(days), "--columns", "speed", "--output", str(tmp_path / "m"), "--max-epochs", "1", "--quiet"]
    assert _run(train, argv) == 0
    forecaster = load_model(tmp_path / "m")
    assert forecaster.readings == "speed" and forecaster.sensor_ids == ("400001", "400017", "400101", "900000")
    assert forecaster.untrained_sensors == ("900000",)  # the ramp: flow, no speed
    assert _run(predict, ["--model", str(tmp_path / "m"), "--data", str(tmp_path / "latest.txt"), "--output",
                          str(tmp_path / "f.csv")]) == 0  # fmt: skip
    got = pd.read_csv(tmp_path / "f.csv", dtype={"sensor": str})
    expected = forecaster.predict(_frame(latest).assign(**{"900000": np.nan}))  # the same readings, as a wide frame
    assert got.loc[got["sensor"] == "900000", "forecast"].isna().all()
    assert got["sensor"].tolist() == expected["sensor"].tolist()
    np.testing.assert_allclose(got["forecast"], expected["forecast"], rtol=1e-5)


def test_day_first_dates_are_read_day_first_again_for_forecasts(series: TrafficSeries, tmp_path: Path) -> None:
    # a UK file: weeks of dd/mm/yyyy read day first by their regular steps; the last hours
    # alone fit either order, and month first (pandas' default) puts them on 3 January
    def uk(part: TrafficSeries) -> pd.DataFrame:
        frame = _frame(part).reset_index()
        frame["timestamp"] = frame["timestamp"].dt.strftime("%d/%m/%Y %H:%M")
        return frame

    march = dataclasses.replace(series, timestamps=series.timestamps - series.timestamps[0] + pd.Timestamp("2024-03-01"))
    uk(_part(march, 0, 800)).to_csv(tmp_path / "weeks.csv", index=False)
    latest = _part(march, 100, 130)  # 1 March, 08:20 to 10:45
    uk(latest).to_csv(tmp_path / "latest.csv", index=False)
    argv = ["--data", str(tmp_path / "weeks.csv"), "--output", str(tmp_path / "m"), "--max-epochs", "1", "--quiet"]
    assert _run(train, argv) == 0
    forecaster = load_model(tmp_path / "m")
    assert forecaster.dayfirst is True
    assert load_series(tmp_path / "latest.csv").timestamps[0] == pd.Timestamp("2024-01-03 08:20")  # alone: month first
    assert _run(predict, ["--model", str(tmp_path / "m"), "--data", str(tmp_path / "latest.csv"), "--output",
                          str(tmp_path / "f.csv")]) == 0  # fmt: skip
    got = pd.read_csv(tmp_path / "f.csv", parse_dates=["timestamp"])
    expected = forecaster.predict(latest)
    assert got["timestamp"].iloc[0] == pd.Timestamp("2024-03-01 10:50") == expected["timestamp"].iloc[0]
    np.testing.assert_allclose(got["forecast"], expected["forecast"], rtol=1e-5)  # the same calendar inputs


def test_a_model_without_timestamps_forecasts_steps(series: TrafficSeries, tmp_path: Path) -> None:
    array = series.values[:500]
    data = prepare_data(array, LS, LT)
    train.write_outputs(tmp_path, fit(TrainConfig(hidden_size=8, batch_size=256, max_epochs=1, num_threads=1), data), data)
    forecaster = load_model(tmp_path)
    assert forecaster.freq is None and not forecaster.uses_timestamps
    got = forecaster.predict(array)
    assert list(got.columns) == ["step", "sensor", "horizon", "forecast"]
    assert list(got["step"].unique()) == list(range(500, 500 + LT))  # the row numbers the forecast steps would have
    # timestamped data of the same sensors works too: the timestamps only label the output
    frame = _frame(_part(series, 0, 500))
    with_time = forecaster.predict(frame)
    assert list(with_time["timestamp"].unique()) == list(pd.date_range(series.timestamps[499], periods=LT + 1, freq="5min")[1:])
    np.testing.assert_array_equal(with_time["forecast"].to_numpy(), got["forecast"].to_numpy())


def test_load_model_refuses_what_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(tuning.UserError, match="holds no model"):
        load_model(tmp_path)
    marker = tmp_path / "ran"
    write_malicious_checkpoint(tmp_path / "bad" / "model.pt", marker)
    with pytest.raises(checkpoints.UnsafeCheckpointError, match="would call"):
        load_model(tmp_path / "bad")
    assert not marker.exists()


# --- the command line -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``tuning.train`` on a 4-sensor CSV, leaving out S003; the data files predict reads."""
    root = tmp_path_factory.mktemp("cli")
    series = synthetic_traffic(num_sensors=4, num_days=3, seed=2)
    full = write_csv(series, root / "full.csv")
    first = write_csv(series, root / "first.csv", steps=int(0.9 * series.num_steps))
    config = root / "fast.json"
    config.write_text(json.dumps({"hidden_size": 8, "batch_size": 256, "num_threads": 1}))
    out = root / "model"
    argv = ["--data", str(first), "--config", str(config), "--output", str(out), "--max-epochs", "2", "--quiet"]
    assert train.main([*argv, "--exclude-columns", "S003"]) == 0
    assert list(torch.load(out / "model.pt", weights_only=True)["data_options"]["exclude_columns"]) == ["S003"]
    return {"root": root, "full": full, "first": first, "model": out}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_cli_writes_the_forecasts(cli: dict[str, Path], suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = cli["root"] / f"forecasts{suffix}"
    assert predict.main(["--model", str(cli["model"]), "--data", str(cli["full"]), "--output", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    got = pd.read_csv(out, parse_dates=["timestamp"]) if suffix == ".csv" else pd.read_parquet(out)
    assert list(got.columns) == ["timestamp", "sensor", "horizon", "forecast"]
    assert len(got) == 3 * LT and list(got["sensor"].unique()) == ["S000", "S001", "S002"]  # S003 left out as in training
    full = load_series(cli["full"])
    assert list(got["timestamp"].unique()) == list(pd.date_range(full.timestamps[-1], periods=LT + 1, freq="5min")[1:])
    # the same numbers as the Python API on the same data (the model's choice of sensors picked from it)
    expected = load_model(cli["model"]).predict(_frame(full))
    np.testing.assert_allclose(got["forecast"].to_numpy(), expected["forecast"].to_numpy(), rtol=1e-6)
    assert list(got["horizon"]) == list(expected["horizon"])


def test_cli_prints_csv_without_output(cli: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert predict.main(["--model", str(cli["model"]), "--data", str(cli["first"]), "--quiet"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "timestamp,sensor,horizon,forecast" and len(lines) == 1 + 3 * LT


def test_cli_reads_zeros_as_the_models_data_were_read_unless_told(
    cli: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pd.read_csv(cli["full"])
    zeros, gaps = frame.copy(), frame.copy()
    zeros.loc[zeros.index[-3:], "S001"], gaps.loc[gaps.index[-3:], "S001"] = 0.0, np.nan
    zeros.to_csv(cli["root"] / "zeros.csv", index=False)
    gaps.to_csv(cli["root"] / "gaps.csv", index=False)
    masked = cli["root"] / "masked"  # a model whose training data had their zeros read as missing
    argv = ["--data", str(cli["first"]), "--config", str(cli["root"] / "fast.json"), "--max-epochs", "1", "--quiet"]
    assert train.main([*argv, "--exclude-columns", "S003", "--zero-is-missing", "--output", str(masked)]) == 0

    def forecasts(model: Path, name: str, *flags: str) -> str:
        capsys.readouterr()
        assert predict.main(["--model", str(model), "--data", str(cli["root"] / name), "--quiet", *flags]) == 0
        return capsys.readouterr().out

    # as the training data were read: zeros are readings for one model, gaps for the other
    plain = forecasts(cli["model"], "zeros.csv")
    assert plain != forecasts(cli["model"], "gaps.csv")
    assert forecasts(masked, "zeros.csv") == forecasts(masked, "gaps.csv")
    # either flag overrides that
    assert forecasts(cli["model"], "zeros.csv", "--zero-is-missing") == forecasts(cli["model"], "gaps.csv")
    assert forecasts(masked, "zeros.csv", "--zeros-are-readings") != forecasts(masked, "gaps.csv")


@pytest.mark.parametrize(
    ("make_args", "expected"),
    [
        (lambda c: ["--model", str(c["root"] / "nowhere")], "does not exist"),
        (lambda c: ["--model", str(c["root"])], "holds no model"),
        (lambda c: ["--model", str(c["model"]), "--output", str(c["root"] / "f.xlsx")], "must end in .csv or .parquet"),
        (lambda c: ["--name", "nosuch", "--storage-path", str(c["root"])], "no best_config.json"),
        (lambda c: ["--name", "../up", "--storage-path", str(c["root"])], "experiment name"),
    ],
    ids=["missing", "no-model", "suffix", "no-sweep", "bad-name"],
)
def test_cli_refuses_bad_flags_in_one_line(
    cli: dict[str, Path], make_args: Any, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(predict, make_args(cli)) == 2
    assert re.search(expected, _one_line_error(capsys))


UNFIT_FILES = {
    "sensors": (lambda f: f.rename(columns={"S001": "X"}), "has 4 sensors but .* trained on 3"),
    "too-short": (lambda f: f.tail(LS - 1), r"reads the last 10 \(len_source\)"),
    "other-step": (lambda f: f.iloc[::2], "steps of 10min but .* trained on steps of 5min"),
    "no-timestamps": (lambda f: f.drop(columns="timestamp"), "has no timestamps"),
}


@pytest.mark.parametrize("case", list(UNFIT_FILES))
def test_cli_refuses_unfit_data_in_one_line(cli: dict[str, Path], case: str, capsys: pytest.CaptureFixture[str]) -> None:
    change, expected = UNFIT_FILES[case]
    path = cli["root"] / f"{case}.csv"
    change(pd.read_csv(cli["full"])).to_csv(path, index=False)
    assert _run(predict, ["--model", str(cli["model"]), "--data", str(path)]) == 2
    assert re.search(expected, _one_line_error(capsys))


def test_cli_refuses_a_model_file_that_would_run_code(cli: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    marker = cli["root"] / "pwned"
    bad = write_malicious_checkpoint(cli["root"] / "crafted" / "model.pt", marker)
    assert _run(predict, ["--model", str(bad.parent), "--data", str(cli["full"])]) == 2
    assert "refusing checkpoint" in _one_line_error(capsys)
    assert not marker.exists()


# --- a sweep's best trial ---------------------------------------------------------------------------

SPACE = """
parameters:
  learning_rate: {distribution: loguniform, low: 1.0e-4, high: 1.0e-2}
fixed:
  hidden_size: 8
  batch_size: 256
budget: {num_samples: 2, max_epochs: 2, grace_period: 1, reduction_factor: 2}
"""


@pytest.mark.slow
def test_predict_with_a_sweeps_best_trial(
    ray_cluster: str, cli: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    storage = tmp_path / "results"
    argv = ["--space", str(space), "--data", str(cli["first"]), "--storage-path", str(storage), "--name", "fc"]
    assert search.main([*argv, "--exclude-columns", "S003", "--max-concurrent", "1"]) == 0
    capsys.readouterr()
    out, final_out = tmp_path / "forecasts.csv", tmp_path / "final.csv"
    where = ["--name", "fc", "--storage-path", str(storage), "--data", str(cli["full"])]
    assert predict.main([*where, "--output", str(out), "--best-trial-only"]) == 0
    assert predict.main([*where, "--output", str(final_out)]) == 0  # the sweep's final model
    got = pd.read_csv(out, parse_dates=["timestamp"])
    assert list(got["sensor"].unique()) == ["S000", "S001", "S002"] and len(got) == 3 * LT
    full = _frame(load_series(cli["full"]))
    final = pd.read_csv(final_out, parse_dates=["timestamp"])
    np.testing.assert_allclose(final["forecast"].to_numpy(), load_model(storage / "fc").predict(full)["forecast"], rtol=1e-6)

    # the best trial's checkpoint carries the best epoch's weights, its scaler and sensors
    best = json.loads((storage / "fc" / "best_config.json").read_text())
    forecaster = load_model(storage / "fc", ensemble=False)
    state = checkpoints.load(Path(best["checkpoint"]) / checkpoints.RUN_STATE_FILE, checkpoints.RUN)
    for name, tensor in forecaster.model.state_dict().items():
        torch.testing.assert_close(tensor, state["best_state"][name])
    expected = forecaster.predict(full)
    np.testing.assert_allclose(got["forecast"].to_numpy(), expected["forecast"].to_numpy(), rtol=1e-6)

    # a moved copy whose checkpoint predates saved scalers: refitted on the sweep's data, the same forecasts
    moved = tmp_path / "moved" / "fc"
    shutil.copytree(storage / "fc", moved)
    trial_state = moved / Path(best["checkpoint"]).parent.name / Path(best["checkpoint"]).name / checkpoints.RUN_STATE_FILE
    old = {k: v for k, v in state.items() if k not in ("scaler_mean", "scaler_std", "data_shape", "input_size", "freq")}
    checkpoints.save(trial_state, checkpoints.RUN, {k: v for k, v in old.items() if k not in ("format", "kind")})
    refitted = load_model(moved, ensemble=False)
    assert refitted.source.startswith(f"the model in {moved}")
    pd.testing.assert_frame_equal(refitted.predict(full), expected)
    # a bare trial checkpoint of that kind cannot know its scaler: refused, saying how to load it
    with pytest.raises(tuning.UserError, match="load it through its sweep"):
        load_model(trial_state.parent)
    assert isinstance(forecaster, Forecaster)
