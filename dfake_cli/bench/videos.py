"""Generated 640x480 H.264 test videos for the prepare benchmark: a real portrait moving on a canvas.

Why a real photograph: MTCNN needs a face it actually detects, and the public-domain Grace Hopper portrait
ships inside matplotlib, so nothing is downloaded. The face drifts and zooms slowly so that detection and
tracking do real work on every frame (a static frame would let a clever cache hide the cost).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 640, 480


def portrait() -> np.ndarray:
    """The Grace Hopper photograph shipped with matplotlib, uint8 RGB."""
    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def moving_frames(num_frames: int, seed: int = 0, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """`num_frames` uint8 (H, W, 3) frames: the portrait at ~60% of the height, drifting and zooming.

    The motion (at most ~5 px per frame) is that of a talking head, slow enough that the tracker keeps
    the face between evenly spaced frames of a few-second clip.
    """
    import cv2

    rng = np.random.default_rng(seed)
    face = portrait()
    background = np.linspace(40, 200, width, dtype=np.float32)[None, :, None]
    background = np.broadcast_to(background, (height, width, 3)).astype(np.uint8)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for i in range(num_frames):
        s = 0.6 + 0.05 * np.sin(0.08 * i + phase[0])  # portrait height as a fraction of the frame
        h = int(round(height * s))
        w = int(round(h * face.shape[1] / face.shape[0]))
        resized = cv2.resize(face, (w, h), interpolation=cv2.INTER_AREA)
        cx = width / 2 + 0.25 * (width - w) * np.sin(0.05 * i + phase[1])
        cy = height / 2 + 0.2 * (height - h) * np.sin(0.07 * i + phase[2])
        x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
        frame = background.copy()
        fx0, fy0 = max(0, -x0), max(0, -y0)
        x0c, y0c = max(0, x0), max(0, y0)
        x1c, y1c = min(width, x0 + w), min(height, y0 + h)
        frame[y0c:y1c, x0c:x1c] = resized[fy0:fy0 + (y1c - y0c), fx0:fx0 + (x1c - x0c)]
        frames[i] = frame
    return frames


def tinted(frames: np.ndarray) -> np.ndarray:
    """A stand-in fake: the same frames with a warmer, brighter face region (pixel-aligned with them).

    Only the bright part of each frame (the portrait) changes, so detection, tracking and the warp of the
    target original behave as with a real face swap of that video.
    """
    out = frames.astype(np.int16)
    face = out.mean(axis=-1, keepdims=True) > 60
    out += np.where(face, np.array([18, 4, -10], np.int16), 0)
    return np.clip(out, 0, 255).astype(np.uint8)


def make_videos(folder: str | Path, num_videos: int, num_frames: int, seed: int = 0,
                width: int = WIDTH, height: int = HEIGHT, tint: bool = False) -> list[Path]:
    """Write `num_videos` H.264 mp4s of `num_frames` frames each into `folder`; returns their paths.

    `tint=True` writes the stand-in fakes of the videos the same seed gives (see `tinted`).
    """
    from dfake_cli.sampledata.videoio import write_video

    folder = Path(folder)
    paths = []
    for v in range(num_videos):
        path = folder / f"bench_{v:03d}.mp4"
        if not path.is_file():
            frames = moving_frames(num_frames, seed=seed + v, width=width, height=height)
            write_video(path, tinted(frames) if tint else frames, fps=25)
        paths.append(path)
    return paths


def video_bytes(paths: list[Path]) -> int:
    return sum(os.path.getsize(p) for p in paths)
