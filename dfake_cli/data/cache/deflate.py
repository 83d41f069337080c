"""/faces written with its gzip chunks compressed on every core, not in one serial pass.

The file format does not change: /faces keeps one-image chunks with HDF5's deflate filter, which stores
each chunk as a zlib stream. Those streams are made here with `zlib.compress` in a thread pool (zlib
releases the GIL, so the threads run in parallel) and handed to HDF5 as finished chunks
(`write_direct_chunk`), so assembly is no longer bound by one core deflating every face.
"""

from __future__ import annotations

import os
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class FaceChunkWriter:
    """Writes rows of a chunked (1, S, S, 3) gzip dataset; plain writes when it is not compressed."""

    def __init__(self, dset, level: int = 1, threads: int | None = None):
        self.dset = dset
        self.level = int(level)
        compressed = dset.compression == "gzip" and dset.chunks is not None and dset.chunks[0] == 1
        self.pool = ThreadPoolExecutor(threads or os.cpu_count() or 1) if compressed else None

    def write(self, start: int, faces: np.ndarray) -> None:
        if self.pool is None:
            self.dset[start : start + len(faces)] = faces
            return
        faces = np.ascontiguousarray(faces, dtype=np.uint8)
        blobs = self.pool.map(lambda face: zlib.compress(face.tobytes(), self.level), faces)
        tail = (0,) * (faces.ndim - 1)
        for i, blob in enumerate(blobs):
            self.dset.id.write_direct_chunk((start + i,) + tail, blob)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None

    def __enter__(self) -> "FaceChunkWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
