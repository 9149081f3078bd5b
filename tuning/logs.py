"""Timestamped log output, configured by entry points only (never at import)."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now, not the one seen when it was made:
    entry points called in-process (notebooks, tests capturing output) replace it."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def configure_logging(level: int = logging.INFO) -> None:
    """Send the ``tuning`` loggers to stderr with timestamps, once."""
    logger = logging.getLogger("tuning")
    logger.setLevel(level)
    if not any(getattr(h, "_tuning", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
        handler._tuning = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


class _DropMessages(logging.Filter):
    def __init__(self, *starts: str) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)


def quiet_libraries() -> None:
    """Silence library chatter a command-line user cannot act on; called by entry points.

    - Optuna's INFO lines ("A new study created in memory with name: ...").
    - Ray's notice that token authentication is enabled (printed by every
      ``ray.init``); its warning that authentication is *disabled* stays.
    """
    import optuna  # its import would reset a level set on the "optuna" logger before it

    optuna.logging.set_verbosity(logging.WARNING)
    auth = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _DropMessages) for f in auth.filters):
        auth.addFilter(_DropMessages("Token authentication is enabled"))
