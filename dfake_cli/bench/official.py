"""An official-like DiffusionFake training step: our modules, run the way the reference code runs them.

What the reference code does per step (docs/decisions.md), reproduced here on the *same* modules and inputs as our
step so that the ratio measures the execution strategy, not the architecture:

- fp32 throughout (no autocast);
- under no_grad: the empty prompt goes through a CLIP-L-sized text encoder for every sample, and the source
  and target images go through the SD-VAE encoder (posterior *sample* x scaling factor) every step;
- gradient checkpointing on in the guide and the frozen UNet (ldm's `use_checkpoint=True`);
- the frozen UNet keeps `requires_grad=True`, so its decoder weight gradients are computed and thrown away
  (its encoder and middle block run under no_grad, as in ControlNet's ControlledUnetModel);
- the source and target branches are two separate guide + UNet passes (not one 2B batch).

Attention uses the same kernels as our step (the reference uses xformers when installed, which is the same
memory-efficient attention), so none of the measured gap comes from an attention implementation.

Without `transformers` the CLIP-L text encoder is replaced by an equally sized stand-in: a 12-layer,
768-wide, 12-head pre-norm causal transformer over 77 tokens with a 49,408-token embedding. Its output is
only used as the cross-attention context, so its cost, not its values, is what matters here.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# CLIP ViT-L/14 text tower (the SD-1.5 text encoder): these sizes define the stand-in too.
CLIP_L = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
          "max_position_embeddings": 77, "vocab_size": 49408, "hidden_act": "quick_gelu"}
BOS, EOS = 49406, 49407  # the tokenised empty prompt: BOS, EOS, then EOS as padding


class StandInTextEncoder(nn.Module):
    """A CLIP-text-sized causal transformer (random weights): token + position embedding, pre-norm blocks."""

    def __init__(self, width: int = 768, layers: int = 12, heads: int = 12, vocab: int = 49408, tokens: int = 77):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, width)
        self.position_embedding = nn.Parameter(torch.zeros(tokens, width))
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=4 * width, activation="gelu",
                                           batch_first=True, norm_first=True, dropout=0.0)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(width)
        self.register_buffer("causal_mask", nn.Transformer.generate_square_subsequent_mask(tokens), persistent=False)
        nn.init.normal_(self.position_embedding, std=0.01)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.token_embedding(ids) + self.position_embedding[: ids.shape[1]]
        h = self.blocks(h, mask=self.causal_mask.to(h.dtype), is_causal=True)
        return self.final_norm(h)


def build_text_encoder(width: int, layers: int, heads: int, tokens: int = 77) -> tuple[nn.Module, str]:
    """(encoder mapping token ids (B, 77) -> (B, 77, width), description). CLIPTextModel when available."""
    try:
        from transformers import CLIPTextConfig, CLIPTextModel
    except ImportError:
        enc = StandInTextEncoder(width, layers, heads, CLIP_L["vocab_size"], tokens)
        return enc, f"stand-in text encoder ({layers} layers, {width} wide, {tokens} tokens; transformers not installed)"
    cfg = CLIPTextConfig(**{**CLIP_L, "hidden_size": width, "intermediate_size": 4 * width,
                            "num_hidden_layers": layers, "num_attention_heads": heads, "max_position_embeddings": tokens})
    model = CLIPTextModel(cfg)

    class _LastHidden(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, ids):
            return self.inner(input_ids=ids).last_hidden_state

    return _LastHidden(model), f"transformers CLIPTextModel ({layers} layers, {width} wide, {tokens} tokens, random weights)"


def empty_prompt_ids(batch: int, tokens: int = 77, device=None) -> torch.Tensor:
    ids = torch.full((batch, tokens), EOS, dtype=torch.long, device=device)
    ids[:, 0] = BOS
    return ids


def text_encoder_for(unet) -> tuple[nn.Module, str]:
    """A text encoder whose width matches the UNet's cross-attention: CLIP-L sizes for SD-1.5, toy otherwise."""
    width = int(unet.config.cross_attention_dim)
    if width == CLIP_L["hidden_size"]:
        return build_text_encoder(width, CLIP_L["num_hidden_layers"], CLIP_L["num_attention_heads"])
    heads = next(h for h in (4, 2, 1) if width % h == 0)
    return build_text_encoder(width, 2, heads)


@dataclass
class OfficialInputs:
    """Per-step inputs of the reference code: images, not latents (they are encoded inside the step)."""

    x: torch.Tensor  # detector input, normalised
    labels: torch.Tensor
    source_images: torch.Tensor  # [-1, 1], (B, 3, S, S)
    target_images: torch.Tensor
    score_s: torch.Tensor
    score_t: torch.Tensor


