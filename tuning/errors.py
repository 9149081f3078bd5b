"""Errors a user can fix, kept apart from bugs.

Command-line entry points catch :class:`UserError` and turn it into one line on
stderr and exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno


class UserError(Exception):
    """Bad input the user can correct: the message names the problem and the fix."""


class ConfigError(UserError, ValueError):
    """A training config field is unknown, of the wrong type or out of range."""


class DataError(UserError, ValueError):
    """A data file is missing, unreadable or unfit for the requested windows."""


class SpaceError(UserError, ValueError):
    """A search-space file is malformed."""


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
"""A full disk, or a full quota on it."""


class DiskFullError(UserError, OSError):
    """A write failed because the disk (or the user's quota) is full: one line, not a traceback.

    Also an ``OSError``, so code that handles failed writes still does. ``hint`` says
    what to do about it (free space, then resume with ...), filled in by the command.
    """

    def __init__(self, path: str, hint: str = "free space on it and run again") -> None:
        super().__init__(errno.ENOSPC, "disk full", path)
        self.path, self.hint = path, hint

    def __str__(self) -> str:
        return f"disk full while writing {self.path}: {self.hint}"

    def __reduce__(self) -> tuple[type[DiskFullError], tuple[str, str]]:
        return (DiskFullError, (self.path, self.hint))  # across processes (a trial's error reaches the driver)


def disk_full(exc: BaseException) -> DiskFullError | None:
    """The full disk behind ``exc``, if one is: ``exc`` or an error it was raised from or during.

    Tune wraps what a trial or its own file writes raised (``RayTaskError``, ``TuneError``),
    so the chain of causes is followed.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, DiskFullError):
            return e
        if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
            return DiskFullError(str(e.filename) if e.filename is not None else "a file")
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    return None
