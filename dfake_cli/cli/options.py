"""Options and choices several commands share, written once (Annotated aliases, Enums, a device type).

Choices are Enums so that `--help` lists them, the shell completes them, and a wrong value is one
usage line (exit 2) before any work starts.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer


class Compression(str, Enum):
    """FaceForensics++ video quality: raw, c23 (HQ), c40 (LQ)."""

    raw = "raw"
    c23 = "c23"
    c40 = "c40"


class Precision(str, Enum):
    """bf16 autocast or plain fp32 (runtime.PRECISIONS)."""

    bf16 = "bf16"
    fp32 = "fp32"


def parse_device(value: str) -> str:
    """cpu, cuda or cuda:N, checked when parsed (whether this machine has it is checked by the api)."""
    kind, _, index = str(value).partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind != "cuda" or not index.isdigit())):
        raise typer.BadParameter(f"{value!r}: use cpu, cuda or cuda:N")
    return str(value)


def complete_device(incomplete: str) -> list[str]:
    return [d for d in ("cpu", "cuda", "cuda:0", "cuda:1") if d.startswith(incomplete)]


#: How every --device option parses and completes (`typer.Option("--device", **DEVICE)`).
DEVICE = {"parser": parse_device, "autocompletion": complete_device, "metavar": "cpu|cuda|cuda:N"}


def choice_value(choice: Optional[Enum]) -> Optional[str]:
    """An Enum choice as the plain string the api takes (None stays None)."""
    return None if choice is None else str(choice.value)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document on stdout.")]

CheckpointOpt = Annotated[Optional[str], typer.Option(
    "--checkpoint", "-c", help="Run name, run folder or checkpoint folder (a run means its validation-best "
    "best/, else last/). Default: the workspace's latest run.", show_default=False)]

DeviceOpt = Annotated[Optional[str], typer.Option(
    "--device", **DEVICE, help="cpu, cuda or cuda:N (default: cuda if available).",
    show_default=False)]

PrecisionOpt = Annotated[Optional[Precision], typer.Option(
    "--precision", help="Forward-pass precision (default: bf16 on CUDA, fp32 on CPU).", show_default=False)]

#: Where Stable Diffusion comes from; one definition so the DFAKE_SD fallback is the same everywhere.
SD_ENVVAR = "DFAKE_SD"
SD_HELP = "Stable Diffusion: 'tiny' (the embedded test model), a diffusers folder or an SD-1.5 file."

#: Face options of the training-cache prepares (ff++, sbi); the test-set prepares default to the ffpp cache's.
FramesOpt = Annotated[int, typer.Option("--frames", min=1, help="Evenly spaced frames per video (all when shorter).")]
SizeOpt = Annotated[int, typer.Option("--size", help="Face crop size in pixels.")]
MarginOpt = Annotated[float, typer.Option(
    "--margin", help="Context around the face: the template is shrunk by 1/margin.")]
PrepareDeviceOpt = Annotated[str, typer.Option("--device", **DEVICE, help="cpu, cuda or cuda:N.")]

#: --sd of the training-cache prepares (ff++, sbi): the VAE that encodes the latents.
PrepareSdOpt = Annotated[Optional[str], typer.Option(
    "--sd", envvar=SD_ENVVAR, show_envvar=True,
    help="Stable Diffusion for the latents: a local SD-1.5 file or diffusers folder, or 'tiny' (the "
    "demo's random tiny SD).", show_default=False)]
