"""The HDF5 face cache: per-video shards while preparing, one assembled file at the end, and its reader.

Why shards: preparation can be killed at any moment. Each finished video is written as one atomic
`.npz` shard in `<name>.parts/`; a rerun skips the shards that exist. When every video is done, the
shards are assembled into a temporary file that is renamed to `<name>.h5` only once it is complete (and
carries `complete=True`), so a file with the final name is always whole. Schema: docs/cache.md.

Shard rows have a finer role than the final file: "input" (a sample to classify), "source" (an original's
own-detection crop used only as a source face) and "target" (an original's frame warped with a fake's
transform). In the final file "source" and "target" rows become role "reference".
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from dfake_cli.errors import InputError
from dfake_cli.io import atomic_path

SCHEMA_VERSION = 1
ROLE_INPUT, ROLE_SOURCE, ROLE_TARGET, ROLE_REFERENCE = "input", "source", "target", "reference"
INDEX_STR = ("video_id", "method", "split", "role")


# ----------------------------------------------------------------------------------------------- shards


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
    if rows.source_link is not None:
        arrays["source_link"] = rows.source_link
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def read_shard_meta(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["meta"]))


def read_shard(path: Path, with_faces: bool = True) -> tuple[ShardRows, dict]:
    """A shard's rows (faces and latents only when `with_faces`, to keep planning passes light)."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        n = int(z["frame_index"].shape[0])
        faces = z["faces"] if with_faces else np.zeros((n, 0, 0, 3), np.uint8)
        has_lat = "mean" in z.files
        rows = ShardRows(
            faces=faces, video_id=[str(v) for v in z["video_id"]], frame_index=z["frame_index"],
            label=z["label"], method=[str(v) for v in z["method"]], role=[str(v) for v in z["role"]],
            confidence=z["confidence"], landmarks=z["landmarks"], matrix=z["matrix"], link=z["link"],
            source_frame=z["source_frame"],
            mean=z["mean"] if (with_faces and has_lat) else None,
            logvar=z["logvar"] if (with_faces and has_lat) else None,
            source_link=z["source_link"] if "source_link" in z.files else None,
        )
    return rows, meta


# ------------------------------------------------------------------------------------------- assembly


@dataclass
class AssembleStats:
    rows: int = 0
    inputs: int = 0
    dropped_frames: int = 0  # fake frames without a source face
    skipped: list[tuple[str, str, str, str]] = field(default_factory=list)  # video_id, path, reason, detail


@dataclass
class _Plan:
    """Which shard rows go where in the final file (computed from the small arrays only)."""

    keep: list[np.ndarray]  # per shard: bool mask of rows kept
    offsets: list[int]  # per shard: first final row
    source_row: list[np.ndarray]  # per shard: final source row of each kept row
    target_row: list[np.ndarray]
    n: int


