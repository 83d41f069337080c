"""Shared fixtures: the tiny SD is built once per session (it is frozen, tests must not change it)."""

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_sd():
    from dfake_cli.models.sd import load_stable_diffusion

    return load_stable_diffusion("tiny")


@pytest.fixture(scope="session")
def small_config():
    """A method-level configuration at tiny scale: timm's 64-channel `test_convnext` at 64 px (latents 4x8x8),
    the tiny SD and a narrow WeightNet (same layers, fewer channels). The listed paper backbones are
    exercised separately (test_each_backbone_trains_one_step)."""
    from dfake_cli.models.diffusionfake import DiffusionFakeConfig

    base = {"backbone": "test_convnext", "image_size": 64, "sd": "tiny", "weight_widths": (64, 32, 16, 8)}
    return lambda **kw: DiffusionFakeConfig(**{**base, **kw})


def batch(b=2, size=64, seed=0):
    """Images, labels, latents and weight targets for one training step."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, size, size, generator=g)
    labels = torch.tensor([i % 2 for i in range(b)])
    z_s = torch.randn(b, 4, size // 8, size // 8, generator=g)
    z_t = torch.randn(b, 4, size // 8, size // 8, generator=g)
    score_s = torch.rand(b, generator=g)
    score_t = torch.rand(b, generator=g)
    return x, labels, z_s, z_t, score_s, score_t
