"""DDIM reconstruction of the source and target faces that the guide's features point at (paper Fig. 3).

From Gaussian noise (one draw per seed, shared by both branches so their difference is the guide's), the
frozen UNet denoises with the guide conditioned on the input face's filtered features, scaled by W_s / W_t;
the VAE decodes the final latents. Both branches and all seeds run as one batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from dfake_cli.errors import InputError


@dataclass
class Reconstruction:
    """Per seed a source and a target image (uint8 HxWx3), plus the detector's view of the input."""

    source: list[np.ndarray]
    target: list[np.ndarray]
    prob: float
    w_s: float
    w_t: float
    seeds: tuple[int, ...] = field(default_factory=tuple)
    steps: int = 0


def _to_uint8(images: torch.Tensor) -> list[np.ndarray]:
    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return [img.permute(1, 2, 0).cpu().numpy() for img in x]


@torch.no_grad()
def reconstruct(
    model,
    image_uint8: np.ndarray,
    steps: int = 50,
    seeds=(0, 1, 2),
    on_step: Callable[[int, int], None] | None = None,
) -> Reconstruction:
    """Reconstruct source and target faces of one aligned face crop (uint8 HxWx3) with DDIM (eta 0)."""

    if model.sd is None:
        raise InputError("this model has no guide (trained with --no-guide): there is nothing to reconstruct")
    if steps < 1:
        raise InputError(f"--steps {steps}: use at least 1 DDIM step")
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise InputError("--seeds: use at least one seed")
    was_training = model.training
    model.eval()
    try:
        x = model.preprocess(np.asarray(image_uint8)[None])
        logits, feat = model.detector(x)
        cond_s, cond_t, w_s, w_t = model.guide_conditions(feat)
        n = len(seeds)
        h, w = model.latent_grid
        channels = int(model.sd.unet.config.in_channels)
        noise = torch.stack([
            torch.randn(channels, h, w, generator=torch.Generator().manual_seed(s)) for s in seeds
        ]).to(device=x.device, dtype=x.dtype)
        scheduler = model.sd.ddim_scheduler()  # the SD's own flags (SD-1.5: set_alpha_to_one false)
        scheduler.set_timesteps(steps)
        z = torch.cat([noise, noise]) * scheduler.init_noise_sigma
        cond = torch.cat([cond_s.expand(n, -1, -1, -1), cond_t.expand(n, -1, -1, -1)])
        weights = torch.cat([w_s.expand(n), w_t.expand(n)])
        timesteps = scheduler.timesteps
        for i, t in enumerate(timesteps):
            tt = t.to(x.device).expand(2 * n)
            eps = model.guided_eps(scheduler.scale_model_input(z, t), tt, cond, weights)
            z = scheduler.step(eps, t, z, eta=0.0).prev_sample
            if on_step is not None:
                on_step(i + 1, len(timesteps))
        decoded = model.sd.vae.decode(z / model.sd.scaling_factor).sample
        images = _to_uint8(decoded)
    finally:
        model.train(was_training)
    return Reconstruction(
        source=images[:n], target=images[n:], prob=float(torch.sigmoid(logits)[0]),
        w_s=float(w_s[0]), w_t=float(w_t[0]), seeds=seeds, steps=steps,
    )


def render_grid(face: np.ndarray, rec: Reconstruction, cell: int = 160):
    """One PIL image: input | source per seed | target per seed, with a header of p(fake), W_s and W_t."""
    from PIL import Image, ImageDraw, ImageFont

    tiles = [("input", face)] + [(f"source s{s}", im) for s, im in zip(rec.seeds, rec.source)] + [
        (f"target s{s}", im) for s, im in zip(rec.seeds, rec.target)
    ]
    header, label = 28, 18
    grid = Image.new("RGB", (cell * len(tiles), header + label + cell), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    title = f"p(fake) = {rec.prob:.3f}    W_s = {rec.w_s:.3f}    W_t = {rec.w_t:.3f}    DDIM {rec.steps} steps"
    draw.text((6, 7), title, fill="black", font=font)
    for i, (name, im) in enumerate(tiles):
        tile = Image.fromarray(np.asarray(im, dtype=np.uint8)).resize((cell, cell), Image.BILINEAR)
        grid.paste(tile, (i * cell, header + label))
        draw.text((i * cell + 4, header + 2), name, fill="black", font=font)
    return grid
