"""`dfake detect PATH...`: fake probability per image or video (detector only; `dfake_cli.api.detect`)."""

from __future__ import annotations

from typing import Annotated, List

import typer

from dfake_cli.cli.context import state
from dfake_cli.cli.options import CheckpointOpt, DeviceOpt, JsonOpt
from dfake_cli.cli.render import emit_json


def register(app: typer.Typer) -> None:
    @app.command("detect")
    def detect_cmd(
        ctx: typer.Context,
        paths: Annotated[List[str], typer.Argument(help="Images, videos or folders of them.")],
        checkpoint: CheckpointOpt = None,
        frames: Annotated[int, typer.Option(
            "--frames", help="Evenly spaced frames per video (the mean is reported).")] = 32,
        json_out: JsonOpt = False,
        device: DeviceOpt = None,
    ) -> None:
        """Fake probability per image or video (detector only; Stable Diffusion is not needed)."""
        from rich.table import Table

        from dfake_cli.api.detect import run_detect
        from dfake_cli.console import console, progress

        with progress("files") as bar:
            task = bar.add_task("detect", total=None, rate="", info="")
            result = run_detect(state(ctx).workspace, paths, checkpoint=checkpoint, frames=frames, device=device,
                                on_file=lambda done, total: bar.update(task, completed=done, total=total))
        if json_out:
            emit_json(result.to_dict())
        else:
            table = Table(title=f"dfake detect ({result.checkpoint})")
            table.add_column("file", overflow="fold", ratio=2)
            for col in ("kind", "faces", "p(fake)", "verdict"):
                table.add_column(col, justify="right" if col in ("faces", "p(fake)") else "left", no_wrap=True)
            table.add_column("status", overflow="fold", ratio=1)  # long reasons wrap instead of hiding the rest
            for r in result.results:
                p = "" if r.prob_fake is None else f"{r.prob_fake:.3f}"
                table.add_row(r.path, r.kind, str(r.frames), p, r.label or "", r.status)
            console.print(table)
        if not result.any_scored:
            raise typer.Exit(1)
