"""The Ray a sweep runs on: an existing cluster, or a private local instance that dies with the sweep.

``ray.init()`` without an address joins whatever cluster the ``ray_current_cluster``
file in Ray's shared temporary folder names, a folder every local user can write,
and a plain ``ray.init(address="local")`` leaves some of its processes running when
its driver is killed with ``kill -9``. So without ``--address`` (or ``RAY_ADDRESS``)
the sweep starts its own Ray in a small keeper process (``python -m
tuning.ray_runtime``) that

- starts the instance as ``ray.init(address="local")`` would (never reads nor
  writes ``ray_current_cluster``), with token authentication on, a token made for
  this instance alone and passed on through the environment (no token file is
  written), but without joining it as a driver, an autoscaler or a dashboard;
- runs in a process group and session of its own, so Ctrl-C in the terminal
  reaches the sweep, which stops Tune cleanly, and not Ray underneath it;
- reads its stdin, a pipe from the sweep process: end of file means that process
  ended, however it ended (``kill -9`` included). It then shuts Ray down, kills
  whatever is left of its process group, and removes the copies of the
  experiment Tune staged in the instance's session folder (``artifacts/``).

With an address, the sweep joins that cluster; an address that does not answer
is refused after a connect timeout rather than retried for many minutes.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

from tuning.errors import UserError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = float(os.environ.get("TUNING_RAY_CONNECT_TIMEOUT_S", "10"))
"""How long an ``--address`` may take to accept a connection."""
START_TIMEOUT_S = float(os.environ.get("TUNING_RAY_START_TIMEOUT_S", "180"))
"""How long a private local instance may take to start (a busy 2-core machine needs ~20 s)."""
_REGISTER_TIMEOUT_S = 30.0  # what Ray gives its raylet to register (ray._private.node)
_STOP_GRACE_S = 3.0
_LOCAL = ("", "local")
_RAY_INIT: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING, "configure_logging": True}


@dataclass
class RayRuntime:
    """The Ray this process is connected to; ``close()`` disconnects (and stops a private one)."""

    address: str
    private: bool
    keeper: subprocess.Popen[bytes] | None = None
    added_env: tuple[str, ...] = ()  # set for a private Ray's token; removed again on close

    def close(self) -> None:
        import ray

        ray.shutdown()
        if self.keeper is not None:
            _stop_keeper(self.keeper)
            self.keeper = None
        if self.added_env:
            for key in self.added_env:
                os.environ.pop(key, None)
            _reload_ray_auth_settings()
            self.added_env = ()


def connect(address: str | None, meanwhile: Callable[[], object] | None = None) -> RayRuntime:
    """Join the cluster at ``address`` (else ``$RAY_ADDRESS``), or start a private local Ray.

    Args:
        address: a cluster's address; None or "" for a private local Ray.
        meanwhile: work for this process while a private Ray starts in others (the sweep
            imports Ray Tune then: a few seconds that would otherwise follow the start).

    Raises:
        UserError: the cluster does not answer, refuses us, or a local Ray cannot start.
    """
    address = (address if address is not None else os.environ.get("RAY_ADDRESS", "")).strip()
    if address in _LOCAL:
        return _start_private(meanwhile)
    if meanwhile is not None:
        meanwhile()
    _probe(address)
    _init(address, f"the Ray cluster at {address}")
    return RayRuntime(address=address, private=False)


def _probe(address: str) -> None:
    """Refuse an address nothing listens on at once; Ray itself would retry for ~15 minutes."""
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise UserError(
            f"cannot reach the Ray cluster at {address} ({why} within {CONNECT_TIMEOUT_S:g} s); "
            "check --address / RAY_ADDRESS, or leave both unset for a local Ray"
        ) from e


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    """Set environment variables for a block, unless the user set them already."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def _init(address: str, where: str) -> None:
    import ray
    from ray.exceptions import AuthenticationError

    try:
        # One round of GCS connection attempts (~40 s) instead of 20.
        with _env(RAY_gcs_server_port_wait_time_s="1"):
            ray.init(address=address, **_RAY_INIT)
    except AuthenticationError as e:
        raise UserError(
            f"{where} refused the connection ({_first_line(e)}); it uses token authentication: "
            "set RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH"
        ) from e
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
        hint = "check --address / RAY_ADDRESS"
        if os.environ.get("RAY_AUTH_MODE") != "token":
            hint += "; a cluster with token authentication also needs RAY_AUTH_MODE=token and RAY_AUTH_TOKEN(_PATH)"
        raise UserError(f"cannot connect to {where}: {_first_line(e)}; {hint}") from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _start_private(meanwhile: Callable[[], object] | None = None) -> RayRuntime:
    # Token authentication with a token for this instance only, unless the user chose
    # a mode (RAY_AUTH_MODE) or a token already. This process keeps the variables so
    # that it can connect; the keeper and Ray's processes inherit them.
    added: dict[str, str] = {}
    if "RAY_AUTH_MODE" not in os.environ:
        added["RAY_AUTH_MODE"] = "token"
        if not os.environ.get("RAY_AUTH_TOKEN") and not os.environ.get("RAY_AUTH_TOKEN_PATH"):
            added["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
        os.environ.update(added)
        _reload_ray_auth_settings()
    keeper = subprocess.Popen(
        [sys.executable, "-m", "tuning.ray_runtime"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert keeper.stdout is not None
    if meanwhile is not None:
        try:
            meanwhile()
        except BaseException:
            keeper.terminate()  # the keeper stops the processes it started so far
            RayRuntime("", private=True, keeper=keeper, added_env=tuple(added)).close()
            raise
    line = _read_line(keeper.stdout, START_TIMEOUT_S)
    try:
        ready = json.loads(line) if line else {}
    except json.JSONDecodeError:
        ready = {}
    if "address" not in ready:
        RayRuntime("", private=True, keeper=keeper, added_env=tuple(added)).close()
        why = ready.get("error") or ("no answer" if not line else line.strip()[:200])
        raise UserError(f"cannot start a local Ray: {why}")
    keeper.stdout.close()
    runtime = RayRuntime(address=ready["address"], private=True, keeper=keeper, added_env=tuple(added))
    try:
        _init(runtime.address, "the local Ray")
    except BaseException:
        runtime.close()
        raise
    return runtime


def _reload_ray_auth_settings() -> None:
    """Make this process see the RAY_AUTH_* variables set after Ray was imported.

    Ray caches its settings and the token when ``ray`` is imported; its own
    ``_enable_token_auth`` re-reads them the same way (private API of Ray 2.60,
    exercised by every test that starts a sweep without ``--address``).
    """
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _read_line(stream: IO[bytes], timeout: float) -> str:
    """One line from ``stream``, or '' after ``timeout`` seconds or at its end."""
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return out[0].decode(errors="replace") if out else ""


def _stop_keeper(keeper: subprocess.Popen[bytes]) -> None:
    """Close the keeper's stdin, its signal to stop Ray; kill its process group if it hangs."""
    if keeper.stdin is not None:
        keeper.stdin.close()
    try:
        keeper.wait(timeout=60)
    except subprocess.TimeoutExpired:
        log.warning("the local Ray (keeper pid %d) did not stop within 60 s; killing it", keeper.pid)
        with contextlib.suppress(OSError):
            os.killpg(keeper.pid, signal.SIGKILL)
        keeper.wait()


# ---------------------------------------------------------------- the keeper process


def _become_subreaper() -> None:
    """Adopt orphaned descendants (Ray's agents outlive the raylet), so they can be reaped."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid`` other than this one (Linux ``/proc``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def _kill_group() -> None:
    """Stop every other process of this keeper's group: SIGTERM, a grace period, SIGKILL."""
    pgid = os.getpgrp()
    if not Path("/proc/self/stat").exists():  # not Linux: the group signal reaches this process too
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGTERM)
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + _STOP_GRACE_S
        members = _group_members(pgid)
        for pid in members:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        while members and time.monotonic() < deadline:
            _reap()
            time.sleep(0.05)
            members = _group_members(pgid)
    _reap()


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _start_node(quick: bool = True) -> Any:
    """Start this machine's Ray processes as ``ray.init(address="local")`` would, without joining as a driver.

    The keeper is no driver: no job of its own whose prestarted workers would sit idle
    (Ray prestarts a worker per CPU for the first driver to connect: now the sweep, whose
    trials use them), no core worker, no log and error listeners. No autoscaler monitor
    either (nothing to scale on one machine), no dashboard and no API server: three fewer
    Python processes importing Ray while the sweep waits. Ray 2.60's internals, as ``ray.init``
    and ``ray start`` use them (``ray._private.node.Node``); every sweep without ``--address``
    runs through here, and tests/test_ray_runtime.py kills one with ``kill -9``. ``quick=False``
    starts Ray's own ``Node`` instead, for ``benchmarks/bench_ray_start.py``'s comparison.
    """
    from ray._common.usage import usage_lib
    from ray._private.authentication.authentication_token_setup import (
        enable_token_auth_by_default,
        ensure_token_if_auth_enabled,
    )
    from ray._private.node import Node
    from ray._private.parameter import RayParams

    system_config: dict[str, Any] = {}
    # What ray.init does for a new local cluster: token authentication unless
    # RAY_AUTH_MODE says otherwise, and no usage statistics.
    enable_token_auth_by_default()
    ensure_token_if_auth_enabled(system_config, create_token_if_missing=True)
    usage_lib.set_usage_stats_enabled_via_env_var(False)
    # Ray prestarts a worker per CPU for the first driver, but Tune's trial actors carry a
    # runtime environment of their own and start their own workers: those would only
    # compete with them for the CPUs.
    system_config["prestart_worker_first_driver"] = False
    params = RayParams(include_dashboard=False, no_monitor=True, num_cpus=_usable_cpus(), _system_config=system_config)

    class QuickNode(Node):
        """Ray's node, ready ~1.5 s sooner on 2 cores (``benchmarks/bench_ray_start.py``)."""

        def start_api_server(self, *, include_dashboard: bool | None, raise_on_failure: bool) -> None:
            """No API server. Without the dashboard it loads only the usage-statistics module,
            and usage statistics are off; yet Ray waits for it to come up before it starts the
            raylet (~1 s)."""

        def start_ray_processes(self) -> None:
            """Then wait for the raylet to register, asking every 20 ms. Ray's own check that
            follows took 2.0 s every time measured, whenever the registration came (1.4-1.9 s):
            it waits in whole seconds."""
            from ray.exceptions import RpcError

            super().start_ray_processes()
            deadline = time.monotonic() + _REGISTER_TIMEOUT_S
            client = self.get_gcs_client()
            while time.monotonic() < deadline:
                try:
                    if any(node_id.hex() == self._node_id for node_id in client.get_all_node_info(timeout=5)):
                        return
                except (RpcError, TimeoutError):  # a GCS slow to answer on a busy machine: ask again
                    pass
                time.sleep(0.02)
            # Not registered: Ray's own check that follows says so.

    # ray_init_cluster: the instance is not advertised in ray_current_cluster.
    # spawn_reaper: on Linux no reaper process, but Ray's processes die with their parent.
    return (QuickNode if quick else Node)(params, head=True, shutdown_at_exit=False, spawn_reaper=True, ray_init_cluster=True)


def _usable_cpus() -> int | None:
    """The CPUs this process may run on (``taskset``, cpusets), or None where it cannot tell.

    Ray counts the machine's cores (or a container's quota): a sweep pinned to 2 of 16
    cores would otherwise run 16 trials at once on those 2.
    """
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def keep(stdin: IO[bytes], stdout: IO[str]) -> int:
    """The keeper: start Ray, say where it is, and stop it when ``stdin`` ends."""
    _become_subreaper()
    node = None
    try:
        try:
            node = _start_node()
            ready = {"address": node.gcs_address, "session_dir": node.get_session_dir_path()}
        except Exception as e:  # noqa: BLE001 - reported to the sweep process as one line
            stdout.write(json.dumps({"error": _first_line(e)}) + "\n")
            stdout.flush()
            return 1
        stdout.write(json.dumps(ready) + "\n")
        stdout.flush()
        while stdin.read(1 << 16):  # returns b"" once the sweep process has gone
            pass
    finally:
        try:
            if node is not None:
                # The raylet first, so that it stops its workers; then the rest.
                node.kill_all_processes(check_alive=False, allow_graceful=True)
        finally:
            _kill_group()
            if node is not None:
                shutil.rmtree(Path(node.get_session_dir_path()) / "artifacts", ignore_errors=True)
    return 0


def _session_dir() -> Path:
    """This node's Ray session folder (Ray 2.60 has no public API for it; Tune uses the same)."""
    import ray

    node = ray._private.worker._global_node
    assert node is not None, "Ray is initialized"
    return Path(node.get_session_dir_path())


def cleanup_staging(experiment_name: str) -> None:
    """Remove the copy of an experiment Tune staged on this node (``<session>/artifacts/*/<name>``).

    Tune writes the driver's experiment files there before syncing them to the
    storage path; once the sweep has ended they are only a stale duplicate.
    """
    for folder in (_session_dir() / "artifacts").glob(f"*/{experiment_name}"):
        shutil.rmtree(folder, ignore_errors=True)


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def keeper_main() -> NoReturn:
    """The keeper process's entry point (``python -m tuning.ray_runtime``), started by the sweep, not a user command."""
    # Ctrl-C belongs to the sweep process, which stops Tune first and then closes our stdin;
    # a SIGTERM sent here directly stops Ray at once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit)
    code = keep(sys.stdin.buffer, sys.stdout)
    # Ray is stopped and its files removed: skip the interpreter's teardown of the Ray
    # modules imported here (0.15-0.25 s on 2 cores, measured), which the sweep waits for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    keeper_main()
