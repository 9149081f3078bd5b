"""Where a sweep lives, resolved once, and atomic reads and writes there.

A storage path is a local folder or a URI that pyarrow understands (``s3://``,
``gs://``, ``file://``...). Local paths are made absolute before the sweep starts,
because Tune runs trials with their working directory changed. Our own files (the
scheduler state, the sweep's metadata, the best-config export) go through the same
filesystem layer as Ray's, so a shared store serves a cluster too.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from tuning.errors import UserError

DEFAULT_STORAGE = "results"
# A name is one folder, and a flag value: a leading '-' would read as a flag in the
# printed resume command, a leading '.' hides the folder.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
# Tune prefixes trial folder names and session files with it; file names stop at 255 bytes.
MAX_NAME_LENGTH = 100
# The layout of an experiment folder beside Tune's own files. Our state lives in a
# subfolder: Tune copies top-level *.json files on restore and syncs stale copies back.
SWEEP_FILE = "sweep/sweep.json"
ASHA_FILE = "sweep/asha_state.json"
BEST_FILE = "best_config.json"


def is_uri(path: str) -> bool:
    return "://" in path


def resolve_storage_path(path: str | os.PathLike[str]) -> str:
    """An absolute local path, or the URI as given."""
    text = os.fspath(path)
    return text if is_uri(text) else str(Path(text).expanduser().resolve())


@dataclass(frozen=True)
class Experiment:
    """One experiment (sweep) folder: ``<storage_path>/<name>``."""

    storage_path: str
    name: str

    @classmethod
    def at(cls, storage_path: str | os.PathLike[str], name: str) -> Experiment:
        """The experiment ``name`` in ``storage_path``; the name is one folder, never a path."""
        if len(name) > MAX_NAME_LENGTH:
            raise UserError(f"experiment name is {len(name)} characters long; use at most {MAX_NAME_LENGTH}")
        if not _NAME.fullmatch(name):
            raise UserError(
                f"experiment name {name!r} must be letters, digits, '.', '_' or '-', starting with a letter, digit or '_'"
            )
        return cls(resolve_storage_path(storage_path), name)

    @property
    def path(self) -> str:
        return f"{self.storage_path.rstrip('/')}/{self.name}"

    @property
    def is_local(self) -> bool:
        return not is_uri(self.storage_path)

    def file(self, *parts: str) -> str:
        return "/".join([self.path, *parts])

    def exists(self, *parts: str) -> bool:
        return exists(self.file(*parts))


def read_sweep_settings(exp: Experiment) -> dict[str, Any]:
    """The settings ``tuning.search`` saved for the experiment (``sweep/sweep.json``)."""
    if not exp.exists(SWEEP_FILE):
        raise UserError(f"no sweep named {exp.name!r} in {exp.storage_path} (no {SWEEP_FILE}); check --name and --storage-path")
    path = exp.file(SWEEP_FILE)
    try:
        doc = json.loads(read_text(path))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is corrupt ({e}); restore it from a backup, or rewrite it with the sweep's flags as JSON") from e
    if not isinstance(doc, dict):
        raise UserError(f"{path} must hold a JSON object of sweep settings, got {type(doc).__name__}; restore it from a backup")
    return doc


def load_stopped(state_path: str) -> dict[str, float]:
    """Trial ids ASHA stopped early, with the epoch; empty when no state was written."""
    if not exists(state_path):
        return {}
    return dict(json.loads(read_text(state_path)).get("stopped", {}))


def _fs(path: str) -> tuple[pafs.FileSystem, str]:
    if is_uri(path):
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), path


def exists(path: str) -> bool:
    fs, p = _fs(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def read_text(path: str) -> str:
    fs, p = _fs(path)
    with fs.open_input_stream(p) as f:
        return f.read().decode()


def _create_temporary(path: Path) -> tuple[int, str]:
    """A new hidden file beside ``path``, opened for writing.

    Created with mode 0666 less the umask, like any other file of the results
    (``tempfile.mkstemp`` would make it 0600, which the rename then keeps).
    """
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), str(tmp)
        except FileExistsError:
            continue


def write_atomic(path: str | Path, data: bytes | memoryview) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The bytes go to a temporary file in the same folder, are flushed to the disk and
    renamed over ``path``. On failure (a full disk, say) the temporary file is removed
    and the ``OSError`` names ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    return path


def write_text(path: str, text: str) -> None:
    """Write atomically: readers see the old file or the new one, never half of one."""
    if not is_uri(path):
        write_atomic(path, text.encode())
        return
    fs, p = _fs(path)
    fs.create_dir(p.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(p) as f:  # one PUT on object stores: atomic there
        f.write(text.encode())


def delete_dir(path: str) -> None:
    fs, p = _fs(path)
    if fs.get_file_info(p).type != pafs.FileType.NotFound:
        fs.delete_dir(p)
