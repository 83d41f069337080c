"""`dfake reconstruct IMAGE`: what the guide makes Stable Diffusion draw for the source and target faces.

Writes one grid PNG (input | source per seed | target per seed) annotated with p(fake), W_s and W_t.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

from dfake_cli.errors import InputError
from dfake_cli.runtime import DEFAULT_MARGIN, check_device
from dfake_cli.workspace import Workspace


@dataclass
class ReconstructResult:
    image: str
    output: str  # the grid PNG
    checkpoint: Optional[str]  # None: no run in the workspace, an untrained model was used
    trained: bool
    prob_fake: float
    w_s: float
    w_t: float
    seeds: list[int]
    steps: int

    def to_dict(self) -> dict:
        """`dfake reconstruct --json`."""
        return asdict(self)


def load_model_for(workspace: Workspace, checkpoint: Optional[str], sd: Optional[str], device: str):
    """(model, checkpoint path or None). Without any run in the workspace: an untrained model (tiny SD default)."""
    from dfake_cli.models.checkpoints import resolve_checkpoint
    from dfake_cli.models.config import DiffusionFakeConfig
    from dfake_cli.models.diffusionfake import DiffusionFake
    from dfake_cli.models.sd import load_stable_diffusion

    ckpt = resolve_checkpoint(workspace, checkpoint)
    if ckpt is None:
        spec = sd or "tiny"
        model = DiffusionFake(DiffusionFakeConfig(sd=spec), load_stable_diffusion(spec))
        return model.to(device), None
    cfg = DiffusionFakeConfig.load(ckpt)
    if not cfg.use_guide:
        raise InputError(f"{ckpt} was trained with --no-guide: it has no guide to reconstruct with")
    sd_obj = load_stable_diffusion(sd, random_weights=cfg.random_sd) if sd else None
    return DiffusionFake.from_pretrained(ckpt, sd=sd_obj, device=device), ckpt


def run_reconstruct(
    workspace: Workspace, image: str | Path, checkpoint: Optional[str] = None, steps: int = 50, seeds: int = 3,
    out: str | Path | None = None, sd: Optional[str] = None, device: Optional[str] = None,
    on_step: Optional[Callable[[int, int], None]] = None,
) -> ReconstructResult:
    """Align the face, reconstruct it per seed, write the grid; `on_step(done, total)` reports DDIM steps."""
    from dfake_cli.data.faces import FaceAlignConfig, FaceExtractor
    from dfake_cli.data.video import VideoReadError, read_image
    from dfake_cli.errors import require_file
    from dfake_cli.io import atomic_path
    from dfake_cli.models.reconstruct import reconstruct, render_grid

    if seeds < 1:
        raise InputError(f"--seeds {seeds}: use at least 1")
    if steps < 1:
        raise InputError(f"--steps {steps}: use at least 1")
    dev = check_device(device)  # checked before anything is read or loaded
    out_path = Path(out) if out else None
    if out_path is not None and out_path.suffix.lower() != ".png":
        raise InputError(f"--out {out_path}: use a .png file name")
    path = require_file(image, "image")
    try:
        picture = read_image(path)
    except VideoReadError as exc:
        raise InputError(f"{path}: {exc}") from exc
    if FaceExtractor(FaceAlignConfig()).too_small(*picture.shape[:2]):  # before loading any model
        raise InputError(f"{path}: {picture.shape[1]}x{picture.shape[0]} px is too small to hold a face; "
                         "pass a photo with a clearly visible face")
    model, ckpt = load_model_for(workspace, checkpoint, sd, dev)
    align = {"margin": DEFAULT_MARGIN, **model.config.face_align, "size": model.config.image_size}
    found = FaceExtractor(FaceAlignConfig.from_dict(align), device=dev).extract_image(picture)
    if found is None:
        raise InputError(f"{path}: no face found; pass a photo with a clearly visible face")
    face = found[0]
    rec = reconstruct(model, face, steps=steps, seeds=tuple(range(seeds)), on_step=on_step)
    out_path = out_path or workspace.root / "reconstructions" / f"{path.stem}.png"
    with atomic_path(out_path) as tmp:
        render_grid(face, rec).save(tmp, format="PNG")
    return ReconstructResult(
        image=str(path), output=str(out_path), checkpoint=str(ckpt) if ckpt else None, trained=ckpt is not None,
        prob_fake=rec.prob, w_s=rec.w_s, w_t=rec.w_t, seeds=list(rec.seeds), steps=rec.steps,
    )
