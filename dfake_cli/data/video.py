"""Video frame reading with decord.

torch MUST be imported before decord: with decord2 3.4 and torch 2.14, importing decord first makes
torch's first convolution crash the process. Every decord import in dfake goes through this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch  # noqa: F401  (import order: torch before decord, see module docstring)

import decord  # noqa: E402

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class VideoReadError(Exception):
    """A video that cannot be opened or decoded; callers skip it and record the reason."""


def evenly_spaced(total: int, num: int) -> np.ndarray:
    """`num` evenly spaced frame indices in [0, total), or all frames (no repeats) when shorter."""
    if total <= 0:
        return np.zeros(0, dtype=np.int64)
    if num <= 0 or num >= total:
        return np.arange(total, dtype=np.int64)
    return np.unique(np.linspace(0, total - 1, num).round().astype(np.int64))


def frame_count(path: str | Path) -> int:
    try:
        return len(decord.VideoReader(str(path), num_threads=1))
    except Exception as exc:  # decord raises DECORDError / RuntimeError for broken files
        raise VideoReadError(f"cannot open video: {exc}".splitlines()[0]) from exc


def read_frames(
    path: str | Path, num: int | None = 32, indices: np.ndarray | list[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode frames of `path` as uint8 RGB (N, H, W, 3), in order.

    `indices` picks exact frames (clamped to the video's length); otherwise `num` evenly spaced ones
    (None or <= 0: all frames). Returns (frames, indices actually read).
    """
    try:
        vr = decord.VideoReader(str(path), num_threads=1)
        total = len(vr)
        if total == 0:
            raise VideoReadError("video has no frames")
        if indices is None:
            idx = evenly_spaced(total, num or 0)
        else:
            idx = np.clip(np.asarray(indices, dtype=np.int64), 0, total - 1)
        frames = vr.get_batch(idx.tolist()).asnumpy()
    except VideoReadError:
        raise
    except Exception as exc:
        raise VideoReadError(f"cannot decode video: {exc}".splitlines()[0]) from exc
    return frames, idx


def read_image(path: str | Path) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as exc:
        raise VideoReadError(f"cannot read image: {exc}".splitlines()[0]) from exc
