"""Timestamped log output, configured by entry points only (never at import)."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def configure_logging(level: int = logging.INFO) -> None:
    """Send the ``tuning`` loggers to stderr with timestamps, once."""
    logger = logging.getLogger("tuning")
    logger.setLevel(level)
    if not any(getattr(h, "_tuning", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
        handler._tuning = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
