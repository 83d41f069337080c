"""Stable Diffusion loading, strictly offline.

Three sources, named by one `spec` string:

- ``"tiny"``: the packaged tiny architecture (configs/tiny: UNet, VAE, CLIP text encoder) with weights drawn
  from a fixed seed, so every machine builds bit-identical weights without downloading anything. For the
  demo and the tests; it runs the same code path as real weights.
- a local diffusers folder with ``unet/``, ``vae/``, ``scheduler/`` and ``text_encoder/``.
- a single SD-1.5 checkpoint file (``.safetensors`` or ``.ckpt``) in the original LDM layout
  (``model.diffusion_model.*``, ``first_stage_model.*``, ``cond_stage_model.transformer.*``), converted
  with diffusers' own LDM->diffusers key conversion into models built from the packaged SD-1.5 configs
  (configs/sd15; no hub access). Every tensor of the file must be used (schedule buffers and EMA copies
  aside) and every model tensor must be filled. A ``.ckpt`` is read with ``torch.load(weights_only=True)``.

The text condition is the empty prompt, encoded once by the SD's own CLIP text encoder (models/text.py).
Without text-encoder weights loading stops with one line; an all-zero context is only used when asked for
explicitly (`zero_context=True`, the documented ablation).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dfake_cli.errors import InputError
from dfake_cli.models import text as textmod
from dfake_cli.models.sd_configs import (  # noqa: F401  (CONFIG_ROOT and TINY_* are part of this module's API)
    CONFIG_ROOT, RANDOM_UNET_SEED, TINY_IDENTITY, TINY_SEED, TINY_SPEC, accepted_kwargs, build_unet, build_vae,
    ddpm_scheduler, freeze, scheduler_config, seeded,
)
from dfake_cli.models.sd_file import LDM_UNET_PREFIX, LDM_VAE_PREFIX, load_single_file, no_text_encoder, single_file_keys

TEXT_TOKENS = textmod.TEXT_TOKENS
_MIB = 1 << 20
_TEXT_CACHE: dict[str, torch.Tensor] = {}


@dataclass
class StableDiffusion:
    """The frozen parts DiffusionFake builds on. `identity` names the weights (see `sd_identity`)."""

    unet: "torch.nn.Module"
    vae: "torch.nn.Module"
    scheduler: object
    text_embedding: torch.Tensor  # (1, 77, cross_attention_dim), the empty prompt
    identity: str
    scaling_factor: float
    random_unet: bool = False  # the UNet was re-initialised (the "random SD" ablation)
    context_source: str = ""  # where text_embedding came from (models/text.py CONTEXT_*)
    scheduler_config: dict = field(default_factory=dict)  # the SD's own scheduler config (DDIM keeps its flags)

    @property
    def latent_factor(self) -> int:
        """Pixels per latent cell (8 for SD-1.5 and the tiny VAE)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def guide_width(self) -> int:
        """Channels after the UNet's conv_in: the width the feature filter projects to."""
        return int(self.unet.config.block_out_channels[0])

    def ddim_scheduler(self):
        """A DDIM sampler with this SD's betas and flags (SD-1.5: set_alpha_to_one false, steps_offset 1)."""
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(accepted_kwargs(DDIMScheduler, {**dict(self.scheduler.config),
                                                                   **self.scheduler_config}))

    def to(self, device=None, dtype=None) -> "StableDiffusion":
        for module in (self.unet, self.vae):
            current = next(module.parameters()).dtype
            if device is not None:
                module.to(device)
            if dtype not in (None, current):
                module.to(dtype)
        self.text_embedding = self.text_embedding.to(device=device, dtype=dtype or self.text_embedding.dtype)
        return self


def _file_fingerprint(path: Path, h: "hashlib._Hash") -> None:
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(_MIB))
        if size > 2 * _MIB:
            f.seek(size - _MIB)
            h.update(f.read(_MIB))


def _weight_files(folder: Path) -> list[Path]:
    files = []
    for sub in ("unet", "vae", "text_encoder"):
        d = folder / sub
        if d.is_dir():
            files += sorted(p for p in d.iterdir() if p.suffix in (".safetensors", ".bin", ".ckpt", ".pt"))
    return files


