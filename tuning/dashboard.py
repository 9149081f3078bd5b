"""``python -m tuning.dashboard``: a sweep in optuna-dashboard, served on this machine.

Writes the sweep's Optuna study (``optuna.db``, see :mod:`tuning.optuna_study`)
when it is missing or older than the sweep's results, then serves optuna-dashboard
on it and prints the address: history, intermediate values (learning curves),
parallel coordinates, slices and importance of a Ray Tune sweep.

optuna-dashboard is an optional extra: ``pip install -e ".[dashboard]"``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from tuning.cli import ArgumentParser, nonneg_int, prog_name, run_main
from tuning.errors import UserError
from tuning.logs import quiet_libraries
from tuning.storage import DEFAULT_STORAGE, Experiment

MODULE = "tuning.dashboard"
INSTALL = 'pip install -e ".[dashboard]"'


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog_name(MODULE), description="Serve a sweep in optuna-dashboard (writes its Optuna study first if needed)."
    )
    p.add_argument("--name", required=True, help="the sweep's experiment name")
    p.add_argument("--storage-path", default=DEFAULT_STORAGE, metavar="DIR", help="where the sweep lives (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    p.add_argument("--port", type=nonneg_int, default=8080, metavar="N", help="port (default: %(default)s; 0: any free port)")
    p.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    return p


class _ThreadedServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a browser's open connection must not keep the process alive


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # one line per request and asset would bury the address


@dataclass
class DashboardServer:
    """A bound, not yet serving, optuna-dashboard server."""

    server: WSGIServer
    url: str
    """The study's page."""
    study_file: Path
    study_written: bool

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_dashboard(exp: Experiment, host: str = "127.0.0.1", port: int = 8080) -> DashboardServer:
    """Write the study if needed and bind optuna-dashboard to ``host:port`` (0: a free port)."""
    try:
        import optuna_dashboard
    except ImportError:
        raise UserError(f"optuna-dashboard is not installed; install it with: {INSTALL}") from None
    import optuna

    from tuning.optuna_study import ensure_study, storage_url
    from tuning.sweep_settings import SweepSettings

    if not exp.is_local:
        raise UserError(f"the dashboard reads a local folder; copy {exp.path} here first and point --storage-path at it")
    space = SweepSettings.load(exp).load_space()
    study_file, written = ensure_study(exp.path, exp.name, space)
    storage = optuna.storages.RDBStorage(storage_url(exp.path))
    study_id = storage.get_study_id_from_name(exp.name)
    app = optuna_dashboard.wsgi(storage)
    try:
        server = make_server(host, port, app, server_class=_ThreadedServer, handler_class=_QuietHandler)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}; pass another --port (0 picks a free one)") from e
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{server.server_port}/dashboard/studies/{study_id}"
    return DashboardServer(server, url, study_file, written)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        quiet_libraries()
        exp = Experiment.at(args.storage_path, args.name)
        dashboard = start_dashboard(exp, args.host, args.port)
        state = "wrote" if dashboard.study_written else "up to date:"
        print(f"{state} {dashboard.study_file} (study {exp.name!r})")
        print(f"optuna-dashboard: {dashboard.url}  (Ctrl-C stops it)", flush=True)
        try:
            dashboard.serve_forever()
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
        finally:
            dashboard.server.server_close()
        return 0

    return run_main(body, prog=prog_name(MODULE), debug=args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
