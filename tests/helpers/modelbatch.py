"""One training step's worth of random model inputs (images, labels, latents, weight targets)."""

import torch


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