def _plan(shards: list[Path], metas: list[dict], training: bool, stats: AssembleStats) -> _Plan:
    light = [read_shard(p, with_faces=False)[0] if m["status"] == "ok" else None for p, m in zip(shards, metas)]
    # Own-detection crops of originals, addressable as (video_id, frame): the source faces.
    lookup: dict[tuple[str, int], tuple[int, int]] = {}
    for s, (rows, meta) in enumerate(zip(light, metas)):
        if rows is None or meta.get("label") != 0:
            continue
        for r in range(len(rows)):
            if rows.role[r] in (ROLE_INPUT, ROLE_SOURCE) and rows.video_id[r] == meta["video_id"]:
                lookup.setdefault((rows.video_id[r], int(rows.frame_index[r])), (s, r))

    keep: list[np.ndarray] = []
    src_ref: list[np.ndarray] = []  # (shard, row) of the source, or (-1, -1)
    used_sources: set[tuple[int, int]] = set()
    for s, (rows, meta) in enumerate(zip(light, metas)):
        if rows is None:
            keep.append(np.zeros(0, bool))
            src_ref.append(np.zeros((0, 2), np.int64))
            continue
        n = len(rows)
        k = np.ones(n, bool)
        ref = np.full((n, 2), -1, np.int64)
        if training and meta.get("label") == 1 and meta.get("source_id"):
            for r in range(n):
                if rows.role[r] != ROLE_INPUT:
                    continue
                hit = lookup.get((meta["source_id"], int(rows.source_frame[r])))
                if hit is None:
                    k[r] = False
                    k[int(rows.link[r])] = False
                else:
                    ref[r] = hit
                    used_sources.add(hit)
            dropped = int(sum(1 for r in range(n) if rows.role[r] == ROLE_INPUT and not k[r]))
            stats.dropped_frames += dropped
            if not any(k[r] for r in range(n) if rows.role[r] == ROLE_INPUT):
                k[:] = False
                stats.skipped.append(
                    (meta["video_id"], meta.get("path", ""), "no source face",
                     f"no face of source {meta['source_id']} at the paired frames")
                )
        if rows.source_link is not None:  # sources inside the shard: kept, they are paired
            used_sources.update((s, int(r)) for r in rows.source_link if r >= 0)
        keep.append(k)
        src_ref.append(ref)
    # Source-only rows nobody pairs with are not worth storing.
    for s, (rows, meta) in enumerate(zip(light, metas)):
        if rows is None:
            continue
        for r in range(len(rows)):
            if rows.role[r] == ROLE_SOURCE and (s, r) not in used_sources:
                keep[s][r] = False

    offsets, final_index, n_total = [], [], 0
    for k in keep:
        offsets.append(n_total)
        fi = np.full(len(k), -1, np.int64)
        fi[k] = n_total + np.arange(int(k.sum()))
        final_index.append(fi)
        n_total += int(k.sum())

    source_row, target_row = [], []
    for s, (rows, meta) in enumerate(zip(light, metas)):
        k = keep[s]
        if rows is None or not k.any():
            source_row.append(np.zeros(0, np.int64))
            target_row.append(np.zeros(0, np.int64))
            continue
        fi = final_index[s]
        sr = np.full(len(k), -1, np.int64)
        tr = np.full(len(k), -1, np.int64)
        if training:
            for r in np.flatnonzero(k):
                if rows.role[r] != ROLE_INPUT:
                    continue
                if meta.get("label") == 1 and meta.get("source_id"):
                    ss, rr = src_ref[s][r]
                    sr[r] = final_index[ss][rr]
                    tr[r] = fi[int(rows.link[r])]
                elif rows.source_link is not None and rows.source_link[r] >= 0:
                    sr[r] = fi[int(rows.source_link[r])]
                    tr[r] = fi[int(rows.link[r])]
                else:
                    sr[r] = tr[r] = fi[r]
        source_row.append(sr[k])
        target_row.append(tr[k])
    return _Plan(keep, offsets, source_row, target_row, n_total)


