"""`make bench-gpu`: every GPU figure of the project in one run, one JSON line per row, one summary table.

    python -m dfake_cli.bench.gpu            # on a lent GPU: SD-1.5 scale, batch 32 (<= 8 minutes planned)
    python -m dfake_cli.bench.gpu --quick    # toy sizes on the CPU (< 2 minutes): checks the harness only

Runs, in this order (cheapest first, so a run cut short still leaves figures): loader, eval, prepare,
train end to end vs its step, then train-step ours vs official-like at batch 32, ours with --low-memory,
ours with --compile. Each part appends its rows to `--out` (bench-results.jsonl) as soon as it ends, with
the device, versions, commit, date and load average. Under --quick, --compile is skipped (compiling takes
minutes on a CPU and says nothing about a GPU).
"""

from __future__ import annotations

import argparse
import time

from dfake_cli.bench.common import BenchOptions, BenchRow


def plan(quick: bool, device: str | None) -> list[tuple[str, BenchOptions, str]]:
    """(part, options, label) in run order."""
    base = dict(quick=quick, device=device)
    batch = None if quick else 32
    runs = [
        ("loader", BenchOptions(**base), "loader"),
        ("eval", BenchOptions(**base), "eval"),
        ("prepare", BenchOptions(**base), "prepare"),
        ("train", BenchOptions(**base), "train end to end"),
        ("train-step", BenchOptions(**base, batch_size=batch), "train-step"),
        ("train-step", BenchOptions(**base, batch_size=batch, low_memory=True), "train-step --low-memory"),
    ]
    if not quick:
        runs.append(("train-step", BenchOptions(**base, batch_size=batch, compile=True), "train-step --compile"))
    return runs


def main(argv: list[str] | None = None) -> list[BenchRow]:
    from dfake_cli.bench import run_part
    from dfake_cli.bench.common import append_jsonl, environment, rows_table
    from dfake_cli.console import console

    parser = argparse.ArgumentParser(prog="python -m dfake_cli.bench.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes on the CPU (< 2 minutes)")
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: cuda if available)")
    parser.add_argument("--out", default="bench-results.jsonl", help="JSON-lines file the rows are appended to")
    args = parser.parse_args(argv)
    runs = plan(args.quick, args.device)
    env = environment(runs[0][1].torch_device)
    console.print(f"[bold]dfake bench-gpu[/] on {env['device']} (torch {env['torch']}, commit {env['git_commit']})"
                  + ("  [dim]--quick: toy sizes; --compile skipped[/]" if args.quick else ""))
    t0 = time.perf_counter()
    rows: list[BenchRow] = []
    for part, options, label in runs:
        t = time.perf_counter()
        part_rows = run_part(part, options)
        for row in part_rows:
            row.variant = f"{label}: {row.variant}"
            row.metrics["part_seconds"] = round(time.perf_counter() - t, 1)
        if args.out:
            append_jsonl(args.out, part_rows, {**environment(options.torch_device), "quick": options.quick,
                                               "suite": "bench-gpu"})
        rows.extend(part_rows)
        console.print(f"  {label}: {time.perf_counter() - t:.0f} s", style="dim")
    console.print(rows_table(rows, title=f"dfake bench-gpu ({time.perf_counter() - t0:.0f} s wall)"))
    if args.out:
        console.print(f"appended {len(rows)} rows to {args.out}")
    return rows


if __name__ == "__main__":
    main()
