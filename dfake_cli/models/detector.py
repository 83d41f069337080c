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



def _read_config(path: Path) -> dict:
    """A checkpoint's JSON config with the keys the detector needs, well typed; else one InputError naming it."""
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not valid JSON ({' '.join(str(exc).split())[:100]}); export the checkpoint "
                         "again") from None
    if not isinstance(config, dict):
        raise InputError(f"{path}: expected a JSON object; not a dfake checkpoint config")
    for key, kind in (("backbone", str), ("image_size", int)):
        if key not in config:
            raise InputError(f"{path}: no {key!r}; not a dfake checkpoint config")
        value = config[key]
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and not 16 <= value <= 4096):
            raise InputError(f"{path}: {key} is {value!r}; expected a {kind.__name__}"
                             + (" between 16 and 4096" if kind is int else ""))
    if not isinstance(config.get("face_align", {}), dict):
        raise InputError(f"{path}: face_align is {config['face_align']!r}; expected an object like "
                         '{"size": 256, "margin": 1.3}')
    return config


def check_image_size(weights: Path, config_path: Path, image_size: int) -> None:
    """Refuse a config whose image size is not the one the weights were trained at (recorded in their header)."""
    from dfake_cli.io import safetensors_metadata

    trained = safetensors_metadata(weights).get("image_size")
    if trained is not None and str(trained) != str(image_size):
        raise InputError(f"{config_path}: image_size {image_size} but {weights.name} was trained at {trained} px; "
                         "the config was edited or comes from another checkpoint")


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
        from dfake_cli.io import read_safetensors

        d = Path(directory)
        if (d / DETECTOR_WEIGHTS).is_file() and (d / DETECTOR_CONFIG).is_file():
            weights, config_path = d / DETECTOR_WEIGHTS, d / DETECTOR_CONFIG
            config = _read_config(config_path)
            state = read_safetensors(weights, "detector weights")
        elif (d / MODEL_WEIGHTS).is_file() and (d / MODEL_CONFIG).is_file():
            weights, config_path = d / MODEL_WEIGHTS, d / MODEL_CONFIG
            config = _read_config(config_path)
            full = read_safetensors(weights, "model weights")
            state = {k[len("detector."):]: v for k, v in full.items() if k.startswith("detector.")}
        else:
            raise InputError(
                f"{d}: no detector.safetensors/detector.json or model.safetensors/config.json; pass a dfake checkpoint folder"
            )
        check_image_size(weights, config_path, config["image_size"])
        net = DetectorNet(config["backbone"], int(config["image_size"]))
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise InputError(f"{weights}: detector weights do not match backbone {config['backbone']!r}") from exc
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
