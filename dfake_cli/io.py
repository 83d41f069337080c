"""Atomic file writes: a reader never sees a half-written file, an interrupted write leaves none.

Every write goes to a temporary name next to its destination, is flushed to disk (fsync), and is then
renamed over the destination; the parent folder is fsynced so that the rename itself survives a power
cut. A folder that replaces an existing folder (a checkpoint's `last/`) is swapped with one atomic
`renameat2(RENAME_EXCHANGE)` where the file system offers it, so `last/` exists and is whole at every
instant. Elsewhere the old folder is moved aside first and `recover_swap` puts it back if the process
died between the two renames (readers call it before they look).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_libc = None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap the names `a` and `b` (Linux renameat2); False where the system cannot."""
    global _libc
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return False
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    fn = getattr(_libc, "renameat2", None)
    if fn is None:
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(a))


def fsync_path(path: Path) -> None:
    """Flush a file, or a folder's files and the folder itself, to disk (best effort on odd systems)."""
    path = Path(path)
    if path.is_dir():
        for child in path.rglob("*"):
            if child.is_file() and not child.is_symlink():
                _fsync_fd(child, os.O_RDONLY)
        _fsync_fd(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    elif path.is_file():
        _fsync_fd(path, os.O_RDONLY)


def _fsync_fd(path: Path, flags: int) -> None:
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # folders cannot be fsynced on some file systems; files must be
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.EROFS) and not os.path.isdir(path):
            raise
    finally:
        os.close(fd)


def _aside(final: Path) -> Path:
    """Where the previous version of folder `final` waits while the new one is moved in (no exchange)."""
    return final.with_name(f".{final.name}.old")


def recover_swap(final: str | Path) -> None:
    """Finish or undo a folder replacement that a killed process left half done.

    `final` missing but its set-aside copy present: the process died between moving the old folder
    aside and moving the new one in; the old one goes back. `final` present: a leftover copy is removed.
    """
    final = Path(final)
    old = _aside(final)
    if not old.exists():
        return
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(old, final)
        fsync_path(final.parent) if final.parent.is_dir() else None


def _replace_dir(tmp: Path, final: Path) -> None:
    """Put folder `tmp` at `final`, which already holds a folder: one atomic exchange when possible."""
    if _exchange(tmp, final):
        _fsync_fd(final.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        shutil.rmtree(tmp, ignore_errors=True)  # now the previous version
        return
    old = _aside(final)
    shutil.rmtree(old, ignore_errors=True)
    os.replace(final, old)  # a kill here leaves only `old`: recover_swap() moves it back
    os.replace(tmp, final)
    _fsync_fd(final.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(final: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `final`; on success fsync it and rename it over `final`.

    Works for files and directories. On an exception the temporary is removed and `final` is untouched.
    The temporary's name is unique to this call, so concurrent writers never remove each other's.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    recover_swap(final)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix + ".tmp", dir=final.parent)
    os.close(fd)
    os.unlink(tmp)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        fsync_path(tmp_path)
        if tmp_path.is_dir() and final.is_dir():
            _replace_dir(tmp_path, final)
        else:
            os.replace(tmp_path, final)
            _fsync_fd(final.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    finally:
        if tmp_path.is_dir():
            shutil.rmtree(tmp_path, ignore_errors=True)
        elif tmp_path.exists():
            tmp_path.unlink()


def printable(text: object) -> str:
    """`text` as valid UTF-8 for CSV, JSON and HDF5: undecodable file-name bytes become `\\xNN` escapes.

    On POSIX a file name is bytes; Python decodes the invalid ones to lone surrogates, which every UTF-8
    writer refuses. Paths themselves stay untouched (they still open the file); only their text copies
    (video ids, skipped lists, attributes) are escaped.
    """
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_safetensors(path: str | Path, what: str = "weights") -> dict:
    """All tensors of a .safetensors file; a damaged, empty or truncated file is one InputError naming it."""
    from safetensors.torch import load_file

    from dfake_cli.errors import InputError

    p = Path(path)
    try:
        return load_file(str(p))
    except FileNotFoundError:
        raise InputError(f"{what} not found: {p}") from None
    except Exception as exc:  # SafetensorError, OSError, ...: name the file, never a traceback
        detail = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise InputError(f"cannot read {what} {p}: {detail}; the file is damaged or not safetensors "
                         "(copy or export it again)") from None


def safetensors_metadata(path: str | Path) -> dict:
    """The string metadata stored in a .safetensors header ({} when none or unreadable)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception:
        return {}
