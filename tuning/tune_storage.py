"""Tune's files on local storage written whole, so that a ``kill -9`` never leaves half a snapshot.

Tune (Ray 2.60) writes its experiment snapshot, ``experiment_state-<session>.json``
(every trial's status and registered checkpoints, what ``Tuner.restore`` reads), into a
staging folder with a plain ``open(path, "w")``; a background thread then copies the
whole staging folder to storage with pyarrow's ``copy_files``, which rewrites each file
in place. Within a session that one file is rewritten at every snapshot (only earlier
sessions' files stay), so the copy on storage is torn, empty or cut short, when

* the process is killed while the copy writes it, or
* the copy reads the staged file while the next snapshot rewrites it (no kill needed:
  it stays torn until the next copy, and a kill in between leaves it so).

``--resume`` then fails on it, or Tune abandons the restore and starts the sweep over
("Restarting experiment"), running finished trials again.

:func:`tune_filesystem` is the storage filesystem Tune gets for a local (or NFS)
storage path: pyarrow's local filesystem, except that every file it writes appears by
a rename once whole, and a snapshot that does not parse is not written at all, so the
last complete one stays. Each complete snapshot is also kept beside it as
``<name>.good``, from which :func:`repair_torn_snapshot` puts back a snapshot torn by
other means (a sweep written before this module, a copy tool) before Tune reads it.

Object stores (``s3://``) keep Tune's own filesystem: an upload replaces an object
whole there, but a copy of a torn staged file is not caught.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from tuning.errors import DISK_FULL_ERRNOS, DiskFullError
from tuning.storage import Experiment, _create_temporary, write_atomic

log = logging.getLogger(__name__)

GOOD_SUFFIX = ".good"
"""Suffix of the kept copy of each complete snapshot (Tune restores from neither ``*.good`` nor hidden files)."""


def is_snapshot(name: str) -> bool:
    """Whether a file name is one of Tune's experiment snapshots."""
    return name.startswith("experiment_state-") and name.endswith(".json")


def is_complete(data: bytes) -> bool:
    """Whether snapshot bytes hold one whole JSON document with Tune's trial list."""
    try:
        doc = json.loads(data)
    except ValueError:  # JSON and Unicode errors alike
        return False
    return isinstance(doc, dict) and isinstance(doc.get("trial_data"), list)


class _WholeFile:
    """A write-only file that becomes ``path`` by a rename when closed, and not before.

    A snapshot is held in memory and written only when it parses (with its ``.good``
    copy); any other file streams into a hidden temporary file beside ``path``. A
    process killed before ``close`` leaves ``path`` as it was.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.closed = False
        self._snapshot = is_snapshot(self.path.name)
        self._chunks: list[bytes] = []
        self._tmp: str | None = None
        self._file: Any = None
        if not self._snapshot:
            fd, self._tmp = _create_temporary(self.path)
            self._file = os.fdopen(fd, "wb")

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        if self._snapshot:
            self._chunks.append(chunk)
            return len(chunk)
        try:
            self._file.write(chunk)
        except OSError as e:
            if e.errno in DISK_FULL_ERRNOS:  # name the file: a trial's error line then says where
                raise DiskFullError(str(self.path)) from e
            raise
        return len(chunk)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._snapshot:
            data = b"".join(self._chunks)
            if not is_complete(data):
                # Read from the staging folder while Tune rewrote it; the next copy brings it whole.
                log.debug("not writing a torn copy of %s (%d bytes); the last complete one stays", self.path, len(data))
                return
            write_atomic(self.path.with_name(self.path.name + GOOD_SUFFIX), data)
            write_atomic(self.path, data)
            return
        assert self._tmp is not None
        try:
            self._file.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            Path(self._tmp).unlink(missing_ok=True)
            raise

    def __del__(self) -> None:
        # Dropped unclosed (the copy failed half-way): ``path`` stays as it was.
        if not self.closed and self._tmp is not None:
            self._file.close()
            Path(self._tmp).unlink(missing_ok=True)


class WholeFileHandler(pafs.FileSystemHandler):
    """pyarrow's local filesystem whose written files appear whole (see the module doc)."""

    def __init__(self) -> None:
        self._fs = pafs.LocalFileSystem()

    def __reduce__(self) -> tuple[type[WholeFileHandler], tuple[()]]:
        return (WholeFileHandler, ())  # Tune pickles the filesystem into tuner.pkl and to the trials

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WholeFileHandler)

    def __hash__(self) -> int:
        return hash(WholeFileHandler)

    def get_type_name(self) -> str:
        return "local"

    def normalize_path(self, path: str) -> str:
        return str(self._fs.normalize_path(path))

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return list(self._fs.get_file_info(paths))

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return list(self._fs.get_file_info(selector))

    def create_dir(self, path: str, recursive: bool) -> None:
        self._fs.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self._fs.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self._fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("refusing to delete the contents of the root folder")

    def delete_file(self, path: str) -> None:
        self._fs.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self._fs.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self._fs.copy_file(src, dest)

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self._fs.open_input_stream(path)

    def open_input_file(self, path: str) -> pa.NativeFile:
        return self._fs.open_input_file(path)

    def open_output_stream(self, path: str, metadata: Any) -> pa.NativeFile:
        return pa.PythonFile(_WholeFile(path), mode="w")

    def open_append_stream(self, path: str, metadata: Any) -> pa.NativeFile:
        return self._fs.open_append_stream(path)


def tune_filesystem(exp: Experiment) -> pafs.FileSystem | None:
    """The storage filesystem to give Tune (``RunConfig`` and ``Tuner.restore``); None: Tune's own."""
    return pafs.PyFileSystem(WholeFileHandler()) if exp.is_local else None


def readable(fs: pafs.FileSystem) -> pafs.FileSystem:
    """``fs`` to read through: pyarrow's local filesystem in place of :func:`tune_filesystem`'s.

    Tune's ``Checkpoint.as_directory`` reads a checkpoint on a local filesystem where it
    lies, but copies it into a temporary folder first from any other.
    """
    if isinstance(fs, pafs.PyFileSystem) and isinstance(fs.handler, WholeFileHandler):
        return pafs.LocalFileSystem()
    return fs


def repair_torn_snapshot(exp: Experiment) -> None:
    """Before a resume: put back the newest snapshot from its complete copy when it is torn.

    One warning line when it does. Without a complete copy the torn snapshot stays, and
    the resume is refused in one line when the snapshot is read.
    """
    if not exp.is_local:
        return
    states = sorted(Path(exp.path).glob("experiment_state-*.json"))
    if not states:
        return
    newest = states[-1]
    data = newest.read_bytes()
    if is_complete(data):
        return
    good = newest.with_name(newest.name + GOOD_SUFFIX)
    kept = good.read_bytes() if good.is_file() else b""
    if not is_complete(kept):
        return
    write_atomic(newest, kept)
    log.warning("Tune's snapshot %s was torn (%d bytes); resuming from its last complete copy %s", newest, len(data), good.name)
