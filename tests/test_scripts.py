"""Console scripts: one per command, each naming itself in its help and errors."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def console_scripts() -> dict[str, str]:
    """pyproject.toml's ``[project.scripts]``: script name -> ``module:function``.

    Read with a pattern rather than tomllib, which Python 3.10 (supported) lacks.
    """
    text = (ROOT / "pyproject.toml").read_text()
    section = re.search(r"^\[project\.scripts\]\n(.*?)(?=^\[)", text, flags=re.MULTILINE | re.DOTALL)
    assert section, "pyproject.toml has no [project.scripts]"
    return dict(re.findall(r'^([\w-]+)\s*=\s*"([\w.:]+)"', section.group(1), flags=re.MULTILINE))


SCRIPTS = console_scripts()
COMMANDS = sorted(
    p.stem for p in (ROOT / "tuning").glob("*.py") if "def main(" in (text := p.read_text()) and '__name__ == "__main__"' in text
)

pytestmark = pytest.mark.usefixtures("restore_tuning_logger")


def test_every_command_has_a_console_script() -> None:
    assert COMMANDS, "no command modules found"
    for command in COMMANDS:
        assert SCRIPTS.get(f"tuning-{command}") == f"tuning.{command}:main", f"no console script for tuning.{command}"
    for script, target in SCRIPTS.items():
        assert script == f"tuning-{target.split(':')[0].rsplit('.', 1)[-1]}", f"{script} -> {target}: name and module differ"


def _main(target: str):  # type: ignore[no-untyped-def]
    module, func = target.split(":")
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not in this checkout yet (another branch adds it)")
    return getattr(importlib.import_module(module), func)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_names_the_console_script(script: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    main = _main(SCRIPTS[script])
    monkeypatch.setattr(sys, "argv", [f"/some/venv/bin/{script}", "--help"])
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {script} ")
    # a bad flag is refused in one line that names the script too
    with pytest.raises(SystemExit) as bad:
        main(["--no-such-flag"])
    assert bad.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{script}: error: ") and err.count("\n") == 1


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_under_python_m_names_the_module(
    script: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    main = _main(SCRIPTS[script])
    module = SCRIPTS[script].split(":")[0]
    # python -m sets argv[0] to the module's file
    monkeypatch.setattr(sys, "argv", [str(ROOT / (module.replace(".", "/") + ".py")), "--help"])
    with pytest.raises(SystemExit):
        main(["--help"])
    assert capsys.readouterr().out.startswith(f"usage: python -m {module} ")


def test_printed_commands_follow_the_way_it_was_started(monkeypatch: pytest.MonkeyPatch) -> None:
    from tuning.search import next_steps
    from tuning.storage import Experiment

    exp = Experiment.at("/tmp/sweeps", "mine")
    monkeypatch.setattr(sys, "argv", ["/venv/bin/tuning-search"])
    assert "  tuning-analyze --name mine" in next_steps(exp)
    assert "  tuning-train --config /tmp/sweeps/mine/best_config.json" in next_steps(exp)
    monkeypatch.setattr(sys, "argv", ["/x/tuning/search.py"])
    assert "  python -m tuning.analyze --name mine" in next_steps(exp)
