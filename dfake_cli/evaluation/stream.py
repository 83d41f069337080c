"""Reading faces out of a cache for evaluation's simple path (test doubles, plain callables, the benchmark's
baseline): `ChunkReader(path).read(rows)` and a `prefetch` thread one or two batches ahead.

A dfake Detector is evaluated through the training loader instead (train/loader.py: worker processes,
pinned memory); both read faces chunk by chunk as `FaceCache.faces` does (docs/cache.md).
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Callable, Iterator

import numpy as np


class ChunkReader:
    """Read faces by row, one direct chunk read per row where the layout allows (raw or gzip chunks of one
    face), else through h5py; `threads` is accepted for compatibility (inflating is now done inline)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import h5py

        from dfake_cli.data.cache.reader import chunk_layout

        self._h = h5py.File(path, "r")
        self._dset = self._h["faces"]
        self.shape = tuple(self._dset.shape[1:])
        self.layout = chunk_layout(self._dset)
        self.fast = self.layout is not None

    def read(self, rows: np.ndarray) -> np.ndarray:
        """uint8 (len(rows), S, S, 3) in the order of `rows`."""
        from dfake_cli.data.cache.reader import _read_rows, read_chunk_rows

        rows = np.asarray(rows, dtype=np.int64)
        if not self.fast:
            return _read_rows(self._dset, rows)
        return read_chunk_rows(self._dset, rows, self.layout)

    def close(self) -> None:
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
