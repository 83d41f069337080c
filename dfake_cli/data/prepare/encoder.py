"""The SD-VAE encoder as preparation runs it: encoder only, large batches; bf16 + channels_last on CUDA.

Preparation needs the posterior moments of every face, nothing else of Stable Diffusion: the decoder is
dropped and, for a diffusers folder, the UNet is never loaded (`load_vae`). On CUDA the encoder runs in bf16 with
channels_last tensors (the tensor-core layout) in batches of 64; on the CPU it stays fp32, so CPU caches
keep the exact latents they always had.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from dfake_cli.errors import InputError


def load_vae(spec: str):
    """The frozen SD-VAE named by `spec`, on the CPU in fp32, with the weights SD loading gives it.

    A diffusers folder: only vae/ is read (the UNet is never built). The tiny SD and a single SD-1.5
    file go through `load_stable_diffusion` (the file holds every part in one state dict); only the VAE
    is kept and the rest is freed before anything reaches the device.
    """
    path = Path(spec).expanduser()
    if spec != "tiny" and path.is_dir():
        from diffusers import AutoencoderKL

        names = [q.name for q in (path / "vae").iterdir()] if (path / "vae").is_dir() else []
        names = [n for n in names if n.startswith("diffusion_pytorch_model")]
        if not names:
            raise InputError(f"--sd {path}: vae/ has no diffusion_pytorch_model.safetensors (or .bin) weights")
        plain = any(n in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin") for n in names)
        vae = AutoencoderKL.from_pretrained(str(path), subfolder="vae", local_files_only=True,
                                            variant=None if plain else names[0].split(".")[1],
                                            torch_dtype=torch.float32)
        return vae.eval().requires_grad_(False)
    from dfake_cli.models.sd import load_stable_diffusion

    return load_stable_diffusion(spec, zero_context=True).vae


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
            x = x.permute(0, 3, 1, 2).to(self.dtype) / 127.5 - 1.0  # the layout the CPU caches were always made with
            if self.memory_format is torch.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            h = self.quant_conv(self.encoder(x)).float()
            mean, logvar = h.chunk(2, dim=1)
            means.append(mean.cpu().numpy().astype(np.float32))
            logvars.append(logvar.clamp(-30.0, 20.0).cpu().numpy().astype(np.float32))
        if not means:
            return np.zeros((0,), np.float32), np.zeros((0,), np.float32)
        return np.concatenate(means), np.concatenate(logvars)
