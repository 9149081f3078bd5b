"""Our own result files: atomic writes with the same permissions as every other result file."""

from __future__ import annotations

import errno
import os
import pickle
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tuning import storage
from tuning.cli import run_main
from tuning.errors import DiskFullError, disk_full


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


def test_a_full_disk_is_one_line_keeps_the_old_file_and_travels_between_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "asha_state.json"
    storage.write_text(str(target), "old")
    monkeypatch.setenv(storage.DISK_FULL_FAULT_ENV, "asha_state.json@2")  # the 2nd write and later
    storage.write_text(str(target), "new")
    with pytest.raises(DiskFullError) as info:
        storage.write_text(str(target), "newer")
    assert str(info.value) == f"disk full while writing {target}: free space on it and run again"
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC  # handlers of failed writes still catch it
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["asha_state.json"]  # no temporary file left
    # A trial's error reaches the driver pickled, wrapped by Ray: still found, still one line.
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value)
    try:
        raise RuntimeError("Tune: the trial failed") from OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/x/state.pt")
    except RuntimeError as wrapped:
        found = disk_full(wrapped)
    assert found is not None and found.path == "/x/state.pt"
    assert disk_full(RuntimeError("another error")) is None


def test_a_full_disk_under_any_command_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Where no command said more (pandas writing a table, matplotlib a plot): one line, exit 2; --debug: the traceback."""

    def body() -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/results/mine/trials.parquet")

    assert run_main(body, prog="python -m tuning.analyze", debug=False) == 2
    assert capsys.readouterr().err == (
        "python -m tuning.analyze: error: disk full while writing /results/mine/trials.parquet: free space on it and run again\n"
    )
    with pytest.raises(OSError):
        run_main(body, prog="python -m tuning.analyze", debug=True)
    with pytest.raises(ValueError):  # other errors are bugs: their traceback stays
        run_main(lambda: int("x"), prog="python -m tuning.analyze", debug=False)
