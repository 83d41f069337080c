"""`dfake bench`: speed figures of the training step (ours vs official-like), face preparation and evaluation.

Rows of every part are appended to a JSON-lines file together with where they came from (device,
versions, commit, date, load average), so a later run can be compared with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from dfake_cli.errors import InputError

if TYPE_CHECKING:
    from dfake_cli.bench.common import BenchOptions, BenchRow


@dataclass
class BenchResult:
    environment: dict[str, Any]
    quick: bool
    rows: list["BenchRow"] = field(default_factory=list)
    out: Optional[Path] = None  # the JSON-lines file the rows were appended to

    def to_dict(self) -> dict[str, Any]:
        """`dfake bench --json`: the environment once, then every row."""
        return {"environment": self.environment, "quick": self.quick, "out": str(self.out) if self.out else None,
                "rows": [r.to_dict() for r in self.rows]}


def run_bench(
    part: str, options: "BenchOptions", out: str | Path | None = None,
    on_start: Optional[Callable[[dict[str, Any]], None]] = None,
    on_part: Optional[Callable[[str, list["BenchRow"]], None]] = None,
) -> BenchResult:
    """Run `part` ("train-step", "train", "loader", "prepare", "eval" or "all"); append each part's rows to `out` as it ends.

    `on_start(environment)` before the first part and `on_part(name, rows)` after each one let the caller
    show figures as they come (a full run takes minutes).
    """
    from dfake_cli.bench import PARTS, parts_for, run_part
    from dfake_cli.bench.common import append_jsonl, environment

    if part != "all" and part not in PARTS:
        raise InputError(f"bench part {part!r}: use one of {', '.join(PARTS)} or all")
    if out and Path(out).is_dir():  # checked before minutes of measuring, not when appending the rows
        raise InputError(f"--out {out} is a folder; pass a JSON-lines file, e.g. {Path(out) / 'bench.jsonl'}")
    if options.device not in (None, "", "auto"):
        from dfake_cli.runtime import check_device

        check_device(options.device)
    env = environment(options.torch_device)
    result = BenchResult(environment=env, quick=options.quick, out=Path(out) if out else None)
    if on_start is not None:
        on_start(env)
    for name in parts_for(part):
        part_rows = run_part(name, options)
        if result.out is not None:
            append_jsonl(result.out, part_rows, {**env, "quick": options.quick})
        result.rows.extend(part_rows)
        if on_part is not None:
            on_part(name, part_rows)
    return result
