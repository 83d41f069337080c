"""The cache: shard round trip, assembly (pairs, drops, scores), atomicity, and the FaceCache reader."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

from dfake_cli.data import cache as cache_mod
from dfake_cli.data.cache import pairing as cache_pairing
from dfake_cli.data.cache import FaceCache, ShardRows, assemble, read_shard, write_shard
from dfake_cli.errors import InputError

S = 16


def _rows(video_ids, frames, roles, label, method, link=None, source_frame=None, seed=0) -> ShardRows:
    n = len(frames)
    rng = np.random.default_rng(seed)
    return ShardRows(
        faces=rng.integers(0, 255, (n, S, S, 3), dtype=np.uint8), video_id=list(video_ids),
        frame_index=np.asarray(frames, np.int32), label=np.asarray(
            [label if r == "input" else 0 for r in roles], np.int8),
        method=[method if r == "input" else "youtube" for r in roles], role=list(roles),
        confidence=np.full(n, 0.99, np.float32), landmarks=rng.random((n, 5, 2)).astype(np.float32),
        matrix=np.tile(np.eye(2, 3, dtype=np.float32), (n, 1, 1)),
        link=np.asarray(link if link is not None else [-1] * n, np.int64),
        source_frame=np.asarray(source_frame if source_frame is not None else [-1] * n, np.int64),
        mean=rng.normal(size=(n, 4, 2, 2)).astype(np.float32), logvar=rng.normal(size=(n, 4, 2, 2)).astype(np.float32),
    )


def _meta(video_id, label, split="train", source_id=None, status="ok") -> dict:
    return {"video_id": video_id, "path": f"/x/{video_id}.mp4", "split": split, "label": label, "method": "m",
            "status": status, "reason": "" if status == "ok" else "no face found", "source_id": source_id,
            "is_input": True, "size": S}


@pytest.fixture
def shards(tmp_path):
    """Original A (inputs 0, 5; source-only frame 3 and unused source-only frame 7), original B (input 0),
    fake A_B with 3 frames: frame 0 pairs with B's 0, frame 5 with B's... missing frame -> dropped."""
    a = _rows(["yt/A"] * 4, [0, 5, 3, 7], ["input", "input", "source", "source"], 0, "youtube", seed=1)
    b = _rows(["yt/B"] * 2, [0, 4], ["input", "source"], 0, "youtube", seed=2)
    # Fake of target A with source B: inputs at frames 0, 5, 2 (rows 0-2), targets rows 3-5.
    fake = _rows(["DF/A_B"] * 3 + ["yt/A"] * 3, [0, 5, 2, 0, 5, 2], ["input"] * 3 + ["target"] * 3, 1, "DF",
                 link=[3, 4, 5, -1, -1, -1], source_frame=[0, 4, 9, -1, -1, -1], seed=3)
    paths = []
    for i, (rows, meta) in enumerate([(a, _meta("yt/A", 0)), (b, _meta("yt/B", 0)),
                                      (fake, _meta("DF/A_B", 1, source_id="yt/B"))]):
        p = tmp_path / "parts" / f"{i}.npz"
        write_shard(p, rows, meta)
        paths.append(p)
    return paths, (a, b, fake)


def test_shard_round_trip(tmp_path):
    rows = _rows(["v/1", "v/1"], [3, 8], ["input", "source"], 0, "youtube")
    write_shard(tmp_path / "s.npz", rows, {"video_id": "v/1", "status": "ok", "extra": [1, 2]})
    back, meta = read_shard(tmp_path / "s.npz")
    assert meta == {"video_id": "v/1", "status": "ok", "extra": [1, 2]}
    assert back.video_id == ["v/1", "v/1"] and back.role == ["input", "source"]
    np.testing.assert_array_equal(back.faces, rows.faces)
    np.testing.assert_array_equal(back.mean, rows.mean)
    light, _ = read_shard(tmp_path / "s.npz", with_faces=False)
    assert light.faces.shape[0] == 2 and light.mean is None
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]  # no temporary left behind


def test_assemble_pairs_drops_and_scores(tmp_path, shards):
    paths, (a, b, fake) = shards
    out = tmp_path / "c.h5"
    stats = assemble(paths, out, {"dataset": "t", "size": S}, training=True, size=S)
    # A: inputs 0,5 kept, source 3 unused -> dropped, 7 unused -> dropped. B: input 0 + source 4 (used).
    # Fake: frame 2 pairs with B frame 9, which does not exist -> input and its target dropped.
    assert stats.rows == 2 + 2 + 4 and stats.inputs == 2 + 1 + 2 and stats.dropped_frames == 1
    with FaceCache(out) as c:
        df = c.index
        assert list(df.video_id) == ["yt/A", "yt/A", "yt/B", "yt/B", "DF/A_B", "DF/A_B", "yt/A", "yt/A"]
        assert list(df.role) == ["input"] * 3 + ["reference", "input", "input", "reference", "reference"]
        assert list(df.frame_index) == [0, 5, 0, 4, 0, 5, 0, 5]
        # Reals pair with themselves; fake rows with B's frames 0 / 4 and their own targets.
        assert list(df.source_row[:3]) == [0, 1, 2] and list(df.target_row[:3]) == [0, 1, 2]
        assert list(df.source_row[4:6]) == [2, 3] and list(df.target_row[4:6]) == [6, 7]
        assert list(df.source_row[6:]) == [-1, -1] and df.label.tolist() == [0, 0, 0, 0, 1, 1, 0, 0]
        np.testing.assert_array_equal(c.faces([6, 4]), np.stack([fake.faces[3], fake.faces[0]]))
        np.testing.assert_array_equal(c.faces([3]), b.faces[1:2])
        mean, logvar = c.latent_moments([4])
        np.testing.assert_array_equal(mean[0], fake.mean[0])
        np.testing.assert_array_equal(logvar[0], fake.logvar[0])
        # Weight targets: (cos + 1) / 2 of the latent means; 1 for reals; nan for references.
        x, s_, t_ = fake.mean[1].ravel(), b.mean[1].ravel(), fake.mean[4].ravel()
        cos = lambda u, v: float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))  # noqa: E731
        assert df.score_s[5] == pytest.approx((cos(x, s_) + 1) / 2, abs=1e-5)
        assert df.score_t[5] == pytest.approx((cos(x, t_) + 1) / 2, abs=1e-5)
        assert (df.score_s[:3] == 1).all() and np.isnan(df.score_t[6])
        assert list(c.input_rows()) == [0, 1, 2, 4, 5] and list(c.input_rows("val")) == []
        assert c.attrs["dataset"] == "t" and c.attrs["complete"] and c.has_latents
        assert c.landmarks([0]).shape == (1, 5, 2)


def test_test_cache_has_no_pairs_or_latents(tmp_path):
    rows = _rows(["v/1"] * 2, [0, 3], ["input", "input"], 1, "fake")
    rows.mean = rows.logvar = None
    write_shard(tmp_path / "p" / "0.npz", rows, _meta("v/1", 1, split="test"))
    write_shard(tmp_path / "p" / "1.npz", ShardRows.empty(S), _meta("v/2", 0, status="skipped"))
    assemble([tmp_path / "p" / "0.npz", tmp_path / "p" / "1.npz"], tmp_path / "t.h5", {}, training=False, size=S)
    with FaceCache(tmp_path / "t.h5") as c:
        assert not c.has_latents and len(c) == 2
        assert (c.index.source_row == -1).all() and "score_s" not in c.index
        assert set(c.index.split) == {"test"}
        with pytest.raises(InputError, match="no latents"):
            c.latent_moments([0])
    with h5py.File(tmp_path / "t.h5") as h:  # plain h5py reads it
        assert h["faces"].dtype == np.uint8 and h["faces"].chunks == (1, S, S, 3)
        assert h["faces"].compression is None  # stored raw: read chunk by chunk (docs/cache.md)


def test_faces_read_chunk_by_chunk_from_raw_gzip_and_other_layouts(tmp_path):
    """New (raw) caches, older gzip caches and foreign layouts all read the same faces, in request order."""
    from dfake_cli.data.cache.reader import chunk_layout, read_chunk_rows

    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (6, S, S, 3), dtype=np.uint8)
    rows = np.array([4, 1, 1, 5, 0])
    with h5py.File(tmp_path / "f.h5", "w") as h:
        raw = h.create_dataset("raw", data=faces, chunks=(1, S, S, 3))
        gz = h.create_dataset("gz", data=faces, chunks=(1, S, S, 3), compression="gzip", compression_opts=1)
        other = h.create_dataset("other", data=faces, chunks=(2, S, S, 3), shuffle=True, compression="gzip")
        assert (chunk_layout(raw), chunk_layout(gz), chunk_layout(other)) == ("raw", "deflate", None)
        assert np.array_equal(read_chunk_rows(raw, rows, "raw"), faces[rows])
        assert np.array_equal(read_chunk_rows(gz, rows, "deflate"), faces[rows])
        with pytest.raises(IndexError, match="out of range"):
            read_chunk_rows(raw, np.array([6]), "raw")


def test_interrupted_assembly_leaves_no_cache(tmp_path, shards, monkeypatch):
    paths, _ = shards
    out = tmp_path / "c.h5"

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_pairing, "write_scores", boom)
    with pytest.raises(KeyboardInterrupt):
        assemble(paths, out, {}, training=True, size=S)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["parts"]
    monkeypatch.undo()
    assemble(paths, out, {}, training=True, size=S)
    assert FaceCache(out).attrs["complete"]


def test_reader_rejects_missing_and_incomplete(tmp_path):
    with pytest.raises(InputError, match="not found"):
        FaceCache(tmp_path / "nope.h5")
    with h5py.File(tmp_path / "half.h5", "w") as h:
        h.create_dataset("faces", (0, S, S, 3), "u1")
    with pytest.raises(InputError, match="incomplete"):
        FaceCache(tmp_path / "half.h5")
    assert cache_mod.cache_attrs(tmp_path / "half.h5") is None
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    assert cache_mod.cache_attrs(tmp_path / "junk.h5") is None


def test_reader_pickles_by_path_and_orders_rows(tmp_path, shards):
    paths, (a, _, _) = shards
    assemble(paths, tmp_path / "c.h5", {}, training=True, size=S)
    c = FaceCache(tmp_path / "c.h5")
    c2 = pickle.loads(pickle.dumps(c))
    got = c2.faces([1, 0, 1])
    np.testing.assert_array_equal(got, np.stack([a.faces[1], a.faces[0], a.faces[1]]))
    with pytest.raises(IndexError):
        c2.faces([99])
    c.close()
    c2.close()


def test_flipped_latents_round_trip_and_are_all_or_nothing(tmp_path, shards):
    paths, (a, b, fake) = shards
    with FaceCache(_assemble_plain(tmp_path, paths)) as c:  # shards without them: no fields, a clear refusal
        assert c.has_latents and not c.has_flipped_latents
        with pytest.raises(InputError, match="no flipped-face latents"):
            c.latent_moments([0], flipped=True)
    rng = np.random.default_rng(7)
    flipped = []
    for i, (p, rows) in enumerate(zip(paths, (a, b, fake))):
        rows.flip_mean = rng.normal(size=rows.mean.shape).astype(np.float32)
        rows.flip_logvar = rng.normal(size=rows.mean.shape).astype(np.float32)
        write_shard(p, rows, cache_mod.read_shard_meta(p))
        flipped.append(rows)
    out = tmp_path / "flip.h5"
    assemble(paths, out, {"dataset": "t", "size": S}, training=True, size=S)
    with FaceCache(out) as c:
        assert c.has_flipped_latents
        mean, _ = c.latent_moments(np.arange(len(c)))
        fmean, flogvar = c.latent_moments(np.arange(len(c)), flipped=True)
        assert fmean.shape == mean.shape == flogvar.shape
        # every row's flipped moments travel with the row: match them through the unflipped means
        by_mean = {r.mean[j].tobytes(): (r.flip_mean[j], r.flip_logvar[j]) for r in flipped for j in range(len(r))}
        for i in range(len(c)):
            want = by_mean[mean[i].tobytes()]
            assert np.array_equal(fmean[i], want[0]) and np.array_equal(flogvar[i], want[1])
    a.flip_mean = a.flip_logvar = None  # one shard of an older version among new ones
    write_shard(paths[0], a, cache_mod.read_shard_meta(paths[0]))
    with pytest.raises(InputError, match="some shards but not in others"):
        assemble(paths, tmp_path / "mixed.h5", {"dataset": "t", "size": S}, training=True, size=S)


def _assemble_plain(tmp_path, paths):
    out = tmp_path / "plain.h5"
    assemble(paths, out, {"dataset": "t", "size": S}, training=True, size=S)
    return out
