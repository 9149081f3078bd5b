"""Every code example in README.md runs as written: a user going through the README top to bottom.

The ``python``, ``bash`` and ``yaml`` blocks run in README order in one workspace
folder that holds the data files the README names (``sensors.csv``, ``latest.csv``,
``counts.csv``, ``pems.npz``). Python blocks run as scripts in a fresh interpreter there, as in a
new notebook. Bash blocks run line by line; every command must match a rule of
:data:`COMMANDS`, which says how it runs:

- as written, apart from the budget :data:`SMALLER` cuts (appended flags win over
  earlier ones in argparse, so the command stays the README's);
- ``serve``: started, its address fetched, then stopped with Ctrl-C;
- ``skip``: not run here, with the reason (the install line is what CI's ``.ci/run``
  runs; ``pytest`` is this very run; a GPU command needs a GPU).

A README command no rule covers fails the test, so a new example gets a rule. The
commands join the session's Ray (``RAY_ADDRESS``) instead of each starting one.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import wait_for_line, write_csv
from support import ctrl_c_works

from tuning.sources import synthetic_traffic
from tuning.spaces import space_from_dict

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```\s*$", flags=re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    lang: str
    line: int
    code: str

    @property
    def id(self) -> str:
        return f"{self.lang}-line{self.line}"


def readme_blocks() -> list[Block]:
    text = README.read_text()
    return [Block(m.group(1), text.count("\n", 0, m.start()) + 1, m.group(2)) for m in _BLOCK.finditer(text)]


@dataclass(frozen=True)
class Rule:
    pattern: str  # re.match against the command (comments stripped)
    action: str  # "run", "serve" or "skip"
    why: str = ""


COMMANDS = (
    Rule(r"python3 -m venv \.venv && .*pip install", "skip", "the install itself: CI's .ci/run runs exactly this"),
    Rule(r"python -m pytest$", "skip", "the test suite: this test is part of it"),
    Rule(r"python -m pytest tests/", "skip", "tests of the suite this test is part of"),
    Rule(
        r"python -m tuning\.search .*--gpus-per-trial",
        "skip",
        "needs a GPU: tests/test_gpu.py and benchmarks/gpu_check.sh run it",
    ),
    Rule(r"python benchmarks/", "skip", "a benchmark: minutes to hours of sweeps, run by hand (benchmarks/README.md)"),
    *(
        Rule(pattern, "skip", "a multi-node Ray cluster: tests/test_cluster.py starts one with ray start on loopback")
        for pattern in (
            r"export RAY_AUTH_",
            r"ray (start|get-auth-token|job submit) ",
            r"python -m tuning\.search .*--address HEAD:",
        )
    ),
    Rule(r"python -m tuning\.dashboard ", "serve"),
    Rule(r"python -m tuning\.(search|export|train|analyze|predict)( |$)", "run"),
)
SMALLER = (
    # (a command matching this, flags appended to it): a few short trials and epochs
    (r"python -m tuning\.search(?!.*--resume)", "--num-samples 2 --max-epochs 1 --grace-period 1"),
    (r"python -m tuning\.search .*--resume --num-samples", "--num-samples 3"),
    (r"python -m tuning\.train ", "--max-epochs 1"),
    (r"python -m tuning\.dashboard ", "--port 0"),  # any free port, not 8080
)


def _commands(code: str) -> list[str]:
    out = []
    for line in code.splitlines():
        command = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if command:
            out.append(command)
    return out


def _rule(command: str) -> Rule:
    for rule in COMMANDS:
        if re.match(rule.pattern, command):
            return rule
    raise AssertionError(f"README command {command!r} matches no rule in tests/test_readme.py COMMANDS; add one")


def _smaller(command: str) -> str:
    extra = [flags for pattern, flags in SMALLER if re.match(pattern, command)]
    return " ".join([command, *extra])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, ray_cluster: str) -> dict[str, object]:
    """The folder a user runs the README in, with the data files it names."""
    folder = tmp_path_factory.mktemp("readme")
    series = synthetic_traffic(num_sensors=4, num_days=7, seed=1)
    write_csv(series, folder / "sensors.csv")
    write_csv(synthetic_traffic(num_sensors=3, num_days=7, seed=3), folder / "counts.csv")
    latest = synthetic_traffic(num_sensors=4, num_days=1, seed=2, start="2024-01-08")
    write_csv(latest, folder / "latest.csv")
    np.savez(folder / "pems.npz", data=np.stack([series.values, series.values * 0 + 1], axis=-1))
    # METR-LA's form: a to_hdf frame under "df", integer sensor ids, 0 for failed readings
    metr = pd.DataFrame(series.values, index=series.timestamps, columns=[773869, 767541, 767542, 717447])
    metr.iloc[100:112, 1] = 0.0
    metr.to_hdf(folder / "metr-la.h5", key="df")
    env = {**os.environ, "RAY_ADDRESS": ray_cluster, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    return {"folder": folder, "env": env}


def _run(command: list[str], workspace: dict[str, object], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable if command[0] in ("python", "python3") else command[0], *command[1:]]
    done = subprocess.run(argv, cwd=workspace["folder"], env=workspace["env"], capture_output=True, text=True, timeout=timeout)  # type: ignore[arg-type]
    assert done.returncode == 0, (
        f"{shlex.join(command)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    )
    return done


def _serve(command: list[str], workspace: dict[str, object]) -> None:
    proc = subprocess.Popen([sys.executable, *command[1:]], cwd=workspace["folder"], env=workspace["env"],  # type: ignore[arg-type]
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=ctrl_c_works)  # fmt: skip
    try:
        url = wait_for_line(proc, r"optuna-dashboard: (http://\S+)", 180)[0].group(1)
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0


@dataclass(frozen=True)
class Step:
    """One thing a reader runs: a python or yaml block, or one command of a bash block."""

    block: Block
    command: str | None = None  # bash only
    index: int = 0

    @property
    def id(self) -> str:
        if self.command is None:
            return self.block.id
        words = [w for w in self.command.split() if w not in ("python", "python3", "-m")]
        return f"{self.block.id}-{self.index}-{words[0] if words else ''}"


def readme_steps() -> list[Step]:
    steps = []
    for block in readme_blocks():
        if block.lang == "bash":
            steps.extend(Step(block, command, i) for i, command in enumerate(_commands(block.code), start=1))
        else:
            steps.append(Step(block))
    return steps


STEPS = readme_steps()


def test_the_readme_has_the_examples_this_test_expects() -> None:
    langs = {s.block.lang for s in STEPS}
    assert {"bash", "python", "yaml"} == langs, langs
    assert any("run_sweep(" in s.block.code for s in STEPS if s.block.lang == "python"), "the sweep-from-Python example"
    for step in STEPS:
        if step.command is not None:
            _rule(step.command)  # every command is covered by a rule


@pytest.mark.parametrize("step", STEPS, ids=[s.id for s in STEPS])
def test_readme_example_runs_as_written(step: Step, workspace: dict[str, object]) -> None:
    block = step.block
    if block.lang == "yaml":
        space = space_from_dict(yaml.safe_load(block.code), f"README.md line {block.line}", name="readme")
        assert space.parameters
    elif block.lang == "python":
        script = Path(workspace["folder"]) / f"block_{block.line}.py"  # type: ignore[arg-type]
        script.write_text(block.code)
        _run(["python", script.name], workspace)
    else:
        assert step.command is not None
        rule = _rule(step.command)
        if rule.action == "skip":
            pytest.skip(f"{step.command!r} is not run here: {rule.why}")
        argv = shlex.split(_smaller(step.command))
        if rule.action == "serve":
            _serve(argv, workspace)
        else:
            _run(argv, workspace)


def test_the_readme_workspace_holds_what_the_examples_made(workspace: dict[str, object]) -> None:
    """After the blocks: the sweeps, models and forecasts the README says they make."""
    folder = Path(workspace["folder"])  # type: ignore[arg-type]
    for made in ("results/mine/best_config.json", "results/mine/final/model.pt", "results/mine/optuna.db",
                 "results/notebook/learning_curves.png", "results/counts/model.pt", "forecasts.csv"):  # fmt: skip
        assert (folder / made).is_file(), made
    mine = pd.read_csv(folder / "results/mine/trials.csv")
    assert len(mine) == 3  # 2 trials, then --resume --num-samples grew it by one
    assert len(pd.read_csv(folder / "forecasts.csv").columns) == 4
