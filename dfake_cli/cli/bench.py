"""`dfake bench`: the training step (ours vs official-like), training end to end, the loader, face preparation
and evaluation."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from dfake_cli.bench.parts import PARTS
from dfake_cli.cli.options import DeviceOpt, JsonOpt, PrecisionOpt, choice_value
from dfake_cli.cli.render import emit_json

BenchPart = Enum("BenchPart", {name: name for name in (*PARTS, "all")}, type=str)  # choices from bench.parts


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench_cmd(
        part: Annotated[BenchPart, typer.Argument(help="Which part to measure; all = every part in turn.")] = "all",
        quick: Annotated[bool, typer.Option("--quick", help="Toy sizes on the CPU, all parts in under two minutes.")] = False,
        batch_size: Annotated[Optional[int], typer.Option(
            "--batch-size", help="Training-step batch (default 32 on GPU, 1 on CPU).")] = None,
        precision: PrecisionOpt = None,
        compile_: Annotated[bool, typer.Option("--compile", help="torch.compile our training step.")] = False,
        low_memory: Annotated[bool, typer.Option("--low-memory", help="Our step with activation checkpointing.")] = False,
        device: DeviceOpt = None,
        steps: Annotated[Optional[int], typer.Option(
            "--steps", help="Measured steps per variant (median is reported).")] = None,
        out: Annotated[str, typer.Option(
            "--out", help="JSON-lines file the rows are appended to ('' for none).")] = "bench-results.jsonl",
        json_out: JsonOpt = False,
    ) -> None:
        """Benchmarks: training step vs an official-like step, face preparation frames/s, eval faces/s."""
        from dfake_cli.api.bench import run_bench
        from dfake_cli.bench.common import BenchOptions, rows_footnotes, rows_table
        from dfake_cli.console import console, err_console

        options = BenchOptions(quick=quick, batch_size=batch_size, precision=choice_value(precision), compile=compile_,
                               low_memory=low_memory, device=device, steps=steps)
        # With --json the tables go to stderr, so stdout holds the one JSON document.
        show = err_console if json_out else console

        def on_start(env: dict) -> None:
            show.print(f"[bold]dfake bench[/] on {env['device']} (torch {env['torch']}, commit {env['git_commit']})"
                       + ("  [dim]--quick: toy sizes, not comparable with full runs[/]" if quick else ""))

        def on_part(name: str, rows: list) -> None:
            show.print(rows_table(rows, title=f"dfake bench {name}" + (" (quick)" if quick else "")))
            for note in rows_footnotes(rows):
                show.print(f"  [dim]- {note}[/]")

        result = run_bench(choice_value(part), options, out or None, on_start=on_start, on_part=on_part)
        if result.out is not None:
            err_console.print(f"appended {len(result.rows)} rows to {result.out}")
        if json_out:
            emit_json(result.to_dict())
