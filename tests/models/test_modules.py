"""Branch heads: shapes, step counts, ranges, attention-head choice."""

import torch

from dfake_cli.models.modules import FeatureFilter, Projection, Upsampler, WeightNet, largest_divisor_at_most


def test_upsampler_steps_follow_sizes():
    up = Upsampler(8, (8, 8), (32, 32))
    assert len(up.steps) == 2
    assert up(torch.randn(2, 8, 8, 8)).shape == (2, 8, 32, 32)
    assert len(Upsampler(8, (16, 16), (32, 32)).steps) == 1  # ViT/16 at 256 px
    assert len(Upsampler(8, (32, 32), (32, 32)).steps) == 0
    odd = Upsampler(8, (7, 7), (32, 32))  # not a power of two: finished by a resize
    assert len(odd.steps) == 2 and odd(torch.randn(1, 8, 7, 7)).shape == (1, 8, 32, 32)
    conv = up.steps[0]
    assert conv.kernel_size == (4, 4) and conv.stride == (2, 2) and conv.padding == (1, 1) and conv.bias is None


def test_feature_filter_projects_to_guide_width_and_uses_raw_query():
    torch.manual_seed(0)
    f = FeatureFilter(24, 32, heads=4)
    x = torch.randn(2, 24, 8, 8)
    assert f(x).shape == (2, 32, 8, 8)
    assert f.heads == 4 and f.attention.batch_first
    # the output depends on each sample only (no mixing across the batch)
    y = f(x)
    x2 = x.clone()
    x2[1] += 1
    y2 = f(x2)
    assert torch.allclose(y[0], y2[0], atol=1e-6) and not torch.allclose(y[1], y2[1])


def test_heads_are_the_largest_divisor():
    assert largest_divisor_at_most(1792, 4) == 4
    assert largest_divisor_at_most(30, 4) == 3
    assert largest_divisor_at_most(7, 4) == 1
    assert FeatureFilter(30, 8, heads=4).heads == 3


def test_weight_net_is_a_per_sample_scalar_in_unit_interval():
    torch.manual_seed(0)
    w = WeightNet(16, (32, 16, 8, 4))
    x = torch.randn(5, 16, 4, 4) * 10
    out = w(x)
    assert out.shape == (5,) and bool(((out >= 0) & (out <= 1)).all())
    assert len(w.convs) == 3 and all(isinstance(m, torch.nn.Conv2d) for m in w.convs)  # no activation between


def test_projection_is_one_by_one():
    p = Projection(16, 32)
    assert p.proj.kernel_size == (1, 1) and p(torch.randn(1, 16, 8, 8)).shape == (1, 32, 8, 8)
