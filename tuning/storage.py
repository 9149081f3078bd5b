"""Where a sweep lives, resolved once, and atomic reads and writes there.

A storage path is a local folder or a URI that pyarrow understands (``s3://``,
``gs://``, ``file://``...). Local paths are made absolute before the sweep starts,
because Tune runs trials with their working directory changed. Our own files (the
scheduler state, the sweep's metadata, the best-config export) go through the same
filesystem layer as Ray's, so a shared store serves a cluster too.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from tuning.errors import DISK_FULL_ERRNOS, DiskFullError, UserError

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
LOCK_FILE = "sweep/lock.json"  # held by the process running the sweep (tuning.lock)


def is_uri(path: str) -> bool:
    return "://" in path


def resolve_storage_path(path: str | os.PathLike[str]) -> str:
    """An absolute local path (``file://`` URIs included), or the URI as given."""
    text = os.fspath(path)
    if text.startswith("file://"):
        text = text.removeprefix("file://")
    return text if is_uri(text) else str(Path(text).expanduser().resolve())


PROBE_TIMEOUT_S = float(os.environ.get("TUNING_STORAGE_TIMEOUT_S", "30"))
"""How long remote storage may take to answer the first request."""
_PROBE = """
import json, sys
import pyarrow.fs as pafs
def say(kind, e=None, **more):
    text = str(e).strip().splitlines()[0] if e is not None and str(e).strip() else type(e).__name__
    print(json.dumps({"kind": kind, "detail": text, **more})); sys.exit(1)
try:
    fs, path = pafs.FileSystem.from_uri(sys.argv[1])
except OSError as e:  # S3 asks the network for the bucket's region already
    say("unreachable", e)
except Exception as e:
    say("unsupported", e)
bucket = path.split("/", 1)[0] if fs.type_name in ("s3", "gcs") else None
try:
    info = fs.get_file_info(bucket or path)
except Exception as e:
    say("unreachable", e)
if bucket and info.type == pafs.FileType.NotFound:
    say("no-bucket", bucket=bucket)
"""


def check_reachable(uri: str, timeout: float | None = None) -> None:
    """Refuse a storage URI that pyarrow cannot open or that does not answer, in one line.

    The first request runs in a child process: one to an endpoint that never
    answers would otherwise keep this process from exiting until pyarrow's own
    timeout (about 100 s), even after the error is reported.
    """
    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, uri], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise UserError(
            f"storage {uri} did not answer within {timeout:g} s; check the URI, the network and the credentials"
        ) from None
    if done.returncode == 0:
        return
    try:
        problem = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        problem = {"kind": "unreachable", "detail": (done.stderr.strip().splitlines() or ["no answer"])[-1]}
    if problem["kind"] == "unsupported":
        raise UserError(f"--storage-path {uri}: {problem['detail']}; use a local folder or a URI such as s3://bucket/prefix")
    if problem["kind"] == "no-bucket":
        raise UserError(f"--storage-path {uri}: bucket {problem['bucket']!r} does not exist; create it first")
    raise UserError(f"cannot reach storage {uri}: {problem['detail']}; check the URI, the network and the credentials")


@dataclass(frozen=True)
class Experiment:
    """One experiment (sweep) folder: ``<storage_path>/<name>``."""

    storage_path: str
    name: str

    @classmethod
    def at(cls, storage_path: str | os.PathLike[str], name: str) -> Experiment:
        """The experiment ``name`` in ``storage_path``; the name is one folder, never a path.

        Remote storage is checked to answer first (:func:`check_reachable`).
        """
        if len(name) > MAX_NAME_LENGTH:
            raise UserError(f"experiment name is {len(name)} characters long; use at most {MAX_NAME_LENGTH}")
        if not _NAME.fullmatch(name):
            raise UserError(
                f"experiment name {name!r} must be letters, digits, '.', '_' or '-', starting with a letter, digit or '_'"
            )
        resolved = resolve_storage_path(storage_path)
        if is_uri(resolved):
            check_reachable(resolved)
        return cls(resolved, name)

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


