"""What every benchmark part shares: timing, peak memory, FLOPs, MFU, the results file and the table.

Why these choices:
- Times are the *median* of synchronised steps after warm-up: the first steps pay for allocator growth,
  cuDNN autotuning and lazy initialisation, and one slow outlier should not move the figure.
- The MFU denominator is a bf16 matmul peak *measured in the same run on the same device*, not a data-sheet
  number: it is what this device, driver and torch build actually deliver.
- On the CPU there is no allocator counter, so peak memory is the process's resident-set peak
  (`resource.getrusage`), which covers everything the process has held so far; the row says so.
"""

from __future__ import annotations

import datetime as _dt
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from dfake_cli.runtime import PRECISIONS, check_device, default_device, default_precision, version_of
from dfake_cli.io import atomic_path


@dataclass
class BenchRow:
    """One measured line: a part (train-step, prepare, eval), a variant and its metrics."""

    part: str
    variant: str
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "variant": self.variant, "metrics": dict(self.metrics), "notes": list(self.notes)}


# ----------------------------------------------------------------------------------------------- devices


def resolve_device(device: str | None) -> torch.device:
    """`None`/"auto" -> cuda when available, else cpu; anything else as given (validated by the caller)."""
    if device in (None, "", "auto"):
        return torch.device(default_device())
    return torch.device(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    cpu = platform.processor() or platform.machine()
    try:  # the model name is more useful than "x86_64" when it is available
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {cpu} ({torch.get_num_threads()} threads)"


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so that a wall-clock interval covers the work and not just its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """Per-step wall times (seconds) of the measured steps, warm-up excluded."""

    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def minimum(self) -> float:
        return min(self.times)


def time_steps(fn: Callable[[], Any], device: torch.device, steps: int, warmup: int) -> Timing:
    """Run `fn` `warmup` times unmeasured, then `steps` times, each synchronised before and after."""
    if steps < 1:
        raise ValueError("steps must be >= 1")
    for _ in range(max(0, warmup)):
        fn()
    synchronize(device)
    times = []
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return Timing(times)


def cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children (worker processes).

    On a shared machine wall time includes waiting for a core; CPU time does not, so the two together
    show whether a figure is bounded by the work or by the machine's load.
    """
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# ----------------------------------------------------------------------------------------------- memory


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_reserved(device: torch.device) -> int | str:
    """Peak memory the CUDA caching allocator reserved (what the card had to hold); "n/a" off CUDA."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_reserved(device))
    return "n/a"


def peak_memory(device: torch.device) -> tuple[int, str]:
    """(bytes, what was measured). CUDA: peak allocated by torch since the last reset. CPU: process RSS peak."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda max_memory_allocated"
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux reports KiB
    return int(kib) * 1024, "cpu process RSS peak (whole process so far)"


# ----------------------------------------------------------------------------------------------- FLOPs


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of `fn` (forward and backward if it runs both), counted by torch's FlopCounterMode.

    The counter sees matmuls and convolutions (including SDPA); elementwise ops are not counted, which is
    the usual convention for model FLOPs.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.bfloat16, size: int | None = None,
                repeats: int | None = None) -> dict[str, Any]:
    """Measure the device's dense matmul throughput (FLOP/s) with a large square matmul in `dtype`."""
    if size is None:
        size = 8192 if device.type == "cuda" else 1024
    if repeats is None:
        repeats = 20 if device.type == "cuda" else 3
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    timing = time_steps(lambda: torch.matmul(a, b), device, steps=repeats, warmup=2)
    flops = 2.0 * size**3
    return {
        "flops_per_s": flops / timing.minimum,
        "dtype": str(dtype).replace("torch.", ""),
        "size": size,
        "label": f"measured {str(dtype).replace('torch.', '')} {size}x{size} matmul on {device.type}",
    }


def mfu(flops_per_step: float, seconds_per_step: float, peak_flops_per_s: float) -> float:
    """Model FLOP utilisation: the fraction of the measured matmul peak that the step achieves."""
    if seconds_per_step <= 0 or peak_flops_per_s <= 0:
        return float("nan")
    return flops_per_step / seconds_per_step / peak_flops_per_s


# ----------------------------------------------------------------------------------------------- provenance


def git_commit() -> str:
    """The commit of the dfake checkout (with '+dirty' when it has local changes), or 'unknown'."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device: torch.device, argv: list[str] | None = None) -> dict[str, Any]:
    """Where and when the figures came from: enough to compare them with a later run."""
    return {
        "device": device_name(device),
        "device_type": device.type,
        "torch": torch.__version__,
        "diffusers": version_of("diffusers"),
        "timm": version_of("timm"),
        "dfake": version_of("dfake"),
        "git_commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": list(sys.argv if argv is None else argv),
        "python": sys.version.split()[0],
        "cpu_threads": torch.get_num_threads(),
        "load_average_1m": _load_average(),
    }


def _load_average() -> float | None:
    """Other processes on a shared machine slow every figure down; the results file records how busy it was."""
    import os

    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def append_jsonl(path: str | Path, rows: list[BenchRow], env: dict[str, Any]) -> Path:
    """Append one JSON line per row (row + environment) to `path`; the file is replaced atomically."""
    path = Path(path)
    old = path.read_text() if path.is_file() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    new = "".join(json.dumps({**row.to_dict(), **env}, sort_keys=True, default=_json_default) + "\n"
                  for row in rows)
    with atomic_path(path) as tmp:
        tmp.write_text(old + new)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, float):
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


# ----------------------------------------------------------------------------------------------- display


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


def fmt_flops(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


# Short settings shown in the table's last column; longer provenance goes below the table.
DETAIL_KEYS = ("status", "batch_size", "precision", "memory_ratio", "flop_ratio", "cpu_ms_per_frame", "cpu_ms_per_face", "split_ms_per_frame", "faces", "frames", "videos")
FOOTNOTE_KEYS = ("peak_memory_kind", "matmul_peak", "matmul_peak_flops_per_s", "setup")

_DISPLAY = [  # metric key, column title, formatter
    ("ms_per_step", "ms/step", lambda v: f"{v:.1f}"),
    ("images_per_s", "images/s", lambda v: f"{v:.2f}"),
    ("frames_per_s", "frames/s", lambda v: f"{v:.1f}"),
    ("faces_per_s", "faces/s", lambda v: f"{v:.1f}"),
    ("peak_memory_bytes", "peak mem", fmt_bytes),
    ("peak_reserved_bytes", "reserved", lambda v: fmt_bytes(v) if isinstance(v, int) else str(v)),
    ("flops_per_image", "FLOPs/image", fmt_flops),
    ("mfu", "MFU", lambda v: f"{100 * v:.2f}%"),
    ("speedup", "ratio", lambda v: f"{v:.2f}x"),
]


def rows_table(rows: list[BenchRow], title: str):
    """A rich Table: the common metrics as columns, everything else (splits, settings) in 'details'."""
    from rich.table import Table

    shown = [(k, t, f) for k, t, f in _DISPLAY if any(k in r.metrics for r in rows)]
    table = Table(title=title)  # the title names the part: the rows only need the variant
    table.add_column("variant")
    for _, col, _ in shown:
        table.add_column(col, justify="right")
    table.add_column("details")
    for row in rows:
        cells = []
        for key, _, fmt in shown:
            value = row.metrics.get(key)
            cells.append("-" if value is None else fmt(value))
        extra = [f"{k}={_short(row.metrics[k])}" for k in DETAIL_KEYS if k in row.metrics]
        table.add_row(row.variant, *cells, "; ".join(extra))
    return table


def rows_footnotes(rows: list[BenchRow]) -> list[str]:
    """The notes and long settings that do not fit a table cell, de-duplicated, in order."""
    seen: list[str] = []
    for row in rows:
        for text in row.notes + [f"{k}: {_short(row.metrics[k])}" for k in FOOTNOTE_KEYS if k in row.metrics]:
            if text not in seen:
                seen.append(text)
    return seen


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    return str(value)


# ----------------------------------------------------------------------------------------------- options


from dfake_cli.bench.parts import PARTS  # noqa: E402  (re-exported: bench.common.PARTS)


@dataclass
class BenchOptions:
    """What the user asked for; each part picks its own defaults for the fields left as None."""

    quick: bool = False
    batch_size: int | None = None
    precision: str | None = None  # "bf16" | "fp32"; None: bf16 on CUDA, fp32 on CPU
    compile: bool = False
    low_memory: bool = False
    device: str | None = None
    steps: int | None = None
    warmup: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        from dfake_cli.errors import InputError

        if self.precision is not None and self.precision not in PRECISIONS:
            raise InputError(f"--precision {self.precision}: use {' or '.join(PRECISIONS)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise InputError(f"--batch-size {self.batch_size}: must be >= 1")
        if self.steps is not None and self.steps < 1:
            raise InputError(f"--steps {self.steps}: must be >= 1")
        if self.device not in (None, "", "auto"):
            check_device(self.device)

    @property
    def torch_device(self) -> torch.device:
        """--device if given; else the CPU for --quick (toy sizes are a CPU check), else cuda when present."""
        if self.quick and self.device in (None, "", "auto"):
            return torch.device("cpu")
        return resolve_device(self.device)

    def resolved_precision(self) -> str:
        return default_precision(self.torch_device.type, self.precision)