def assemble(
    shards: Sequence[Path], out_path: Path, attrs: dict, training: bool, size: int,
    compression_level: int = 1, before_complete: Callable[[object, AssembleStats], None] | None = None,
) -> AssembleStats:
    """Write the final cache from finished shards (in order), atomically; returns row counts and skips.

    Rows of skipped shards are absent; fake frames whose source original has no face at the paired frame
    are dropped with their target row (counted in `dropped_frames`). `before_complete(h5file, stats)` runs
    inside the temporary file just before it is marked complete and renamed (summaries, side files).
    """
    import h5py

    shards = list(shards)
    metas = [read_shard_meta(p) for p in shards]
    stats = AssembleStats()
    plan = _plan(shards, metas, training, stats)
    n = plan.n
    str_dt = h5py.string_dtype("utf-8")
    with atomic_path(out_path, suffix=".partial") as tmp:
        with h5py.File(tmp, "w") as h:
            faces = h.create_dataset(
                "faces", shape=(n, size, size, 3), dtype="u1", chunks=(1, size, size, 3) if n else None,
                compression="gzip" if n else None, compression_opts=compression_level if n else None,
            )
            g = h.create_group("index")
            cols = {
                "video_id": g.create_dataset("video_id", (n,), dtype=str_dt),
                "frame_index": g.create_dataset("frame_index", (n,), dtype="i4"),
                "label": g.create_dataset("label", (n,), dtype="i1"),
                "method": g.create_dataset("method", (n,), dtype=str_dt),
                "split": g.create_dataset("split", (n,), dtype=str_dt),
                "role": g.create_dataset("role", (n,), dtype=str_dt),
                "source_row": g.create_dataset("source_row", (n,), dtype="i8"),
                "target_row": g.create_dataset("target_row", (n,), dtype="i8"),
                "confidence": g.create_dataset("confidence", (n,), dtype="f4"),
                "landmarks": g.create_dataset("landmarks", (n, 5, 2), dtype="f4"),
                "matrix": g.create_dataset("matrix", (n, 2, 3), dtype="f4"),
            }
            lat_mean = lat_logvar = None
            for s, (path, meta) in enumerate(zip(shards, metas)):
                k = plan.keep[s]
                if meta["status"] != "ok" or not k.any():
                    continue
                rows, _ = read_shard(path, with_faces=True)
                a = plan.offsets[s]
                b = a + int(k.sum())
                faces[a:b] = rows.faces[k]
                vid = np.array(rows.video_id, dtype=object)[k]
                cols["video_id"][a:b] = vid.tolist()
                cols["frame_index"][a:b] = rows.frame_index[k]
                cols["label"][a:b] = rows.label[k]
                cols["method"][a:b] = np.array(rows.method, dtype=object)[k].tolist()
                cols["split"][a:b] = [meta["split"]] * (b - a)
                roles = [ROLE_INPUT if r == ROLE_INPUT else ROLE_REFERENCE for r in rows.role]
                cols["role"][a:b] = np.array(roles, dtype=object)[k].tolist()
                cols["source_row"][a:b] = plan.source_row[s]
                cols["target_row"][a:b] = plan.target_row[s]
                cols["confidence"][a:b] = rows.confidence[k]
                cols["landmarks"][a:b] = rows.landmarks[k]
                cols["matrix"][a:b] = rows.matrix[k]
                if training and rows.mean is not None:
                    if lat_mean is None:
                        lg = h.create_group("latents")
                        shape = (n,) + tuple(rows.mean.shape[1:])
                        lat_mean = lg.create_dataset("mean", shape, dtype="f4")
                        lat_logvar = lg.create_dataset("logvar", shape, dtype="f4")
                    lat_mean[a:b] = rows.mean[k]
                    lat_logvar[a:b] = rows.logvar[k]
                stats.inputs += int(sum(1 for r in np.flatnonzero(k) if rows.role[r] == ROLE_INPUT))
            if training:
                _write_scores(h, n)
            stats.rows = n
            for key, value in attrs.items():
                h.attrs[key] = value
            h.attrs["schema_version"] = SCHEMA_VERSION
            h.attrs["n_rows"] = n
            if before_complete is not None:
                before_complete(h, stats)
            h.attrs["complete"] = True
    return stats


def _cosine_rows(mean, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x = _read_rows(mean, a).reshape(len(a), -1).astype(np.float64)
    y = _read_rows(mean, b).reshape(len(b), -1).astype(np.float64)
    num = (x * y).sum(1)
    den = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    return np.where(den > 0, num / np.maximum(den, 1e-12), 1.0)


def _write_scores(h, n: int, block: int = 512) -> None:
    """score = (cos(mean_input, mean_branch) + 1) / 2 on VAE latent means; 1 for reals; nan for references.

    The official code compares one posterior sample per image; the means make the targets deterministic.
    """
    idx = h["index"]
    src = idx["source_row"][()]
    tgt = idx["target_row"][()]
    role = idx["role"].asstr()[()] if n else np.zeros(0, dtype=object)
    score_s = np.full(n, np.nan, np.float32)
    score_t = np.full(n, np.nan, np.float32)
    is_input = np.array([r == ROLE_INPUT for r in role], dtype=bool)
    own = is_input & (src == np.arange(n)) & (tgt == np.arange(n))
    score_s[own] = 1.0
    score_t[own] = 1.0
    todo = np.flatnonzero(is_input & ~own & (src >= 0) & (tgt >= 0))
    if len(todo) and "latents" in h:
        mean = h["latents"]["mean"]
        for i in range(0, len(todo), block):
            rows = todo[i : i + block]
            score_s[rows] = ((_cosine_rows(mean, rows, src[rows]) + 1.0) / 2.0).astype(np.float32)
            score_t[rows] = ((_cosine_rows(mean, rows, tgt[rows]) + 1.0) / 2.0).astype(np.float32)
    idx.create_dataset("score_s", data=score_s)
    idx.create_dataset("score_t", data=score_t)


def _read_rows(dset, rows: Iterable[int]) -> np.ndarray:
    """h5py fancy indexing needs increasing unique indices: read sorted unique, return in request order."""
    rows = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.int64).reshape(-1)
    if rows.size == 0:
        return np.zeros((0,) + tuple(dset.shape[1:]), dtype=dset.dtype)
    uniq, inverse = np.unique(rows, return_inverse=True)
    if uniq[0] < 0 or uniq[-1] >= dset.shape[0]:
        raise IndexError(f"row out of range [0, {dset.shape[0]}): {rows.min()}..{rows.max()}")
    data = dset[uniq] if len(uniq) > 1 else dset[int(uniq[0])][None]
    return data[inverse]


