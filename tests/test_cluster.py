"""A sweep on a real two-node Ray cluster (``ray start`` head + worker on loopback, token authentication).

Trials run on both nodes; the driver is killed with kill -9 mid-sweep and the sweep
resumes against the same cluster; the lock keeps a second driver out meanwhile;
results, export and analysis read the finished sweep.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import TINY_SAMPLES, child_env, is_stopped, marked_processes, result_rows, run, search_cmd, start, wait_for

from tuning import analyze, export, search
from tuning.analysis import load_sweep
from tuning.faults import EPOCH_SECONDS_ENV, FAULT_ENV, FAULT_SIGNAL_ENV
from tuning.storage import ASHA_FILE, BEST_FILE, LOCK_FILE, SWEEP_FILE

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


@dataclass(frozen=True)
class Cluster:
    address: str
    env: dict[str, str]  # what a driver needs to join: the token, the marker
    marker: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(marker: str) -> None:
    """Stop the cluster's processes, found by the marker in their environment (never ``ray stop``,
    which would stop every Ray of this user on the machine)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for line in marked_processes(marker):
            with contextlib.suppress(OSError):
                os.kill(int(line.split()[0]), sig)
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not marked_processes(marker), 10, "the cluster to stop")
            return


@pytest.fixture
def cluster(short_tmp: Path) -> Iterator[Cluster]:
    """A head and a worker node, one CPU each, joined with a token (``RAY_AUTH_MODE=token``)."""
    marker = uuid.uuid4().hex
    # Slow trials (a second per epoch) keep the kill point in reach however fast the machine (tuning.faults).
    env = child_env(marker, short_tmp, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), **{EPOCH_SECONDS_ENV: "1"})
    address = f"127.0.0.1:{_free_port()}"
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    try:
        for cmd in ([RAY, "start", "--head", f"--port={address.split(':')[1]}", "--include-dashboard=false", *common],
                    [RAY, "start", f"--address={address}", *common]):  # fmt: skip
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        yield Cluster(address, env, marker)
    finally:
        _stop(marker)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sweep_on_a_two_node_cluster_survives_kill_9_of_the_driver(
    cluster: Cluster, sweep_csv: Path, sweep_space: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = tmp_path / "results"  # a folder every node reaches (one machine here; NFS on a real cluster)
    common = ["--storage-path", str(storage), "--name", "c2", "--address", cluster.address]
    # The driver stops itself (SIGSTOP) once a trial finished and another runs from a checkpoint.
    env = {**cluster.env, FAULT_ENV: "1", FAULT_SIGNAL_ENV: "SIGSTOP"}
    driver = start(
        search_cmd("--space", str(sweep_space), "--data", str(sweep_csv), "--max-concurrent", "2", *common), env, tmp_path
    )
    try:
        wait_for(lambda: driver.poll() is not None or is_stopped(driver.pid), 600, "the driver to reach the fault point")
        assert driver.poll() is None, driver.communicate()[1][-3000:]
        # The lock: a second driver for the same sweep, resuming or starting it, is refused naming the first.
        for argv in ([*common, "--resume"], ["--space", str(sweep_space), "--data", str(sweep_csv), *common]):
            assert search.main(argv) == 2
            err = capsys.readouterr().err
            assert f"in use by pid {driver.pid} on host {socket.gethostname()}" in err, err
    finally:
        driver.kill()  # kill -9
        driver.wait()
    exp = storage / "c2"
    done_before = load_sweep(exp).query("finished")
    assert 1 <= len(done_before) < TINY_SAMPLES
    rows_before = {t: result_rows(Path(d)) for t, d in zip(done_before["trial_id"], done_before["logdir"])}

    resumed = run(search_cmd(*common, "--resume"), cluster.env, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"taking over the lock of sweep c2 from pid {driver.pid}" in resumed.stderr
    trials = load_sweep(exp).set_index("trial_id")
    # Every trial of the sweep finished; a trial the killed driver started after its last snapshot
    # reached storage may remain beside them, unfinished (status UNKNOWN): Tune ran another instead.
    assert trials["finished"].sum() == TINY_SAMPLES, trials[["status", "epochs_run"]]
    assert set(trials.loc[~trials["finished"], "status"]) <= {"UNKNOWN"}
    for trial_id, rows in rows_before.items():
        assert result_rows(Path(trials.loc[trial_id, "logdir"])) == rows, f"finished trial {trial_id} ran again"
    # Trials ran on both nodes of the cluster.
    nodes = {row["node_id"] for logdir in trials["logdir"] for row in result_rows(Path(logdir))}
    assert len(nodes) == 2, nodes
    assert not (exp / LOCK_FILE).exists()
    tune_file = next(exp.glob("*/result.json"))
    for name in (SWEEP_FILE, ASHA_FILE, BEST_FILE):
        assert _mode(exp / name) == _mode(tune_file), name

    assert export.main(common[:4]) == 0
    doc = json.loads((exp / BEST_FILE).read_text())
    assert doc["trial_id"] == trials["best_val_loss"].idxmin() and Path(doc["checkpoint"]).is_dir()
    assert analyze.main(common[:4]) == 0
    for name in analyze.OUTPUTS:
        assert (exp / name).stat().st_size > 0, name
    assert marked_processes(cluster.marker)  # the cluster is the user's: the sweep leaves it running
