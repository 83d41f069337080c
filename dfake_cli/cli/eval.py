"""`dfake eval`: the detector on prepared test sets -> report.json, predictions.csv, roc.png, Table 1."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_cmd(
        ctx: typer.Context,
        dataset: List[str] = typer.Option(
            ..., "--dataset", "-d", help="A prepared dataset (cache name: ffpp, celebdf, dfdcp, dfd, wdf, diffswap, "
            "folder-<name>); repeat it, or 'all' for every cache with test rows. ffpp = its test split.",
        ),
        checkpoint: Optional[str] = typer.Option(
            None, "--checkpoint", "-c", help="Run name, run folder or checkpoint folder. A run means its "
            "validation-best best/ (last/ if none). Default: the latest run.", show_default=False,
        ),
        frames: Optional[int] = typer.Option(
            None, "--frames", min=1, help="At most N evenly spaced frames per video (default: all cached).",
            show_default=False,
        ),
        out: Optional[Path] = typer.Option(
            None, "--out", "-o", help="Report folder (default: <workspace>/reports/<UTC time>).", show_default=False,
        ),
        batch_size: int = typer.Option(64, "--batch-size", "-b", min=1, help="Faces per forward pass."),
        precision: Optional[str] = typer.Option(
            None, "--precision", help="bf16 | fp32 (default: bf16 on CUDA, fp32 on CPU).", show_default=False,
        ),
        device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: cuda if available).",
                                             show_default=False),
    ) -> None:
        """Evaluate a trained detector across datasets: frame- and video-level AUC, EER, AP, accuracy."""
        from dfake_cli.cli.main import state
        from dfake_cli.console import console
        from dfake_cli.evaluation.evaluate import run_eval
        from dfake_cli.evaluation.report import table1

        workspace = state(ctx).workspace
        result = run_eval(workspace, dataset, checkpoint=checkpoint, out=out, frames=frames, batch_size=batch_size,
                          device=device, precision=precision)
        console.print(table1(result.report))
        for name, summary in result.report["datasets"].items():
            counts = summary["counts"]
            console.print(
                f"{name}: {counts['videos']} videos ({counts['real_videos']} real, {counts['fake_videos']} fake), "
                f"{counts['frames']} faces, {counts['skipped']} skipped at preparation; "
                f"{summary['faces_per_s']:,.0f} faces/s"
            )
        for note in result.report.get("notes", []):
            console.print(f"[yellow]note:[/] {note}")
        console.print(f"report: {result.out_dir / 'report.json'} (predictions.csv, roc.png alongside)")
