"""Shared fixtures: the tiny SD is built once per session (it is frozen, tests must not change it)."""

import pytest


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
