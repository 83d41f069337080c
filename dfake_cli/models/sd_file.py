"""Single-file SD-1.5 checkpoints in the original LDM key layout, read offline into diffusers models.

A file holds ``model.diffusion_model.*`` (UNet), ``first_stage_model.*`` (VAE) and usually
``cond_stage_model.transformer.*`` (the CLIP text encoder). The UNet and VAE keys go through diffusers' own
LDM->diffusers conversion into models built on the meta device from the packaged SD-1.5 configs, so no hub
config is fetched and no random weights are allocated first. Every tensor of the file must find a place
(schedule buffers and EMA copies aside) and every model tensor must be filled; anything else is refused in
one line. A ``.ckpt`` is read with ``torch.load(weights_only=True)``: nothing is ever unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from dfake_cli.errors import InputError
from dfake_cli.models import text as textmod
from dfake_cli.models.sd_configs import CONFIG_ROOT, build_unet, build_vae

LDM_UNET_PREFIX = "model.diffusion_model."
LDM_VAE_PREFIX = "first_stage_model."
# Tensors an SD-1.5 file carries that a diffusers model has no place for: the DDPM schedule (our scheduler
# config defines it) and the EMA bookkeeping/weights (the non-EMA weights are used, as the official code does).
LDM_SCHEDULE_BUFFERS = frozenset({
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
    "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
})
LDM_IGNORED_PREFIXES = ("model_ema.",)


def no_text_encoder(spec, where: str) -> InputError:
    return InputError(
        f"--sd {spec}: no text-encoder weights ({where}); use a complete SD-1.5 checkpoint, or pass "
        f"--zero-context to condition on zeros (an ablation: SD-1.5 never saw that context)"
    )


def read_single_file(path: Path) -> dict:
    """The checkpoint's tensors; `.ckpt` strictly with weights_only=True (never unpickle arbitrary objects)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        elif suffix in (".ckpt", ".pt", ".pth", ".bin"):
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
        else:
            raise InputError(f"--sd {path}: unknown file type {suffix!r}; pass an SD-1.5 .safetensors or .ckpt")
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"--sd {path}: cannot read it as a weights-only checkpoint ({type(exc).__name__})") from exc
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise InputError(f"--sd {path}: not a state dict")
    return sd


@dataclass
class SingleFileParts:
    """A single file's tensors sorted onto diffusers models: states per part and how every key was used."""

    unet: dict
    vae: dict
    text: dict | None
    consumed: set = field(default_factory=set)
    ignored: list = field(default_factory=list)  # schedule buffers, EMA copies
    unused: list = field(default_factory=list)   # anything else: refused


def _consumed_by(converted: dict, checkpoint: dict) -> set[str]:
    """Checkpoint keys whose tensors (or views of them) ended up in `converted` (diffusers' conversion
    passes tensors through or reshapes them as views, so identity tells what it used)."""
    by_id = {id(v): k for k, v in checkpoint.items()}
    for k, v in checkpoint.items():  # a checkpoint tensor that is itself a view: its slices share its base
        if getattr(v, "_base", None) is not None:
            by_id.setdefault(id(v._base), k)
    used = set()
    for value in converted.values():
        key = by_id.get(id(value))
        if key is None and getattr(value, "_base", None) is not None:
            key = by_id.get(id(value._base))
        if key is not None:
            used.add(key)
    return used


