"""Writing small H.264 videos reproducibly (sample data, test fixtures, benchmarks).

PyAV's bundled x264 writes different bytes on every run unless its assembly is off (`asm=0`), so the
generator passes it: the same seed then gives byte-identical files. The muxer runs with
`fflags=+bitexact` so no library version string lands in the file: importing decord (which bundles its
own libavformat) changes that string from Lavf62.12.102 to Lavf62.12.101 in the same process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np


def write_video(
    path: str | Path, frames: Iterable[np.ndarray] | np.ndarray, fps: int = 25, crf: int = 23,
    codec: str = "libx264",
) -> Path:
    """Write uint8 RGB frames (H, W, 3; H and W even) to an mp4 at `path`; returns the path."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = list(frames)
    if not frames:
        raise ValueError("no frames to write")
    h, w = frames[0].shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"H.264 needs even frame sizes, got {w}x{h}")
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    with av.open(str(tmp), mode="w", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "medium", "x264-params": "asm=0:threads=1"}
            stream.thread_count = 1
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame, dtype=np.uint8), format="rgb24")
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
    return path
