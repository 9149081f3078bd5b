"""The private Ray's keeper (tuning.ray_runtime) and what it costs to start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from support import child_env, marked_processes, wait_for

import tuning


def _fresh(code: str) -> str:
    """What ``code`` prints in a new interpreter (this one has torch and Ray loaded)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout


def test_the_keeper_module_loads_neither_torch_nor_pandas() -> None:
    # `python -m tuning.ray_runtime` runs tuning/__init__.py first: an eager package import
    # cost every sweep ~3 s of CPU at its start, racing Ray's own start on 2 cores.
    out = _fresh("import sys, tuning.ray_runtime; print(sorted({'torch', 'pandas', 'ray'} & set(sys.modules)))")
    assert out.strip() == "[]"


def test_every_public_name_of_the_package_resolves() -> None:
    for name in tuning.__all__:
        assert getattr(tuning, name) is not None, name
    assert set(tuning.__all__) <= set(dir(tuning))
    from tuning import lock, trainModel  # a submodule and a legacy alias, as users import them

    assert lock.__name__ == "tuning.lock" and callable(trainModel)


CHILD = """
import json, os, sys
import ray
from tuning import ray_runtime
runtime = ray_runtime.connect(None)
@ray.remote
def where():
    return os.getpid()
print(json.dumps({"cpus": ray.cluster_resources()["CPU"], "worker": ray.get(where.remote()), "keeper": runtime.keeper.pid}), flush=True)
if sys.argv[1] == "close":
    runtime.close()
    print("closed", flush=True)
sys.stdin.read()
"""


def others(marker: str, pid: int) -> list[str]:
    return [line for line in marked_processes(marker) if int(line.split()[0]) != pid]


@pytest.mark.slow
@pytest.mark.parametrize("end", ["kill -9", "close"])
def test_a_private_ray_runs_tasks_and_stops_with_its_sweep(end: str, short_tmp: Path, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    env = child_env(marker, short_tmp)
    # One variant pinned to one core (like `taskset -c 0`): Ray must count that core only.
    cores = sorted(os.sched_getaffinity(0))[:1] if end == "close" else sorted(os.sched_getaffinity(0))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, end], env=env, cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, preexec_fn=lambda: os.sched_setaffinity(0, cores),
    )  # fmt: skip
    try:
        assert child.stdout is not None
        started = json.loads(child.stdout.readline())
        assert started["cpus"] == len(cores)
        alive = " ".join(marked_processes(marker, width=1000))
        assert "raylet" in alive and "gcs_server" in alive
        # No API server: without the dashboard it would only load usage statistics (off),
        # and Ray waits ~1 s for it before it starts the raylet.
        assert "dashboard/dashboard.py" not in alive
        if end == "close":
            assert child.stdout.readline() == "closed\n"
        else:
            child.kill()  # kill -9: the keeper learns it from its stdin's end
        # Every process of the instance exits; the sweep process itself lives on after close().
        wait_for(lambda: not others(marker, child.pid), 60, "the private Ray's processes to exit")
    finally:
        child.kill()
        child.wait()
    # Nothing advertised the instance to other processes of this user.
    assert not list(short_tmp.glob("ray/ray_current_cluster"))
