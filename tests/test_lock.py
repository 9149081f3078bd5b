"""The sweep lock: one process per experiment, the holder named, a dead holder's lock taken over."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tuning import lock
from tuning.lock import FileLock, Holder, LeaseLock, PyarrowStore, S3Store, SweepLockedError
from tuning.storage import LOCK_FILE, Experiment

ROOT = Path(__file__).resolve().parents[1]
HOLD = "import sys; from tuning import lock, storage; l = lock.lock_for(storage.Experiment.at(sys.argv[1], 'sw')); l.acquire(); print('held', flush=True); sys.stdin.read()"


def _holder_process(storage_path: str) -> subprocess.Popen[str]:
    """Another process that takes the sweep's lock and holds it until its stdin closes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, storage_path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_second_process_is_refused_naming_the_holder_and_a_killed_holder_is_taken_over(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    storage_path = str(tmp_path) if backend == "local" else f"s3://{request.getfixturevalue('s3_bucket')}/prefix"
    exp = Experiment.at(storage_path, "sw")
    holder = _holder_process(storage_path)
    with pytest.raises(SweepLockedError, match=f"in use by pid {holder.pid} on host {socket.gethostname()}"):
        lock.lock_for(exp).acquire()

    holder.kill()  # kill -9: no chance to release anything
    holder.wait()
    mine = lock.lock_for(exp)
    with caplog.at_level(logging.WARNING, logger="tuning.lock"):
        mine.acquire()
    assert f"from pid {holder.pid} on host" in caplog.text
    with pytest.raises(SweepLockedError, match=f"in use by pid {os.getpid()} "):
        lock.lock_for(exp).acquire()  # a second acquirer, even in this process
    mine.release()
    again = lock.lock_for(exp)
    again.acquire()  # released: free again
    again.release()


def test_local_lock_leaves_no_folder_when_released_before_anything_was_written(tmp_path: Path) -> None:
    exp = Experiment.at(tmp_path, "fresh")
    with lock.hold(exp):
        assert Holder.parse((tmp_path / "fresh" / LOCK_FILE).read_text()) is not None
    assert not (tmp_path / "fresh").exists()


def test_local_lock_file_names_the_holder(tmp_path: Path) -> None:
    exp = Experiment.at(tmp_path, "named")
    held = FileLock(exp, tmp_path / "named" / LOCK_FILE)
    held.acquire()
    try:
        doc = json.loads((tmp_path / "named" / LOCK_FILE).read_text())
        assert (doc["host"], doc["pid"]) == (socket.gethostname(), os.getpid())
    finally:
        held.release()


def _put_lease(bucket: str, holder: Holder) -> None:
    import boto3

    boto3.client("s3").put_object(Bucket=bucket, Key=f"prefix/sw/{LOCK_FILE}", Body=holder.dump())


def _foreign(pid: int, machine: str) -> Holder:
    return Holder(host="elsewhere", pid=pid, machine=machine, process_start=None, since="2026-01-01T00:00:00", token="t0")


def test_s3_lease_of_another_machine_holds_until_it_expires(s3_bucket: str) -> None:
    exp = Experiment.at(f"s3://{s3_bucket}/prefix", "sw")
    _put_lease(s3_bucket, _foreign(os.getpid(), machine="another-boot"))  # a live-looking holder elsewhere
    with pytest.raises(SweepLockedError, match="in use by pid .* on host elsewhere"):
        LeaseLock(exp, S3Store(exp.file(LOCK_FILE)), lease_s=60).acquire()
    # No heartbeat for longer than the lease: abandoned, taken over.
    expired = LeaseLock(exp, S3Store(exp.file(LOCK_FILE)), lease_s=-1)
    expired.acquire()
    expired.release()


def test_s3_lease_of_a_dead_process_on_this_machine_is_taken_over_at_once(s3_bucket: str) -> None:
    exp = Experiment.at(f"s3://{s3_bucket}/prefix", "sw")
    _put_lease(s3_bucket, _foreign(_dead_pid(), machine=lock._machine()))
    mine = LeaseLock(exp, S3Store(exp.file(LOCK_FILE)), lease_s=3600)
    mine.acquire()
    mine.release()


def test_s3_holder_that_lost_its_lease_notices(s3_bucket: str) -> None:
    exp = Experiment.at(f"s3://{s3_bucket}/prefix", "sw")
    first = LeaseLock(exp, S3Store(exp.file(LOCK_FILE)), lease_s=3600)
    first.acquire()
    assert first.renew()
    second = LeaseLock(exp, S3Store(exp.file(LOCK_FILE)), lease_s=-1)  # sees it as expired
    second.acquire()
    assert not first.renew()  # the heartbeat's conditional write fails: the sweep stops
    first.release()  # leaves the new holder's lease alone
    assert S3Store(exp.file(LOCK_FILE)).read() is not None
    second.release()


def test_lease_through_pyarrow_refuses_a_second_holder(s3_bucket: str) -> None:
    """Stores without conditional writes get the same lease through pyarrow (best effort)."""
    exp = Experiment.at(f"s3://{s3_bucket}/prefix", "sw")
    first = LeaseLock(exp, PyarrowStore(exp.file(LOCK_FILE)), lease_s=3600)
    first.acquire()
    with pytest.raises(SweepLockedError, match=f"in use by pid {os.getpid()} "):
        LeaseLock(exp, PyarrowStore(exp.file(LOCK_FILE)), lease_s=3600).acquire()
    first.release()
    assert not S3Store(exp.file(LOCK_FILE)).read()