def _unet_with_frozen_encoder(unet, noisy, t, context, down_residuals, mid_residual):
    """ControlNet's ControlledUnetModel: time embedding, encoder and middle block under no_grad; the guide's
    residuals added to the middle output and to each skip; the decoder with autograd (its checkpointing
    follows the UNet's own gradient-checkpointing flag)."""
    with torch.no_grad():
        emb = unet.time_embedding(unet.time_proj(t).to(dtype=noisy.dtype))
        h = unet.conv_in(noisy)
        skips = (h,)
        for block in unet.down_blocks:
            if getattr(block, "has_cross_attention", False):
                h, res = block(hidden_states=h, temb=emb, encoder_hidden_states=context)
            else:
                h, res = block(hidden_states=h, temb=emb)
            skips += res
        h = unet.mid_block(h, emb, encoder_hidden_states=context)
    h = h + mid_residual
    skips = tuple(s + r for s, r in zip(skips, down_residuals))
    for i, block in enumerate(unet.up_blocks):
        n = len(block.resnets)
        res, skips = skips[-n:], skips[:-n]
        upsample_size = skips[-1].shape[2:] if i < len(unet.up_blocks) - 1 else None
        if getattr(block, "has_cross_attention", False):
            h = block(hidden_states=h, temb=emb, res_hidden_states_tuple=res, encoder_hidden_states=context,
                      upsample_size=upsample_size)
        else:
            h = block(hidden_states=h, temb=emb, res_hidden_states_tuple=res, upsample_size=upsample_size)
    if unet.conv_norm_out is not None:
        h = unet.conv_act(unet.conv_norm_out(h))
    return unet.conv_out(h)


def official_losses(model, text_encoder: nn.Module, inputs: OfficialInputs, generator=None) -> dict:
    """The reference code's loss on our modules (all lambdas as configured; same terms as ours)."""
    sd = model.sd
    b = inputs.x.shape[0]
    device = inputs.x.device
    with torch.no_grad():  # get_input: text and first-stage encodings, recomputed every step
        context = text_encoder(empty_prompt_ids(b, device=device))
        images = torch.cat([inputs.source_images, inputs.target_images])
        z = sd.vae.encode(images).latent_dist.sample(generator=generator) * sd.scaling_factor
        z_source, z_target = z[:b], z[b:]
    logits, feat = model.detector(inputs.x)
    bce = F.binary_cross_entropy_with_logits(logits, inputs.labels.to(logits.dtype))
    gen_device = generator.device if generator is not None else device
    t = torch.randint(0, model.num_train_timesteps, (b,), generator=generator, device=gen_device).to(device)
    noise = torch.randn(z_source.shape, generator=generator, device=gen_device).to(device)
    cond_s, cond_t, w_s, w_t = model.guide_conditions(feat)
    branch = {}
    for name, z0, cond, w in (("source", z_source, cond_s, w_s), ("target", z_target, cond_t, w_t)):
        noisy = model.add_noise(z0, noise, t)
        down, mid = model.guide(noisy, t, encoder_hidden_states=context, controlnet_cond=cond, return_dict=False)
        scale = w.view(-1, 1, 1, 1)
        eps = _unet_with_frozen_encoder(sd.unet, noisy, t, context, [d * scale for d in down], mid * scale)
        branch[name] = F.mse_loss(eps, noise)
    total = bce + model.config.lambda_source * branch["source"] + model.config.lambda_target * branch["target"]
    if model.config.use_weight:
        total = total + F.mse_loss(w_s, inputs.score_s) + F.mse_loss(w_t, inputs.score_t)
    return {"total": total, "bce": bce, **branch}


@contextmanager
def official_mode(model):
    """Switch the shared model to the reference code's settings for the duration, then restore ours:
    checkpointing on in guide and UNet, the frozen UNet's parameters requiring grad (their gradients are
    computed, never used), fp32 parameters throughout."""
    unet, guide = model.sd.unet, model.guide
    was_unet_ckpt = bool(unet.is_gradient_checkpointing)
    was_guide_ckpt = bool(guide.is_gradient_checkpointing)
    backbone = model.detector.encoder.model
    backbone_ckpt = bool(getattr(backbone, "grad_checkpointing", False))  # ours under --low-memory only
    if backbone_ckpt:
        backbone.set_grad_checkpointing(False)
    unet.enable_gradient_checkpointing()
    guide.enable_gradient_checkpointing()
    unet.requires_grad_(True)
    recompute = (model.detector.recompute, getattr(model, "recompute_conditions", False))
    model.detector.recompute = model.recompute_conditions = False  # ours under --low-memory only
    unet_dtype, vae_device = next(unet.parameters()).dtype, next(model.sd.vae.parameters()).device
    unet.to(torch.float32)  # ours may hold the frozen UNet in bf16 and the VAE off the GPU
    model.sd.vae.to(model.device)
    try:
        yield
    finally:
        unet.to(unet_dtype)
        model.sd.vae.to(vae_device)
        model.detector.recompute, model.recompute_conditions = recompute
        if backbone_ckpt:
            backbone.set_grad_checkpointing(True)
        unet.requires_grad_(False)
        for p in unet.parameters():
            p.grad = None
        if not was_unet_ckpt:
            unet.disable_gradient_checkpointing()
        if not was_guide_ckpt:
            guide.disable_gradient_checkpointing()
