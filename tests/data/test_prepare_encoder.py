"""The encoder-only VAE of preparation gives the latents of the whole SD's VAE (fp32 on the CPU)."""

from __future__ import annotations

import numpy as np
import torch

from dfake_cli.data.prepare.encoder import VaeEncoder, load_vae
from dfake_cli.models.sd import encode_latent_moments, load_stable_diffusion


def test_encoder_only_matches_the_full_vae():
    faces = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    encoder = VaeEncoder(load_vae("tiny"), device="cpu", batch=2)  # several batches, one partial
    assert encoder.dtype == torch.float32
    mean, logvar = encoder.moments(faces)
    sd = load_stable_diffusion("tiny")
    x = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    ref_mean, ref_logvar = encode_latent_moments(sd.vae, x)
    assert mean.shape == (5, 4, 8, 8) and mean.dtype == np.float32
    np.testing.assert_allclose(mean, ref_mean.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(logvar, ref_logvar.numpy(), rtol=0, atol=1e-5)
    assert encoder.scaling_factor == sd.scaling_factor


def test_bf16_channels_last_path_runs_on_cpu():
    """The CUDA settings (bf16, channels_last) exercised on the CPU: close to fp32."""
    faces = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    ref, _ = VaeEncoder(load_vae("tiny")).moments(faces)
    fast = VaeEncoder(load_vae("tiny"), dtype=torch.bfloat16)
    fast.memory_format = torch.channels_last
    got, _ = fast.moments(faces)
    assert np.abs(got - ref).max() < 0.1 * (np.abs(ref).max() + 1e-6) + 0.05
