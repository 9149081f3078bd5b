"""Our own result files: atomic writes with the same permissions as every other result file."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tuning import storage


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_get_the_permissions_of_any_other_file(tmp_path: Path, umask: int) -> None:
    plain = tmp_path / "result.json"
    plain.write_text("{}")  # as Tune writes its files
    ours = tmp_path / "sweep" / "sweep.json"
    storage.write_text(str(ours), '{"a": 1}')
    assert ours.read_text() == '{"a": 1}'
    assert _mode(ours) == _mode(plain) == 0o666 & ~umask
    storage.write_text(str(ours), '{"a": 2}')  # replacing keeps them
    assert _mode(ours) == 0o666 & ~umask
    assert [p.name for p in ours.parent.iterdir()] == ["sweep.json"]  # no temporary file left


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "best_config.json"
    storage.write_text(str(target), "old")

    with pytest.raises(TypeError):
        storage.write_atomic(target, 42)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["best_config.json"]
