"""`dfake info`: versions of the stack, the device, what the workspace holds, the model's size."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dfake_cli import __version__
from dfake_cli.runtime import version_of
from dfake_cli.workspace import Workspace


@dataclass
class Info:
    versions: dict[str, str]  # dfake, torch, diffusers, timm, facenet-pytorch, decord, h5py
    device: str
    workspace: str
    caches: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    model: dict[str, int] = field(default_factory=dict)  # parameter counts at SD-1.5 scale (EN-B4)
    sd: dict[str, Any] = field(default_factory=dict)  # what `--sd` provides (models.sd.describe_sd)

    def to_dict(self) -> dict[str, Any]:
        """`dfake info --json`: one flat object (versions first)."""
        out = {**self.versions, "device": self.device, "workspace": self.workspace, "caches": self.caches,
               "runs": self.runs, "model (SD-1.5, efficientnet_b4)": self.model}
        if self.sd:
            out.update({f"sd {k}" if k != "sd" else "sd": v for k, v in self.sd.items()})
        return out


def model_size() -> dict[str, int]:
    """Parameter counts of the default SD-1.5 model (EN-B4), built on the meta device: no memory, ~1 s."""
    from dfake_cli.models.diffusionfake import sd15_parameter_count

    counts = sd15_parameter_count("efficientnet_b4")
    return {
        "trainable": counts["trainable"],
        "guide": counts["guide"],
        "frozen_sd": counts["frozen_unet"] + counts["frozen_vae"],
        "inference": counts["inference"],
    }


def collect_info(workspace: Workspace, sd: str | None = None) -> Info:
    """Everything `dfake info` shows, as plain data; with `sd`, what that Stable Diffusion provides."""
    import torch

    from dfake_cli.data import video  # noqa: F401  (torch before decord)
    import decord

    if torch.cuda.is_available():
        device = f"cuda: {torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()})"
    else:
        device = f"cpu ({torch.get_num_threads()} threads)"
    versions = {
        "dfake": __version__,
        "torch": torch.__version__,
        "diffusers": version_of("diffusers"),
        "timm": version_of("timm"),
        "facenet-pytorch": version_of("facenet-pytorch"),
        "decord": getattr(decord, "__version__", version_of("decord2")),
        "h5py": version_of("h5py"),
    }
    return Info(versions=versions, device=device, workspace=str(workspace.root),
                caches=[p.name for p in workspace.caches()], runs=[p.name for p in workspace.runs()],
                model=model_size(), sd=describe_sd(sd) if sd else {})


def describe_sd(sd: str) -> dict[str, Any]:
    from dfake_cli.models.sd import describe_sd as describe

    return describe(sd)
