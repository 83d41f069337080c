"""Small shared pieces every layer needs: the device choice, precisions, alignment defaults, versions.

Each of these used to be written out in several modules; a default changed in one copy and not the others
is how a detector ends up aligned differently from its training faces. Nothing heavy is imported at module
level (torch is imported inside the functions that need it) so that `dfake --help` stays fast.
"""

from __future__ import annotations

import importlib.metadata as _md
from dataclasses import dataclass

#: Numeric precisions of the forward pass (training and evaluation): bf16 autocast or plain fp32.
PRECISIONS: tuple[str, ...] = ("bf16", "fp32")

#: Face crop side in pixels (SD-1.5's VAE gives 4 x 32 x 32 latents; 224 breaks the UNet's skips).
DEFAULT_SIZE = 256

#: Context around the face: the alignment template is shrunk by 1 / margin.
DEFAULT_MARGIN = 1.3


@dataclass(frozen=True)
class RankInfo:
    """Where this process stands in a torchrun job (a single process: rank 0 of 1). Training and preparation
    extend it with what they need (the device; whether they created the process group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def torchrun_ranks() -> RankInfo:
    """RANK, WORLD_SIZE and LOCAL_RANK as torchrun sets them (absent: a single process); one line when one of
    them is not a whole number."""
    import os

    from dfake_cli.errors import InputError

    def read(name: str, default: int) -> int:
        value = os.environ.get(name, "")
        if value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise InputError(f"environment variable {name}={value!r} is not a whole number (torchrun sets it)") \
                from None

    world = read("WORLD_SIZE", 1)
    if world <= 1:
        return RankInfo()
    rank = read("RANK", 0)
    return RankInfo(rank, world, read("LOCAL_RANK", rank))


#: The device kinds dfake runs on (`cuda:N` picks one GPU).
DEVICES: tuple[str, ...] = ("cpu", "cuda")


def default_device(requested: str | None = None) -> str:
    """`requested` as given, else "cuda" when a GPU is usable, else "cpu" (validate with `check_device`)."""
    if requested and requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_device(requested: str | None = None, option: str = "--device") -> str:
    """The device to run on: `requested` (cpu, cuda, cuda:N) if this machine has it, else the default.

    Raises a one-line InputError naming `option` for anything else, before any work starts.
    """
    from dfake_cli.errors import InputError

    device = default_device(requested)
    kind, _, index = device.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise InputError(f"{option} {device}: use cpu, cuda or cuda:N")
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"{option} {device}: no CUDA device is available here; use {option} cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise InputError(f"{option} {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


def default_precision(device: str, requested: str | None = None) -> str:
    """`requested` as given, else bf16 on CUDA (tensor cores) and fp32 on the CPU (bf16 is slower there)."""
    return requested or ("bf16" if str(device).startswith("cuda") else "fp32")


def version_of(dist: str) -> str:
    """An installed distribution's version, or 'not installed' (info and the benchmarks' provenance)."""
    try:
        return _md.version(dist)
    except _md.PackageNotFoundError:
        return "not installed"


#: The logger every dfake module logs under (`logging.getLogger(__name__)` of a dfake_cli module).
LOGGER = "dfake_cli"


def setup_logging(verbosity: int = 0) -> None:
    """Logs to stderr through rich: -1 (--quiet) warnings only, 0 progress notes (info), 1 (--verbose) debug.

    stdout is left to results, so `dfake ... --json > out.json` stays one JSON document whatever is logged.
    """
    import logging

    from rich.logging import RichHandler

    from dfake_cli.console import err_console

    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        if getattr(handler, "_dfake", False):
            logger.removeHandler(handler)
    handler = RichHandler(console=err_console, show_time=False, show_path=verbosity > 0, markup=False,
                          rich_tracebacks=False)
    handler._dfake = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
