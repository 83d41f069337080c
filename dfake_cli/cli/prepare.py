"""`dfake prepare`: raw dataset trees -> one HDF5 face cache per dataset in <workspace>/data/.

`dfake prepare ff++ ROOT` builds the training cache (faces, source/target pairs, SD-VAE latents and
weight targets). Test-set commands (celebdf, dfdcp, ...) are added to the same sub-app by
`prepare_testsets.register(prepare_app)` when that module is installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional

import typer

prepare_app = typer.Typer(
    name="prepare",
    help="Extract aligned faces from a dataset tree into <workspace>/data/<name>.h5 (resumable).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def print_summary(result, title: str = "dfake prepare") -> None:
    """The closing table: videos, frames, faces, skipped by reason, elapsed (shared by all prepare commands)."""
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


def prepare_ffpp(
    root: str | Path, workspace, *, compression: str = "c23", methods: Optional[str] = None, frames: int = 32,
    size: int = 256, margin: float = 1.3, sd: str = "tiny", device: str = "cpu", workers: int = 1,
    limit: Optional[int] = None, name: str = "ffpp", progress: bool = True,
):
    """Parse an FF++ tree and prepare its training cache in `workspace` (what the command runs)."""
    from dfake_cli.data.datasets import get_parser
    from dfake_cli.data.prepare import prepare_manifest

    cache_path = workspace.cache_path(name)
    skipped_csv = workspace.skipped_path(name)
    manifest = get_parser("ffpp")(root, compression=compression, methods=methods)
    workspace.ensure()
    return prepare_manifest(
        manifest, cache_path, frames=frames, size=size, margin=margin, device=device, workers=workers,
        limit=limit, training=True, sd=sd, skipped_csv=skipped_csv, progress=progress,
    )


def _ffpp_command(
    ctx: typer.Context,
    root: str = typer.Argument(..., help="The FaceForensics++ folder (with train/val/test.json)."),
    compression: str = typer.Option("c23", "--compression", "-c", help="raw | c23 | c40."),
    methods: Optional[str] = typer.Option(
        None, "--methods", help="Comma-separated methods, e.g. Deepfakes,FaceSwap. Default: the four classic "
        "methods, plus FaceShifter when present.", show_default=False),
    frames: int = typer.Option(32, "--frames", help="Evenly spaced frames per video (all when shorter)."),
    size: int = typer.Option(256, "--size", help="Face crop size in pixels."),
    margin: float = typer.Option(1.3, "--margin", help="Context around the face: the template is shrunk by 1/margin."),
    sd: str = typer.Option("tiny", "--sd", help="Stable Diffusion for the latents: 'tiny' or a local SD-1.5 path."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda."),
    workers: int = typer.Option(0, "--workers", min=0, help="Videos processed in parallel (processes); 0 = one per CPU core (1 on cuda)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="At most N videos per method and split.",
                                        show_default=False),
    name: str = typer.Option("ffpp", "--name", help="Cache name: <workspace>/data/<name>.h5."),
) -> None:
    """FaceForensics++ training cache: faces, source/target pairs, SD-VAE latents and weight targets."""
    from dfake_cli.cli.main import state

    # Ctrl-C: finished videos are kept; cli.main prints the one-line resume hint.
    result = prepare_ffpp(
        root, state(ctx).workspace, compression=compression, methods=methods, frames=frames, size=size,
        margin=margin, sd=sd, device=device, workers=workers, limit=limit, name=name,
    )
    print_summary(result, title=f"dfake prepare ff++ -> {result.cache_path.name}")


prepare_app.command("ff++")(_ffpp_command)
prepare_app.command("ffpp", hidden=True)(_ffpp_command)


def register(app: typer.Typer) -> None:
    app.add_typer(prepare_app, name="prepare")


# Test-set commands live in their own module (another engineer's); add them when it exists.
if importlib.util.find_spec("dfake_cli.cli.prepare_testsets") is not None:
    from dfake_cli.cli import prepare_testsets

    prepare_testsets.register(prepare_app)
