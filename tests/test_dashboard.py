"""A real tiny sweep read back as an Optuna study, importance, plots, the summary, and the
dashboard loaded in headless Chromium."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from conftest import wait_for_line, write_csv
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from tuning import analyze, dashboard, search
from tuning.analysis import BEST_COLUMN, compare_with_defaults, load_curves, load_sweep
from tuning.importance import IMPORTANCE_CSV, IMPORTANCE_JSON, IMPORTANCE_PNG
from tuning.metrics import METRIC
from tuning.optuna_study import FINGERPRINT_ATTR, STUDY_FILE, ensure_study, storage_url
from tuning.plots import learning_curves_figure, metric_vs_params_figure
from tuning.sources import synthetic_traffic
from tuning.spaces import load_space

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# One of each kind of distribution the space files know.
SPACE = """
parameters:
  learning_rate: {distribution: loguniform, low: 1.0e-4, high: 1.0e-2}
  dropout_rate:  {distribution: uniform, low: 0.0, high: 0.5}
  hidden_size:   {distribution: int, low: 8, high: 64, log: true}
  batch_size:    {distribution: choice, values: [256, 1024]}
budget: {num_samples: 6, max_epochs: 3, grace_period: 1, reduction_factor: 2}
"""
NUM_SAMPLES, NAME = 6, "dash"
PARAMS = ["learning_rate", "dropout_rate", "hidden_size", "batch_size"]


@pytest.fixture(scope="module")
def sweep(ray_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A finished sweep and what it printed, then ``tuning.analyze`` on it."""
    root = tmp_path_factory.mktemp("dash")
    data = write_csv(synthetic_traffic(num_sensors=3, num_days=5, seed=5), root / "tiny.csv")
    space = root / "space.yaml"
    space.write_text(SPACE)
    storage = root / "results"
    argv = ["--space", str(space), "--data", str(data), "--storage-path", str(storage), "--name", NAME, "--max-concurrent", "1"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = search.main(argv)
    assert rc == 0, out.getvalue()[-2000:]
    analyzed = io.StringIO()
    with contextlib.redirect_stdout(analyzed):
        assert analyze.main(["--name", NAME, "--storage-path", str(storage)]) == 0
    exp = storage / NAME
    return {"exp": exp, "storage": storage, "space": load_space(space), "out": out.getvalue(),
            "analyzed": analyzed.getvalue(), "trials": load_sweep(exp), "curves": load_curves(exp)}  # fmt: skip


def _study(exp: Path) -> optuna.Study:
    return optuna.load_study(study_name=NAME, storage=storage_url(exp))


def test_the_optuna_study_matches_the_sweep(sweep: dict[str, Any]) -> None:
    trials, curves = sweep["trials"], sweep["curves"]
    study = _study(sweep["exp"])
    assert study.study_name == NAME and study.direction == optuna.study.StudyDirection.MINIMIZE
    assert study.metric_names == [METRIC]
    assert len(study.trials) == NUM_SAMPLES
    by_id = {t.user_attrs["trial_id"]: t for t in study.trials}
    assert set(by_id) == set(trials["trial_id"])
    assert trials["stopped_by_asha"].any(), "the sweep should have pruned trials to map"
    for _, row in trials.iterrows():
        t = by_id[row["trial_id"]]
        assert t.number == row["trial_index"] - 1  # Tune's creation order
        assert t.state == (TrialState.PRUNED if row["stopped_by_asha"] else TrialState.COMPLETE)
        assert t.value == pytest.approx(row[BEST_COLUMN])
        curve = curves[curves["trial_id"] == row["trial_id"]]
        assert t.intermediate_values == pytest.approx(dict(zip(curve["epoch"].astype(int), curve[METRIC])))
        for name in PARAMS:
            assert t.params[name] == pytest.approx(row[name])
        assert t.distributions == {
            "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
            "dropout_rate": FloatDistribution(0.0, 0.5),
            "hidden_size": IntDistribution(8, 64, log=True),
            "batch_size": CategoricalDistribution([256, 1024]),
        }
        assert t.user_attrs["is_default"] == row["is_default"]
        assert t.datetime_start is not None and t.datetime_complete is not None and t.datetime_complete >= t.datetime_start
    best = study.best_trial
    assert best.user_attrs["trial_id"] == trials.iloc[0]["trial_id"]


def test_analyze_rewrites_the_study_instead_of_adding_to_it(sweep: dict[str, Any]) -> None:
    exp = sweep["exp"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert analyze.main(["--name", NAME, "--storage-path", str(sweep["storage"])]) == 0
    study = _study(exp)
    assert len(study.trials) == NUM_SAMPLES
    assert len(optuna.get_all_study_summaries(storage_url(exp))) == 1
    # up to date: the dashboard does not write it again
    assert ensure_study(exp, NAME, sweep["space"]) == (exp / STUDY_FILE, False)
    assert study.user_attrs[FINGERPRINT_ATTR]
    assert not list(exp.glob(f".{STUDY_FILE}.tmp*"))


def test_importance_is_saved_printed_and_plotted(sweep: dict[str, Any]) -> None:
    exp = sweep["exp"]
    doc = json.loads((exp / IMPORTANCE_JSON).read_text())
    assert doc["skipped"] is None, doc["skipped"]
    assert set(doc["importances"]) == set(PARAMS)
    assert sum(doc["importances"].values()) == pytest.approx(1.0)
    assert doc["n_trials"] == NUM_SAMPLES
    table = pd.read_csv(exp / IMPORTANCE_CSV)
    assert set(table["param"]) == set(PARAMS)
    assert table["importance"].is_monotonic_decreasing
    assert (exp / IMPORTANCE_PNG).stat().st_size > 5000
    assert "hyperparameter importance (PED-ANOVA, 6 trials" in sweep["analyzed"]
    top = table.iloc[0]
    assert re.search(rf"{top['param']}\s+{top['importance']:.1%}", sweep["analyzed"])


def test_plots_have_colour_bars_log_axes_integer_epochs_and_mark_the_defaults(sweep: dict[str, Any]) -> None:
    trials, curves, space = sweep["trials"], sweep["curves"], sweep["space"]
    for name in ("learning_curves.png", "metric_vs_params.png"):
        assert (sweep["exp"] / name).stat().st_size > 10_000
    fig = metric_vs_params_figure(trials, curves, space)
    panels = {ax.get_xlabel(): ax for ax in fig.axes if ax.get_xlabel()}
    assert panels["learning_rate (log scale)"].get_xscale() == "log"
    assert panels["hidden_size (log scale)"].get_xscale() == "log"
    assert panels["dropout_rate"].get_xscale() == "linear"
    assert [t.get_text() for t in panels["batch_size"].get_xticklabels()] == ["256", "1024"]
    assert any(ax.get_ylabel() == "epochs run" for ax in fig.axes), "a colour bar for the colours"
    assert "every trial at epoch 1" in fig.axes[0].get_title()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"defaults' trial", "best trial", "ran its budget"} <= set(legend)

    fig = learning_curves_figure(curves, trials=trials)
    ax = fig.axes[0]
    assert all(float(t).is_integer() for t in ax.get_xticks())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    default_id = trials[trials["is_default"]]["trial_id"].iloc[0]
    assert f"defaults ({default_id})" in labels or default_id == trials.iloc[0]["trial_id"]
    assert f"best ({trials.iloc[0]['trial_id']})" in labels
    assert any("best" in a.get_ylabel() for a in fig.axes[1:]), "a colour bar for the line colours"


def test_summary_compares_at_the_same_epoch_and_names_next_steps(sweep: dict[str, Any]) -> None:
    out, exp = sweep["out"], sweep["exp"]
    comparison = compare_with_defaults(sweep["trials"], sweep["curves"])
    assert comparison is not None
    assert comparison.epoch == min(comparison.best_epochs, comparison.defaults_epochs)
    assert "\n".join(comparison.lines()) in out
    assert f"at epoch {comparison.epoch}: best {comparison.best_value:.5g} vs defaults {comparison.defaults_value:.5g}" in out
    assert f"python -m tuning.analyze --name {NAME} --storage-path {sweep['storage']}" in out
    assert f"python -m tuning.dashboard --name {NAME}" in out
    # Ray's table names the experiment folder, not its temporary session folder.
    assert f"Results: {exp}" in out
    assert "Result logdir" not in out and "/tmp/ray/session" not in out
    # The final status table shows each reported value once.
    header = [line for line in out.splitlines() if "Trial name" in line][-1]
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns.count(METRIC) == 1 and {"epoch", "train_loss", *PARAMS} <= set(columns), columns


# --------------------------------------------------------------------------- the browser

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000", "--virtual-time-budget=30000"]  # fmt: skip


def _chromium(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    # --virtual-time-budget lets the page's scripts and API calls finish before the dump.
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
                          capture_output=True, text=True, timeout=180)  # fmt: skip


def _get_json(url: str, deadline: float) -> Any:
    """GET ``url``, retrying while the server does not answer yet (it is bound, so it soon will)."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_dashboard_in_a_real_browser(sweep: dict[str, Any], tmp_path: Path) -> None:
    (sweep["exp"] / STUDY_FILE).unlink()  # the command writes the study when it is missing
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "tuning.dashboard", "--name", NAME, "--storage-path", str(sweep["storage"]), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = wait_for_line(proc, r"optuna-dashboard: (http://\S+)", 180)[0].group(1)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/dashboard/studies/1")
        base = url.split("/dashboard/")[0]
        # the dashboard's own API serves the study
        summaries = _get_json(f"{base}/api/studies", time.monotonic() + 60)["study_summaries"]
        assert [s["study_name"] for s in summaries] == [NAME]
        detail = _get_json(f"{base}/api/studies/1", time.monotonic() + 60)
        assert len(detail["trials"]) == NUM_SAMPLES
        pruned = int(sweep["trials"]["stopped_by_asha"].sum())
        assert sum(t["state"] == "Pruned" for t in detail["trials"]) == pruned

        # the page as a browser renders it, after its scripts ran
        page = _chromium(f"{url}/trials", tmp_path / "profile-dom", "--dump-dom")
        assert page.returncode == 0, page.stderr[-2000:]
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.stdout))
        assert f"{NAME} (id=1)" in text
        assert f"{NUM_SAMPLES} Trials" in text
        assert text.count("Pruned") >= pruned

        artifacts = Path(os.environ.get("TUNING_TEST_ARTIFACTS", tmp_path))
        artifacts.mkdir(parents=True, exist_ok=True)
        shot = artifacts / "dashboard.png"
        taken = _chromium(url, tmp_path / "profile-shot", f"--screenshot={shot}")
        assert taken.returncode == 0, taken.stderr[-2000:]
        print(f"dashboard screenshot: {shot}")
        import matplotlib.image

        pixels = matplotlib.image.imread(shot)
        assert pixels.shape[:2] == (1000, 1400)
        assert float(pixels[..., :3].std()) > 0.05, "the screenshot shows a drawn page, not a blank one"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert (sweep["exp"] / STUDY_FILE).is_file()


def test_dashboard_without_optuna_dashboard_says_how_to_install_it(
    sweep: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # import fails as when it is not installed
    assert dashboard.main(["--name", NAME, "--storage-path", str(sweep["storage"])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert 'pip install -e ".[dashboard]"' in err
