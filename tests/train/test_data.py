"""Balanced, deterministic, shardable sampling; flips that move the latents with the face; prefetch = direct."""

from __future__ import annotations

import numpy as np
import pytest

from dfake_cli.data.cache import FaceCache
from dfake_cli.errors import InputError
from dfake_cli.train.data import (
    AugmentConfig, BalancedSampler, CacheInputs, Prefetcher, StepPlan, augment, build_batch, sample_latents,
)

NO_AUG = AugmentConfig(flip=0.0, color_jitter=0.0, gray=0.0, noise=0.0, cutout=0.0)


def test_sampler_is_balanced_deterministic_and_fresh_each_epoch():
    labels = np.array([0] * 5 + [1] * 20)
    s = BalancedSampler(labels, seed=7)
    e0 = s.epoch_order(0)
    assert s.epoch_length == 10 and len(e0) == 10 and len(set(e0)) == 10
    assert (labels[e0] == 0).sum() == 5 and (labels[e0] == 1).sum() == 5
    assert np.array_equal(e0, BalancedSampler(labels, seed=7).epoch_order(0))
    assert not np.array_equal(e0, s.epoch_order(1))
    assert not np.array_equal(e0, BalancedSampler(labels, seed=8).epoch_order(0))
    fakes_seen = set().union(*(set(s.epoch_order(e)[labels[s.epoch_order(e)] == 1]) for e in range(8)))
    assert len(fakes_seen) > 5  # the larger class is subsampled differently per epoch
    with pytest.raises(InputError, match="needs both"):
        BalancedSampler(np.zeros(4), seed=0)


def test_step_plan_shards_each_global_batch_across_ranks():
    plan = StepPlan(BalancedSampler(np.array([0, 1] * 10), seed=1), batch_size=3, world_size=2)
    assert plan.steps_per_epoch == 20 // 6
    for step in range(7):
        g = plan.global_positions(step)
        parts = [plan.positions(step, r) for r in range(2)]
        assert len(g) == 6 and np.array_equal(np.concatenate(parts), g)
        assert not set(parts[0]) & set(parts[1])
    assert plan.epoch_of(3) == 1 and np.array_equal(plan.global_positions(3), plan.sampler.epoch_order(1)[:6])
    with pytest.raises(InputError, match="--batch-size 16"):
        StepPlan(plan.sampler, batch_size=16, world_size=2).check()


def _batch(n=3, size=8, lat=2, seed=0, flipped=True):
    rng = np.random.default_rng(seed)
    keys = ("mean_s", "logvar_s", "mean_t", "logvar_t")
    out = {"face": rng.integers(0, 256, (n, size, size, 3)).astype(np.uint8),
           **{k: rng.normal(size=(n, 4, lat, lat)).astype(np.float32) for k in keys}}
    if flipped:
        out.update({f"flip_{k}": rng.normal(size=(n, 4, lat, lat)).astype(np.float32) for k in keys})
    return out


def test_flip_moves_face_and_takes_the_flipped_faces_latents():
    b = _batch()
    ref = {k: v.copy() for k, v in b.items()}
    augment(b, np.random.default_rng(0), AugmentConfig(flip=1.0, color_jitter=0.0, gray=0.0, noise=0.0))
    assert np.array_equal(b["face"], ref["face"][:, :, ::-1])
    for k in ("mean_s", "logvar_s", "mean_t", "logvar_t"):
        assert np.array_equal(b[k], ref[f"flip_{k}"])  # the moments of the flipped face, not flipped moments
    b = _batch()
    augment(b, np.random.default_rng(0), NO_AUG)
    assert all(np.array_equal(b[k], ref[k]) for k in ref)
    with pytest.raises(InputError, match="flipped faces' latents"):
        augment(_batch(flipped=False), np.random.default_rng(0), AugmentConfig(flip=1.0))


def test_photometric_changes_touch_the_input_only():
    b = _batch(size=16)
    ref = {k: v.copy() for k, v in b.items()}
    augment(b, np.random.default_rng(1), AugmentConfig(flip=0.0, color_jitter=0.3, gray=1.0, noise=1.0, cutout=1.0))
    assert b["face"].dtype == np.uint8 and not np.array_equal(b["face"], ref["face"])
    assert all(np.array_equal(b[k], ref[k]) for k in ref if k != "face")
    assert (b["face"] == 0).all(axis=-1).sum() >= 3 * 16  # a cutout square per face


def test_latent_samples_follow_the_posterior():
    mean = np.full((2000, 4, 2, 2), 0.5, np.float32)
    logvar = np.full_like(mean, np.log(0.25))  # std 0.5
    z = sample_latents(mean, logvar, np.random.default_rng(0), scaling=2.0)
    assert abs(z.mean() - 1.0) < 0.02 and abs(z.std() - 1.0) < 0.02
    z0 = sample_latents(mean, np.full_like(mean, -80.0), np.random.default_rng(0), scaling=0.18215)
    assert np.allclose(z0, 0.5 * 0.18215)


def test_cache_inputs_pair_each_face_with_its_source_and_target(cache_file):
    cache = FaceCache(cache_file)
    rows = cache.input_rows("train")
    inputs = CacheInputs(cache, rows)
    idx = cache.index
    fake = rows[idx.label.to_numpy()[rows] == 1][:2]
    pick = np.array([fake[0], fake[1], fake[0]])  # unsorted, with a repeat
    data = inputs.load(pick)
    mean, logvar = cache.latent_moments(idx.source_row.to_numpy()[pick])
    assert np.array_equal(data["mean_s"], mean) and np.array_equal(data["logvar_s"], logvar)
    assert np.array_equal(data["mean_t"], cache.latent_moments(idx.target_row.to_numpy()[pick])[0])
    assert np.array_equal(data["face"], cache.faces(pick)) and data["label"].tolist() == [1, 1, 1]
    assert np.allclose(data["score_s"], idx.score_s.to_numpy()[pick])
    one = inputs[0]
    assert one["face"].shape == (64, 64, 3) and one["mean_s"].shape == (4, 8, 8)
    assert inputs.has_pairs
    cache.close()


def test_prefetcher_yields_exactly_the_direct_batches(cache_file):
    cache = FaceCache(cache_file)
    rows = cache.input_rows("train")
    inputs = CacheInputs(cache, rows)
    plan = StepPlan(BalancedSampler(inputs.labels, seed=3), batch_size=4, world_size=2)
    aug = AugmentConfig()
    direct = [build_batch(inputs, plan, s, 1, 3, aug, 0.18215, True) for s in range(5, 9)]
    pre = Prefetcher(cache_file, FaceCache, rows, plan, 1, 3, aug, 0.18215, True, start=5, end=9, depth=2)
    got = list(pre)
    pre.close()
    assert [b.step for b in got] == [5, 6, 7, 8]
    for a, b in zip(direct, got):
        assert np.array_equal(a.rows, b.rows) and np.array_equal(a.face, b.face)
        assert np.array_equal(a.z_source, b.z_source) and np.array_equal(a.z_target, b.z_target)
        assert len(a.global_rows) == 8 and set(a.rows) <= set(a.global_rows)
    assert plan.epoch_of(8) == 2  # 24 faces / (4 x 2) = 3 steps per epoch: crossed two epoch boundaries
    cache.close()
