"""Streaming faces out of a cache fast enough for a GPU: parallel decompression and a prefetch thread.

A cache stores one face per gzip chunk. h5py decompresses chunks one at a time while holding its global
lock, which caps a reader at roughly one core (~1-2k faces/s at 256 px). `ChunkReader` instead fetches the
raw compressed chunks (cheap) and inflates them in a thread pool: zlib releases the GIL, so this scales
with cores. `prefetch` runs the reading one or two batches ahead of the model in a background thread.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

_GZIP = 1  # HDF5 filter id of deflate


class ChunkReader:
    """Read faces by row: raw chunks + threaded inflate when the layout allows, else plain h5py.

    The fast path needs one face per chunk, uint8, and deflate as the only filter; anything else (a cache
    written by another tool, shuffle, no compression) falls back to h5py's own reading, same result.
    """

    def __init__(self, path: str | Path, threads: int | None = None):
        import h5py

        self._h = h5py.File(path, "r")
        self._dset = self._h["faces"]
        d = self._dset
        self.shape = tuple(d.shape[1:])
        filters = d.id.get_create_plist()
        ids = [filters.get_filter(i)[0] for i in range(filters.get_nfilters())]
        self.fast = (d.chunks == (1, *self.shape) and d.dtype == np.uint8 and ids == [_GZIP])
        self.threads = threads or max(1, min(8, os.cpu_count() or 1))
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="dfake-inflate") if self.fast else None
        self._nbytes = int(np.prod(self.shape))

    def _inflate(self, raw: tuple[int, bytes]) -> np.ndarray:
        mask, data = raw
        if mask:  # the filter was skipped for this chunk (HDF5 stores it raw): use the bytes as they are
            return np.frombuffer(data, np.uint8)
        return np.frombuffer(zlib.decompress(data), np.uint8)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """uint8 (len(rows), S, S, 3) in the order of `rows`."""
        rows = np.asarray(rows, dtype=np.int64)
        if not self.fast:
            from dfake_cli.data.cache import _read_rows

            return _read_rows(self._dset, rows)
        out = np.empty((len(rows), *self.shape), np.uint8)
        zeros = (0,) * len(self.shape)
        raws = [self._dset.id.read_direct_chunk((int(r), *zeros)) for r in rows]
        flat = out.reshape(len(rows), -1)
        for i, arr in enumerate(self._pool.map(self._inflate, raws)):
            if arr.size != self._nbytes:
                raise OSError(f"chunk of row {rows[i]} has {arr.size} bytes, expected {self._nbytes}")
            flat[i] = arr
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._h.close()

    def __enter__(self) -> "ChunkReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def prefetch(read: Callable[[np.ndarray], np.ndarray], batches: list[np.ndarray], depth: int = 2) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (rows, faces) in order while a background thread reads up to `depth` batches ahead.

    An error in the reader is re-raised in the consumer; stopping early (an exception in the consumer)
    stops the thread.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def put(item) -> None:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def work() -> None:
        try:
            for rows in batches:
                if stop.is_set():
                    return
                put((rows, read(rows)))
        except BaseException as exc:  # handed to the consumer
            put(exc)
            return
        put(done)

    thread = threading.Thread(target=work, name="dfake-eval-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
