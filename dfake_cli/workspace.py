"""The workspace: one folder that holds prepared caches and training runs.

    <workspace>/data/<name>.h5            prepared caches (one per dataset)
    <workspace>/data/<name>.skipped.csv   what preparation skipped, with reasons
    <workspace>/runs/<run>/               one training run (config, metrics, best/, last/)
    <workspace>/reports/<stamp>/          evaluation reports

Chosen by `dfake --workspace DIR`, else $DFAKE_WORKSPACE, else ./dfake-workspace, so that later
commands work with few arguments (`dfake train` finds `data/ffpp.h5`, `dfake eval` the latest run).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

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
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        return self
