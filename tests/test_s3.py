"""A sweep on S3 storage (moto's S3 server on loopback): kill -9, resume, export, analyze, and the lock there."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pandas as pd
import pytest
from support import (
    TINY_SAMPLES,
    child_env,
    is_stopped,
    marked_processes,
    result_rows,
    run,
    search_cmd,
    start,
    stray_files,
    wait_for,
)

from tuning import analyze, export, search, storage
from tuning.analysis import load_curves, load_sweep
from tuning.faults import EPOCH_SECONDS_ENV, FAULT_ENV, FAULT_SIGNAL_ENV
from tuning.storage import BEST_FILE, LOCK_FILE, SWEEP_FILE

pytestmark = pytest.mark.slow


def _epochs(logdir: str) -> list[int]:
    with storage.local_view(logdir) as folder:
        return [int(r["epoch"]) for r in result_rows(folder)]  # type: ignore[call-overload]


def test_sweep_on_s3_survives_kill_9_resumes_exports_and_analyzes(
    s3_bucket: str, sweep_csv: Path, sweep_space: Path, tmp_path: Path, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"s3://{s3_bucket}/sweeps"
    exp = f"{uri}/s3k"
    marker = uuid.uuid4().hex
    # The driver stops itself (SIGSTOP) once S3 holds a finished trial and a checkpointed running one.
    # Slow trials (a second per epoch) keep that point in reach however fast the machine (tuning.faults).
    env = child_env(marker, short_tmp, **{FAULT_ENV: "1", FAULT_SIGNAL_ENV: "SIGSTOP", EPOCH_SECONDS_ENV: "1"})
    common = ["--storage-path", uri, "--name", "s3k"]
    driver = start(
        search_cmd("--space", str(sweep_space), "--data", str(sweep_csv), "--max-concurrent", "2", *common), env, tmp_path
    )
    try:
        wait_for(lambda: driver.poll() is not None or is_stopped(driver.pid), 600, "the driver to reach the fault point")
        assert driver.poll() is None, driver.communicate()[1][-3000:]
        # The lock holds on S3: a second sweep process of the same name is refused, naming the driver.
        assert storage.exists(f"{exp}/{LOCK_FILE}")
        assert search.main([*common, "--resume"]) == 2
        assert f"in use by pid {driver.pid} on host" in capsys.readouterr().err
    finally:
        driver.kill()  # kill -9
        driver.wait()
    env = child_env(marker, short_tmp)
    wait_for(lambda: not marked_processes(marker), 60, "the killed sweep's Ray processes to exit")
    before = load_sweep(exp)
    done = before[before["finished"]]
    assert 1 <= len(done) < TINY_SAMPLES
    epochs_before = {t: _epochs(d) for t, d in zip(done["trial_id"], done["logdir"])}

    resumed = run(search_cmd(*common, "--resume"), env, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"from pid {driver.pid} on host" in resumed.stderr  # the dead driver's lease, taken over at once
    after = load_sweep(exp).set_index("trial_id")
    # Every trial of the sweep finished; a trial the killed driver started after its last snapshot
    # reached storage may remain beside them, unfinished (status UNKNOWN): Tune ran another instead.
    assert after["finished"].sum() == TINY_SAMPLES, after[["status", "epochs_run"]]
    assert set(after.loc[~after["finished"], "status"]) <= {"UNKNOWN"}
    assert all(d.startswith(exp + "/") for d in after["logdir"])
    for trial_id, epochs in epochs_before.items():
        assert _epochs(after.loc[trial_id, "logdir"]) == epochs, f"finished trial {trial_id} ran again"
    assert not storage.exists(f"{exp}/{LOCK_FILE}")
    assert json.loads(storage.read_text(f"{exp}/{SWEEP_FILE}"))["num_samples"] == TINY_SAMPLES

    # export and analyze read the sweep from S3 and write beside it
    assert export.main(common) == 0
    doc = json.loads(storage.read_text(f"{exp}/{BEST_FILE}"))
    assert doc["trial_id"] == after["best_val_loss"].idxmin()
    assert doc["checkpoint"].startswith(exp + "/") and storage.exists(doc["checkpoint"])
    assert analyze.main(common) == 0
    for name in analyze.OUTPUTS:
        assert storage.exists(f"{exp}/{name}"), name
    assert len(pd.read_csv(io.StringIO(storage.read_text(f"{exp}/trials.csv")))) == len(after)
    assert len(load_curves(exp)) == after["epochs_run"].sum()
    # The private Ray of each run stopped with it, kill -9 included, advertised itself nowhere,
    # and the copies Tune staged in its session folder went with it.
    assert not marked_processes(marker)
    assert not list(short_tmp.glob("ray/ray_current_cluster"))
    assert not stray_files(short_tmp)
