"""Options several commands share, written once (Annotated aliases)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document on stdout.")]

CheckpointOpt = Annotated[Optional[str], typer.Option(
    "--checkpoint", "-c", help="Run name, run folder or checkpoint folder (a run means its validation-best "
    "best/, else last/). Default: the workspace's latest run.", show_default=False)]

DeviceOpt = Annotated[Optional[str], typer.Option(
    "--device", help="cpu, cuda or cuda:N (default: cuda if available).", show_default=False)]
