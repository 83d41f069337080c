"""The detector: a timm encoder's last feature map plus a linear real/fake head.

Any timm model works: the last spatial feature map is taken as is (NCHW), NHWC outputs are permuted and a
ViT's patch tokens (prefix tokens dropped) are reshaped to a map. Channel count and map size are probed
from the model at the configured image size, never hard-coded. This module imports torch and timm only,
so the detector-only export loads without diffusers.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dfake_cli.errors import InputError


def _create_timm(name: str, image_size: int) -> nn.Module:
    import timm

    if not timm.is_model(name):
        raise InputError(f"--backbone {name}: not a timm model name (e.g. efficientnet_b4, resnet34, vit_small_patch16_224)")
    kwargs = {"pretrained": False, "num_classes": 0}
    try:  # ViTs and friends need the input size; CNNs reject the argument.
        return timm.create_model(name, img_size=image_size, **kwargs)
    except TypeError:
        return timm.create_model(name, **kwargs)


def load_backbone_weights(model: nn.Module, path: str | Path) -> int:
    """Load local encoder weights (safetensors, or .pth/.pt via weights_only=True); returns tensors loaded."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"--backbone-weights {p}: not found")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(p))
    else:
        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise InputError(f"--backbone-weights {p}: not a weights-only checkpoint ({type(exc).__name__})") from exc
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not matched:
        raise InputError(f"--backbone-weights {p}: no tensor matches the backbone's names and shapes")
    model.load_state_dict(matched, strict=False)
    return len(matched)


def _parameters_in_graph(out: torch.Tensor) -> set[int]:
    """ids of the leaf tensors (parameters) that `out`'s autograd graph reaches."""
    used: set[int] = set()
    seen: set = set()
    stack = [out.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        var = getattr(fn, "variable", None)
        if var is not None:
            used.add(id(var))
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return used


class Encoder(nn.Module):
    """timm model -> (B, C, h, w) feature map; `channels` and `grid` are probed at `image_size`."""

    def __init__(self, name: str, image_size: int, weights: str | Path | None = None):
        super().__init__()
        self.name = name
        self.image_size = image_size
        self.model = _create_timm(name, image_size)
        if weights is not None:
            load_backbone_weights(self.model, weights)
        self.prefix_tokens = int(getattr(self.model, "num_prefix_tokens", 0) or 0)
        self.nhwc = getattr(self.model, "output_fmt", "NCHW") == "NHWC"
        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        with torch.enable_grad():  # the graph (not a backward) tells which parameters the map depends on
            probe = self(torch.zeros(1, 3, image_size, image_size, device=device))
        self.model.train(was_training)
        self.channels = int(probe.shape[1])
        self.grid = (int(probe.shape[2]), int(probe.shape[3]))
        # Parts of timm's classifier head that run after pooling (e.g. ConvNeXt's head.norm) never see the
        # feature map: freeze them so every trainable parameter gets a gradient (and DDP needs no
        # find_unused_parameters). They stay in the state dict.
        used = _parameters_in_graph(probe)
        self.unused = [n for n, p in self.model.named_parameters() if id(p) not in used]
        for name, param in self.model.named_parameters():
            if id(param) not in used:
                param.requires_grad_(False)
        del probe

    def _tokens_to_map(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        tokens = tokens[:, self.prefix_tokens:]
        n = tokens.shape[1]
        patch = getattr(getattr(self.model, "patch_embed", None), "patch_size", None)
        if patch is not None:
            ph, pw = (patch, patch) if isinstance(patch, int) else patch
            gh, gw = height // ph, width // pw
        else:
            gh = gw = int(math.isqrt(n))
        if gh * gw != n:
            raise RuntimeError(f"{self.name}: {n} tokens do not form a {gh}x{gw} map")
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], gh, gw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.model.forward_features(x)
        if isinstance(feat, (list, tuple)):
            feat = feat[-1]
        if feat.ndim == 3:
            return self._tokens_to_map(feat, x.shape[2], x.shape[3])
        if self.nhwc:
            feat = feat.permute(0, 3, 1, 2)
        return feat.contiguous()


class DetectorNet(nn.Module):
    """Encoder + global average pool + Linear(C, 1): the part kept at inference."""

    def __init__(self, backbone: str, image_size: int, weights: str | Path | None = None):
        super().__init__()
        self.encoder = Encoder(backbone, image_size, weights)
        self.head = nn.Linear(self.encoder.channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B,), feature map (B, C, h, w))."""
        feat = self.encoder(x)
        return self.head(feat.mean(dim=(2, 3))).squeeze(1), feat


def preprocess_images(images, image_size: int, mean, std, device=None) -> torch.Tensor:
    """uint8 NHWC (numpy or tensor) -> float NCHW normalised with mean/std, resized to image_size if needed."""
    t = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4 or t.shape[-1] != 3:
        raise InputError(f"expected uint8 images of shape (N, H, W, 3), got {tuple(t.shape)}")
    x = t.to(device=device).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[2] != image_size or x.shape[3] != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s
