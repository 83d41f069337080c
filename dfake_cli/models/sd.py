"""Stable Diffusion loading, strictly offline.

Three sources, named by one `spec` string:

- ``"tiny"``: the packaged tiny architecture (configs/tiny) with weights drawn from a fixed seed, so every
  machine builds bit-identical weights without downloading anything. For the demo and the tests.
- a local diffusers folder with ``unet/``, ``vae/``, ``scheduler/`` (and optionally ``text_encoder/`` +
  ``tokenizer/``, used only when transformers is installed).
- a single SD-1.5 checkpoint file (``.safetensors`` or ``.ckpt``) in the original LDM layout, converted with
  diffusers' ``from_single_file`` against the SD-1.5 configs that ship in configs/sd15 (no hub access).
  A ``.ckpt`` is read with ``torch.load(weights_only=True)`` only.

The text condition is the empty prompt. With a local text encoder and transformers it is encoded once and
cached in memory (and saved into every checkpoint by the model). Otherwise it is the documented fixed tensor
``zeros(1, 77, cross_attention_dim)`` (`FIXED_TEXT_EMBEDDING_DOC`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from dfake_cli.errors import InputError

CONFIG_ROOT = Path(__file__).resolve().parent.parent / "configs"
TINY_SPEC = "tiny"
TINY_IDENTITY = "tiny-v2-seed0"  # bump whenever configs/tiny changes: caches record it
TINY_SEED = 0
RANDOM_UNET_SEED = 1234
TEXT_TOKENS = 77
FIXED_TEXT_EMBEDDING_DOC = (
    "zeros(1, 77, cross_attention_dim): used when there is no local text encoder (tiny SD, single-file "
    "checkpoints, or transformers not installed)"
)
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

    @property
    def latent_factor(self) -> int:
        """Pixels per latent cell (8 for SD-1.5 and the tiny VAE)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def guide_width(self) -> int:
        """Channels after the UNet's conv_in: the width the feature filter projects to."""
        return int(self.unet.config.block_out_channels[0])

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

    "tiny-v2-seed0" for the tiny SD; "sd15:<hash>" for a single file and "diffusers:<hash>" for a folder,
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


def _read_config(folder: Path) -> dict:
    return json.loads(folder.joinpath("config.json").read_text())


def _build_unet(config_dir: Path):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(config_dir)))


def _build_vae(config_dir: Path):
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_config(AutoencoderKL.load_config(str(config_dir)))


def _ddpm_scheduler(config_dir: Path):
    """Training noise schedule: DDPM with the folder's betas (SD-1.5: scaled-linear 0.00085-0.012, T=1000)."""
    from diffusers import DDPMScheduler

    import inspect

    accepted = set(inspect.signature(DDPMScheduler.__init__).parameters) - {"self"}
    cfg = DDPMScheduler.load_config(str(config_dir))  # SD folders ship a PNDM config: keep what DDPM takes
    cfg = {k: v for k, v in cfg.items() if k in accepted}
    cfg.update(prediction_type=cfg.get("prediction_type", "epsilon"), clip_sample=False)
    return DDPMScheduler.from_config(cfg)


def _seeded(seed: int, build):
    """Run `build()` with the global CPU RNG seeded and restore the caller's RNG state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _fixed_text_embedding(unet) -> torch.Tensor:
    return torch.zeros(1, TEXT_TOKENS, int(unet.config.cross_attention_dim))


def _empty_prompt_embedding(folder: Path, identity: str, unet) -> torch.Tensor:
    """Encode "" with the folder's CLIP text encoder once per identity; fall back to the fixed tensor."""
    if identity in _TEXT_CACHE:
        return _TEXT_CACHE[identity].clone()
    emb = _fixed_text_embedding(unet)
    if (folder / "text_encoder").is_dir() and (folder / "tokenizer").is_dir():
        try:
            from transformers import CLIPTextModel, CLIPTokenizer
        except ImportError:
            from dfake_cli.console import err_console

            err_console.print(
                "[yellow]note:[/] transformers is not installed: using the fixed empty-prompt tensor "
                "(install dfake[sd] to encode \"\" with the folder's text encoder)"
            )
        else:
            tok = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
            enc = CLIPTextModel.from_pretrained(str(folder / "text_encoder"), local_files_only=True).eval()
            ids = tok([""], padding="max_length", max_length=tok.model_max_length, truncation=True,
                      return_tensors="pt").input_ids
            with torch.no_grad():
                emb = enc(ids)[0].float()
            del enc
    _TEXT_CACHE[identity] = emb
    return emb.clone()


