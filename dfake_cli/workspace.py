"""The workspace: one folder that holds prepared caches and training runs.

    <workspace>/data/<name>.h5            prepared caches (one per dataset)
    <workspace>/data/<name>.skipped.csv   what preparation skipped, with reasons
    <workspace>/runs/<run>/               one training run (config, metrics, best/, last/)
    <workspace>/reports/<stamp>/          evaluation reports

Chosen by `dfake --workspace DIR`, else $DFAKE_WORKSPACE, else ./dfake-workspace, so that later
commands work with few arguments (`dfake train` finds `data/ffpp.h5`, `dfake eval` the latest run).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from dfake_cli.errors import InputError

ENV_VAR = "DFAKE_WORKSPACE"
DEFAULT_DIR = "dfake-workspace"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def validate_name(name: str, what: str = "name") -> str:
    """Cache and run names become file names: refuse separators, '..' and other surprises."""
    if not _NAME_RE.match(name) or ".." in name:
        raise InputError(
            f"invalid {what} {name!r}: use letters, digits and _ . + - (no slashes), e.g. 'ffpp'"
        )
    return name


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def resolve(cls, path: str | Path | None = None) -> "Workspace":
        """The workspace named by `path`, else $DFAKE_WORKSPACE, else ./dfake-workspace."""
        chosen = path or os.environ.get(ENV_VAR) or DEFAULT_DIR
        root = Path(chosen).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise InputError(f"workspace {root} is a file; pass --workspace DIR with a directory")
        return cls(root)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    def cache_path(self, name: str) -> Path:
        return self.data_dir / f"{validate_name(name, 'cache name')}.h5"

    def skipped_path(self, name: str) -> Path:
        return self.data_dir / f"{validate_name(name, 'cache name')}.skipped.csv"

    def run_dir(self, run: str) -> Path:
        return self.runs_dir / validate_name(run, "run name")

    def caches(self) -> list[Path]:
        """Finished caches (an interrupted one keeps a .partial name and is not listed)."""
        return sorted(self.data_dir.glob("*.h5")) if self.data_dir.is_dir() else []

    def runs(self) -> list[Path]:
        """Run folders, oldest first by modification time of their folder."""
        if not self.runs_dir.is_dir():
            return []
        return sorted((p for p in self.runs_dir.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)

    def latest_run(self) -> Path | None:
        runs = self.runs()
        return runs[-1] if runs else None

    def ensure(self) -> "Workspace":
        """Create data/ and runs/; a workspace that cannot be written is one InputError naming it."""
        for folder in (self.data_dir, self.runs_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"workspace {self.root} cannot be written ({exc.strerror or exc}): "
                                 "pass --workspace DIR with a writable folder") from None
            if not os.access(folder, os.W_OK | os.X_OK):
                raise InputError(f"workspace folder {folder} is read-only: pass --workspace DIR with a "
                                 "writable folder")
        return self

    def cache_lock(self, name: str) -> Path:
        """The lock file held while cache `name` is being prepared."""
        return self.data_dir / f"{validate_name(name, 'cache name')}.lock"

    def run_lock(self, run: str) -> Path:
        """The lock file held while run `run` trains."""
        return self.runs_dir / f"{validate_name(run, 'run name')}.lock"


# ------------------------------------------------------------------------------------------------ locks


def read_lock(path: Path) -> dict | None:
    """The holder recorded in a lock file ({pid, host, since, what}); {} when unreadable, None when absent."""
    try:
        data = json.loads(Path(path).read_text())
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


_HELD: set[str] = set()  # lock files this process holds (a nested hold_lock of one of them is a no-op)


@contextlib.contextmanager
def hold_lock(path: str | Path, what: str) -> Iterator[dict | None]:
    """Hold the lock file `path` while `what` runs; yields the stale holder taken over (or None).

    Mutual exclusion is an exclusive flock on the file, which the kernel releases when the holder dies
    (even by SIGKILL), so a dead holder's lock is stale by construction and taken over. The file records
    the holder's pid, host and start time: a second process gets one InputError naming them. The file
    is removed on exit; an inode check after locking makes sure we hold the file that is at `path`.
    """
    import fcntl

    path = Path(path)
    key = os.path.abspath(path)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 holds it for every rank of the job
        yield None
        return
    if key in _HELD:  # this process holds it already (the api layer around the engine): nested, no-op
        yield None
        return
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "what": what}
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError(f"cannot create the lock {path} ({exc.strerror or exc}): the workspace must be "
                             "writable; pass --workspace DIR with a writable folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            holder = read_lock(path) or {}
            raise InputError(
                f"{what} is already running (pid {holder.get('pid', '?')} on {holder.get('host', '?')} since "
                f"{holder.get('since', '?')}; lock {path}): wait for it to finish"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed the file between our open and our lock: again
    previous = read_lock(path)
    stale = previous if previous and previous.get("pid") != record["pid"] else None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    os.fsync(fd)
    _HELD.add(key)
    try:
        yield stale
    finally:
        _HELD.discard(key)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)
