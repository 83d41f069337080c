"""Augmentation of the input faces as batched torch ops on the training device.

The per-sample decisions (flip or not, cutout box, jitter factors, ...) are drawn on the host from
(seed, step, rank) by `draw`, inside the loader: they are a few numbers per face and the loader needs the
flip decision anyway (a flipped face reads the flipped latent moments of its source and target). The
pixel work then runs on the device over the whole batch in `apply`, which is where it is cheap (a GPU does
it in microseconds; the old per-face numpy loop cost ~5 ms per face on the CPU). Pixel noise comes from a
device generator seeded per (seed, step, rank), so a batch stays a pure function of its step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

_GRAY = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities (and jitter strength) of the input-face augmentations."""

    flip: float = 0.5
    color_jitter: float = 0.2
    gray: float = 0.1
    noise: float = 0.1
    cutout: float = 0.0

    @classmethod
    def from_train(cls, cfg) -> "AugmentConfig":
        return cls(cfg.flip, cfg.color_jitter, cfg.gray, cfg.noise, cfg.cutout)


NO_AUGMENT = AugmentConfig(flip=0.0, color_jitter=0.0, gray=0.0, noise=0.0, cutout=0.0)


def draw(aug: AugmentConfig, n: int, size: int, seed: int, step: int, rank: int) -> dict[str, np.ndarray]:
    """The per-sample parameters of one rank's batch at `step` (host arrays, deterministic).

    flip bool (n,); jitter float32 (n, 3) brightness/contrast/saturation factors (all 1 when off);
    gray bool (n,); noise float32 (n,) sigma in 0..255 units (0: none); cutout int32 (n, 4) y, x, h, w
    (h = 0: none), a square of a quarter of the side, as before.
    """
    rng = np.random.default_rng([int(seed), int(step), int(rank), 1])
    flip = rng.random(n) < aug.flip
    j = aug.color_jitter
    jitter = rng.uniform(1 - j, 1 + j, size=(n, 3)).astype(np.float32) if j > 0 else np.ones((n, 3), np.float32)
    gray = rng.random(n) < aug.gray
    noise = np.where(rng.random(n) < aug.noise, rng.uniform(3.0, 12.0, n), 0.0).astype(np.float32)
    side = max(1, size // 4)
    cut = rng.random(n) < aug.cutout
    ys, xs = rng.integers(0, size - side + 1, n), rng.integers(0, size - side + 1, n)
    cutout = np.stack([ys, xs, np.where(cut, side, 0), np.where(cut, side, 0)], axis=1).astype(np.int32)
    return {"flip": flip, "jitter": jitter, "gray": gray, "noise": noise, "cutout": cutout}


def flip_where(t: torch.Tensor, flip: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """`t` with the samples where `flip` is True mirrored along `dim` (the width axis)."""
    mask = flip.to(t.device).view(-1, *([1] * (t.ndim - 1)))
    return torch.where(mask, t.flip(dim), t)


def apply(faces: torch.Tensor, params: dict[str, torch.Tensor], scale: torch.Tensor, bias: torch.Tensor,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """Augment uint8 NHWC faces on their device and normalise them: float NCHW (channels_last memory)
    equal to (pixel / 255 - mean) / std, given per-channel `scale` = 1 / (255 std) and `bias` = -mean / std.

    `params` are `draw`'s arrays as CPU tensors (pinned is fine): which ops run at all, which samples flip
    and where the cutouts go are decided from them on the host, so nothing here waits for the device.
    Flip and cutout touch the uint8 bytes (a quarter of the floats) and only the samples concerned; the
    float image keeps the NHWC layout (channels_last), free to produce from NHWC bytes and the layout fast
    convolution kernels want. Photometric changes (jitter, gray, noise) run in pixel space before the
    cutout, as they always did.
    """
    dev = faces.device
    flip, jitter, gray = params["flip"], params["jitter"], params["gray"]
    noise, cutout = params["noise"], params["cutout"]
    faces = faces.contiguous()
    idx = torch.nonzero(flip).flatten()
    if len(idx):
        idx = idx.to(dev, non_blocking=True)
        faces[idx] = faces[idx].flip(2)
    photometric = not bool((jitter == 1).all()) or bool(gray.any()) or bool((noise > 0).any())
    if not photometric:
        _cutout(faces.permute(0, 3, 1, 2), cutout)
        return _normalise(faces.float(), scale, bias)
    x = faces.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.channels_last)
    if not bool((jitter == 1).all()):
        f = jitter.to(dev, non_blocking=True).view(-1, 3, 1, 1, 1)
        x = x * f[:, 0]
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - m) * f[:, 1] + m
        g = _gray(x)
        x = (x - g) * f[:, 2] + g
    if bool(gray.any()):
        x = torch.where(gray.to(dev, non_blocking=True).view(-1, 1, 1, 1), _gray(x).expand_as(x), x)
    if bool((noise > 0).any()):
        eps = torch.randn(x.shape, generator=generator, device=generator.device if generator is not None else dev)
        x = x + eps.to(dev) * noise.to(dev, non_blocking=True).view(-1, 1, 1, 1)
    x = x.clamp_(0.0, 255.0)
    _cutout(x, cutout)
    return _normalise(x.permute(0, 2, 3, 1).contiguous(), scale, bias)


def _cutout(x: torch.Tensor, cutout: torch.Tensor) -> None:
    """Zero each cut face's square in place (NCHW view); boxes are host ints: one slice fill per face."""
    for i, (y0, x0, h, w) in enumerate(cutout.tolist()):
        if h > 0:
            x[i, :, y0 : y0 + h, x0 : x0 + w] = 0


def _normalise(nhwc: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Per-channel affine map of a contiguous float NHWC batch, in place; returned as an NCHW view.

    Broadcasting a 3-vector over the innermost axis runs ~3 elements per inner loop (slow on a CPU);
    tiled to a whole row (W * 3) it runs at memory speed.
    """
    n, h, w, c = nhwc.shape
    rows = nhwc.view(n, h, w * c)
    rows.mul_(scale.repeat(w)).add_(bias.repeat(w))
    return nhwc.permute(0, 3, 1, 2)


def _gray(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_GRAY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)
