"""Errors a user can fix, kept apart from bugs.

Command-line entry points catch :class:`UserError` and turn it into one line on
stderr and exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input the user can correct: the message names the problem and the fix."""


class ConfigError(UserError, ValueError):
    """A training config field is unknown, of the wrong type or out of range."""


class DataError(UserError, ValueError):
    """A data file is missing, unreadable or unfit for the requested windows."""


class SpaceError(UserError, ValueError):
    """A search-space file is malformed."""
