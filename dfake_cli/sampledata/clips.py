"""Real sample clips: a virtual camera moving smoothly over an identity's portrait.

Each frame is one similarity warp of the portrait (slow pan, zoom and a few degrees of roll), so the
landmarks of every frame are the portrait's MTCNN landmarks moved by the same warp: exact, with no
detector jitter, and cheap. Seeds are mixed with the clip's name so that one video's content never
depends on which other videos are generated alongside it (a subset regenerates byte-identically).
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

import numpy as np

from dfake_cli.sampledata.determinism import portable_cv2
from dfake_cli.sampledata.portraits import _portrait_cached, spec_of


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """A generator that depends only on `seed` and `keys` (stable across runs and Python versions)."""
    words = [int(seed) & 0xFFFFFFFF] + [zlib.crc32(str(k).encode()) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(words))


@dataclass
class Clip:
    """A rendered clip: frames uint8 (N, H, W, 3), landmarks float32 (N, 5, 2) in frame pixels."""

    frames: np.ndarray
    landmarks: np.ndarray


@functools.lru_cache(maxsize=None)
def _backdrop(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The portrait on a wider canvas whose border is its own mirror image, heavily blurred.

    The camera may see past the photo's edges (zoomed out, panned, rolled); a blurred mirror reads as an
    out-of-focus background instead of a hard edge or a sharp reflection. Returns (image, box, landmarks).
    """
    import cv2

    image, face = _portrait_cached(name)
    h, w = image.shape[:2]
    pad = max(h, w) // 2
    canvas = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    blurred = cv2.GaussianBlur(canvas, (0, 0), 18)
    ys, xs = np.mgrid[0:h + 2 * pad, 0:w + 2 * pad].astype(np.float32)
    outside = np.maximum(np.maximum(pad - xs, xs - (pad + w - 1)), np.maximum(pad - ys, ys - (pad + h - 1)))
    alpha = np.clip(outside / 24.0, 0, 1)[..., None]
    out = np.clip(canvas * (1 - alpha) + blurred * alpha + 0.5, 0, 255).astype(np.uint8)
    shift = np.array([pad, pad], np.float32)
    box = face.box + np.concatenate([shift, shift])
    out.setflags(write=False)
    return out, box, face.landmarks + shift


def camera_path(n_frames: int, size: int, face_box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-frame 2x3 similarity matrices (portrait -> frame) for a smooth, seeded camera move."""
    x1, y1, x2, y2 = (float(v) for v in face_box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + 0.05 * (y2 - y1)
    face_frac = rng.uniform(0.28, 0.34)  # face width as a fraction of the frame
    base_scale = face_frac * size / (x2 - x1)
    zoom_amp, roll_amp = rng.uniform(0.03, 0.08), rng.uniform(1.0, 4.0)
    pan_amp = rng.uniform(0.03, 0.07, size=2) * size
    freq = rng.uniform(0.5, 1.2, size=4)
    phase = rng.uniform(0, 2 * np.pi, size=4)
    t = np.arange(n_frames, dtype=np.float64) / max(1, n_frames - 1)
    mats = np.zeros((n_frames, 2, 3), np.float64)
    for i, ti in enumerate(t):
        s = base_scale * (1 + zoom_amp * np.sin(2 * np.pi * freq[0] * ti + phase[0]))
        a = np.deg2rad(roll_amp * np.sin(2 * np.pi * freq[1] * ti + phase[1]))
        ox = size / 2 + pan_amp[0] * np.sin(2 * np.pi * freq[2] * ti + phase[2])
        oy = size / 2 + pan_amp[1] * np.sin(2 * np.pi * freq[3] * ti + phase[3])
        c, si = s * np.cos(a), s * np.sin(a)
        mats[i] = [[c, -si, ox - (c * cx - si * cy)], [si, c, oy - (si * cx + c * cy)]]
    return mats


def apply_affine(points: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Map (K, 2) points through a 2x3 affine matrix."""
    pts = np.asarray(points, np.float64)
    return (pts @ mat[:, :2].T + mat[:, 2]).astype(np.float32)


def render_clip(identity: str | int, n_frames: int, size: int, seed: int, key: str = "") -> Clip:
    """The clip of `identity` with its exact landmarks; `key` names the video (mixed into the seed)."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if size < 32 or size % 2:
        raise ValueError(f"size must be an even number >= 32 (H.264), got {size}")
    name = spec_of(identity).name
    with portable_cv2():
        return _render(name, n_frames, size, seed, key)


def _render(name: str, n_frames: int, size: int, seed: int, key: str) -> Clip:
    import cv2

    image, box, lm = _backdrop(name)
    rng = rng_for(seed, "clip", name, key)
    mats = camera_path(n_frames, size, box, rng)
    # Slow global light change, as in a real video (auto exposure).
    gain = 1 + rng.uniform(0.02, 0.06) * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * np.arange(n_frames)
                                                 / max(1, n_frames - 1) + rng.uniform(0, 2 * np.pi))
    frames = np.empty((n_frames, size, size, 3), np.uint8)
    landmarks = np.empty((n_frames, 5, 2), np.float32)
    # Downscaling: smooth first so the camera does not alias fine texture (one blur per clip).
    scale = float(np.mean(np.hypot(mats[:, 0, 0], mats[:, 1, 0])))
    src = cv2.GaussianBlur(image, (0, 0), 0.5 / scale) if scale < 0.8 else image
    for i, mat in enumerate(mats):
        frame = cv2.warpAffine(src, mat, (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        frames[i] = np.clip(frame.astype(np.float32) * gain[i] + 0.5, 0, 255).astype(np.uint8)
        landmarks[i] = apply_affine(lm, mat)
    return Clip(frames, landmarks)


def make_clip(identity: str | int, n_frames: int, size: int, seed: int) -> np.ndarray:
    """uint8 (N, size, size, 3): camera motion over the identity's portrait (see module docstring)."""
    return render_clip(identity, n_frames, size, seed).frames

