"""Errors that the CLI turns into one clear line (no traceback unless --verbose).

Raise `InputError` for anything the user can fix (a path, an option, a file's content): exit code 2.
Raise `RunError` when the work itself failed (a NaN loss, a device error): exit code 1.
Messages name the file or option and say what to do, in one line.
"""

from __future__ import annotations

from pathlib import Path


class DfakeError(Exception):
    """Base class: `str(err)` is the one line shown to the user."""

    exit_code = 1


class InputError(DfakeError):
    """Bad input or usage: a missing file, a malformed dataset tree, an invalid option value."""

    exit_code = 2


class RunError(DfakeError):
    """The work failed for a reason other than the input (diverged training, out of memory, ...)."""

    exit_code = 1


def require_file(path: str | Path, what: str, fix: str = "") -> Path:
    """Return `path` as a Path if it is an existing file, else raise a one-line InputError."""
    p = Path(path).expanduser()
    if not p.is_file():
        hint = f"; {fix}" if fix else ""
        raise InputError(f"{what} not found: {p}{hint}")
    return p


def require_dir(path: str | Path, what: str, fix: str = "") -> Path:
    """Return `path` as a Path if it is an existing directory, else raise a one-line InputError."""
    p = Path(path).expanduser()
    if not p.is_dir():
        hint = f"; {fix}" if fix else ""
        raise InputError(f"{what} is not a directory: {p}{hint}")
    return p
