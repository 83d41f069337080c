"""`dfake bench`: measure the training step (ours vs official-like), face preparation and evaluation."""

from __future__ import annotations

from typing import Optional

import typer

PART_HELP = "train-step | prepare | eval | all"


def run_bench(part: str, options, out: str | None) -> list:
    """Run the requested parts, print each part's table, append every row to `out` (JSON lines)."""
    from dfake_cli.bench import parts_for, run_part
    from dfake_cli.bench.common import append_jsonl, environment, rows_footnotes, rows_table
    from dfake_cli.console import console

    env = environment(options.torch_device)
    console.print(f"[bold]dfake bench[/] on {env['device']} (torch {env['torch']}, commit {env['git_commit']})"
                  + ("  [dim]--quick: toy sizes, not comparable with full runs[/]" if options.quick else ""))
    rows = []
    for name in parts_for(part):
        part_rows = run_part(name, options)
        console.print(rows_table(part_rows, title=f"dfake bench {name}" + (" (quick)" if options.quick else "")))
        for note in rows_footnotes(part_rows):
            console.print(f"  [dim]- {note}[/]")
        if out:
            append_jsonl(out, part_rows, {**env, "quick": options.quick})
        rows.extend(part_rows)
    if out:
        console.print(f"appended {len(rows)} rows to {out}")
    return rows


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench_cmd(
        part: str = typer.Argument("all", help=PART_HELP),
        quick: bool = typer.Option(False, "--quick", help="Toy sizes on the CPU, all parts in under two minutes."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Training-step batch (default 32 on GPU, 1 on CPU)."),
        precision: Optional[str] = typer.Option(None, "--precision", help="bf16 | fp32 for our step (default bf16 on CUDA, fp32 on CPU)."),
        compile_: bool = typer.Option(False, "--compile", help="torch.compile our training step."),
        low_memory: bool = typer.Option(False, "--low-memory", help="Our step with activation checkpointing."),
        device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda | cuda:N (default: cuda if available)."),
        steps: Optional[int] = typer.Option(None, "--steps", help="Measured steps per variant (median is reported)."),
        out: str = typer.Option("bench-results.jsonl", "--out", help="JSON-lines file the rows are appended to ('' for none)."),
    ) -> None:
        """Benchmarks: training step vs an official-like step, face preparation frames/s, eval faces/s."""
        from dfake_cli.bench.common import BenchOptions
        from dfake_cli.bench import PARTS
        from dfake_cli.errors import InputError

        if part != "all" and part not in PARTS:
            raise InputError(f"bench part {part!r}: use one of {', '.join(PARTS)} or all")
        options = BenchOptions(quick=quick, batch_size=batch_size, precision=precision, compile=compile_,
                               low_memory=low_memory, device=device, steps=steps)
        run_bench(part, options, out or None)
