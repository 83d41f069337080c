"""Assembly: finished shards -> one HDF5 cache, written to a temporary name and renamed only when whole.

A file with the final name always carries `complete=True`; an interrupted assembly leaves no cache.
Schema: docs/cache.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from dfake_cli.data.cache import pairing
from dfake_cli.data.cache.deflate import FaceChunkWriter
from dfake_cli.data.cache.pairing import AssembleStats, plan_rows
from dfake_cli.data.cache.schema import ROLE_INPUT, ROLE_REFERENCE, SCHEMA_VERSION
from dfake_cli.data.cache.shards import read_shard, read_shard_meta
from dfake_cli.errors import InputError
from dfake_cli.io import atomic_path


def assemble(
    shards: Sequence[Path], out_path: Path, attrs: dict, training: bool, size: int,
    compression_level: int = 0, before_complete: Callable[[object, AssembleStats], None] | None = None,
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
    plan = plan_rows(shards, metas, training, stats)
    n = plan.n
    str_dt = h5py.string_dtype("utf-8")
    with atomic_path(out_path, suffix=".partial") as tmp:
        with h5py.File(tmp, "w") as h:
            faces = h.create_dataset(
                "faces", shape=(n, size, size, 3), dtype="u1", chunks=(1, size, size, 3) if n else None,
                # Uncompressed by default: gzip saves only ~1.3x on aligned face crops but costs ~1.4 ms of
                # CPU per 256 px face to inflate, 16x a raw chunk read (docs/cache.md, "Face storage").
                compression="gzip" if n and compression_level else None,
                compression_opts=compression_level if n and compression_level else None,
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
            face_writer = FaceChunkWriter(faces, compression_level)
            lat_mean = lat_logvar = flip_mean = flip_logvar = None
            with_flip: bool | None = None
            for s, (path, meta) in enumerate(zip(shards, metas)):
                k = plan.keep[s]
                if meta["status"] != "ok" or not k.any():
                    continue
                rows, _ = read_shard(path, with_faces=True)
                a = plan.offsets[s]
                b = a + int(k.sum())
                face_writer.write(a, rows.faces[k])
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
                    if with_flip is None:  # the first shard decides; every row must then have them
                        with_flip = rows.flip_mean is not None
                        if with_flip:
                            flip_mean = lg.create_dataset("flip_mean", shape, dtype="f4")
                            flip_logvar = lg.create_dataset("flip_logvar", shape, dtype="f4")
                    if with_flip != (rows.flip_mean is not None):
                        raise InputError(f"shard {path}: flipped-face latents in some shards but not in others "
                                         f"(shards of two dfake versions): delete {path.parent} and prepare again")
                    if with_flip:
                        flip_mean[a:b] = rows.flip_mean[k]
                        flip_logvar[a:b] = rows.flip_logvar[k]
                stats.inputs += int(sum(1 for r in np.flatnonzero(k) if rows.role[r] == ROLE_INPUT))
            face_writer.close()
            if training:
                pairing.write_scores(h, n)
            stats.rows = n
            for key, value in attrs.items():
                h.attrs[key] = value
            h.attrs["schema_version"] = SCHEMA_VERSION
            h.attrs["n_rows"] = n
            if before_complete is not None:
                before_complete(h, stats)
            h.attrs["complete"] = True
    return stats
