"""Tiny training data for tests: FF++-like caches built with the real cache writer (shards -> assemble),
and a tiny-model training config.

Imported by tests (`from helpers.traincache import make_cache, tiny_config`); fixtures that use them live
in tests/train/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dfake_cli.data.cache import ShardRows, assemble, write_shard
from dfake_cli.models.sd import TINY_IDENTITY
from dfake_cli.train.config import TrainConfig

SIZE = 64  # smallest face size the model accepts (a multiple of 32); latents 4x8x8


def _face(rng: np.random.Generator, fake: bool, size: int) -> np.ndarray:
    """Noise faces; fakes carry a bright square, so a detector can learn them in a few steps."""
    img = rng.integers(40, 140, (size, size, 3)).astype(np.uint8)
    if fake:
        img[size // 4 : size // 2, size // 4 : size // 2] = 230
    return img


def _rows(faces, video_id, label, method, roles, frames, link, source_frame, rng) -> ShardRows:
    n, size = len(faces), faces[0].shape[0]
    lat = (n, 4, size // 8, size // 8)
    return ShardRows(
        faces=np.stack(faces), video_id=[video_id] * n, frame_index=np.asarray(frames, np.int32),
        label=np.full(n, label, np.int8), method=[method] * n, role=list(roles),
        confidence=np.full(n, 0.99, np.float32), landmarks=np.zeros((n, 5, 2), np.float32),
        matrix=np.tile(np.eye(2, 3, dtype=np.float32), (n, 1, 1)), link=np.asarray(link, np.int64),
        source_frame=np.asarray(source_frame, np.int64),
        mean=rng.normal(size=lat).astype(np.float32), logvar=np.full(lat, -3.0, np.float32),
        flip_mean=rng.normal(size=lat).astype(np.float32), flip_logvar=np.full(lat, -3.0, np.float32),
    )


def make_cache(path: Path, videos: dict[str, int] | None = None, frames: int = 3, seed: int = 0,
               sd_identity: str = TINY_IDENTITY, size: int = SIZE) -> Path:
    """An FF++-like training cache: per split, `videos[split]` real videos and as many fakes (a_b pairs)."""
    videos = videos or {"train": 4, "val": 2}
    rng = np.random.default_rng(seed)
    parts = path.parent / f"{path.stem}.parts"
    parts.mkdir(parents=True, exist_ok=True)
    shards = []
    for split, n in videos.items():
        reals = [f"ffpp/youtube/{split}{i:02d}" for i in range(n)]
        for vid in reals:
            rows = _rows([_face(rng, False, size) for _ in range(frames)], vid, 0, "youtube", ["input"] * frames,
                         range(frames), [-1] * frames, [-1] * frames, rng)
            shard = parts / f"{len(shards):04d}.npz"
            write_shard(shard, rows, {"status": "ok", "video_id": vid, "label": 0, "split": split, "path": vid})
            shards.append(shard)
        for i in range(n):
            target, source = reals[i], reals[(i + 1) % n]
            vid = f"ffpp/Deepfakes/{split}{i:02d}_{(i + 1) % n:02d}"
            faces = [_face(rng, True, size) for _ in range(frames)] + [_face(rng, False, size) for _ in range(frames)]
            roles = ["input"] * frames + ["target"] * frames
            link = [frames + f for f in range(frames)] + [-1] * frames
            src_frame = list(range(frames)) + [-1] * frames
            rows = _rows(faces, vid, 1, "Deepfakes", roles, list(range(frames)) * 2, link, src_frame, rng)
            shard = parts / f"{len(shards):04d}.npz"
            write_shard(shard, rows, {"status": "ok", "video_id": vid, "label": 1, "split": split, "path": vid,
                                      "source_id": source, "target_id": target})
            shards.append(shard)
    attrs = {"dataset": "ffpp", "sd_identity": sd_identity, "latent_scaling": 0.18215, "size": size,
             "margin": 1.3, "frames_per_video": frames}
    assemble(shards, path, attrs, training=True, size=size)
    return path



def tiny_config(**overrides) -> TrainConfig:
    """A model small enough for a 2-core CPU: tiny SD, timm's test_efficientnet, 64 px faces."""
    values = dict(sd="tiny", backbone="test_efficientnet", batch_size=4, lr=1e-3, steps=2, run="t", log_every=1,
                  save_every=1000, prefetch=2)
    values.update(overrides)
    return TrainConfig(**values).validated()
