"""One process at a time per sweep: a lock in the experiment folder (``sweep/lock.json``).

Two ``tuning.search`` processes writing one experiment interleave their trials and
their ``result.json`` lines, so the process that runs or resumes a sweep holds
this lock for as long as it runs, and a second one is refused with a message that
names the holder (host and pid). Which lock depends on the storage:

- **a local or NFS folder:** ``flock`` on ``sweep/lock.json``. The kernel (or
  the NFS server's lock manager) releases it when the holder dies, ``kill -9``
  included, so a killed sweep's lock is taken over at once; the file also names
  the holder, for the message.
- **an object store** (``s3://``): a lease object written with conditional
  writes: created with ``If-None-Match: *`` (only one creator succeeds), renewed
  by a heartbeat every :data:`LEASE_S`/4 seconds with ``If-Match`` on the last
  ETag (a holder that lost its lease notices and stops the sweep). A lease whose
  last renewal is older than :data:`LEASE_S` seconds, measured on the store's
  clock, is stale and taken over with ``If-Match``; one held by a process of this
  machine that no longer runs is taken over at once. Needs ``boto3``
  (``pip install 'tuning[s3]'``).
- **other URIs** (``gs://``, ``hdfs://``...): the same lease through pyarrow,
  which has no conditional writes: create-then-read-back, so two processes
  starting within the same second may both proceed. Prefer a local/NFS folder or
  S3 where that matters.
"""

from __future__ import annotations

import _thread
import contextlib
import fcntl
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow.fs as pafs

from tuning import storage
from tuning.errors import UserError
from tuning.storage import LOCK_FILE, Experiment

log = logging.getLogger(__name__)

LEASE_S = float(os.environ.get("TUNING_LOCK_LEASE_S", "60"))
"""Seconds without a heartbeat after which an object-store lease counts as abandoned."""


class SweepLockedError(UserError):
    """Another process holds the sweep's lock."""


def _machine() -> str:
    """This kernel boot and pid namespace: where a pid names the same process as here."""
    parts = []
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    with contextlib.suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/pid"))
    return "/".join(parts) or socket.gethostname()


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot: a reused pid has another."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@dataclass(frozen=True)
class Holder:
    """The process that holds a sweep's lock, as written into the lock."""

    host: str
    pid: int
    machine: str
    process_start: str | None
    since: str
    token: str

    @classmethod
    def me(cls) -> Holder:
        return cls(
            host=socket.gethostname(), pid=os.getpid(), machine=_machine(), process_start=_process_start(os.getpid()),
            since=time.strftime("%Y-%m-%dT%H:%M:%S%z"), token=secrets.token_hex(8),
        )  # fmt: skip

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            doc = json.loads(text)
            return cls(**{k: doc[k] for k in cls.__dataclass_fields__})
        except (ValueError, TypeError, KeyError):
            return None  # empty, torn or foreign: nobody we can name

    def dump(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host} (since {self.since})"

    def ended_here(self) -> bool:
        """True when the holder ran on this machine and that process no longer runs."""
        if self.machine != _machine():
            return False
        start = _process_start(self.pid)
        if start is not None:
            return start != self.process_start
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def _refusal(exp: Experiment, holder: Holder | None) -> SweepLockedError:
    who = holder.describe() if holder else "another process"
    return SweepLockedError(
        f"sweep {exp.name} in {exp.storage_path} is in use by {who}; wait for it to finish or stop it, then --resume"
    )


class SweepLock(Protocol):
    def acquire(self) -> None: ...

    def release(self) -> None: ...


@contextlib.contextmanager
def hold(exp: Experiment) -> Iterator[None]:
    """Hold ``exp``'s lock for the block.

    Raises:
        SweepLockedError: another live process holds it (the message names it).
    """
    lock = lock_for(exp)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def lock_for(exp: Experiment) -> SweepLock:
    """The lock that works on ``exp``'s storage (see the module docstring)."""
    if exp.is_local:
        return FileLock(exp, Path(exp.file(LOCK_FILE)))
    if exp.storage_path.startswith("s3://"):
        return LeaseLock(exp, S3Store(exp.file(LOCK_FILE)))
    return LeaseLock(exp, PyarrowStore(exp.file(LOCK_FILE)))


