"""The step-indexed loader: items are pure functions of (seed, step, rank), whoever builds them."""

from __future__ import annotations

import numpy as np
import torch

from dfake_cli.data.cache import FaceCache
from dfake_cli.train.augment import AugmentConfig, NO_AUGMENT
from dfake_cli.train.loader import CacheRows, RowBatches, StepBatches, ToDevice, batches
from dfake_cli.train.sampler import BalancedSampler, StepPlan

CPU = torch.device("cpu")


def _to_device(seed=3, rank=1):
    return ToDevice(CPU, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 64, seed=seed, rank=rank)


def test_cache_rows_pair_each_face_with_its_source_and_target(cache_file):
    with FaceCache(cache_file) as cache:
        rows = cache.input_rows("train")
        data = CacheRows(cache)
        idx = cache.index
        fake = rows[idx.label.to_numpy()[rows] == 1][:2]
        pick = np.array([fake[0], fake[1], fake[0]])  # unsorted, with a repeat
        got = data.read(pick, latents=True)
        mean, logvar = cache.latent_moments(idx.source_row.to_numpy()[pick])
        assert np.array_equal(got["mean_s"], mean) and np.array_equal(got["logvar_s"], logvar)
        assert np.array_equal(got["mean_t"], cache.latent_moments(idx.target_row.to_numpy()[pick])[0])
        assert np.array_equal(got["face"], cache.faces(pick)) and got["label"].tolist() == [1, 1, 1]
        assert np.allclose(got["score_s"], idx.score_s.to_numpy()[pick])
        assert data.has_pairs(rows)


def test_worker_processes_yield_exactly_the_in_process_batches(cache_file):
    with FaceCache(cache_file) as cache:
        rows = cache.input_rows("train")
        plan = StepPlan(BalancedSampler(cache.index.label.to_numpy()[rows], seed=3), batch_size=4, world_size=2)
        ds = StepBatches(cache, rows, plan, 1, 3, AugmentConfig(noise=0.5, cutout=0.5), True, start=5, end=9)
        direct = list(batches(ds, _to_device(), workers=0))
        forked = list(batches(ds, _to_device(), workers=2, prefetch=1))
    assert [b.step for b in forked] == [5, 6, 7, 8]
    for a, b in zip(direct, forked):
        assert np.array_equal(a.rows, b.rows) and torch.equal(a.x, b.x) and torch.equal(a.mean_s, b.mean_s)
        assert len(a.global_rows) == 8 and set(a.rows) <= set(a.global_rows)
    assert plan.epoch_of(8) == 2  # 24 faces / (4 x 2) = 3 steps per epoch: crossed two epoch boundaries


def test_a_flipped_face_gets_the_moments_of_its_flipped_source_and_target(cache_file):
    flip = AugmentConfig(flip=1.0, color_jitter=0.0, gray=0.0, noise=0.0)
    with FaceCache(cache_file) as cache:
        assert cache.has_flipped_latents
        rows = cache.input_rows("train")
        plan = StepPlan(BalancedSampler(cache.index.label.to_numpy()[rows], seed=0), batch_size=8)
        plain = list(batches(StepBatches(cache, rows, plan, 0, 0, NO_AUGMENT, True, 0, 1), _to_device(), workers=0))[0]
        flipped = list(batches(StepBatches(cache, rows, plan, 0, 0, flip, True, 0, 1), _to_device(), workers=0))[0]
        src = cache.index.source_row.to_numpy()[plain.rows]
        want, _ = cache.latent_moments(src, flipped=True)  # the VAE is not flip-equivariant: stored moments
    assert torch.equal(flipped.x, plain.x.flip(-1))
    assert torch.equal(flipped.mean_s, torch.from_numpy(want)) and not torch.equal(flipped.mean_s, plain.mean_s)


def test_caches_without_flipped_moments_flip_the_stored_ones(cache_file):
    class OldCache(FaceCache):  # a cache prepared before the flipped-face moments existed
        has_flipped_latents = False

    flip = AugmentConfig(flip=1.0, color_jitter=0.0, gray=0.0, noise=0.0)
    with OldCache(cache_file) as cache:
        rows = cache.input_rows("train")
        plan = StepPlan(BalancedSampler(cache.index.label.to_numpy()[rows], seed=0), batch_size=8)
        plain = list(batches(StepBatches(cache, rows, plan, 0, 0, NO_AUGMENT, True, 0, 1), _to_device(), workers=0))[0]
        flipped = list(batches(StepBatches(cache, rows, plan, 0, 0, flip, True, 0, 1), _to_device(), workers=0))[0]
    for key in ("mean_s", "logvar_s", "mean_t", "logvar_t"):
        assert torch.equal(getattr(flipped, key), getattr(plain, key).flip(-1))


def test_row_batches_cover_the_rows_in_order(cache_file):
    with FaceCache(cache_file) as cache:
        rows = cache.input_rows("val")
        got = list(batches(RowBatches(cache, rows, 5), _to_device(), workers=0))
        assert np.array_equal(np.concatenate([b.rows for b in got]), rows)
        x = torch.cat([b.x for b in got])
        want = (torch.from_numpy(cache.faces(rows)).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
        assert torch.allclose(x, want, atol=1e-5)
