"""Small caches written from arrays, through the real cache writer (shards + assemble).

Benchmarks use `synthetic_cache` to time `evaluate_cache` at a realistic size (e.g. 256 px faces) without
preparing a dataset; tests use `write_cache` to build caches whose every score is known in advance.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfake_cli.runtime import DEFAULT_MARGIN


@dataclass
class SyntheticVideo:
    video_id: str  # dataset/method/name
    label: int
    method: str
    faces: np.ndarray  # uint8 (n, S, S, 3)
    frame_index: np.ndarray | None = None
    split: str | None = None  # default: the cache's split


def write_cache(path: str | Path, videos: list[SyntheticVideo], dataset: str, split: str = "test",
                attrs: dict | None = None) -> Path:
    """A finished test cache (input rows only, no latents) holding `videos`, at `path`."""
    from dfake_cli import __version__
    from dfake_cli.data.cache import ROLE_INPUT, ShardRows, assemble, now_iso, write_shard

    path = Path(path)
    size = int(videos[0].faces.shape[1])
    with tempfile.TemporaryDirectory(prefix=".synthetic-", dir=path.parent if path.parent.is_dir() else None) as tmp:
        shards = []
        for i, v in enumerate(videos):
            n = len(v.faces)
            frames = np.arange(n) if v.frame_index is None else np.asarray(v.frame_index)
            rows = ShardRows(
                faces=np.ascontiguousarray(v.faces, dtype=np.uint8), video_id=[v.video_id] * n,
                frame_index=frames.astype(np.int32), label=np.full(n, v.label, np.int8), method=[v.method] * n,
                role=[ROLE_INPUT] * n, confidence=np.ones(n, np.float32), landmarks=np.zeros((n, 5, 2), np.float32),
                matrix=np.zeros((n, 2, 3), np.float32), link=np.full(n, -1, np.int64),
                source_frame=np.full(n, -1, np.int64),
            )
            shard = Path(tmp) / f"{i:06d}.npz"
            write_shard(shard, rows, {"status": "ok", "video_id": v.video_id, "label": v.label, "split": v.split or split})
            shards.append(shard)
        base = {"dataset": dataset, "size": size, "margin": DEFAULT_MARGIN, "frames_per_video": max(len(v.faces) for v in videos),
                "sd_identity": "", "dfake_version": __version__, "created": now_iso(), "synthetic": True}
        base.update(attrs or {})
        assemble(shards, path, base, training=False, size=size)
    return path


def synthetic_cache(path: str | Path, n_videos: int = 16, frames: int = 32, size: int = 256, seed: int = 0) -> Path:
    """`n_videos` x `frames` random faces (half real, half fake) of `size` px, for throughput measurements."""
    rng = np.random.default_rng(seed)
    videos = [
        SyntheticVideo(f"synthetic/{'fake' if i % 2 else 'real'}/{i:04d}", i % 2, "fake" if i % 2 else "real",
                       rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8))
        for i in range(n_videos)
    ]
    return write_cache(path, videos, "synthetic")
