"""`dfake prepare celebdf|dfdcp|dfd|wdf|diffswap|folder ROOT`: test caches (faces + index, no latents).

Each command parses its layout (dfake_cli/data/datasets/) and runs the same preparation engine as FF++,
with the same alignment: size and margin default to those of the workspace's training cache (`ffpp`)
when there is one, so a test face is cropped exactly like the faces the detector was trained on.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, Optional

import typer

from dfake_cli.errors import InputError

DEFAULT_SIZE, DEFAULT_MARGIN = 256, 1.3
TRAINING_CACHE = "ffpp"


def default_cache_name(dataset: str, root: str | Path) -> str:
    """celebdf, dfdcp, dfd, wdf, diffswap; a folder gets folder-<its name> (made file-name safe)."""
    if dataset != "folder":
        return dataset
    base = Path(root).expanduser().resolve().name
    safe = re.sub(r"[^A-Za-z0-9_.+-]+", "-", base).strip("-.") or "data"
    return f"folder-{safe}"


def alignment_defaults(workspace, size: Optional[int], margin: Optional[float]) -> tuple[int, float, str]:
    """(size, margin, where they came from): explicit options win, then the training cache, then 256 / 1.3."""
    from dfake_cli.data.cache import cache_attrs

    attrs = cache_attrs(workspace.cache_path(TRAINING_CACHE)) or {}
    origin = f"as {TRAINING_CACHE}.h5" if attrs else "defaults"
    size = size if size is not None else int(attrs.get("size", DEFAULT_SIZE))
    margin = margin if margin is not None else float(attrs.get("margin", DEFAULT_MARGIN))
    return size, margin, origin


def prepare_testset(
    workspace, dataset: str, root: str | Path, *, name: Optional[str] = None, frames: int = 32,
    size: Optional[int] = None, margin: Optional[float] = None, device: str = "cpu", workers: int = 1,
    limit: Optional[int] = None, progress: bool = True, **parser_options: Any,
):
    """Parse `root` as `dataset` and prepare `<workspace>/data/<name>.h5`; returns the PrepareResult.

    WildDeepfake frames are extracted next to the cache (`<name>.extract/`, only the frames used) and
    removed once the cache is complete; an interrupted run reuses what was already extracted.
    """
    from dfake_cli.data.datasets import get_parser
    from dfake_cli.data.prepare import prepare_manifest
    from dfake_cli.workspace import validate_name

    cache_name = validate_name(name or default_cache_name(dataset, root), "--name")
    workspace.ensure()
    size, margin, _ = alignment_defaults(workspace, size, margin)
    extract_dir = None
    if dataset == "wdf":
        extract_dir = workspace.data_dir / f"{cache_name}.extract"
        parser_options = {**parser_options, "extract_dir": extract_dir, "frames": frames}
    if dataset == "folder" and name:
        parser_options = {**parser_options, "name": name}  # --name also names the dataset in the report
    manifest = get_parser(dataset)(root, **parser_options)
    if not manifest.items:
        raise InputError(f"{root}: no usable {manifest.dataset} video found ({len(manifest.skipped)} skipped: "
                         f"{_reasons(manifest.skipped)}); check the folder layout (docs/evaluation.md)")
    result = prepare_manifest(
        manifest, workspace.cache_path(cache_name), frames=frames, size=size, margin=margin, device=device,
        workers=workers, limit=limit, training=False, skipped_csv=workspace.skipped_path(cache_name),
        progress=progress,
    )
    if extract_dir is not None:
        shutil.rmtree(extract_dir, ignore_errors=True)
    return result


def _reasons(skipped) -> str:
    from collections import Counter

    counts = Counter(s[2] for s in skipped)
    return ", ".join(f"{n} {reason}" for reason, n in counts.most_common(3)) or "none"


def register(prepare_app: typer.Typer) -> None:
    """Add the six test-set commands to `dfake prepare` (shared options, one body)."""

    def run(ctx: typer.Context, dataset: str, root: Path, name, frames, size, margin, device, workers, limit, **opts):
        from dfake_cli.cli.main import state

        workspace = state(ctx).workspace
        cache_name = name or default_cache_name(dataset, root)
        result = prepare_testset(workspace, dataset, root, name=cache_name, frames=frames, size=size, margin=margin,
                                 device=device, workers=workers, limit=limit, **opts)
        from dfake_cli.cli.prepare import print_summary
        from dfake_cli.console import console

        print_summary(result, title=f"dfake prepare {dataset} -> {result.cache_path.name}")
        console.print(f"next: dfake eval --dataset {cache_name}")

    root_arg = typer.Argument(..., help="The dataset's root folder.", show_default=False)
    name_opt = typer.Option(None, "--name", help="Cache name in <workspace>/data/ (default: the dataset's).",
                            show_default=False)
    frames_opt = typer.Option(32, "--frames", min=1, help="Evenly spaced frames per video.")
    size_opt = typer.Option(None, "--size", help="Face crop size (default: as the ffpp cache, else 256).",
                            show_default=False)
    margin_opt = typer.Option(None, "--margin", help="Crop margin around the face (default: as ffpp, else 1.3).",
                              show_default=False)
    device_opt = typer.Option("cpu", "--device", help="Face detection device: cpu or cuda.")
    workers_opt = typer.Option(0, "--workers", min=0, help="Videos prepared in parallel (processes); 0 = one per CPU core (1 on cuda).")
    limit_opt = typer.Option(None, "--limit", min=1, help="At most N videos (a quick look).", show_default=False)

    @prepare_app.command("celebdf")
    def celebdf(ctx: typer.Context, root: Path = root_arg, name: Optional[str] = name_opt, frames: int = frames_opt,
                size: Optional[int] = size_opt, margin: Optional[float] = margin_opt, device: str = device_opt,
                workers: int = workers_opt, limit: Optional[int] = limit_opt,
                list_file: Optional[Path] = typer.Option(None, "--list", help="The test list (default: "
                                                         "ROOT/List_of_testing_videos.txt).", show_default=False)):
        """Celeb-DF v2 test videos from List_of_testing_videos.txt (1 = real there, 0 = fake)."""
        run(ctx, "celebdf", root, name, frames, size, margin, device, workers, limit, list_file=list_file)

    @prepare_app.command("dfdcp")
    def dfdcp(ctx: typer.Context, root: Path = root_arg, name: Optional[str] = name_opt, frames: int = frames_opt,
              size: Optional[int] = size_opt, margin: Optional[float] = margin_opt, device: str = device_opt,
              workers: int = workers_opt, limit: Optional[int] = limit_opt,
              subset: str = typer.Option("test", "--subset", help="dataset.json 'set' to take: test, train or all.")):
        """DFDC Preview videos whose dataset.json 'set' is test (276 real + 501 fake)."""
        run(ctx, "dfdcp", root, name, frames, size, margin, device, workers, limit, subset=subset)

    @prepare_app.command("dfd")
    def dfd(ctx: typer.Context, root: Path = root_arg, name: Optional[str] = name_opt, frames: int = frames_opt,
            size: Optional[int] = size_opt, margin: Optional[float] = margin_opt, device: str = device_opt,
            workers: int = workers_opt, limit: Optional[int] = limit_opt,
            compression: str = typer.Option("c23", "--compression", help="raw | c23 | c40.")):
        """DeepFakeDetection from the FaceForensics++ folder; mask videos pick the manipulated face."""
        run(ctx, "dfd", root, name, frames, size, margin, device, workers, limit, compression=compression)

    @prepare_app.command("wdf")
    def wdf(ctx: typer.Context, root: Path = root_arg, name: Optional[str] = name_opt, frames: int = frames_opt,
            size: Optional[int] = size_opt, margin: Optional[float] = margin_opt, device: str = device_opt,
            workers: int = workers_opt, limit: Optional[int] = limit_opt):
        """WildDeepfake real_test/fake_test tar archives of cropped faces (no detection; a sequence = a video)."""
        run(ctx, "wdf", root, name, frames, size, margin, device, workers, limit)

    @prepare_app.command("diffswap")
    def diffswap(ctx: typer.Context, root: Path = root_arg, name: Optional[str] = name_opt, frames: int = frames_opt,
                 size: Optional[int] = size_opt, margin: Optional[float] = margin_opt, device: str = device_opt,
                 workers: int = workers_opt, limit: Optional[int] = limit_opt):
        """DiffSwap images arranged as ROOT/real/ and ROOT/fake/ (image level)."""
        run(ctx, "diffswap", root, name, frames, size, margin, device, workers, limit)

    @prepare_app.command("folder")
    def folder(ctx: typer.Context, root: Path = root_arg, name: Optional[str] = name_opt, frames: int = frames_opt,
               size: Optional[int] = size_opt, margin: Optional[float] = margin_opt, device: str = device_opt,
               workers: int = workers_opt, limit: Optional[int] = limit_opt):
        """Any ROOT/real/ + ROOT/fake/ of images or videos; cache folder-<dirname> unless --name."""
        run(ctx, "folder", root, name, frames, size, margin, device, workers, limit)
