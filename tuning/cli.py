"""What every command-line entry point shares: one-line errors and exit codes.

User errors (bad flags, bad files, bad values) and a full disk print one line on
stderr and exit with status 2; tracebacks stay behind ``--debug``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from tuning.config import MAX_SEED
from tuning.errors import UserError, disk_full

EXIT_TRIALS_FAILED = 1
"""A sweep in which trials errored: they are named on stderr; the rest of its results are kept."""
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def prog_name(module: str) -> str:
    """How to call the command ``module`` (``"tuning.search"``) in help, errors and printed commands.

    ``tuning-search`` when this process was started as one of the console scripts
    (pyproject.toml's ``[project.scripts]``), else ``python -m tuning.search``: a user
    copies the commands a run prints, so they name the way the user started it.
    """
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if script.removesuffix(".exe").startswith("tuning-"):  # .exe: console scripts on Windows
        return f"tuning-{module.rsplit('.', 1)[-1]}"
    return f"python -m {module}"


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def add_zero_arguments(group: argparse._ArgumentGroup, default: str = "missing where they look like outages") -> None:
    """How exact zeros are read: ``args.zero_is_missing`` is True, False, or None (not said)."""
    zeros = group.add_mutually_exclusive_group()
    zeros.add_argument("--zero-is-missing", dest="zero_is_missing", action="store_const", const=True, default=None,
                       help=f"read exact zeros as missing readings (METR-LA convention; default: {default})")  # fmt: skip
    zeros.add_argument("--zeros-are-readings", dest="zero_is_missing", action="store_const", const=False,
                       help="read exact zeros as real readings (counts that reach 0), even where they look like outages")  # fmt: skip


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data flags shared by ``tuning.train`` and ``tuning.search``."""
    g = parser.add_argument_group("data")
    g.add_argument("--data", metavar="PATH", default=None,
                   help="a .csv/.txt/.tsv (also .csv.gz etc.), .json (records or JSON Lines), .parquet, .xlsx or .h5 file, wide (a column per sensor) or long (a row "
                        "per timestamp and sensor, PeMS station files too), or a .npz (T, N[, C]); a folder or a quoted "
                        "pattern (day_*.csv) of such files reads as one series; default: the embedded synthetic data set")  # fmt: skip
    g.add_argument("--len-source", type=positive_int, default=None, metavar="N", help="past steps the model sees (default 10)")
    g.add_argument("--len-target", type=positive_int, default=None, metavar="N", help="future steps to predict (default 5)")
    add_zero_arguments(g)
    g.add_argument("--freq", default=None,
                   help="the data's step, e.g. 5min: timestamps are put on this grid (default: their most common step), "
                        "readings between its steps (a feed logged at irregular moments) averaged into the step they "
                        "fall in; for a file without timestamps it builds them (enables time features)")  # fmt: skip
    g.add_argument(
        "--start", default=None, help="first timestamp for a file without timestamps (with --freq; default 2000-01-01)"
    )
    pick = g.add_mutually_exclusive_group()
    pick.add_argument("--columns", type=column_list, default=None, metavar="A,B",
                      help="the sensor columns to use, comma-separated (leaves out covariates such as weather; "
                           "in a long table: its readings column and/or sensor ids); shell patterns such as "
                           "'*_speed' pick every column they match")  # fmt: skip
    pick.add_argument("--exclude-columns", type=column_list, default=None, metavar="A,B",
                      help="columns to leave out, comma-separated, or patterns ('*_flow'); the others are the sensors")  # fmt: skip


def run_main(body: Callable[[], int], *, prog: str, debug: bool) -> int:
    """Run a command's body, turning user errors and Ctrl-C into exit codes."""
    try:
        return body()
    except UserError as e:
        if debug:
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as e:
        full = disk_full(e)  # a full disk where no command said more (a plot, a table): one line too
        if full is None or debug:
            raise
        print(f"{prog}: error: {full}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        logging.getLogger("tuning").warning("interrupted")
        return EXIT_INTERRUPTED


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def column_list(text: str) -> tuple[str, ...]:
    """Comma-separated column names, e.g. ``traffic_volume`` or ``det_1,det_2``."""
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"must be column names separated by commas, got {text!r}")
    return names


def seed_int(text: str) -> int:
    """A seed NumPy and torch both take: 0 to 2**32 - 1."""
    value = _int_at_least(text, 0)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be <= {MAX_SEED} (2**32 - 1), got {value}")
    return value


def duration(text: str) -> float:
    """Seconds from ``900``, ``900s``, ``15m`` or ``1.5h``."""
    raw = text.strip().lower()
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(raw[-1:]) if raw else None
    try:
        seconds = float(raw[:-1] if scale else raw) * (scale or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be seconds or a duration such as 90s, 15m or 1.5h, got {text!r}") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"must be a positive duration, got {text!r}")
    return seconds


def positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def nonneg_int(text: str) -> int:
    return _int_at_least(text, 0)
