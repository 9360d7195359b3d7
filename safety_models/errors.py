"""Errors meant for people: each message names the file, row or column and what was expected.

The command line prints str(err) for a UserError and exits non-zero without a traceback;
the dashboard shows it with st.error.
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by input or state the user can fix; its message says how."""


class MappingError(UserError):
    """The columns needed (time, location) could not be recognised in a file."""

    def __init__(self, message: str, columns_found: list[str] | None = None):
        super().__init__(message)
        self.columns_found = list(columns_found or [])


class FileUnusable(UserError):
    """A file that cannot be loaded at all: empty, binary, or every row rejected."""


class CityMismatch(UserError):
    """An upload whose incidents lie far from the city already stored in this home."""


class GridMismatch(UserError):
    """A model trained on another grid than the one it is asked to continue or predict on."""


class WeightsMissing(UserError):
    """Pretrained weights that are not on this machine (nothing is ever downloaded)."""


class NotReady(UserError):
    """Something needed first is missing: no data for a category, no model yet."""


class DatabaseDamaged(UserError):
    """The database file is not a database any more (overwritten, truncated, corrupted)."""


class HomeNotWritable(UserError):
    """The home folder (or a file in it) cannot be written by this user."""


class PermissionDenied(UserError):
    """An action the signed-in account's role does not allow (see service/access.py)."""


class SignInRefused(UserError):
    """A sign-in that did not succeed: wrong name or password, a disabled or locked account,
    or a city sign-in whose claims give no role."""
