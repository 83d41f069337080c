"""`dfake eval`: the detector on prepared test sets -> report.json, predictions.csv, roc.png, Table 1."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from dfake_cli.cli.context import state
from dfake_cli.cli.options import CheckpointOpt, DeviceOpt, JsonOpt, PrecisionOpt, choice_value
from dfake_cli.cli.render import emit_json


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_cmd(
        ctx: typer.Context,
        dataset: Annotated[List[str], typer.Option(
            "--dataset", "-d", help="A prepared dataset (cache name: ffpp, celebdf, dfdcp, dfd, wdf, diffswap, "
            "folder-<name>); repeat it, or 'all' for every cache with test rows. ffpp = its test split.")],
        checkpoint: CheckpointOpt = None,
        frames: Annotated[Optional[int], typer.Option(
            "--frames", min=1, help="At most N evenly spaced frames per video (default: all cached).",
            show_default=False)] = None,
        out: Annotated[Optional[Path], typer.Option(
            "--out", "-o", help="Report folder (default: <workspace>/reports/<UTC time>).", show_default=False)] = None,
        batch_size: Annotated[Optional[int], typer.Option(
            "--batch-size", "-b", min=1, help="Faces per forward pass (default 256 on CUDA, 64 on CPU).")] = None,
        precision: PrecisionOpt = None,
        device: DeviceOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Evaluate a trained detector across datasets: frame- and video-level AUC, EER, AP, accuracy."""
        from dfake_cli.api.evaluate import run_eval
        from dfake_cli.console import console
        from dfake_cli.evaluation.report import table1

        result = run_eval(state(ctx).workspace, dataset, checkpoint=checkpoint, out=out, frames=frames,
                          batch_size=batch_size, device=device, precision=choice_value(precision))
        if json_out:
            emit_json(result.to_dict())
            return
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
