"""`dfake reconstruct IMAGE`: the source and target faces the guide sees (`dfake_cli.api.reconstruct`)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dfake_cli.cli.context import state
from dfake_cli.cli.options import SD_ENVVAR, SD_HELP, DeviceOpt, JsonOpt
from dfake_cli.cli.render import emit_json


def register(app: typer.Typer) -> None:
    @app.command("reconstruct")
    def reconstruct_cmd(
        ctx: typer.Context,
        image: Annotated[str, typer.Argument(help="A photo with a face.")],
        checkpoint: Annotated[Optional[str], typer.Option(
            "--checkpoint", "-c", help="Run name, run folder or checkpoint folder (a run means its best/, "
            "else last/). Default: the workspace's latest run; none: an untrained model.", show_default=False,
        )] = None,
        steps: Annotated[int, typer.Option("--steps", help="DDIM steps (eta 0).")] = 50,
        seeds: Annotated[int, typer.Option("--seeds", help="Initial noises (seeds 0..N-1) per branch.")] = 3,
        out: Annotated[Optional[str], typer.Option(
            "--out", "-o", help="Grid PNG (default: <workspace>/reconstructions/<image name>.png).",
            show_default=False)] = None,
        sd: Annotated[Optional[str], typer.Option(
            "--sd", envvar=SD_ENVVAR, show_envvar=True, help=f"{SD_HELP} Default: the checkpoint's.",
            show_default=False)] = None,
        json_out: JsonOpt = False,
        device: DeviceOpt = None,
    ) -> None:
        """Reconstruct the source and target faces the guide sees in IMAGE (DDIM from noise, per seed)."""
        from dfake_cli.api.reconstruct import run_reconstruct
        from dfake_cli.console import console, err_console, progress

        workspace = state(ctx).workspace
        with progress("steps") as bar:
            task = bar.add_task("DDIM", total=steps, rate="", info="")
            result = run_reconstruct(workspace, image, checkpoint=checkpoint, steps=steps, seeds=seeds, out=out,
                                     sd=sd, device=device,
                                     on_step=lambda done, total: bar.update(task, completed=done, total=total))
        if not result.trained:
            err_console.print(
                f"[yellow]note:[/] no trained run in {workspace.root}: this used an UNTRAINED model "
                f"(random detector and guide); train first or pass --checkpoint",
                soft_wrap=True,
            )
        if json_out:
            emit_json(result.to_dict())
        else:
            console.print(f"p(fake) = {result.prob_fake:.3f}  W_s = {result.w_s:.3f}  W_t = {result.w_t:.3f}  "
                          f"-> {result.output}")
