"""One rich console for the whole tool, and the progress bar every long loop uses.

`console` (stdout) carries results: tables, the one JSON document of `--json`. `err_console` (stderr)
carries everything else: progress bars, logs (`runtime.setup_logging`), notes. Progress is on unless
`--quiet`/`--no-progress` (or DFAKE_NO_PROGRESS=1) turned it off.
"""

from __future__ import annotations

import os

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)

_progress_enabled = True


def set_progress(enabled: bool) -> None:
    """Turn every later progress bar on or off (the CLI's --quiet / --no-progress)."""
    global _progress_enabled
    _progress_enabled = enabled


def progress_enabled() -> bool:
    return _progress_enabled and os.environ.get("DFAKE_NO_PROGRESS") != "1"


def progress(unit: str = "it", transient: bool = False) -> Progress:
    """A progress bar with count, rate (`{task.fields[rate]}` in `unit`/s) and ETA.

    Callers update the rate field themselves (`progress.update(task, rate=...)`) because the rate
    that matters (frames/s, images/s) is usually not the rate of the loop's own items.
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=err_console,  # progress is not a result: stdout stays clean for tables and --json
        transient=transient,
        disable=not progress_enabled(),
    )


EMBEDDED_NOTICE = (
    "[yellow]Embedded default:[/] a tiny Stable Diffusion with random weights (fixed seed) and synthetic "
    "sample data. It proves the pipeline runs end to end; it does not reproduce the paper's numbers. "
    "Pass --sd PATH to local SD-1.5 weights for real work."
)
