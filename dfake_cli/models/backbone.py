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


def _filter_fn(model: nn.Module):
    """timm's own checkpoint filter for the model's family (e.g. a ViT's pos_embed resampled to the model's
    grid, original TF/official key layouts remapped), or None when the family has none."""
    import sys

    module = sys.modules.get(type(model).__module__)
    return getattr(module, "checkpoint_filter_fn", None)


def load_backbone_weights(model: nn.Module, path: str | Path, name: str = "") -> int:
    """Load local encoder weights through timm's path; returns the number of tensors loaded.

    The file (safetensors, or .pth/.pt/.bin read with weights_only=True, plain or under state_dict/model/EMA
    keys) is read with timm's `load_state_dict` and passed through the family's `checkpoint_filter_fn`
    (a ViT saved at 224 px gets its position embedding resampled to the training size). The classifier
    head (timm's `pretrained_cfg["classifier"]`) is dropped: the detector has its own. Every other tensor
    must match the backbone by name and shape, and every backbone tensor must be filled (BatchNorm's
    num_batches_tracked aside); otherwise one line gives the counts. Nothing is loaded silently in part.
    """
    from timm.models import load_state_dict

    p = Path(path).expanduser()
    flag = "--backbone-weights"
    if not p.is_file():
        raise InputError(f"{flag} {p}: not found")
    try:
        state = load_state_dict(str(p), use_ema=False, weights_only=True)
    except Exception as exc:
        raise InputError(f"{flag} {p}: not a weights-only checkpoint ({type(exc).__name__})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{flag} {p}: not a state dict of tensors")
    head = str(getattr(model, "pretrained_cfg", {}).get("classifier") or "")
    heads = tuple(h for h in (head, "fc", "classifier", "head") if h)
    own = model.state_dict()
    filt = _filter_fn(model)
    if filt is not None:
        try:
            state = filt(state, model)
        except Exception as exc:  # a file of another family: the filter cannot make sense of it
            raise InputError(f"{flag} {p}: timm's {type(model).__name__} checkpoint filter cannot read it "
                             f"({type(exc).__name__}); are these {name or 'backbone'} weights?") from exc
    is_head = lambda k: k not in own and any(k == h or k.startswith(h + ".") for h in heads)  # noqa: E731
    state = {k: v for k, v in state.items() if not is_head(k)}
    optional = lambda k: k.endswith("num_batches_tracked")  # noqa: E731
    missing = sorted(k for k in own if k not in state and not optional(k))
    unexpected = sorted(k for k in state if k not in own)
    wrong = sorted(k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape))
    if missing or unexpected or wrong:
        example = (missing or unexpected or wrong)[0]
        raise InputError(
            f"{flag} {p}: {len(missing) + len(wrong)} of {len(own)} backbone tensors unmatched ({len(missing)} "
            f"missing, {len(wrong)} of another shape) and {len(unexpected)} unexpected in the file (e.g. "
            f"{example}); pass weights of --backbone {name or '?'} (classifier head aside, every tensor must fit)"
        )
    model.load_state_dict(state, strict=False)
    return len(state)


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
            load_backbone_weights(self.model, weights, name)
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
        self.recompute = False  # --low-memory for backbones timm cannot checkpoint safely (BatchNorm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B,), feature map (B, C, h, w))."""
        if self.recompute and self.training and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            feat = checkpoint(self.encoder, x, use_reentrant=False, context_fn=batchnorm_safe_recompute(self.encoder))
        else:
            feat = self.encoder(x)
        return self.head(feat.mean(dim=(2, 3))).squeeze(1), feat


def batchnorm_safe_recompute(module: nn.Module):
    """`context_fn` for non-reentrant activation checkpointing of a module with BatchNorm layers.

    Recomputing a forward in backward runs every BatchNorm a second time in training mode, which would
    update its running statistics twice per step (a different model than without checkpointing). During the
    recompute pass the momentum is set to 0 (the running statistics stay exactly as they are; the batch
    statistics, which the gradients need, are unchanged) and the batch counter is restored afterwards.
    """
    from contextlib import contextmanager, nullcontext

    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]

    @contextmanager
    def recompute():
        saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
        for m in norms:
            m.momentum = 0.0
        try:
            yield
        finally:
            for m, (momentum, count) in zip(norms, saved):
                m.momentum = momentum
                if count is not None:
                    m.num_batches_tracked.copy_(count)

    return lambda: (nullcontext(), recompute())


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
