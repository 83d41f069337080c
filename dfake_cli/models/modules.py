"""The per-branch heads of DiffusionFake (docs/architecture.md, Model): Upsampler, FeatureFilter, WeightNet.

Each branch (source, target) owns one of each; the guide itself is shared.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Upsampler(nn.Module):
    """Brings the encoder map to the latent grid with 2x ConvTranspose2d(k4, s2, p1) steps.

    The step count follows from the sizes (8x8 -> 32x32: two steps; a ViT/16 16x16 map: one). A ratio that is
    not a power of two is finished with a bilinear resize, so any backbone/image size pairing works.
    """

    def __init__(self, channels: int, in_size: tuple[int, int], out_size: tuple[int, int]):
        super().__init__()
        self.out_size = tuple(out_size)
        ratio = min(out_size[0] / in_size[0], out_size[1] / in_size[1])
        steps = max(0, int(math.floor(math.log2(ratio) + 1e-9))) if ratio >= 1 else 0
        self.steps = nn.Sequential(
            *[nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=2, padding=1, bias=False) for _ in range(steps)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.steps(x)
        if tuple(x.shape[-2:]) != self.out_size:
            x = F.interpolate(x, size=self.out_size, mode="bilinear", align_corners=False)
        return x


def largest_divisor_at_most(n: int, k: int) -> int:
    """The largest d <= k that divides n (attention heads must divide the embedding width)."""
    for d in range(max(1, min(n, k)), 0, -1):
        if n % d == 0:
            return d
    return 1


class FeatureFilter(nn.Module):
    """Keeps the parts of the feature map that help reconstruct one branch, projected to the guide's width.

    conv3x3 -> SiLU -> SE channel attention -> spatial attention -> multi-head attention whose query is the
    activated raw feature and key/value the attention-filtered feature -> conv3x3 to `out_channels`.
    """

    def __init__(self, channels: int, out_channels: int, heads: int = 4, reduction: int = 4):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.channel_attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )
        self.spatial_attention = nn.Conv2d(channels, 1, 3, padding=1)
        self.heads = largest_divisor_at_most(channels, heads)
        self.attention = nn.MultiheadAttention(channels, self.heads, batch_first=True)
        self.conv2 = nn.Conv2d(channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1(x)
        a1 = F.silu(a)
        a = a * self.channel_attention(a1)
        a = a * torch.sigmoid(self.spatial_attention(a1))
        b, c, h, w = a.shape
        query = a1.flatten(2).transpose(1, 2)
        kv = a.flatten(2).transpose(1, 2)
        out, _ = self.attention(query, kv, kv, need_weights=False)
        return self.conv2(out.transpose(1, 2).reshape(b, c, h, w))


class Projection(nn.Module):
    """The `--no-filter` ablation: a 1x1 convolution to the guide's width, nothing else."""

    def __init__(self, channels: int, out_channels: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class WeightNet(nn.Module):
    """Per-sample weight W in [0, 1]: how much this branch's guidance should count.

    Three 3x3 convolutions C -> 1024 -> 512 -> 256 with no activation between them (as in the reference code),
    global average pool, Linear 256 -> 128 -> 1, sigmoid. Input: the raw encoder feature map.
    """

    def __init__(self, channels: int, widths: tuple[int, ...] = (1024, 512, 256, 128)):
        super().__init__()
        if len(widths) != 4:
            raise ValueError("WeightNet widths: four values (three conv widths, one hidden linear width)")
        c1, c2, c3, hidden = widths
        self.convs = nn.Sequential(
            nn.Conv2d(channels, c1, 3, padding=1),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.Conv2d(c2, c3, 3, padding=1),
        )
        self.mlp = nn.Sequential(nn.Linear(c3, hidden), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) weights in [0, 1]."""
        return torch.sigmoid(self.mlp(self.convs(x).mean(dim=(2, 3)))).squeeze(1)