class FileLock:
    """``flock`` on a local (or NFS) file that also names the holder."""

    def __init__(self, exp: Experiment, path: Path) -> None:
        self.exp, self.path = exp, path
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create {self.path.parent}: {e.strerror or e}; pass a writable --storage-path") from e
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = Holder.parse(os.pread(fd, 1 << 16, 0).decode(errors="replace"))
                os.close(fd)
                raise _refusal(self.exp, holder) from None
            # A holder that released it in the meantime also unlinked the file: lock the new one.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = Holder.parse(os.pread(fd, 1 << 16, 0).decode(errors="replace"))
        if previous is not None:
            log.warning("taking over the lock of sweep %s from %s, which has ended", self.exp.name, previous.describe())
        os.ftruncate(fd, 0)
        os.pwrite(fd, Holder.me().dump(), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None
        # A sweep refused before it wrote anything leaves no folder behind.
        for folder in (self.path.parent, self.path.parent.parent):
            with contextlib.suppress(OSError):
                folder.rmdir()


@dataclass(frozen=True)
class Lease:
    holder: Holder | None
    etag: str
    age_s: float


class LeaseStore(Protocol):
    """One lease object with compare-and-swap writes; a tag of ``None`` means the swap lost."""

    def create(self, body: bytes) -> str | None: ...

    def read(self) -> Lease | None: ...

    def replace(self, etag: str, body: bytes) -> str | None: ...

    def delete(self, etag: str) -> None: ...


class LeaseLock:
    """A lease object renewed by a heartbeat thread; see the module docstring."""

    def __init__(self, exp: Experiment, store: LeaseStore, lease_s: float | None = None) -> None:
        self.exp, self.store = exp, store
        self.lease_s = LEASE_S if lease_s is None else lease_s
        self.holder = Holder.me()
        self._etag: str | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def acquire(self) -> None:
        for _ in range(3):  # a lease that vanishes or changes while we look: look again
            etag = self.store.create(self.holder.dump())
            if etag is None:
                lease = self.store.read()
                if lease is None:
                    continue
                stale = lease.age_s > self.lease_s or (lease.holder is not None and lease.holder.ended_here())
                if not stale:
                    raise _refusal(self.exp, lease.holder)
                etag = self.store.replace(lease.etag, self.holder.dump())
                if etag is None:
                    continue
                who = lease.holder.describe() if lease.holder else "an unknown process"
                log.warning("taking over the lock of sweep %s from %s (no heartbeat for %.0f s)", self.exp.name, who, lease.age_s)
            self._etag = etag
            self._beat = threading.Thread(target=self._heartbeat, name="sweep-lock-heartbeat", daemon=True)
            self._beat.start()
            return
        lease = self.store.read()
        raise _refusal(self.exp, lease.holder if lease else None)

    def renew(self) -> bool:
        """Renew the lease now; False when another process has taken it over."""
        assert self._etag is not None
        etag = self.store.replace(self._etag, self.holder.dump())
        if etag is None:
            return False
        self._etag = etag
        return True

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            try:
                renewed = self.renew()
            except OSError as e:  # the store is unreachable for now: the lease may still hold
                log.warning("cannot renew the lock of sweep %s: %s", self.exp.name, e)
                continue
            if not renewed:
                log.error("sweep %s: another process took over its lock; stopping this one", self.exp.name)
                _thread.interrupt_main()  # Tune stops as on Ctrl-C
                return

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        if self._etag is not None:
            with contextlib.suppress(OSError):
                self.store.delete(self._etag)
            self._etag = None


class S3Store:
    """The lease as an S3 object, with S3's conditional writes (``If-None-Match``, ``If-Match``).

    The endpoint, region and credentials come from the usual AWS settings
    (``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``...), as
    they do for pyarrow's S3 filesystem that Tune writes through.
    """

    _LOST = {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409", "404"}

    def __init__(self, uri: str) -> None:
        try:
            import boto3
        except ImportError as e:
            raise UserError("the sweep lock on s3:// storage needs boto3: pip install 'tuning[s3]'") from e
        self.bucket, _, self.key = uri.removeprefix("s3://").partition("/")
        self.client = boto3.client("s3")

    def _call(self, op: str, **kwargs: object) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, op)(Bucket=self.bucket, Key=self.key, **kwargs)
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code")) in self._LOST:
                return None
            raise OSError(f"s3://{self.bucket}/{self.key}: {e}") from e
        except BotoCoreError as e:
            raise OSError(f"s3://{self.bucket}/{self.key}: {e}") from e

    def create(self, body: bytes) -> str | None:
        done = self._call("put_object", Body=body, IfNoneMatch="*")
        return str(done["ETag"]) if done else None

    def read(self) -> Lease | None:
        got = self._call("get_object")
        if got is None:
            return None
        body = got["Body"].read()
        # Age on the store's clock: the response's Date against the object's Last-Modified.
        date = got["ResponseMetadata"]["HTTPHeaders"].get("date")
        now = email_date(date) if date else time.time()
        age = now - got["LastModified"].timestamp()
        return Lease(Holder.parse(body.decode(errors="replace")), str(got["ETag"]), age)

    def replace(self, etag: str, body: bytes) -> str | None:
        done = self._call("put_object", Body=body, IfMatch=etag)
        return str(done["ETag"]) if done else None

    def delete(self, etag: str) -> None:
        try:
            self._call("delete_object", IfMatch=etag)
        except OSError:  # a store without conditional deletes: look, then delete
            lease = self.read()
            if lease is not None and lease.etag == etag:
                self._call("delete_object")


def email_date(text: str) -> float:
    from email.utils import parsedate_to_datetime

    return parsedate_to_datetime(text).timestamp()


class PyarrowStore:
    """The lease through pyarrow on a store without conditional writes: best effort.

    The holder's token stands in for an ETag: create writes and reads back, replace
    and delete check the token first (not atomic, see the module docstring).
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri

    @staticmethod
    def _token(body: bytes) -> str:
        return str(json.loads(body)["token"])

    def create(self, body: bytes) -> str | None:
        if storage.exists(self.uri):
            return None
        storage.write_text(self.uri, body.decode())
        lease = self.read()  # creators in the same instant: the last write wins, the others see it
        return lease.etag if lease is not None and lease.etag == self._token(body) else None

    def read(self) -> Lease | None:
        fs, path = pafs.FileSystem.from_uri(self.uri)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            return None
        holder = Holder.parse(storage.read_text(self.uri))
        age = time.time() - info.mtime.timestamp() if info.mtime else 0.0
        return Lease(holder, holder.token if holder else "", age)

    def replace(self, etag: str, body: bytes) -> str | None:
        lease = self.read()
        if lease is None or lease.etag != etag:
            return None
        storage.write_text(self.uri, body.decode())
        return self._token(body)

    def delete(self, etag: str) -> None:
        lease = self.read()
        if lease is not None and lease.etag == etag:
            fs, path = pafs.FileSystem.from_uri(self.uri)
            fs.delete_file(path)
