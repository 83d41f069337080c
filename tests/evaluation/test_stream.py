"""The fast chunk reader returns exactly what h5py returns; the prefetch thread keeps order and errors."""

import h5py
import numpy as np
import pytest

from dfake_cli.data.cache import FaceCache
from dfake_cli.evaluation.stream import ChunkReader, prefetch
from dfake_cli.evaluation.synthetic import SyntheticVideo, write_cache


def test_chunk_reader_matches_h5py(tmp_path):
    rng = np.random.default_rng(1)
    faces = rng.integers(0, 256, (7, 24, 24, 3), dtype=np.uint8)
    faces[3] = 0  # compresses to almost nothing
    path = write_cache(tmp_path / "c.h5", [SyntheticVideo("d/m/a", 0, "m", faces[:4]),
                                          SyntheticVideo("d/m/b", 1, "m", faces[4:])], "d")
    rows = np.array([5, 0, 3, 3, 6])
    with ChunkReader(path, threads=2) as reader, FaceCache(path) as cache:
        assert reader.fast
        np.testing.assert_array_equal(reader.read(rows), cache.faces(rows))
        np.testing.assert_array_equal(reader.read(rows), faces[rows])


def test_chunk_reader_falls_back_for_other_layouts(tmp_path):
    faces = np.arange(4 * 8 * 8 * 3, dtype=np.uint8).reshape(4, 8, 8, 3)
    with h5py.File(tmp_path / "plain.h5", "w") as h:
        h.create_dataset("faces", data=faces, chunks=(2, 8, 8, 3), shuffle=True, compression="gzip")
    with ChunkReader(tmp_path / "plain.h5") as reader:
        assert not reader.fast
        np.testing.assert_array_equal(reader.read(np.array([3, 1])), faces[[3, 1]])


def test_prefetch_keeps_order_and_passes_reader_errors_to_the_consumer():
    def read(rows):
        if rows[0] == 4:
            raise OSError("disk on fire")
        return rows * 2

    got = []
    with pytest.raises(OSError, match="disk on fire"):
        for rows, data in prefetch(read, [np.array([0, 1]), np.array([2, 3]), np.array([4])]):
            got.append(data.tolist())
    assert got == [[0, 2], [4, 6]]


def test_prefetch_stops_its_thread_when_the_consumer_stops():
    import threading

    batches = [np.array([i]) for i in range(100)]
    for rows, _ in prefetch(lambda r: r, batches, depth=1):
        if rows[0] == 2:
            break
    assert not any(t.name == "dfake-eval-prefetch" for t in threading.enumerate())