def split_single_file(checkpoint: dict, config_dir: Path, text_encoder=None) -> SingleFileParts:
    """Convert an LDM-layout state dict (tensors or meta tensors) into UNet / VAE / text-encoder states.

    The UNet and VAE go through diffusers' own LDM conversion with the packaged configs in `config_dir`;
    the text encoder's keys are mapped onto `text_encoder` (models/text.py).
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    unet_keys = {k: v for k, v in checkpoint.items() if k.startswith(LDM_UNET_PREFIX)}
    vae_keys = {k: v for k, v in checkpoint.items() if k.startswith(LDM_VAE_PREFIX)}
    unet = convert_ldm_unet_checkpoint(unet_keys, dict(UNet2DConditionModel.load_config(str(config_dir / "unet"))))
    vae = convert_ldm_vae_checkpoint(vae_keys, dict(AutoencoderKL.load_config(str(config_dir / "vae"))))
    consumed = _consumed_by(unet, unet_keys) | _consumed_by(vae, vae_keys)
    text = None
    if text_encoder is not None and any(k.startswith(textmod.LDM_TEXT_PREFIX) for k in checkpoint):
        text, used = textmod.ldm_text_state(checkpoint, text_encoder)
        consumed |= set(used)
    ignored, unused = [], []
    for key in checkpoint:
        if key in consumed:
            continue
        if key in LDM_SCHEDULE_BUFFERS or key.startswith(LDM_IGNORED_PREFIXES):
            ignored.append(key)
        else:
            unused.append(key)
    return SingleFileParts(unet, vae, text, consumed, ignored, unused)


def check_state(module: torch.nn.Module, state: dict, what: str, origin) -> None:
    """Every tensor of `module` present in `state` with its shape, nothing extra; else one InputError line."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or extra or wrong:
        example = (missing or extra or wrong)[0]
        raise InputError(
            f"--sd {origin}: the {what} does not fit the SD-1.5 architecture ({len(missing)} of {len(own)} tensors "
            f"missing, {len(extra)} unexpected, {len(wrong)} of another shape, e.g. {example}); pass an SD-1.5 checkpoint"
        )


def _materialise(module, state: dict):
    """Load `state` into `module` (built on the meta device) without allocating random weights first."""
    module.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True, assign=True)
    return module


def load_single_file(path: Path, config_dir: Path = CONFIG_ROOT / "sd15", zero_context: bool = False):
    """(unet, vae, text encoder or None) from one LDM-layout file, built from the configs in `config_dir`."""
    checkpoint = read_single_file(path)
    keys = list(checkpoint)
    if not any(k.startswith(LDM_UNET_PREFIX) for k in keys):
        raise InputError(f"--sd {path}: no UNet weights (model.diffusion_model.*) in this file; pass an SD-1.5 checkpoint")
    if not any(k.startswith(LDM_VAE_PREFIX) for k in keys):
        raise InputError(f"--sd {path}: no VAE weights (first_stage_model.*) in this file; pass a full SD-1.5 checkpoint")
    has_text = any(k.startswith(textmod.LDM_TEXT_PREFIX) for k in keys)
    if not has_text and not zero_context:
        raise no_text_encoder(path, "no cond_stage_model.transformer.* tensors in this file")
    encoder = textmod.build_text_encoder(config_dir / "text_encoder") if has_text else None
    parts = split_single_file(checkpoint, config_dir, encoder)
    if parts.unused:
        raise InputError(f"--sd {path}: {len(parts.unused)} of {len(keys)} tensors fit no SD-1.5 part "
                         f"(e.g. {parts.unused[0]}); pass a plain SD-1.5 checkpoint")
    with torch.device("meta"):
        unet, vae = build_unet(config_dir / "unet"), build_vae(config_dir / "vae")
    check_state(unet, parts.unet, "UNet", path)
    check_state(vae, parts.vae, "VAE", path)
    if encoder is not None:
        check_state(encoder, parts.text, "text encoder", path)
        encoder.load_state_dict({k: v.to(torch.float32) for k, v in parts.text.items()}, strict=True)
    return _materialise(unet, parts.unet), _materialise(vae, parts.vae), encoder


def single_file_keys(path: Path) -> list[str]:
    """The tensor names of a file; for safetensors from the header only (no tensor is read)."""
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return list(f.keys())
        except Exception as exc:
            raise InputError(f"--sd {path}: not a readable safetensors file ({type(exc).__name__})") from exc
    return list(read_single_file(path))