def sd_identity(spec: str) -> str:
    """A cheap, stable name for the SD weights a spec points at (no model is built).

    TINY_IDENTITY for the tiny SD; "sd15:<hash>" for a single file and "diffusers:<hash>" for a folder,
    where the hash covers the size and the first and last MiB of each weight file: enough to tell weights
    apart, fast even for 4 GB files. Caches and checkpoints record it so mismatches are caught.
    """
    if spec == TINY_SPEC:
        return TINY_IDENTITY
    path = Path(spec).expanduser()
    h = hashlib.sha256()
    if path.is_file():
        _file_fingerprint(path, h)
        return f"sd15:{h.hexdigest()[:16]}"
    if path.is_dir():
        files = _weight_files(path)
        if not files:
            raise InputError(f"--sd {path}: no weight files in unet/ or vae/; pass a diffusers SD folder or 'tiny'")
        for p in files:
            h.update(str(p.relative_to(path)).encode())
            _file_fingerprint(p, h)
        return f"diffusers:{h.hexdigest()[:16]}"
    raise InputError(f"--sd {spec}: not found; pass 'tiny', a diffusers SD folder or an SD-1.5 .safetensors/.ckpt file")


def zero_text_embedding(unet) -> torch.Tensor:
    """The ablation context: zeros(1, 77, cross_attention_dim)."""
    return torch.zeros(1, TEXT_TOKENS, int(unet.config.cross_attention_dim))


# ----------------------------------------------------------------------------------------- diffusers folder


