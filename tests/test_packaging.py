"""A built wheel carries everything a user needs, the search spaces included."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from test_scripts import console_scripts

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.name for p in (ROOT / "search_spaces").glob("*.yaml"))


@pytest.mark.slow
def test_wheel_ships_the_search_spaces_and_an_install_finds_them(tmp_path: Path) -> None:
    # Build from a copy, so the checkout gains no build/ or egg-info folders.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("tuning", "search_spaces"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)], check=True)
    (wheel,) = (tmp_path / "dist").glob("tuning-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert SHIPPED and all(f"tuning/search_spaces/{name}" in names for name in SHIPPED)

    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    check = (
        "import tuning, sys; from tuning.spaces import SPACES_DIR, find_space, load_space; "
        f"assert tuning.__file__.startswith({str(site)!r}), tuning.__file__; "
        "print(SPACES_DIR); [load_space(find_space(n)) for n in sys.argv[1:]]"
    )
    names = [Path(n).stem for n in SHIPPED]
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", check, *names], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(site / "tuning" / "search_spaces")

    # the console scripts are installed and name themselves in their help
    for script, target in console_scripts().items():
        if not (site / (target.split(":")[0].replace(".", "/") + ".py")).is_file():
            continue  # a command another branch adds (tests/test_scripts.py says which)
        shown = subprocess.run([str(site / "bin" / script), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert shown.returncode == 0, shown.stderr[-2000:]
        assert shown.stdout.startswith(f"usage: {script} "), shown.stdout[:200]