def _load_folder(folder: Path):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    for comp in ("unet", "vae", "scheduler"):
        if not (folder / comp).is_dir():
            raise InputError(f"--sd {folder}: missing the {comp}/ folder (a diffusers SD folder needs unet/, vae/, scheduler/)")
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
    return unet, vae, _ddpm_scheduler(folder / "scheduler")


def _read_single_file(path: Path) -> dict:
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


def _load_single_file(path: Path):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    ckpt = _read_single_file(path)
    keys = list(ckpt)
    if not any(k.startswith("model.diffusion_model.") for k in keys):
        raise InputError(f"--sd {path}: no UNet weights (model.diffusion_model.*) in this file; pass an SD-1.5 checkpoint")
    if not any(k.startswith("first_stage_model.") for k in keys):
        raise InputError(f"--sd {path}: no VAE weights (first_stage_model.*) in this file; pass a full SD-1.5 checkpoint")
    config = str(CONFIG_ROOT / "sd15")
    unet = UNet2DConditionModel.from_single_file(ckpt, config=config, subfolder="unet", local_files_only=True)
    vae = AutoencoderKL.from_single_file(ckpt, config=config, subfolder="vae", local_files_only=True)
    return unet, vae, _ddpm_scheduler(CONFIG_ROOT / "sd15" / "scheduler")


def _freeze(module):
    module.requires_grad_(False)
    module.eval()
    return module


def _reinit_unet(unet):
    """The "random SD" ablation: same architecture, weights from a fixed seed (reproducible, so not saved)."""
    return _seeded(RANDOM_UNET_SEED, lambda: type(unet).from_config(unet.config))


def load_stable_diffusion(
    spec: str = TINY_SPEC, device="cpu", dtype=torch.float32, random_weights: bool = False
) -> StableDiffusion:
    """Load the frozen SD parts named by `spec` ("tiny", a diffusers folder, or one SD-1.5 file).

    `random_weights` re-initialises the UNet (and hence the guide copied from it) from a fixed seed; the VAE
    is kept, because the prepared caches' latents were encoded with it.
    """
    identity = sd_identity(spec)
    if spec == TINY_SPEC:
        unet = _seeded(TINY_SEED, lambda: _build_unet(CONFIG_ROOT / "tiny" / "unet"))
        vae = _seeded(TINY_SEED + 1, lambda: _build_vae(CONFIG_ROOT / "tiny" / "vae"))
        scheduler = _ddpm_scheduler(CONFIG_ROOT / "tiny" / "scheduler")
        text = _fixed_text_embedding(unet)
    else:
        path = Path(spec).expanduser()
        if path.is_dir():
            unet, vae, scheduler = _load_folder(path)
            text = _empty_prompt_embedding(path, identity, unet)
        else:
            unet, vae, scheduler = _load_single_file(path)
            text = _fixed_text_embedding(unet)
    if random_weights:
        unet = _reinit_unet(unet)
    scaling = float(getattr(vae.config, "scaling_factor", 0.18215))
    sd = StableDiffusion(_freeze(unet), _freeze(vae), scheduler, text, identity, scaling, random_weights)
    return sd.to(device=device, dtype=dtype)


def build_sd15_random(device="cpu", dtype=torch.float32) -> StableDiffusion:
    """SD-1.5-sized UNet and VAE with random weights (benchmarks, parameter counts).

    Pass device="meta" to get the structure without allocating ~1 GB of weights.
    """
    with torch.device(device):
        unet = _build_unet(CONFIG_ROOT / "sd15" / "unet")
        vae = _build_vae(CONFIG_ROOT / "sd15" / "vae")
        text = _fixed_text_embedding(unet)
    scheduler = _ddpm_scheduler(CONFIG_ROOT / "sd15" / "scheduler")
    sd = StableDiffusion(_freeze(unet), _freeze(vae), scheduler, text, "sd15-random", 0.18215)
    if str(device) != "meta":
        sd.to(dtype=dtype)
    return sd


@torch.no_grad()
def encode_latent_moments(vae, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SD-VAE posterior (mean, logvar) of images in [-1, 1], unscaled (multiply samples by scaling_factor)."""
    param = next(vae.parameters())
    dist = vae.encode(images.to(device=param.device, dtype=param.dtype)).latent_dist
    return dist.mean.float(), dist.logvar.float()
