"""`dfake reconstruct IMAGE`: what the guide makes Stable Diffusion draw for the source and target faces.

Writes one grid PNG (input | source per seed | target per seed) annotated with p(fake), W_s and W_t.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def load_model_for(workspace, checkpoint: str | None, sd: str | None, device: str):
    """(model, checkpoint path or None). Without any run in the workspace: an untrained model (tiny SD default)."""
    from dfake_cli.models.checkpoints import resolve_checkpoint
    from dfake_cli.models.diffusionfake import DiffusionFake, DiffusionFakeConfig
    from dfake_cli.models.sd import load_stable_diffusion

    ckpt = resolve_checkpoint(workspace, checkpoint)
    if ckpt is None:
        spec = sd or "tiny"
        model = DiffusionFake(DiffusionFakeConfig(sd=spec), load_stable_diffusion(spec))
        return model.to(device), None
    from dfake_cli.errors import InputError
    from dfake_cli.models.config import DiffusionFakeConfig as _Cfg

    cfg = _Cfg.load(ckpt)
    if not cfg.use_guide:
        raise InputError(f"{ckpt} was trained with --no-guide: it has no guide to reconstruct with")
    sd_obj = load_stable_diffusion(sd, random_weights=cfg.random_sd) if sd else None
    return DiffusionFake.from_pretrained(ckpt, sd=sd_obj, device=device), ckpt


def run_reconstruct(workspace, image: str, checkpoint: str | None = None, steps: int = 50, seeds: int = 3,
                    out: str | None = None, sd: str | None = None, device: str | None = None,
                    on_step=None) -> dict:
    """Align the face, reconstruct, write the grid; returns what `--json` prints (tests call this)."""
    import torch

    from dfake_cli.data.faces import FaceAlignConfig, FaceExtractor
    from dfake_cli.data.video import VideoReadError, read_image
    from dfake_cli.errors import InputError, require_file
    from dfake_cli.io import atomic_path
    from dfake_cli.models.reconstruct import reconstruct, render_grid

    if seeds < 1:
        raise InputError(f"--seeds {seeds}: use at least 1")
    path = require_file(image, "image")
    try:
        picture = read_image(path)
    except VideoReadError as exc:
        raise InputError(f"{path}: {exc}") from exc
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, ckpt = load_model_for(workspace, checkpoint, sd, dev)
    align = {"margin": 1.3, **model.config.face_align, "size": model.config.image_size}
    found = FaceExtractor(FaceAlignConfig.from_dict(align), device=dev).extract_image(picture)
    if found is None:
        raise InputError(f"{path}: no face found; pass a photo with a clearly visible face")
    face = found[0]
    rec = reconstruct(model, face, steps=steps, seeds=tuple(range(seeds)), on_step=on_step)
    out_path = Path(out) if out else workspace.root / "reconstructions" / f"{path.stem}.png"
    if out_path.suffix.lower() != ".png":
        raise InputError(f"--out {out_path}: use a .png file name")
    with atomic_path(out_path) as tmp:
        render_grid(face, rec).save(tmp, format="PNG")
    return {
        "image": str(path), "output": str(out_path), "checkpoint": str(ckpt) if ckpt else None,
        "trained": ckpt is not None, "prob_fake": rec.prob, "w_s": rec.w_s, "w_t": rec.w_t,
        "seeds": list(rec.seeds), "steps": rec.steps,
    }


def register(app: typer.Typer) -> None:
    @app.command("reconstruct")
    def reconstruct_cmd(
        ctx: typer.Context,
        image: str = typer.Argument(..., help="A photo with a face."),
        checkpoint: Optional[str] = typer.Option(
            None, "--checkpoint", "-c", help="Run name, run folder or checkpoint folder (a run means its best/, "
            "else last/). Default: the workspace's latest run; none: an untrained model.", show_default=False,
        ),
        steps: int = typer.Option(50, "--steps", help="DDIM steps (eta 0)."),
        seeds: int = typer.Option(3, "--seeds", help="Initial noises (seeds 0..N-1) per branch."),
        out: Optional[str] = typer.Option(
            None, "--out", "-o", help="Grid PNG (default: <workspace>/reconstructions/<image name>.png).",
            show_default=False,
        ),
        sd: Optional[str] = typer.Option(
            None, "--sd", help="Stable Diffusion: tiny | diffusers folder | SD-1.5 file (default: the checkpoint's).",
            show_default=False,
        ),
        json_out: bool = typer.Option(False, "--json", help="Print p(fake), W_s, W_t and the output path as JSON."),
        device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: cuda if available).",
                                             show_default=False),
    ) -> None:
        """Reconstruct the source and target faces the guide sees in IMAGE (DDIM from noise, per seed)."""
        import json

        from dfake_cli.cli.main import state
        from dfake_cli.console import console, err_console, progress

        workspace = state(ctx).workspace
        with progress("steps") as bar:
            task = bar.add_task("DDIM", total=steps, rate="", info="")
            result = run_reconstruct(workspace, image, checkpoint=checkpoint, steps=steps, seeds=seeds, out=out,
                                     sd=sd, device=device,
                                     on_step=lambda done, total: bar.update(task, completed=done, total=total))
        if not result["trained"]:
            err_console.print(
                f"[yellow]note:[/] no trained run in {workspace.root}: this used an UNTRAINED model "
                f"(random detector and guide); train first or pass --checkpoint",
                soft_wrap=True,
            )
        if json_out:
            typer.echo(json.dumps(result, indent=2))
        else:
            console.print(
                f"p(fake) = {result['prob_fake']:.3f}  W_s = {result['w_s']:.3f}  W_t = {result['w_t']:.3f}  "
                f"-> {result['output']}"
            )
