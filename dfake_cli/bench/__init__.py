"""`dfake bench` parts: train-step (ours vs an official-like step), train (end to end vs the step alone),
loader (training batches/s vs the old reader), prepare (face extraction), eval.

Each part is a plain function `bench_<part>(BenchOptions) -> list[BenchRow]` (common.py); the CLI prints
the rows as a table and appends them to a JSON-lines file with the device, versions, commit and date.
Parts import their heavy dependencies lazily so that one part runs without the others' modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dfake_cli.bench.parts import PARTS

if TYPE_CHECKING:
    from dfake_cli.bench.common import BenchOptions, BenchRow


def __getattr__(name: str):
    """BenchOptions / BenchRow on first use: importing the package (for PARTS) must not import torch."""
    if name in ("BenchOptions", "BenchRow"):
        from dfake_cli.bench import common

        return getattr(common, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_part(part: str, options: "BenchOptions") -> list["BenchRow"]:
    """Run one part ("train-step", "prepare" or "eval") and return its rows."""
    if part == "train-step":
        from dfake_cli.bench.train_step import bench_train_step

        return bench_train_step(options)
    if part == "train":
        from dfake_cli.bench.train import bench_train

        return bench_train(options)
    if part == "loader":
        from dfake_cli.bench.loader import bench_loader

        return bench_loader(options)
    if part == "prepare":
        from dfake_cli.bench.prepare import bench_prepare

        return bench_prepare(options)
    if part == "eval":
        from dfake_cli.bench.evaluation import bench_eval

        return bench_eval(options)
    from dfake_cli.errors import InputError

    raise InputError(f"bench part {part!r}: use one of {', '.join(PARTS)} or all")


def parts_for(name: str) -> list[str]:
    """'all' -> every part in order; a single part name -> [name] (validated by run_part)."""
    return list(PARTS) if name == "all" else [name]


__all__ = ["BenchOptions", "BenchRow", "PARTS", "parts_for", "run_part"]
