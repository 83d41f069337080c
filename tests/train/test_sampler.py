"""Balanced, deterministic, shardable sampling: the pure part of what makes --resume exact."""

from __future__ import annotations

import numpy as np
import pytest

from dfake_cli.errors import InputError
from dfake_cli.train.sampler import BalancedSampler, StepPlan


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
