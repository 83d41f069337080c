"""The training step: one function that `dfake train` runs and `dfake bench train-step` times.

`TrainStep(engine, optimizer, ...)(batch, generator)` samples the source/target latents from the stored
VAE moments, runs the losses under autocast, backpropagates and steps the optimiser, and returns the loss
terms and W values as detached device tensors. It never reads a value back to the host: the caller decides
when to synchronise (the trainer at --log-every points, the benchmark at the end of each timed step).

`prepare_model` puts a freshly built model into its training shape for a precision and device (frozen UNet
in bf16 under bf16, VAE off the GPU, channels_last backbone where it pays); `make_optimizer` is AdamW,
fused on CUDA.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable

import torch

LOSS_KEYS = ("total", "bce", "source", "target", "weight_s", "weight_t")


class LossModule(torch.nn.Module):
    """Routes `forward` to `model.losses` so DistributedDataParallel's hooks see the training pass."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x, labels, z_source, z_target, score_s, score_t, generator=None):
        return self.model.losses(x, labels, z_source, z_target, score_s, score_t, generator=generator)


def autocast_for(precision: str, device: torch.device):
    """bf16 autocast on the device for precision "bf16", nothing for "fp32"."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def sample_latents(mean: torch.Tensor, logvar: torch.Tensor, scaling: float, generator=None) -> torch.Tensor:
    """z = (mean + exp(logvar / 2) * eps) * scaling: a fresh SD-VAE posterior sample from stored moments,
    instead of running the VAE encoder every step."""
    gen_device = generator.device if generator is not None else mean.device
    eps = torch.randn(mean.shape, generator=generator, device=gen_device, dtype=torch.float32).to(mean.device)
    return (mean.float() + torch.exp(0.5 * logvar.float()) * eps) * scaling


def forward_losses(engine: Callable[..., dict], batch, precision: str, scaling: float, generator=None) -> dict:
    """The step's forward: latents sampled on the device, then the losses under the precision's autocast.

    `batch` is anything with x, labels, score_s, score_t and mean_s/logvar_s/mean_t/logvar_t (None for the
    no-guide baseline): the loader's DeviceBatch, or the benchmark's inputs.
    """
    z_s = z_t = None
    if batch.mean_s is not None:
        z_s = sample_latents(batch.mean_s, batch.logvar_s, scaling, generator)
        z_t = sample_latents(batch.mean_t, batch.logvar_t, scaling, generator)
    with autocast_for(precision, batch.x.device):
        return engine(batch.x, batch.labels, z_s, z_t, batch.score_s, batch.score_t, generator=generator)


class TrainStep:
    """forward (optionally torch.compile'd) + backward + optimiser step, without any host synchronisation."""

    def __init__(self, engine: torch.nn.Module, optimizer: torch.optim.Optimizer, precision: str, scaling: float,
                 compile: bool = False):
        self.engine = engine
        self.forward = torch.compile(engine) if compile else engine
        self.optimizer, self.precision, self.scaling = optimizer, precision, float(scaling)

    def __call__(self, batch, generator=None) -> dict[str, torch.Tensor]:
        out = forward_losses(self.forward, batch, self.precision, self.scaling, generator)
        self.optimizer.zero_grad(set_to_none=True)
        out["total"].backward()
        self.optimizer.step()
        return {k: v.detach() for k, v in out.items() if torch.is_tensor(v)}


def make_optimizer(params: list, lr: float, weight_decay: float, device: torch.device) -> torch.optim.Optimizer:
    """AdamW over parameters or param groups; on CUDA the fused kernel (one launch for all parameters
    instead of several per tensor)."""
    if device.type == "cuda":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def prepare_model(model, precision: str, device: torch.device) -> Any:
    """The training-time placement of a built model (its trainable weights are not touched).

    - bf16: the frozen UNet is held in bf16 (half the memory and bandwidth; autocast would cast its fp32
      weights to bf16 on every use anyway), its normalisation layers in fp32 (`hold_in_bf16`). The
      trainable guide, filters and detector stay fp32 (AdamW needs fp32 master weights).
    - CUDA: the VAE leaves the GPU; training never runs it (latents come from the cache).
    - channels_last for the detector's backbone on CUDA, where cuDNN's tensor-core kernels want it (on
      this CPU the tiny models showed no gain, so it is left alone there).
    """
    sd = getattr(model, "sd", None)
    if sd is not None:
        if precision == "bf16":
            hold_in_bf16(sd.unet)
        if device.type == "cuda":
            sd.vae.to("cpu")
    if device.type == "cuda":
        model.detector.to(memory_format=torch.channels_last)
    return model


def hold_in_bf16(module: torch.nn.Module) -> torch.nn.Module:
    """Cast a frozen module to bf16 except its GroupNorm/LayerNorm layers, which stay fp32: their statistics
    are where bf16 rounding hurts, and CPU kernels accept bf16 inputs with fp32 parameters (not the reverse)."""
    module.to(torch.bfloat16)
    for m in module.modules():
        if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
            m.float()
    return module
