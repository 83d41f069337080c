"""The SD-VAE encoder as preparation runs it: encoder only, large batches; bf16 + channels_last on CUDA.

Preparation needs the posterior moments of every face, nothing else of Stable Diffusion: the decoder is
dropped and the UNet is never loaded (`models.sd.load_vae`). On CUDA the encoder runs in bf16 with
channels_last tensors (the tensor-core layout) in batches of 64; on the CPU it stays fp32, so CPU caches
keep the exact latents they always had.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch


class VaeEncoder:
    """uint8 faces (N, S, S, 3) -> float32 (mean, logvar) of shape (N, 4, S/8, S/8), unscaled."""

    def __init__(self, vae, device: str = "cpu", dtype: Optional[torch.dtype] = None, batch: Optional[int] = None):
        cuda = str(device).startswith("cuda")
        self.dtype = dtype or (torch.bfloat16 if cuda else torch.float32)
        self.memory_format = torch.channels_last if cuda else torch.contiguous_format
        self.batch = batch or (64 if cuda else 16)
        self.device = torch.device(device)
        self.scaling_factor = float(getattr(vae.config, "scaling_factor", 0.18215))
        self.encoder = vae.encoder.to(self.device, self.dtype, memory_format=self.memory_format).eval()
        quant = getattr(vae, "quant_conv", None) or torch.nn.Identity()  # SD's VAE has one
        self.quant_conv = quant.to(self.device, self.dtype, memory_format=self.memory_format).eval()
        if getattr(vae, "decoder", None) is not None:
            vae.decoder = None  # never used here: free it
        self.encoder.requires_grad_(False)
        self.quant_conv.requires_grad_(False)

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).replace("torch.", "")

    @torch.no_grad()
    def moments(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        means, logvars = [], []
        for i in range(0, len(faces), self.batch):
            x = torch.from_numpy(np.ascontiguousarray(faces[i : i + self.batch])).to(self.device)
            x = x.permute(0, 3, 1, 2).to(self.dtype).contiguous(memory_format=self.memory_format) / 127.5 - 1.0
            h = self.quant_conv(self.encoder(x)).float()
            mean, logvar = h.chunk(2, dim=1)
            means.append(mean.cpu().numpy().astype(np.float32))
            logvars.append(logvar.clamp(-30.0, 20.0).cpu().numpy().astype(np.float32))
        if not means:
            return np.zeros((0,), np.float32), np.zeros((0,), np.float32)
        return np.concatenate(means), np.concatenate(logvars)
