"""`dfake detect PATH...`: fake probability per image or video with the detector only (no Stable Diffusion).

Faces are found and aligned exactly as preparation does (the checkpoint records the alignment); a video's
probability is the mean over evenly spaced frames that show a face. Files without a face or that cannot be
read get a status of their own instead of stopping the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

OK = "ok"
NO_FACE = "no face"
NOT_FOUND = "not found"


def _device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def expand_paths(paths: list[str]) -> list[Path]:
    """Files as given; folders expand to the images and videos inside them (recursively, sorted)."""
    from dfake_cli.data.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    out: list[Path] = []
    for arg in paths:
        p = Path(arg).expanduser()
        if p.is_dir():
            exts = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts)
        else:
            out.append(p)
    return out


def _score_file(path: Path, detector, extractor, frames: int) -> dict:
    from dfake_cli.data.video import VIDEO_EXTENSIONS, VideoReadError, read_frames, read_image

    import numpy as np

    kind = "video" if path.suffix.lower() in VIDEO_EXTENSIONS else "image"
    row = {"path": str(path), "kind": kind, "status": OK, "prob_fake": None, "label": None, "frames": 0}
    if not path.is_file():
        row["status"] = NOT_FOUND
        return row
    try:
        if kind == "video":
            clip, _ = read_frames(path, num=frames)
            faces = extractor.track(clip)
            crops = [extractor.align(f, face)[0] for f, face in zip(clip, faces) if face is not None]
        else:
            found = extractor.extract_image(read_image(path))
            crops = [found[0]] if found is not None else []
    except VideoReadError as exc:
        row["status"] = f"unreadable: {exc}"
        return row
    if not crops:
        row["status"] = NO_FACE
        return row
    probs = detector.predict_proba(np.stack(crops))
    row["prob_fake"] = float(probs.mean())
    row["label"] = "fake" if row["prob_fake"] >= 0.5 else "real"
    row["frames"] = len(crops)
    return row


def run_detect(workspace, paths: list[str], checkpoint: str | None = None, frames: int = 32,
               device: str | None = None, on_file=None) -> dict:
    """Score every file; returns {"checkpoint": str, "results": [row per file]} (tests call this)."""
    from dfake_cli.data.faces import FaceAlignConfig, FaceExtractor
    from dfake_cli.errors import InputError
    from dfake_cli.models.checkpoints import resolve_checkpoint
    from dfake_cli.models.detector import Detector

    if frames < 1:
        raise InputError(f"--frames {frames}: use at least 1")
    ckpt = resolve_checkpoint(workspace, checkpoint)
    if ckpt is None:
        raise InputError(
            f"no trained model in workspace {workspace.root}: run 'dfake train' first or pass --checkpoint RUN|DIR"
        )
    files = expand_paths(paths)
    if not files:
        raise InputError("no images or videos found in the given paths")
    dev = _device(device)
    detector = Detector.from_pretrained(ckpt, device=dev)
    extractor = FaceExtractor(FaceAlignConfig.from_dict(detector.face_align), device=dev)
    results = []
    for i, path in enumerate(files):
        results.append(_score_file(path, detector, extractor, frames))
        if on_file is not None:
            on_file(i + 1, len(files))
    return {"checkpoint": str(ckpt), "results": results}


def register(app: typer.Typer) -> None:
    @app.command("detect")
    def detect_cmd(
        ctx: typer.Context,
        paths: List[str] = typer.Argument(..., help="Images, videos or folders of them."),
        checkpoint: Optional[str] = typer.Option(
            None, "--checkpoint", "-c", help="Run name, run folder or checkpoint folder (a run means its best/, "
            "else last/). Default: the workspace's latest run.", show_default=False,
        ),
        frames: int = typer.Option(32, "--frames", help="Evenly spaced frames per video (the mean is reported)."),
        json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
        device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: cuda if available).",
                                             show_default=False),
    ) -> None:
        """Fake probability per image or video (detector only; Stable Diffusion is not needed)."""
        import json

        from rich.table import Table

        from dfake_cli.cli.main import state
        from dfake_cli.console import console, progress

        with progress("files") as bar:
            task = bar.add_task("detect", total=None, rate="", info="")

            def on_file(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            out = run_detect(state(ctx).workspace, paths, checkpoint=checkpoint, frames=frames, device=device,
                             on_file=on_file)
        results = out["results"]
        if json_out:
            typer.echo(json.dumps(out, indent=2))
        else:
            table = Table(title=f"dfake detect ({out['checkpoint']})")
            table.add_column("file", overflow="fold", ratio=2)
            for col in ("kind", "faces", "p(fake)", "verdict"):
                table.add_column(col, justify="right" if col in ("faces", "p(fake)") else "left", no_wrap=True)
            table.add_column("status", overflow="fold", ratio=1)  # long reasons wrap instead of hiding the rest
            for r in results:
                p = "" if r["prob_fake"] is None else f"{r['prob_fake']:.3f}"
                table.add_row(r["path"], r["kind"], str(r["frames"]), p, r["label"] or "", r["status"])
            console.print(table)
        if not any(r["status"] == OK for r in results):
            raise typer.Exit(1)
