"""Helpers for the tests that run sweeps in child processes and kill them (no product code)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TINY_SPACE = """
parameters:
  learning_rate: {distribution: loguniform, low: 1.0e-4, high: 1.0e-2}
  batch_size:    {distribution: choice, values: [256, 1024]}
fixed:
  hidden_size: 8
budget: {num_samples: 4, max_epochs: 3, grace_period: 1, reduction_factor: 2}
"""
TINY_SAMPLES = 4


def search_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tuning.search", *args]


def child_env(marker: str, tmpdir: Path, **extra: str) -> dict[str, str]:
    """The environment of a sweep child: the checkout importable, its own TMPDIR, and a
    marker variable that every process it starts (Ray's included) inherits."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmpdir), "TUNING_TEST_MARKER": marker}
    env.update(PYTHONUNBUFFERED="1", TUNE_GLOBAL_CHECKPOINT_S="0", RAY_AIR_NEW_OUTPUT="0")
    for key in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(key, None)  # the pytest process's own Ray must not leak into the child
    env.update(extra)
    return env


def marked_processes(marker: str, width: int = 120) -> list[str]:
    """Live (not zombie) processes whose environment carries ``TUNING_TEST_MARKER=marker``:
    pid and the first ``width`` characters of the command line."""
    needle = f"TUNING_TEST_MARKER={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z" and needle in (entry / "environ").read_bytes().split(b"\0"):
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry.name} {command[:width]}")
        except (OSError, IndexError):
            continue
    return found


def wait_for(condition: Callable[[], object], timeout: float, what: str, every: float = 0.2) -> object:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def stray_files(tmpdir: Path) -> list[str]:
    """Files the sweep should not leave in the temporary folder: staged experiment copies
    and per-report checkpoint folders."""
    patterns = ("tuning-ckpt-*", ".report-checkpoint-*")
    found = [str(p) for pattern in patterns for p in tmpdir.rglob(pattern)]
    found += [str(p) for p in tmpdir.glob("ray/session_*/artifacts")]
    return found


def result_rows(logdir: Path) -> list[dict[str, object]]:
    path = logdir / "result.json"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def start(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def is_stopped(pid: int) -> bool:
    """True while process ``pid`` is stopped (SIGSTOP); the fault injection stops a sweep so."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False


def ctrl_c_works() -> None:
    """``preexec_fn`` for a child a test stops with SIGINT, as Ctrl-C would.

    A shell without job control starts background commands with SIGINT ignored, and
    children inherit that: a test run started with ``&`` (or nohup) would then send a
    SIGINT that nobody hears. The child gets the default action back, so Python turns
    it into KeyboardInterrupt as in a terminal.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