def file_size(path: str) -> int | None:
    """The size of the file ``path`` in bytes; None when there is no such file."""
    fs, p = _fs(path)
    info = fs.get_file_info(p)
    return info.size if info.type == pafs.FileType.File else None


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


DISK_FULL_FAULT_ENV = "TUNING_FAULT_ENOSPC"
"""Fault injection for the disk-full tests: ``PATTERN`` or ``PATTERN@N`` makes the N-th (default:
the first) and every later write to a path containing ``PATTERN`` fail with ENOSPC, in each
process that has the variable. A real full disk cannot be made portably on CI."""
_fault_writes: dict[str, int] = {}


def _injected_disk_full(path: Path) -> None:
    spec = os.environ.get(DISK_FULL_FAULT_ENV)
    if not spec:
        return
    pattern, _, nth = spec.partition("@")
    if pattern in str(path):
        _fault_writes[spec] = seen = _fault_writes.get(spec, 0) + 1
        if seen >= int(nth or 1):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def write_atomic(path: str | Path, data: bytes | memoryview) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The bytes go to a temporary file in the same folder, are flushed to the disk and
    renamed over ``path``. On failure the temporary file is removed and the ``OSError``
    names ``path``; a full disk (or quota) raises :class:`DiskFullError` (one line).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temporary(path)
    except OSError as e:
        if e.errno in DISK_FULL_ERRNOS:
            raise DiskFullError(str(path)) from e
        raise
    try:
        with os.fdopen(fd, "wb") as f:
            _injected_disk_full(path)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
            raise DiskFullError(str(path)) from e
        if isinstance(e, OSError) and e.filename is None:
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    return path


def write_bytes(path: str, data: bytes) -> None:
    """Write atomically: readers see the old file or the new one, never half of one."""
    if not is_uri(path):
        write_atomic(path, data)
        return
    fs, p = _fs(path)
    fs.create_dir(p.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(p) as f:  # one PUT on object stores: atomic there
        f.write(data)


def write_text(path: str, text: str) -> None:
    """Write atomically: readers see the old file or the new one, never half of one."""
    write_bytes(path, text.encode())


def list_names(path: str) -> list[str]:
    """The names of the entries directly in the folder ``path``; none when it does not exist."""
    fs, p = _fs(path)
    infos = fs.get_file_info(pafs.FileSelector(p, allow_not_found=True))
    return sorted(info.base_name for info in infos)


# What reading a sweep needs (Tune's experiment state, our sweep/ folder, each trial's
# results and parameters), and not the checkpoints.
_VIEW_FILES = re.compile(r"[^/]+\.json|sweep/[^/]+|[^/]+/(result\.json|params\.json|progress\.csv|error\.txt)")


@contextlib.contextmanager
def local_view(path: str) -> Iterator[Path]:
    """An experiment folder as a local folder, to read with pandas and plot.

    A local folder is itself. From remote storage, the files reading a sweep needs
    (not the checkpoints) are copied into a temporary folder, removed afterwards.
    """
    if not is_uri(path):
        yield Path(path)
        return
    fs, root = _fs(path)
    root = root.rstrip("/")
    with tempfile.TemporaryDirectory(prefix="tuning-view-") as tmp:
        for info in fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True)):
            relative = info.path[len(root) + 1 :]
            if info.type == pafs.FileType.File and _VIEW_FILES.fullmatch(relative):
                target = Path(tmp, relative)
                target.parent.mkdir(parents=True, exist_ok=True)
                with fs.open_input_stream(info.path) as f:
                    target.write_bytes(f.read())
        yield Path(tmp)


def delete_dir(path: str) -> None:
    fs, p = _fs(path)
    if fs.get_file_info(p).type != pafs.FileType.NotFound:
        fs.delete_dir(p)


def delete_file(path: str) -> None:
    """Remove the file ``path`` if it is there."""
    fs, p = _fs(path)
    if fs.get_file_info(p).type == pafs.FileType.File:
        fs.delete_file(p)