def _load_folder(folder: Path):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    for comp in ("unet", "vae", "scheduler"):
        if not (folder / comp).is_dir():
            raise InputError(f"--sd {folder}: missing the {comp}/ folder (a diffusers SD folder needs unet/, vae/, "
                             "scheduler/, text_encoder/)")
    variants = {}
    for comp in ("unet", "vae"):
        names = [p.name for p in (folder / comp).iterdir() if p.name.startswith("diffusion_pytorch_model")]
        if not names:
            raise InputError(f"--sd {folder}: {comp}/ has no diffusion_pytorch_model.safetensors (or .bin) weights")
        plain = any(n in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin") for n in names)
        # only fp16-variant files (diffusion_pytorch_model.fp16.safetensors): load that variant
        variants[comp] = None if plain else names[0].split(".")[1]
    unet = UNet2DConditionModel.from_pretrained(str(folder), subfolder="unet", local_files_only=True,
                                                variant=variants["unet"], torch_dtype=torch.float32)
    vae = AutoencoderKL.from_pretrained(str(folder), subfolder="vae", local_files_only=True,
                                        variant=variants["vae"], torch_dtype=torch.float32)
    return unet, vae, folder / "scheduler"


# ----------------------------------------------------------------------------------------- loading


def _reinit_unet(unet):
    """The "random SD" ablation: same architecture, weights from a fixed seed (reproducible, so not saved)."""
    return seeded(RANDOM_UNET_SEED, lambda: type(unet).from_config(unet.config))


def _context(identity: str, source: str, encoder) -> torch.Tensor:
    """The empty-prompt embedding, encoded once per SD identity and process."""
    key = f"{identity}|{source}"
    if key not in _TEXT_CACHE:
        _TEXT_CACHE[key] = textmod.encode_empty_prompt(encoder)
    return _TEXT_CACHE[key].clone()


def load_stable_diffusion(
    spec: str = TINY_SPEC, device="cpu", dtype=torch.float32, random_weights: bool = False,
    zero_context: bool = False,
) -> StableDiffusion:
    """Load the frozen SD parts named by `spec` ("tiny", a diffusers folder, or one SD-1.5 file).

    `random_weights` re-initialises the UNet (and hence the guide copied from it) from a fixed seed; the VAE
    is kept, because the prepared caches' latents were encoded with it. `zero_context` replaces the
    empty-prompt embedding by zeros (an ablation); otherwise the SD must provide its text encoder.
    """
    if spec is None:
        raise InputError("no Stable Diffusion given: pass --sd PATH (or set $DFAKE_SD; 'tiny' for the demo SD)")
    identity = sd_identity(spec)
    encoder, source = None, textmod.ZERO_CONTEXT
    if spec == TINY_SPEC:
        root = CONFIG_ROOT / "tiny"
        unet = seeded(TINY_SEED, lambda: build_unet(root / "unet"))
        vae = seeded(TINY_SEED + 1, lambda: build_vae(root / "vae"))
        sched_dir = root / "scheduler"
        if not zero_context:
            encoder = seeded(TINY_SEED + 2, lambda: textmod.build_text_encoder(root / "text_encoder"))
            source = textmod.CONTEXT_TINY
    else:
        path = Path(spec).expanduser()
        if path.is_dir():
            unet, vae, sched_dir = _load_folder(path)
            if not zero_context:
                if not (path / "text_encoder").is_dir():
                    raise no_text_encoder(path, "the folder has no text_encoder/")
                encoder, source = textmod.load_folder_text_encoder(path), textmod.CONTEXT_FOLDER
        else:
            unet, vae, encoder = load_single_file(path, zero_context=zero_context)
            sched_dir = CONFIG_ROOT / "sd15" / "scheduler"
            source = textmod.ZERO_CONTEXT if zero_context else textmod.CONTEXT_SINGLE_FILE
    if zero_context or encoder is None:
        text = zero_text_embedding(unet)
    else:
        text = _context(identity, source, encoder)
        if text.shape[-1] != int(unet.config.cross_attention_dim):
            raise InputError(f"--sd {spec}: the text encoder's width {text.shape[-1]} is not the UNet's "
                             f"cross_attention_dim {unet.config.cross_attention_dim}")
    del encoder
    if random_weights:
        unet = _reinit_unet(unet)
    scaling = float(getattr(vae.config, "scaling_factor", 0.18215))
    sd = StableDiffusion(freeze(unet), freeze(vae), ddpm_scheduler(sched_dir), text, identity, scaling,
                         random_weights, source, scheduler_config(sched_dir))
    return sd.to(device=device, dtype=dtype)


def build_sd15_random(device="cpu", dtype=torch.float32) -> StableDiffusion:
    """SD-1.5-sized UNet and VAE with random weights (benchmarks, parameter counts).

    Pass device="meta" to get the structure without allocating ~1 GB of weights. The context is zeros:
    there is no text encoder to run.
    """
    with torch.device(device):
        unet = build_unet(CONFIG_ROOT / "sd15" / "unet")
        vae = build_vae(CONFIG_ROOT / "sd15" / "vae")
        text = zero_text_embedding(unet)
    sched = CONFIG_ROOT / "sd15" / "scheduler"
    sd = StableDiffusion(freeze(unet), freeze(vae), ddpm_scheduler(sched), text, "sd15-random", 0.18215,
                         context_source=textmod.ZERO_CONTEXT, scheduler_config=scheduler_config(sched))
    if str(device) != "meta":
        sd.to(dtype=dtype)
    return sd


@torch.no_grad()
def encode_latent_moments(vae, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SD-VAE posterior (mean, logvar) of images in [-1, 1], unscaled (multiply samples by scaling_factor)."""
    param = next(vae.parameters())
    dist = vae.encode(images.to(device=param.device, dtype=param.dtype)).latent_dist
    return dist.mean.float(), dist.logvar.float()


def sd_from_env(sd: str | None) -> str | None:
    """`--sd` as given, else $DFAKE_SD, else None (the callers that need an SD then stop with one line)."""
    import os

    return sd or os.environ.get("DFAKE_SD") or None


def require_sd(sd: str | None, what: str) -> str:
    """`--sd`, else $DFAKE_SD; with neither, one line naming the fix. Real data never gets the random tiny SD
    by default: its VAE latents of faces are noise (`what` says what needs the latents)."""
    found = sd_from_env(sd)
    if found is None:
        raise InputError(f"--sd: {what} need a Stable Diffusion: pass --sd PATH (an SD-1.5 file or diffusers "
                         "folder), set $DFAKE_SD, or --sd tiny for the demo's random tiny SD")
    return found


def describe_sd(spec: str) -> dict:
    """What an SD spec provides, without building models: kind, identity, UNet/VAE/text encoder, context source.

    For a single file the tensor names are read (the safetensors header only) and counted per part.
    """
    identity = sd_identity(spec)
    if spec == TINY_SPEC:
        return {"sd": spec, "kind": "tiny (packaged config, seeded random weights)", "identity": identity,
                "unet": "configs/tiny/unet", "vae": "configs/tiny/vae", "text_encoder": "configs/tiny/text_encoder",
                "context_source": textmod.CONTEXT_TINY}
    path = Path(spec).expanduser()
    if path.is_dir():
        have = {c: (path / c).is_dir() for c in ("unet", "vae", "scheduler", "text_encoder", "tokenizer")}
        return {"sd": str(path), "kind": "diffusers folder", "identity": identity,
                **{c: (f"{c}/" if ok else "missing") for c, ok in have.items()},
                "context_source": textmod.CONTEXT_FOLDER if have["text_encoder"] else
                "none: no text_encoder/ (loading stops unless --zero-context)"}
    keys = single_file_keys(path)
    count = lambda prefix: sum(k.startswith(prefix) for k in keys)  # noqa: E731
    unet, vae, text = count(LDM_UNET_PREFIX), count(LDM_VAE_PREFIX), count(textmod.LDM_TEXT_PREFIX)
    return {"sd": str(path), "kind": "single SD-1.5 file (LDM layout)", "identity": identity, "tensors": len(keys),
            "unet": f"{unet} tensors (model.diffusion_model.*)" if unet else "missing",
            "vae": f"{vae} tensors (first_stage_model.*)" if vae else "missing",
            "text_encoder": f"{text} tensors (cond_stage_model.transformer.*)" if text else "missing",
            "context_source": textmod.CONTEXT_SINGLE_FILE if text else
            "none: no cond_stage_model.transformer.* (loading stops unless --zero-context)"}
