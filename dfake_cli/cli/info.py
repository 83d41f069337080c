"""`dfake info`: versions, device and what the workspace holds (`dfake_cli.api.info`)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from dfake_cli.cli.context import state
from dfake_cli.cli.options import JsonOpt
from dfake_cli.cli.render import emit_json


def register(app: typer.Typer) -> None:
    @app.command("info")
    def info_cmd(
        ctx: typer.Context,
        sd: Annotated[Optional[str], typer.Option(
            "--sd", help="Also say what this Stable Diffusion provides (UNet, VAE, text encoder, context source).",
            show_default=False)] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Versions of the stack, the device, and what the workspace holds."""
        from rich.table import Table

        from dfake_cli.api.info import collect_info
        from dfake_cli.console import console

        data = collect_info(state(ctx).workspace, sd=sd).to_dict()
        if json_out:
            emit_json(data)
            return
        table = Table(title="dfake info", show_header=False)
        for key, value in data.items():
            if isinstance(value, list):
                value = ", ".join(value) if value else "(none)"
            elif isinstance(value, dict):
                value = ", ".join(f"{k} {v / 1e6:,.1f} M" for k, v in value.items()) + " parameters"
            table.add_row(key, str(value))
        console.print(table)
