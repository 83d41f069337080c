"""DiffusionFake: a detector trained to guide a frozen Stable Diffusion to reconstruct source and target faces.

    f = encoder(x)                                   (B, C, h, w)
    per branch b in (source, target):
        cond_b = filter_b(upsample_b(f))             (B, C0, H/8, W/8)   C0 = UNet width after conv_in
        W_b    = weight_b(f)                         (B,) in [0, 1]
    guide = trainable copy of the UNet encoder + middle block (diffusers ControlNetModel.from_unet), whose
            conditioning embedding is the identity: cond_b is added right after its conv_in;
            its 1x1 zero-convolution outputs are scaled by W_b and added to the frozen UNet's skips + middle.
    eps_b = frozen_unet(noisy z_b, t | guide residuals)    (both branches in one 2B batch, same t and noise)
    L = BCE + lambda_s*MSE(eps_s, eps) + lambda_t*MSE(eps_t, eps) + MSE(W_s, score_s) + MSE(W_t, score_t)

At inference only encoder + head remain (`export_detector`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dfake_cli.errors import InputError
from dfake_cli.io import atomic_path
from dfake_cli.models.backbone import DetectorNet, preprocess_images
from dfake_cli.models.checkpoints import DETECTOR_CONFIG, DETECTOR_WEIGHTS, MODEL_WEIGHTS
from dfake_cli.models.config import CONFIG_NAME, DiffusionFakeConfig
from dfake_cli.models.modules import FeatureFilter, Projection, Upsampler, WeightNet
from dfake_cli.models.sd import StableDiffusion, load_stable_diffusion

__all__ = ["DiffusionFake", "DiffusionFakeConfig", "MODEL_WEIGHTS", "DETECTOR_WEIGHTS", "DETECTOR_CONFIG"]

DETECTOR_FORMAT = "dfake-detector-v1"
_FROZEN_PREFIX = "frozen."


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)


class DiffusionFake(nn.Module):
    """The full training-time model. `sd` is required unless config.use_guide is False (plain detector)."""

    def __init__(self, config: DiffusionFakeConfig, sd: StableDiffusion | None = None, backbone_weights=None):
        super().__init__()
        self.config = config
        self.detector = DetectorNet(config.backbone, config.image_size, backbone_weights)
        self.sd: StableDiffusion | None = None
        if not config.use_guide:
            if config.gradient_checkpointing:
                self.enable_gradient_checkpointing()
            return
        if sd is None:
            sd = load_stable_diffusion(config.sd, random_weights=config.random_sd, zero_context=config.zero_context)
        if config.sd_identity and config.sd_identity != sd.identity:
            raise InputError(
                f"Stable Diffusion mismatch: the model expects {config.sd_identity!r} but got {sd.identity!r}; "
                f"pass the same --sd as in training"
            )
        if sd.random_unet != config.random_sd:
            raise InputError("Stable Diffusion mismatch: random_sd in the config and the loaded UNet differ")
        config.sd_identity = sd.identity
        config.context_source = sd.context_source or config.context_source
        self.sd = sd
        self.frozen = nn.ModuleDict({"unet": sd.unet, "vae": sd.vae})
        self.frozen.requires_grad_(False).eval()

        from diffusers import ControlNetModel

        # from_unet copies conv_in, time embedding, down blocks and the middle block from the frozen UNet;
        # the zero 1x1 convs start at exactly 0, so the guided prediction equals the UNet's at init.
        guide = ControlNetModel.from_unet(sd.unet, conditioning_embedding_out_channels=(16,))
        guide.controlnet_cond_embedding = nn.Identity()  # the filtered feature is added after conv_in as is
        self.guide = guide

        width = sd.guide_width
        latent = (config.image_size // sd.latent_factor,) * 2
        enc = self.detector.encoder
        self.latent_grid = latent
        self.upsample_s = Upsampler(enc.channels, enc.grid, latent)
        self.upsample_t = Upsampler(enc.channels, enc.grid, latent)
        if config.use_filter:
            self.filter_s = FeatureFilter(enc.channels, width, config.filter_heads)
            self.filter_t = FeatureFilter(enc.channels, width, config.filter_heads)
        else:
            self.filter_s = Projection(enc.channels, width)
            self.filter_t = Projection(enc.channels, width)
        if config.use_weight:
            self.weight_s = WeightNet(enc.channels, config.weight_widths)
            self.weight_t = WeightNet(enc.channels, config.weight_widths)
        self.register_buffer("text_embedding", sd.text_embedding.detach().clone().float())
        acp = sd.scheduler.alphas_cumprod.float()
        self.register_buffer("sqrt_alpha_bar", acp.sqrt(), persistent=False)
        self.register_buffer("sqrt_one_minus_alpha_bar", (1 - acp).sqrt(), persistent=False)
        self.num_train_timesteps = int(sd.scheduler.config.num_train_timesteps)
        if config.gradient_checkpointing:
            self.enable_gradient_checkpointing()

    # -- bookkeeping -----------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "DiffusionFake":
        super().train(mode)
        if self.sd is not None:
            self.frozen.eval()  # the frozen SD never leaves eval mode
        return self

    @property
    def device(self) -> torch.device:
        return self.detector.head.weight.device

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything except the frozen SD (which is rebuilt from its spec): what `save_pretrained` writes."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(_FROZEN_PREFIX)}

    def count_parameters(self) -> dict[str, int]:
        """Parameter counts per part; `trainable` is what the optimiser updates, `inference` what detect runs."""
        def n(*mods) -> int:
            return sum(p.numel() for m in mods if m is not None for p in m.parameters())

        det = n(self.detector)
        out = {"detector": det, "inference": det}
        if self.sd is not None:
            out.update(
                guide=n(self.guide),
                upsamplers=n(self.upsample_s, self.upsample_t),
                filters=n(self.filter_s, self.filter_t),
                weight_nets=n(getattr(self, "weight_s", None), getattr(self, "weight_t", None)),
                frozen_unet=n(self.sd.unet),
                frozen_vae=n(self.sd.vae),
            )
        out["trainable"] = sum(p.numel() for p in self.trainable_parameters())
        return out

    def enable_gradient_checkpointing(self) -> None:
        """Recompute guide, UNet and backbone activations in backward (SD-1.5 scale on small GPUs).

        The backbone uses timm's `set_grad_checkpointing` where the model supports it and has no BatchNorm;
        otherwise the whole encoder is recomputed with BatchNorm's running statistics frozen during the
        recompute (`batchnorm_safe_recompute`), so they are updated once per step as without checkpointing.
        The upsamplers and filters are recomputed too (the guide and UNet use GroupNorm: unaffected).
        """
        if self.sd is not None:
            self.guide.enable_gradient_checkpointing()
            self.sd.unet.enable_gradient_checkpointing()
            self.recompute_conditions = True  # upsamplers + filters: (B, C0, H/8, W/8) maps per branch
        backbone = self.detector.encoder.model
        has_batchnorm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in backbone.modules())
        if hasattr(backbone, "set_grad_checkpointing") and not has_batchnorm:
            try:
                backbone.set_grad_checkpointing(True)
                return
            except (AssertionError, NotImplementedError):  # some timm models do not implement it
                pass
        self.detector.recompute = True  # the whole encoder, BatchNorm statistics updated once

    # -- forward pieces ---------------------------------------------------------------------------------
    def preprocess(self, images) -> torch.Tensor:
        """uint8 NHWC (numpy or tensor) -> float NCHW normalised with the config's mean/std, on the model's device."""
        c = self.config
        return preprocess_images(images, c.image_size, c.mean, c.std, device=self.device)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Real/fake logits (B,); sigmoid gives the fake probability."""
        return self.detector(x)[0]

    def guide_conditions(self, feat: torch.Tensor):
        """(cond_s, cond_t, w_s, w_t) from the raw encoder map; W = 1 under the no-weight ablation."""
        if getattr(self, "recompute_conditions", False) and self.training and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            cond_s = checkpoint(lambda f: self.filter_s(self.upsample_s(f)), feat, use_reentrant=False)
            cond_t = checkpoint(lambda f: self.filter_t(self.upsample_t(f)), feat, use_reentrant=False)
        else:
            cond_s = self.filter_s(self.upsample_s(feat))
            cond_t = self.filter_t(self.upsample_t(feat))
        if self.config.use_weight:
            w_s, w_t = self.weight_s(feat), self.weight_t(feat)
        else:
            w_s = w_t = torch.ones(feat.shape[0], device=feat.device, dtype=feat.dtype)
        return cond_s, cond_t, w_s, w_t

    def _context(self, n: int, dtype) -> torch.Tensor:
        return self.text_embedding.to(dtype).expand(n, -1, -1)

    def unet_eps(self, noisy: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The frozen UNet's noise prediction without any guidance."""
        return self.sd.unet(noisy, t, encoder_hidden_states=self._context(noisy.shape[0], noisy.dtype)).sample

    def guided_eps(self, noisy: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Noise prediction of the frozen UNet with the guide's residuals scaled per sample by `w`."""
        ctx = self._context(noisy.shape[0], noisy.dtype)
        down, mid = self.guide(noisy, t, encoder_hidden_states=ctx, controlnet_cond=cond, return_dict=False)
        scale = w.to(noisy.dtype).view(-1, 1, 1, 1)
        down = [d * scale for d in down]
        mid = mid * scale
        return self.sd.unet(
            noisy, t, encoder_hidden_states=ctx,
            down_block_additional_residuals=down, mid_block_additional_residual=mid,
        ).sample

    def add_noise(self, z: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """DDPM forward process q(z_t | z_0) with the SD schedule."""
        a = self.sqrt_alpha_bar[t].to(z.dtype).view(-1, 1, 1, 1)
        b = self.sqrt_one_minus_alpha_bar[t].to(z.dtype).view(-1, 1, 1, 1)
        return a * z + b * noise

    def losses(self, x, labels, z_source=None, z_target=None, score_s=None, score_t=None, generator=None) -> dict:
        """All loss terms for one batch.

        x: normalised images (B,3,S,S); labels (B,) 0 real / 1 fake; z_source, z_target: already-sampled,
        already-scaled latents (B,4,S/8,S/8); score_s/score_t: weight targets (B,). One t and one noise per
        sample, shared by both branches (they run as one 2B batch through guide and UNet).
        Returns total, bce, source, target, weight_s, weight_t (scalars) and logits, w_s, w_t (B,).
        """
        logits, feat = self.detector(x)
        labels = labels.to(device=logits.device, dtype=logits.dtype)
        bce = F.binary_cross_entropy_with_logits(logits, labels)
        zero = bce.new_zeros(())
        out = {"bce": bce, "logits": logits, "source": zero, "target": zero, "weight_s": zero, "weight_t": zero}
        if self.sd is None:
            ones = torch.ones_like(logits)
            out.update(total=bce, w_s=ones, w_t=ones)
            return out
        b = x.shape[0]
        z_source = z_source.to(device=x.device, dtype=x.dtype)
        z_target = z_target.to(device=x.device, dtype=x.dtype)
        gen_device = generator.device if generator is not None else x.device
        t = torch.randint(0, self.num_train_timesteps, (b,), generator=generator, device=gen_device).to(x.device)
        noise = torch.randn(z_source.shape, generator=generator, device=gen_device, dtype=x.dtype).to(x.device)
        cond_s, cond_t, w_s, w_t = self.guide_conditions(feat)
        tt = torch.cat([t, t])
        noisy = self.add_noise(torch.cat([z_source, z_target]), torch.cat([noise, noise]), tt)
        eps = self.guided_eps(noisy, tt, torch.cat([cond_s, cond_t]), torch.cat([w_s, w_t]))
        src = F.mse_loss(eps[:b].float(), noise.float())
        tgt = F.mse_loss(eps[b:].float(), noise.float())
        total = bce + self.config.lambda_source * src + self.config.lambda_target * tgt
        if self.config.use_weight:
            ws = F.mse_loss(w_s.float(), score_s.to(w_s.device).float())
            wt = F.mse_loss(w_t.float(), score_t.to(w_t.device).float())
            total = total + ws + wt
            out.update(weight_s=ws, weight_t=wt)
        out.update(total=total, source=src, target=tgt, w_s=w_s, w_t=w_t)
        return out

    # -- checkpoints ------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, tensors: dict[str, torch.Tensor] | None = None) -> Path:
        """config.json + model.safetensors (trainable parts and the text embedding; the SD comes from its spec).

        `tensors`: a snapshot of `trainable_state_dict()` taken earlier (background checkpoint writes)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"format": "dfake-diffusionfake-v1", "sd_identity": self.config.sd_identity,
                "image_size": str(self.config.image_size)}  # checked against config.json on load
        _save_tensors(self.trainable_state_dict() if tensors is None else tensors, directory / MODEL_WEIGHTS, meta)
        with atomic_path(directory / CONFIG_NAME) as tmp:
            tmp.write_text(self.config.to_json())
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, sd: StableDiffusion | None = None, device="cpu") -> "DiffusionFake":
        """Rebuild from `save_pretrained` output; the SD is loaded from config.sd unless given, and verified."""
        from dfake_cli.io import read_safetensors

        directory = Path(directory)
        config = DiffusionFakeConfig.load(directory)
        weights = directory / MODEL_WEIGHTS
        if not weights.is_file():
            raise InputError(f"{weights} not found: the checkpoint folder is incomplete")
        from dfake_cli.models.detector import check_image_size

        check_image_size(weights, directory / CONFIG_NAME, config.image_size)
        state = read_safetensors(weights, "model weights")  # a damaged file is named before SD is loaded
        if config.use_guide and sd is None:
            sd = load_stable_diffusion(config.sd, random_weights=config.random_sd, zero_context=config.zero_context)
        model = cls(config, sd if config.use_guide else None)
        expected = model.trainable_state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise InputError(
                f"{weights}: does not match its config ({len(missing)} missing, {len(unexpected)} unexpected tensors, "
                f"e.g. {(missing or unexpected)[0]})"
            )
        try:
            model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # same names, other shapes: weights of another architecture or size
            first = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln), "shape mismatch")
            raise InputError(f"{weights}: does not match its config ({first[:160]})") from None
        return model.to(device)

    def detector_config(self) -> dict:
        c = self.config
        return {
            "format": DETECTOR_FORMAT,
            "backbone": c.backbone,
            "image_size": c.image_size,
            "mean": list(c.mean),
            "std": list(c.std),
            "face_align": dict(c.face_align),
            "channels": self.detector.encoder.channels,
            "sd_identity": c.sd_identity,
            "context_source": c.context_source,
            "backbone_pretrained": c.backbone_pretrained,
        }

    def export_detector(self, directory: str | Path) -> Path:
        """detector.safetensors + detector.json: encoder + head only; loads without diffusers or SD."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        _save_tensors(self.detector.state_dict(), directory / DETECTOR_WEIGHTS,
                      {"format": DETECTOR_FORMAT, "image_size": str(self.config.image_size)})
        with atomic_path(directory / DETECTOR_CONFIG) as tmp:
            tmp.write_text(json.dumps(self.detector_config(), indent=2))
        return directory


def sd15_parameter_count(backbone: str = "efficientnet_b4", image_size: int = 256) -> dict[str, int]:
    """Parameter counts of the full SD-1.5-scale model, built on the meta device (no memory, ~seconds)."""
    from dfake_cli.models.sd import build_sd15_random

    sd = build_sd15_random(device="meta")
    with torch.device("meta"):
        model = DiffusionFake(DiffusionFakeConfig(backbone=backbone, image_size=image_size, sd="sd15"), sd)
    return model.count_parameters()
