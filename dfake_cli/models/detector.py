"""The detector-only model (encoder + head) used by eval and detect: no diffusers, no Stable Diffusion.

It loads either the export (detector.safetensors + detector.json) or, when a checkpoint folder has no
export, the `detector.*` tensors of its model.safetensors with config.json: both hold the same weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from dfake_cli.errors import InputError
from dfake_cli.models.backbone import DetectorNet, preprocess_images
from dfake_cli.models.checkpoints import DETECTOR_CONFIG, DETECTOR_WEIGHTS, MODEL_CONFIG, MODEL_WEIGHTS
from dfake_cli.runtime import DEFAULT_MARGIN



class Detector:
    """Encoder + linear head at inference: uint8 face crops in, fake probabilities out."""

    def __init__(self, net: DetectorNet, config: dict, device="cpu"):
        self.net = net.to(device).eval()
        self.config = config
        self.device = torch.device(device)
        self.image_size = int(config["image_size"])
        self.mean = tuple(config.get("mean", (0.5, 0.5, 0.5)))
        self.std = tuple(config.get("std", (0.5, 0.5, 0.5)))

    @property
    def face_align(self) -> dict:
        """Alignment parameters of the training cache (size, margin): align new faces the same way."""
        return {"size": self.image_size, "margin": DEFAULT_MARGIN, **dict(self.config.get("face_align") or {})}

    @classmethod
    def from_pretrained(cls, directory: str | Path, device="cpu") -> "Detector":
        from safetensors.torch import load_file

        d = Path(directory)
        if (d / DETECTOR_WEIGHTS).is_file() and (d / DETECTOR_CONFIG).is_file():
            config = json.loads((d / DETECTOR_CONFIG).read_text())
            state = load_file(str(d / DETECTOR_WEIGHTS))
        elif (d / MODEL_WEIGHTS).is_file() and (d / MODEL_CONFIG).is_file():
            config = json.loads((d / MODEL_CONFIG).read_text())
            full = load_file(str(d / MODEL_WEIGHTS))
            state = {k[len("detector."):]: v for k, v in full.items() if k.startswith("detector.")}
        else:
            raise InputError(
                f"{d}: no detector.safetensors/detector.json or model.safetensors/config.json; pass a dfake checkpoint folder"
            )
        for key in ("backbone", "image_size"):
            if key not in config:
                raise InputError(f"{d}: its config has no {key!r}; not a dfake checkpoint")
        net = DetectorNet(config["backbone"], int(config["image_size"]))
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise InputError(f"{d}: detector weights do not match backbone {config['backbone']!r}") from exc
        return cls(net, config, device)

    @torch.no_grad()
    def logits(self, images) -> torch.Tensor:
        x = preprocess_images(images, self.image_size, self.mean, self.std, device=self.device)
        if self.device.type == "cuda":  # the fast path on a GPU: NHWC tensor-core kernels in bf16
            torch.backends.cudnn.benchmark = True
            self.net.to(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return self.net(x.contiguous(memory_format=torch.channels_last))[0].float()
        return self.net(x)[0]

    def predict_proba(self, images, batch_size: int = 32) -> np.ndarray:
        """uint8 (N, H, W, 3) face crops -> (N,) float64 fake probabilities (read back once, at the end)."""
        images = np.asarray(images) if not isinstance(images, torch.Tensor) else images
        if len(images) == 0:
            return np.zeros(0, dtype=np.float64)
        out = [torch.sigmoid(self.logits(images[i:i + batch_size]).float()) for i in range(0, len(images), batch_size)]
        return torch.cat(out).double().cpu().numpy()
