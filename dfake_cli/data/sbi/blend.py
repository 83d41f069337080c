"""The self-blend itself: one aligned real face -> (target, source, mask, blended), all pixel-aligned.

    blended = source * mask + target * (1 - mask)

Both copies start as the same face. One of them (the target with `target_augment_prob`, else the source)
gets the source-target augmentation: RGB shift, HSV change, brightness/contrast, then a downscale-upscale
or a sharpen. The source and the mask then move together by a small random affine (shift and scale), so the
inner face no longer lines up exactly with its surroundings; the mask outline alone gets an elastic warp.
The mask is the convex hull of the face outline from the 68-point template (landmarks.py), its edge
softened by two Gaussian blurs with an erosion between them (so the transition lies inside the hull), and
scaled by a blend ratio. Every random draw comes from the `rng` passed in, so a seeded generator gives the
same blend on every machine (OpenCV's resampling is deterministic).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dfake_cli.data.sbi.config import SBIConfig
from dfake_cli.data.sbi.landmarks import hull_points, landmarks68


@dataclass
class SelfBlend:
    """One pseudo-fake. `target_augmented`: the target copy (not the source) took the augmentation, so
    `target` differs from the original face; otherwise `target` is the original face itself."""

    target: np.ndarray  # uint8 (S, S, 3): the face the blend keeps around the mask
    source: np.ndarray  # uint8 (S, S, 3): the transformed copy, before blending
    mask: np.ndarray  # float32 (S, S) in [0, 1]: the source's weight per pixel
    blended: np.ndarray  # uint8 (S, S, 3): the fake
    target_augmented: bool
    ratio: float


def face_rng(seed: int, video_id: str, frame: int, variant: int) -> np.random.Generator:
    """The generator of one blend: a pure function of (seed, video, frame, variant), independent of order,
    worker count or which other faces are prepared."""
    import zlib

    return np.random.default_rng([int(seed), zlib.crc32(video_id.encode()), int(frame), int(variant)])


# ------------------------------------------------------------------------------------------- colour, quality


def _hsv(img: np.ndarray, rng: np.random.Generator, cfg: SBIConfig) -> np.ndarray:
    hsv = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-cfg.hue_shift, cfg.hue_shift) / 2.0) % 180.0  # OpenCV hue: 0..180
    hsv[..., 1] *= 1.0 + rng.uniform(-cfg.saturation, cfg.saturation)
    hsv[..., 2] *= 1.0 + rng.uniform(-cfg.value, cfg.value)
    hsv = np.clip(hsv, 0, [179, 255, 255]).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)


def augment_copy(img: np.ndarray, rng: np.random.Generator, cfg: SBIConfig) -> np.ndarray:
    """The source-target augmentation of one copy (uint8 in, uint8 out)."""
    x = img.astype(np.float32)
    if rng.random() < cfg.rgb_shift_prob:
        x = x + rng.uniform(-cfg.rgb_shift, cfg.rgb_shift, size=3).astype(np.float32)
        x = np.clip(x, 0, 255)
    if rng.random() < cfg.hsv_prob:
        x = _hsv(x, rng, cfg)
    b = rng.uniform(-cfg.brightness, cfg.brightness) * 255.0
    c = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
    x = np.clip((x - x.mean()) * c + x.mean() + b, 0, 255)
    size = x.shape[0]
    if rng.random() < cfg.downscale_prob:
        f = rng.uniform(*cfg.downscale)
        small = max(4, int(round(size * f)))
        x = cv2.resize(cv2.resize(x, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                       interpolation=cv2.INTER_LINEAR)
    else:
        amount = rng.uniform(*cfg.sharpen)
        soft = cv2.GaussianBlur(x, (0, 0), sigmaX=max(0.5, size / 256.0))
        x = x + amount * (x - soft)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------ geometry


def _affine(source: np.ndarray, mask: np.ndarray, rng: np.random.Generator, cfg: SBIConfig):
    size = source.shape[0]
    s = 1.0 + rng.uniform(-cfg.max_scale, cfg.max_scale)
    tx, ty = rng.uniform(-cfg.max_shift, cfg.max_shift, size=2) * size
    c = (size - 1) / 2.0
    m = np.array([[s, 0.0, c - s * c + tx], [0.0, s, c - s * c + ty]], np.float32)
    src = cv2.warpAffine(source, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    msk = cv2.warpAffine(mask, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return src, msk


def _elastic(mask: np.ndarray, rng: np.random.Generator, cfg: SBIConfig) -> np.ndarray:
    size = mask.shape[0]
    k = size / 256.0
    if cfg.elastic_alpha <= 0:
        return mask
    # The smoothed field's amplitude goes as alpha / sigma: alpha scales with k**2 so that the displacement
    # (and the outline's wiggle) is the same fraction of the face at every crop size.
    sigma = cfg.elastic_sigma * k
    field = rng.uniform(-1.0, 1.0, size=(2, size, size)).astype(np.float32)
    dx = cv2.GaussianBlur(field[0], (0, 0), sigma) * cfg.elastic_alpha * k * k
    dy = cv2.GaussianBlur(field[1], (0, 0), sigma) * cfg.elastic_alpha * k * k
    gx, gy = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    return cv2.remap(mask, gx + dx, gy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def hull_mask(points5: np.ndarray, size: int, forehead: float = 0.0) -> np.ndarray:
    """The hard face mask (float32 0/1, size x size) from a face's 5 landmarks in crop pixels."""
    hull = cv2.convexHull(np.rint(hull_points(landmarks68(points5), forehead)).astype(np.int32))
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(np.float32)


def _soften(mask: np.ndarray, rng: np.random.Generator, cfg: SBIConfig) -> np.ndarray:
    k = mask.shape[0] / 256.0
    m = cv2.GaussianBlur(mask, (0, 0), rng.uniform(*cfg.mask_blur) * k)
    m = (m >= 0.99).astype(np.float32)  # erode to the part the first blur left (nearly) whole
    return cv2.GaussianBlur(m, (0, 0), rng.uniform(*cfg.mask_blur) * k)


# --------------------------------------------------------------------------------------------------- blend


def self_blend(face: np.ndarray, points5: np.ndarray, rng: np.random.Generator,
               cfg: SBIConfig = SBIConfig()) -> SelfBlend:
    """Make one self-blended fake of `face` (uint8 S x S x 3, aligned) with landmarks `points5` (5, 2)."""
    size = face.shape[0]
    mask = hull_mask(points5, size, rng.uniform(*cfg.forehead))
    target, source = face.copy(), face.copy()
    target_augmented = bool(rng.random() < cfg.target_augment_prob)
    if target_augmented:
        target = augment_copy(target, rng, cfg)
    else:
        source = augment_copy(source, rng, cfg)
    source, mask = _affine(source, mask, rng, cfg)
    mask = _soften(_elastic(mask, rng, cfg), rng, cfg)
    ratio = float(rng.choice(np.asarray(cfg.blend_ratios)))
    mask = np.clip(mask * ratio, 0.0, 1.0).astype(np.float32)
    m = mask[..., None]
    blended = np.clip(np.rint(source.astype(np.float32) * m + target.astype(np.float32) * (1.0 - m)), 0, 255)
    return SelfBlend(target=target, source=source, mask=mask, blended=blended.astype(np.uint8),
                     target_augmented=target_augmented, ratio=ratio)
