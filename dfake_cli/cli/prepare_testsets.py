"""`dfake prepare celebdf|dfdcp|dfd|wdf|diffswap|folder ROOT`: test caches (faces + index, no latents).

Size and margin default to those of the workspace's training cache (`ffpp`) when there is one, so a test
face is cropped exactly like the faces the detector was trained on (`dfake_cli.api.prepare`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from dfake_cli.cli.context import state
from dfake_cli.cli.options import Compression, DEVICE, JsonOpt
from dfake_cli.cli.render import emit_json, print_prepare_summary
from dfake_cli.runtime import DEFAULT_MARGIN, DEFAULT_SIZE

Root = Annotated[Path, typer.Argument(help="The dataset's root folder.", show_default=False)]
Name = Annotated[Optional[str], typer.Option(
    "--name", help="Cache name in <workspace>/data/ (default: the dataset's).", show_default=False)]
Frames = Annotated[int, typer.Option("--frames", min=1, help="Evenly spaced frames per video.")]
Size = Annotated[Optional[int], typer.Option(
    "--size", help=f"Face crop size (default: as the ffpp cache, else {DEFAULT_SIZE}).", show_default=False)]
Margin = Annotated[Optional[float], typer.Option(
    "--margin", help=f"Crop margin around the face (default: as ffpp, else {DEFAULT_MARGIN}).",
    show_default=False)]
Device = Annotated[str, typer.Option("--device", **DEVICE, help="Face detection device: cpu, cuda or cuda:N.")]
Workers = Annotated[int, typer.Option(
    "--workers", min=0, help="Videos prepared in parallel (processes); 0 = one per CPU core. On cuda: decode "
    "processes feeding the GPU (0 or 1: one per core but one).")]
Limit = Annotated[Optional[int], typer.Option("--limit", min=1, help="At most N videos (a quick look).",
                                              show_default=False)]


def _run(ctx: typer.Context, dataset: str, root: Path, name: Optional[str], frames: int, size: Optional[int],
         margin: Optional[float], device: str, workers: int, limit: Optional[int], json_out: bool, **opts) -> None:
    from dfake_cli.api.prepare import default_cache_name, prepare_testset
    from dfake_cli.console import console

    cache_name = name or default_cache_name(dataset, root)
    result = prepare_testset(state(ctx).workspace, dataset, root, name=cache_name, frames=frames, size=size,
                             margin=margin, device=device, workers=workers, limit=limit, **opts)
    if os.environ.get("RANK", "0") != "0":  # under torchrun rank 0 reports, once
        return
    if json_out:
        emit_json(result.to_dict())
        return
    print_prepare_summary(result, title=f"dfake prepare {dataset} -> {result.cache_path.name}")
    console.print(f"next: dfake eval --dataset {cache_name}")


def register(prepare_app: typer.Typer) -> None:
    """Add the six test-set commands to `dfake prepare` (shared options, one body)."""

    @prepare_app.command("celebdf")
    def celebdf(ctx: typer.Context, root: Root, name: Name = None, frames: Frames = 32, size: Size = None,
                margin: Margin = None, device: Device = "cpu", workers: Workers = 0, limit: Limit = None,
                list_file: Annotated[Optional[Path], typer.Option(
                    "--list", help="The test list (default: ROOT/List_of_testing_videos.txt).",
                    show_default=False)] = None,
                json_out: JsonOpt = False) -> None:
        """Celeb-DF v2 test videos from List_of_testing_videos.txt (1 = real there, 0 = fake)."""
        _run(ctx, "celebdf", root, name, frames, size, margin, device, workers, limit, json_out, list_file=list_file)

    @prepare_app.command("dfdcp")
    def dfdcp(ctx: typer.Context, root: Root, name: Name = None, frames: Frames = 32, size: Size = None,
              margin: Margin = None, device: Device = "cpu", workers: Workers = 0, limit: Limit = None,
              subset: Annotated[str, typer.Option(
                  "--subset", help="dataset.json 'set' to take: test, train or all.")] = "test",
              json_out: JsonOpt = False) -> None:
        """DFDC Preview videos whose dataset.json 'set' is test (276 real + 501 fake)."""
        _run(ctx, "dfdcp", root, name, frames, size, margin, device, workers, limit, json_out, subset=subset)

    @prepare_app.command("dfd")
    def dfd(ctx: typer.Context, root: Root, name: Name = None, frames: Frames = 32, size: Size = None,
            margin: Margin = None, device: Device = "cpu", workers: Workers = 0, limit: Limit = None,
            compression: Annotated[Compression, typer.Option("--compression", help="FF++ video quality.")] = Compression.c23,
            json_out: JsonOpt = False) -> None:
        """DeepFakeDetection from the FaceForensics++ folder; mask videos pick the manipulated face."""
        _run(ctx, "dfd", root, name, frames, size, margin, device, workers, limit, json_out, compression=compression.value)

    @prepare_app.command("wdf")
    def wdf(ctx: typer.Context, root: Root, name: Name = None, frames: Frames = 32, size: Size = None,
            margin: Margin = None, device: Device = "cpu", workers: Workers = 0, limit: Limit = None,
            json_out: JsonOpt = False) -> None:
        """WildDeepfake real_test/fake_test tar archives of cropped faces (no detection; a sequence = a video)."""
        _run(ctx, "wdf", root, name, frames, size, margin, device, workers, limit, json_out)

    @prepare_app.command("diffswap")
    def diffswap(ctx: typer.Context, root: Root, name: Name = None, frames: Frames = 32, size: Size = None,
                 margin: Margin = None, device: Device = "cpu", workers: Workers = 0, limit: Limit = None,
                 json_out: JsonOpt = False) -> None:
        """DiffSwap images arranged as ROOT/real/ and ROOT/fake/ (image level)."""
        _run(ctx, "diffswap", root, name, frames, size, margin, device, workers, limit, json_out)

    @prepare_app.command("folder")
    def folder(ctx: typer.Context, root: Root, name: Name = None, frames: Frames = 32, size: Size = None,
               margin: Margin = None, device: Device = "cpu", workers: Workers = 0, limit: Limit = None,
               json_out: JsonOpt = False) -> None:
        """Any ROOT/real/ + ROOT/fake/ of images or videos; cache folder-<dirname> unless --name."""
        _run(ctx, "folder", root, name, frames, size, margin, device, workers, limit, json_out)
