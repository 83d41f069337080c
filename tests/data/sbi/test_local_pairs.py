"""Shards whose fakes pair with faces of the same shard (self-blended fakes) assemble into FF++'s schema."""

from __future__ import annotations

import numpy as np

from dfake_cli.data.cache import FaceCache, ShardRows, assemble, write_shard


def test_local_source_and_target_rows(tmp_path):
    n, size = 5, 16  # rows: real input, source copy, augmented target copy, fake A (own target), fake B
    rng = np.random.default_rng(0)
    rows = ShardRows(
        faces=rng.integers(0, 255, (n, size, size, 3)).astype(np.uint8), video_id=["d/r/v", "d/s/v", "d/t/v",
        "d/f/v0", "d/f/v1"], frame_index=np.zeros(n, np.int32), label=np.array([0, 0, 0, 1, 1], np.int8),
        method=["r", "s", "t", "f", "f"], role=["input", "source", "target", "input", "input"],
        confidence=np.ones(n, np.float32), landmarks=np.zeros((n, 5, 2), np.float32),
        matrix=np.zeros((n, 2, 3), np.float32), link=np.array([-1, -1, -1, 2, 0]),
        source_frame=np.full(n, -1), source_link=np.array([-1, -1, -1, 1, 1]),
        mean=rng.normal(size=(n, 4, 2, 2)).astype(np.float32), logvar=np.zeros((n, 4, 2, 2), np.float32),
    )
    shard = tmp_path / "a.npz"
    write_shard(shard, rows, {"status": "ok", "video_id": "d/r/v", "label": 0, "split": "train", "path": "v"})
    assemble([shard], tmp_path / "c.h5", {"size": size}, training=True, size=size)
    with FaceCache(tmp_path / "c.h5") as cache:
        df = cache.index
        assert df.role.tolist() == ["input", "reference", "reference", "input", "input"]
        assert df.source_row.tolist() == [0, -1, -1, 1, 1]
        assert df.target_row.tolist() == [0, -1, -1, 2, 0]
        assert df.score_s[0] == 1.0 and np.isnan(df.score_s[1])
        m = rows.mean.reshape(n, -1).astype(np.float64)
        cos = m[3] @ m[1] / np.linalg.norm(m[3]) / np.linalg.norm(m[1])
        assert np.isclose(df.score_s[3], (cos + 1) / 2, atol=1e-6)
        assert np.array_equal(cache.faces([4]), rows.faces[4:5])
