"""A training cache of real-looking face crops for the loader and end-to-end benchmarks.

Random noise does not compress (gzip keeps it at full size) while aligned portraits do (~1.3x), and the
cost of reading a face depends on exactly that, so loader figures must come from faces that look like
faces. The crops here come from the sample-data portraits (public-domain photos shipped with matplotlib
and scikit-image, see dfake_cli/sampledata/portraits.py), rotated, shifted and zoomed a little per frame
like a tracked face in a video, then written through the real cache writer (shards + assemble) as an
FF++-like training cache: real videos, fakes whose target rows are the real frames, latent moments and
weight targets for every row.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


def portrait_crops(n: int, size: int, seed: int = 0, identity: int | None = None) -> np.ndarray:
    """`n` uint8 (size, size, 3) face crops; one identity per call when `identity` is given, else cycling."""
    import cv2

    from dfake_cli.sampledata.portraits import identities, portrait, portrait_face

    names = identities()
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        name = names[(identity if identity is not None else i) % len(names)]
        img, face = portrait(name), portrait_face(name)
        x0, y0, x1, y1 = (float(v) for v in face.box)
        cx, cy = (x0 + x1) / 2 + rng.uniform(-4, 4), (y0 + y1) / 2 + rng.uniform(-4, 4)
        scale = size / ((x1 - x0) * 1.6 * rng.uniform(0.95, 1.05))
        m = cv2.getRotationMatrix2D((cx, cy), rng.uniform(-6, 6), scale)
        m[:, 2] += np.array([size / 2 - cx, size / 2 - cy])
        out[i] = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR)
    return out


def portrait_training_cache(path: str | Path, videos: int = 6, frames: int = 16, size: int = 256,
                            gzip: bool = False, seed: int = 0, sd_identity: str = "bench") -> Path:
    """`videos` real videos and as many fakes (each with its target rows): 3 * videos * frames rows.

    `gzip=True` writes faces as caches made before the raw layout did (gzip level 1), for the old reader.
    """
    from dfake_cli.data.cache import ShardRows, assemble, write_shard

    path = Path(path)
    rng = np.random.default_rng(seed)
    lat = (4, size // 8, size // 8)

    def rows(faces, vid, label, method, roles, link, source_frame) -> ShardRows:
        n = len(faces)
        return ShardRows(
            faces=faces, video_id=[vid] * n, frame_index=np.arange(n, dtype=np.int32) % frames,
            label=np.full(n, label, np.int8), method=[method] * n, role=list(roles),
            confidence=np.full(n, 0.99, np.float32), landmarks=np.zeros((n, 5, 2), np.float32),
            matrix=np.tile(np.eye(2, 3, dtype=np.float32), (n, 1, 1)), link=np.asarray(link, np.int64),
            source_frame=np.asarray(source_frame, np.int64),
            mean=rng.normal(size=(n, *lat)).astype(np.float32), logvar=np.full((n, *lat), -3.0, np.float32),
            flip_mean=rng.normal(size=(n, *lat)).astype(np.float32), flip_logvar=np.full((n, *lat), -3.0, np.float32),
        )

    with tempfile.TemporaryDirectory(prefix=".portraits-", dir=path.parent) as tmp:
        shards = []
        reals = [f"bench/youtube/{i:03d}" for i in range(videos)]

        def add(r: ShardRows, meta: dict) -> None:
            shard = Path(tmp) / f"{len(shards):05d}.npz"
            write_shard(shard, r, {"status": "ok", "split": meta.pop("split", "train"), "path": meta["video_id"],
                                   **meta})
            shards.append(shard)

        real_faces = [portrait_crops(frames, size, seed + i, identity=i) for i in range(videos)]
        for i, vid in enumerate(reals):
            add(rows(real_faces[i], vid, 0, "youtube", ["input"] * frames, [-1] * frames, [-1] * frames),
                {"video_id": vid, "label": 0, "split": "val" if i == videos - 1 and videos > 2 else "train"})
        for i in range(videos):
            j = (i + 1) % videos
            vid = f"bench/Deepfakes/{i:03d}_{j:03d}"
            fake = portrait_crops(frames, size, seed + 100 + i, identity=j)
            faces = np.concatenate([fake, real_faces[i]])
            add(rows(faces, vid, 1, "Deepfakes", ["input"] * frames + ["target"] * frames,
                     [frames + f for f in range(frames)] + [-1] * frames, list(range(frames)) + [-1] * frames),
                {"video_id": vid, "label": 1, "source_id": reals[j], "target_id": reals[i],
                 "split": "val" if i == videos - 1 and videos > 2 else "train"})
        attrs = {"dataset": "bench", "sd_identity": sd_identity, "latent_scaling": 0.18215, "size": size,
                 "margin": 1.3, "frames_per_video": frames}
        assemble(shards, path, attrs, training=True, size=size, compression_level=1 if gzip else 0)
    return path
