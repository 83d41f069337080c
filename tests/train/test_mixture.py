"""Training on several caches (`--data a,b`): the multi-cache view, the per-cache balance, exact resume."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dfake_cli.data.cache import FaceCache
from dfake_cli.data.multicache import MultiCache, open_caches
from dfake_cli.errors import InputError
from dfake_cli.train.sampler import BalancedSampler
from dfake_cli.train.mixture import MixtureSampler, data_names
from dfake_cli.train.trainer import train
from dfake_cli.workspace import Workspace

from helpers.traincache import make_cache, tiny_config


@pytest.fixture(scope="module")
def two_caches(tmp_path_factory):
    base = tmp_path_factory.mktemp("mix")
    a = make_cache(base / "a.h5", videos={"train": 4, "val": 1}, frames=3, seed=1)
    b = make_cache(base / "b.h5", videos={"train": 2, "val": 1}, frames=2, seed=2)
    return a, b


def test_one_cache_mixture_is_the_balanced_sampler():
    labels = np.array([0, 1, 1, 0, 1, 1, 1, 0, 1])
    plain, mixed = BalancedSampler(labels, 7), MixtureSampler(labels, np.zeros(len(labels), int), 7)
    assert mixed.epoch_length == plain.epoch_length
    for epoch in range(3):
        assert np.array_equal(mixed.epoch_order(epoch), plain.epoch_order(epoch))


def test_every_cache_and_class_gets_an_equal_share():
    labels = np.array([0] * 10 + [1] * 30 + [0] * 3 + [1] * 6)
    groups = np.array([0] * 40 + [1] * 9)
    s = MixtureSampler(labels, groups, 0)
    assert s.per_group == 3 and s.epoch_length == 12
    for epoch in range(4):
        order = s.epoch_order(epoch)
        assert len(set(order)) == len(order) == 12
        pairs = list(zip(groups[order].tolist(), labels[order].tolist()))
        assert all(pairs.count(c) == 3 for c in [(0, 0), (0, 1), (1, 0), (1, 1)])
    assert np.array_equal(s.epoch_order(2), MixtureSampler(labels, groups, 0).epoch_order(2))
    assert not np.array_equal(s.epoch_order(0), s.epoch_order(1))
    with pytest.raises(InputError, match="cache b"):
        MixtureSampler(np.array([0, 1, 0]), np.array([0, 0, 1]), 0, names=["a", "b"])


def test_multicache_reads_like_its_parts(two_caches):
    a, b = two_caches
    with FaceCache(a) as ca, FaceCache(b) as cb, MultiCache([a, b]) as mc:
        n = len(ca)
        assert len(mc) == n + len(cb) and mc.size == ca.size and mc.has_latents
        df = mc.index
        assert df.video_id.tolist() == ca.index.video_id.tolist() + cb.index.video_id.tolist()
        fake_b = int(cb.input_rows("train")[np.flatnonzero(cb.index.label.to_numpy()[cb.input_rows("train")])[0]])
        assert df.source_row[n + fake_b] == cb.index.source_row[fake_b] + n
        rows = np.array([n + 1, 0, n + fake_b, 2, 0])
        want = np.concatenate([cb.faces([1]), ca.faces([0]), cb.faces([fake_b]), ca.faces([2, 0])])
        assert np.array_equal(mc.faces(rows), want)
        mean, logvar = mc.latent_moments(rows)
        assert np.array_equal(mean[0], cb.latent_moments([1])[0][0]) and np.array_equal(mean[1], ca.latent_moments([0])[0][0])
        assert mc.cache_of(rows).tolist() == [1, 0, 1, 0, 0]
        assert set(mc.input_rows("val")) == set(ca.input_rows("val")) | {r + n for r in cb.input_rows("val")}
    assert isinstance(open_caches([a]), FaceCache)


def test_caches_that_cannot_mix_are_refused(tmp_path, two_caches):
    other = make_cache(tmp_path / "c.h5", videos={"train": 1}, frames=1, sd_identity="sd15-x")
    with pytest.raises(InputError, match="sd_identity"):
        MultiCache([two_caches[0], other])
    with pytest.raises(InputError, match="twice"):
        data_names("a,b,a")


def _rows(run_dir):
    with open(run_dir / "samples.csv", newline="") as f:
        return [r["rows"] for r in csv.DictReader(f)]


def test_mixture_trains_and_resumes_exactly(tmp_path, two_caches):
    ws = Workspace(tmp_path / "ws").ensure()
    for name, path in zip(("ffpp", "sbi"), two_caches):
        (ws.data_dir / f"{name}.h5").symlink_to(path)
    straight = train(tiny_config(data="ffpp,sbi", run="mix", steps=2, use_guide=False), ws)
    train(tiny_config(data="ffpp,sbi", run="mix2", steps=1, use_guide=False), ws)
    resumed = train(tiny_config(data="ffpp,sbi", run="mix2", steps=2, resume=True, use_guide=False), ws)
    assert _rows(straight.run_dir) == _rows(resumed.run_dir)
    a, b = (load_file(str(r.last_dir / "model.safetensors")) for r in (straight, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    seen = np.array([int(r) for line in _rows(straight.run_dir) for r in line.split()])
    n_a = len(FaceCache(two_caches[0]))
    assert (seen >= n_a).any() and (seen < n_a).any()  # both caches feed the batches
    assert straight.val["faces"] > 0 and straight.best_auc is not None
