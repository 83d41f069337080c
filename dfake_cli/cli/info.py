"""`dfake info`: versions, device and what the workspace holds."""

from __future__ import annotations

import importlib.metadata as md

import typer

from dfake_cli import __version__


def version_of(dist: str) -> str:
    """An installed distribution's version, or 'not installed' (shared with the benchmarks' provenance)."""
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def model_size() -> dict:
    """Parameter counts of the default SD-1.5 model (EN-B4), built on the meta device: no memory, ~1 s."""
    from dfake_cli.models.diffusionfake import sd15_parameter_count

    counts = sd15_parameter_count("efficientnet_b4")
    return {
        "trainable": counts["trainable"],
        "guide": counts["guide"],
        "frozen_sd": counts["frozen_unet"] + counts["frozen_vae"],
        "inference": counts["inference"],
    }


def collect_info(workspace) -> dict:
    """Everything `dfake info` shows, as plain data (tests call this)."""
    import torch

    from dfake_cli.data import video  # noqa: F401  (torch before decord)
    import decord

    if torch.cuda.is_available():
        device = f"cuda: {torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()})"
    else:
        device = f"cpu ({torch.get_num_threads()} threads)"
    info = {
        "dfake": __version__,
        "torch": torch.__version__,
        "diffusers": version_of("diffusers"),
        "timm": version_of("timm"),
        "facenet-pytorch": version_of("facenet-pytorch"),
        "decord": getattr(decord, "__version__", version_of("decord2")),
        "h5py": version_of("h5py"),
        "device": device,
        "workspace": str(workspace.root),
        "caches": [p.name for p in workspace.caches()],
        "runs": [p.name for p in workspace.runs()],
        "model (SD-1.5, efficientnet_b4)": model_size(),
    }
    return info


def register(app: typer.Typer) -> None:
    @app.command("info")
    def info_cmd(
        ctx: typer.Context,
        json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
    ) -> None:
        """Versions of the stack, the device, and what the workspace holds."""
        import json

        from rich.table import Table

        from dfake_cli.cli.main import state
        from dfake_cli.console import console

        data = collect_info(state(ctx).workspace)
        if json_out:
            typer.echo(json.dumps(data, indent=2))
            return
        table = Table(title="dfake info", show_header=False)
        for key, value in data.items():
            if isinstance(value, list):
                value = ", ".join(value) if value else "(none)"
            elif isinstance(value, dict):
                value = ", ".join(f"{k} {v / 1e6:,.1f} M" for k, v in value.items()) + " parameters"
            table.add_row(key, str(value))
        console.print(table)
