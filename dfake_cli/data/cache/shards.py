"""Per-video shards: one atomic `.npz` per finished video in `<name>.parts/` (what makes prepare resumable).

A killed preparation loses at most the videos in progress: a shard is renamed into place only when whole,
and a rerun skips the shards that exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from dfake_cli.io import atomic_path


@dataclass
class ShardRows:
    """The rows one video produced (all arrays have the same first dimension n).

    `link`: for a fake's input row, the shard-local row of its target face, else -1.
    `source_frame`: for a fake's input row, the frame of the source original to pair with, else -1.
    `source_link`: optional; for a fake whose source face is in the same shard (self-blended fakes), the
    shard-local row of that source, else -1. Such a fake's target is its `link` row.
    """

    faces: np.ndarray  # uint8 (n, S, S, 3)
    video_id: list[str]
    frame_index: np.ndarray  # int32
    label: np.ndarray  # int8
    method: list[str]
    role: list[str]
    confidence: np.ndarray  # float32
    landmarks: np.ndarray  # float32 (n, 5, 2), crop coordinates
    matrix: np.ndarray  # float32 (n, 2, 3), frame -> crop
    link: np.ndarray  # int64
    source_frame: np.ndarray  # int64
    mean: np.ndarray | None = None  # float32 (n, 4, h, w)
    logvar: np.ndarray | None = None
    flip_mean: np.ndarray | None = None  # moments of the horizontally flipped faces (training caches)
    flip_logvar: np.ndarray | None = None
    source_link: np.ndarray | None = None  # int64

    def __len__(self) -> int:
        return int(self.faces.shape[0])

    @classmethod
    def empty(cls, size: int) -> "ShardRows":
        return cls(
            faces=np.zeros((0, size, size, 3), np.uint8), video_id=[], frame_index=np.zeros(0, np.int32),
            label=np.zeros(0, np.int8), method=[], role=[], confidence=np.zeros(0, np.float32),
            landmarks=np.zeros((0, 5, 2), np.float32), matrix=np.zeros((0, 2, 3), np.float32),
            link=np.zeros(0, np.int64), source_frame=np.zeros(0, np.int64),
        )


def _str_array(values: Sequence[str]) -> np.ndarray:
    # Fixed-width unicode: savez stores it without pickle, load(allow_pickle=False) reads it back.
    return np.array(list(values), dtype=str) if len(values) else np.zeros(0, dtype="<U1")


def write_shard(path: Path, rows: ShardRows, meta: dict) -> None:
    """Write one video's rows and its meta (status, reason, counts, timings) atomically."""
    arrays = {
        "faces": rows.faces, "video_id": _str_array(rows.video_id), "frame_index": rows.frame_index,
        "label": rows.label, "method": _str_array(rows.method), "role": _str_array(rows.role),
        "confidence": rows.confidence, "landmarks": rows.landmarks, "matrix": rows.matrix,
        "link": rows.link, "source_frame": rows.source_frame,
        "meta": np.array(json.dumps(meta)),
    }
    if rows.mean is not None:
        arrays["mean"], arrays["logvar"] = rows.mean, rows.logvar
    if rows.flip_mean is not None:
        arrays["flip_mean"], arrays["flip_logvar"] = rows.flip_mean, rows.flip_logvar
    if rows.source_link is not None:
        arrays["source_link"] = rows.source_link
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def read_shard_meta(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["meta"]))


def shard_is_usable(path: Path) -> bool:
    """True for a shard that opens and holds its meta; a damaged one (truncated, garbage) is removed.

    Shards are fsynced before their rename, so damage comes from outside (a copy cut short, a full disk
    on a system that lies about fsync). A truncated zip loses its central directory, so opening it and
    reading the meta is enough to tell, without reading the faces of every shard on each resume.
    """
    if not Path(path).is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if not isinstance(meta, dict) or "status" not in meta or "faces" not in z.files:
                raise ValueError("not a dfake shard")
    except Exception:  # BadZipFile, EOFError, ValueError, OSError, KeyError: all mean "redo it"
        Path(path).unlink(missing_ok=True)
        return False
    return True


def read_shard(path: Path, with_faces: bool = True) -> tuple[ShardRows, dict]:
    """A shard's rows (faces and latents only when `with_faces`, to keep planning passes light)."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        n = int(z["frame_index"].shape[0])
        faces = z["faces"] if with_faces else np.zeros((n, 0, 0, 3), np.uint8)
        has_lat = "mean" in z.files
        has_flip = "flip_mean" in z.files
        rows = ShardRows(
            faces=faces, video_id=[str(v) for v in z["video_id"]], frame_index=z["frame_index"],
            label=z["label"], method=[str(v) for v in z["method"]], role=[str(v) for v in z["role"]],
            confidence=z["confidence"], landmarks=z["landmarks"], matrix=z["matrix"], link=z["link"],
            source_frame=z["source_frame"],
            mean=z["mean"] if (with_faces and has_lat) else None,
            logvar=z["logvar"] if (with_faces and has_lat) else None,
            flip_mean=z["flip_mean"] if (with_faces and has_flip) else None,
            flip_logvar=z["flip_logvar"] if (with_faces and has_flip) else None,
            source_link=z["source_link"] if "source_link" in z.files else None,
        )
    return rows, meta