# --------------------------------------------------------------------------------------------- reader


class FaceCache:
    """Read a finished cache with plain h5py. Safe across fork: the file reopens in a new process.

        with FaceCache(path) as cache:
            df = cache.index                  # one row per face (pandas)
            x = cache.faces([3, 1, 2])        # uint8 (3, S, S, 3), in the requested order
            mean, logvar = cache.latent_moments(df.source_row[rows])
    """

    INDEX_COLUMNS = (
        "video_id", "frame_index", "label", "method", "split", "role", "source_row", "target_row",
        "confidence", "score_s", "score_t",
    )

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise InputError(f"cache not found: {self.path}; create it with 'dfake prepare'")
        self._h = None
        self._pid = None
        self._index = None
        h = self._file
        if not bool(h.attrs.get("complete", False)):
            self.close()
            raise InputError(f"cache {self.path} is incomplete; run the same 'dfake prepare' command again")
        self._attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in h.attrs.items()}

    @property
    def _file(self):
        import h5py

        if self._h is None or self._pid != os.getpid():
            try:
                self._h = h5py.File(self.path, "r")
            except OSError as exc:
                raise InputError(f"cannot read cache {self.path}: {exc}; delete it and prepare again") from exc
            self._pid = os.getpid()
        return self._h

    def close(self) -> None:
        if self._h is not None and self._pid == os.getpid():
            self._h.close()
        self._h = None

    def __enter__(self) -> "FaceCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return int(self._file["faces"].shape[0])

    def __getstate__(self):  # DataLoader workers: pickle the path only, reopen on first access
        return {"path": self.path, "_attrs": self._attrs, "_index": self._index}

    def __setstate__(self, state):
        self.path, self._attrs, self._index = state["path"], state["_attrs"], state["_index"]
        self._h = None
        self._pid = None

    @property
    def attrs(self) -> dict:
        return dict(self._attrs)

    @property
    def size(self) -> int:
        return int(self._file["faces"].shape[1])

    @property
    def index(self):
        """The index as a pandas DataFrame (row number = cache row); landmarks via `.landmarks(rows)`."""
        if self._index is None:
            import pandas as pd

            g = self._file["index"]
            data = {}
            for col in self.INDEX_COLUMNS:
                if col not in g:
                    continue
                data[col] = g[col].asstr()[()] if col in INDEX_STR else g[col][()]
            self._index = pd.DataFrame(data)
        return self._index

    @property
    def has_latents(self) -> bool:
        return "latents" in self._file

    def faces(self, rows) -> np.ndarray:
        return _read_rows(self._file["faces"], rows)

    def landmarks(self, rows) -> np.ndarray:
        return _read_rows(self._file["index"]["landmarks"], rows)

    def matrices(self, rows) -> np.ndarray:
        return _read_rows(self._file["index"]["matrix"], rows)

    def latent_moments(self, rows) -> tuple[np.ndarray, np.ndarray]:
        if not self.has_latents:
            raise InputError(f"cache {self.path} has no latents (a test cache); prepare a training set with 'dfake prepare ff++'")
        g = self._file["latents"]
        return _read_rows(g["mean"], rows), _read_rows(g["logvar"], rows)

    def input_rows(self, split: str | None = None) -> np.ndarray:
        """Rows of the samples to classify (role "input"), optionally of one split."""
        df = self.index
        mask = df["role"].to_numpy() == ROLE_INPUT
        if split is not None:
            mask &= df["split"].to_numpy() == split
        return np.flatnonzero(mask)


def cache_attrs(path: Path) -> dict | None:
    """The attrs of a finished cache at `path`, or None when there is none (missing or incomplete)."""
    import h5py

    if not Path(path).is_file():
        return None
    try:
        with h5py.File(path, "r") as h:
            if not bool(h.attrs.get("complete", False)):
                return None
            return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in h.attrs.items()}
    except OSError:
        return None


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
