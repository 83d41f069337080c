"""Rendering shared by several commands: the one JSON document of `--json`, the prepare summary table.

Results go to stdout (`console`), progress and notes to stderr (`err_console`): `dfake ... --json > x.json`
always yields a file that parses.
"""

from __future__ import annotations

import json
from typing import Any

import typer


def emit_json(data: Any) -> None:
    """Print `data` as the command's single JSON document on stdout."""
    typer.echo(json.dumps(data, indent=2, default=str))


def print_prepare_summary(result, title: str = "dfake prepare") -> None:
    """The closing table of every prepare command: videos, frames, faces, skipped by reason, elapsed."""
    from rich.table import Table

    from dfake_cli.console import console

    if result.already_prepared:
        console.print(f"[green]already prepared:[/] {result.cache_path} (same options; nothing to do)")
    table = Table(title=title, show_header=False)
    table.add_row("cache", str(result.cache_path))
    table.add_row("videos", f"{result.prepared} prepared of {result.videos}")
    table.add_row("frames", str(result.frames))
    table.add_row("faces", f"{result.faces} inputs ({result.rows} rows with source/target references)")
    if result.no_face_frames:
        table.add_row("frames without a face", str(result.no_face_frames))
    if result.dropped_frames:
        table.add_row("fake frames without a source face", str(result.dropped_frames))
    total_skipped = sum(result.skipped.values())
    table.add_row("skipped videos", str(total_skipped))
    for reason, count in sorted(result.skipped.items(), key=lambda kv: -kv[1]):
        table.add_row(f"  {reason}", str(count))
    if total_skipped and result.skipped_csv:
        table.add_row("skipped list", str(result.skipped_csv))
    table.add_row("elapsed", f"{result.elapsed:.1f} s" + (
        f" ({result.frames_per_second:.1f} frames/s)" if not result.already_prepared and result.frames else ""))
    for note in result.notes:
        table.add_row("note", note)
    console.print(table)
