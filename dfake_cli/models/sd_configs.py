"""The packaged Stable Diffusion architectures (configs/tiny, configs/sd15) and how models are built from them.

Building from a packaged config never touches the network: the tiny SD's weights come from fixed seeds; the
SD-1.5 architecture is filled from a local checkpoint (models/sd_file.py) or left random for benchmarks.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

CONFIG_ROOT = Path(__file__).resolve().parent.parent / "configs"
TINY_SPEC = "tiny"
TINY_IDENTITY = "tiny-v3-seed0"  # bump whenever configs/tiny changes: caches record it (v3: + text encoder)
TINY_SEED = 0
RANDOM_UNET_SEED = 1234


def accepted_kwargs(cls, cfg: dict) -> dict:
    """The entries of `cfg` that `cls.__init__` takes (SD folders ship configs of other scheduler classes)."""
    names = set(inspect.signature(cls.__init__).parameters) - {"self"}
    return {k: v for k, v in cfg.items() if k in names}


def build_unet(config_dir: Path):
    """A UNet2DConditionModel from a packaged config folder, weights as the current RNG (or meta device) gives."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(config_dir)))


def build_vae(config_dir: Path):
    """An AutoencoderKL from a packaged config folder."""
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_config(AutoencoderKL.load_config(str(config_dir)))


def scheduler_config(config_dir: Path) -> dict:
    """The scheduler config as shipped (DDIM sampling keeps its flags, e.g. set_alpha_to_one)."""
    from diffusers import DDPMScheduler

    return dict(DDPMScheduler.load_config(str(config_dir)))


def ddpm_scheduler(config_dir: Path):
    """Training noise schedule: DDPM with the folder's betas (SD-1.5: scaled-linear 0.00085-0.012, T=1000)."""
    from diffusers import DDPMScheduler

    cfg = accepted_kwargs(DDPMScheduler, scheduler_config(config_dir))  # SD folders ship PNDM: keep what DDPM takes
    cfg.update(prediction_type=cfg.get("prediction_type", "epsilon"), clip_sample=False)
    return DDPMScheduler.from_config(cfg)


def seeded(seed: int, build):
    """Run `build()` with the global CPU RNG seeded and restore the caller's RNG state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def freeze(module):
    """Frozen for good: no gradients, eval mode (dropout off)."""
    module.requires_grad_(False)
    module.eval()
    return module
