"""diffusers -> original LDM key names (UNet, VAE) for tests: the inverse of diffusers' single-file conversion.

Written from the LDM layout (input_blocks / middle_block / output_blocks; encoder.down / decoder.up), for any
UNet2DConditionModel / AutoencoderKL config of the SD-1.5 family. The tests prove it is the exact inverse by
converting its output back with diffusers and comparing tensor by tensor.
"""

from __future__ import annotations

import torch

_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
_VAE_RESNET = [("conv_shortcut", "nin_shortcut")]
_VAE_ATTN = [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")]


def _rename(name: str, prefix_map: list[tuple[str, str]], inner: list[tuple[str, str]]) -> str | None:
    for hf, ldm in prefix_map:
        if name.startswith(hf):
            rest = name[len(hf):]
            for a, b in inner:
                if rest.startswith(a + "."):
                    rest = b + rest[len(a):]
                    break
            return ldm + rest
    return None


def unet_key_map(config) -> list[tuple[str, str]]:
    """(diffusers prefix, LDM prefix) pairs for a UNet2DConditionModel config."""
    n = len(config.block_out_channels)
    per = config.layers_per_block
    m = [("time_embedding.linear_1.", "time_embed.0."), ("time_embedding.linear_2.", "time_embed.2."),
         ("conv_in.", "input_blocks.0.0."), ("conv_norm_out.", "out.0."), ("conv_out.", "out.2."),
         ("mid_block.attentions.0.", "middle_block.1.")]
    m += [(f"mid_block.resnets.{j}.", f"middle_block.{2 * j}.") for j in range(2)]
    for i in range(n):
        for j in range(per):
            m.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{(per + 1) * i + j + 1}.0."))
            m.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{(per + 1) * i + j + 1}.1."))
        if i < n - 1:
            m.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(per + 1) * (i + 1)}.0.op."))
        has_attn = "CrossAttn" in config.up_block_types[i]
        for j in range(per + 1):
            m.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{(per + 1) * i + j}.0."))
            m.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{(per + 1) * i + j}.1."))
        if i < n - 1:
            m.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{(per + 1) * i + per}.{2 if has_attn else 1}."))
    return m


def unet_to_ldm(unet, prefix: str = "model.diffusion_model.") -> dict[str, torch.Tensor]:
    out = {}
    table = unet_key_map(unet.config)
    for name, value in unet.state_dict().items():
        ldm = _rename(name, table, _RESNET)
        assert ldm is not None, name
        out[prefix + ldm] = value
    return out


def vae_to_ldm(vae, prefix: str = "first_stage_model.") -> dict[str, torch.Tensor]:
    n = len(vae.config.block_out_channels)
    per = vae.config.layers_per_block
    table = [("encoder.conv_norm_out.", "encoder.norm_out."), ("decoder.conv_norm_out.", "decoder.norm_out."),
             ("encoder.mid_block.attentions.0.", "encoder.mid.attn_1."),
             ("decoder.mid_block.attentions.0.", "decoder.mid.attn_1.")]
    for side in ("encoder", "decoder"):
        table += [(f"{side}.mid_block.resnets.{j}.", f"{side}.mid.block_{j + 1}.") for j in range(2)]
    for i in range(n):
        table += [(f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}.") for j in range(per)]
        table += [(f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{n - 1 - i}.block.{j}.") for j in range(per + 1)]
        if i < n - 1:
            table.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."))
            table.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{n - 1 - i}.upsample."))
    out = {}
    for name, value in vae.state_dict().items():
        ldm = _rename(name, table, _VAE_RESNET + _VAE_ATTN) or name  # quant_conv, conv_in, conv_out keep their names
        if ".mid.attn_1." in ldm and ldm.endswith(".weight") and value.ndim == 2:
            value = value[:, :, None, None].clone()  # LDM's attention projections are 1x1 convolutions
        out[prefix + ldm] = value
    return out


def text_to_ldm(encoder) -> dict[str, torch.Tensor]:
    from dfake_cli.models.text import ldm_text_keys

    names = ldm_text_keys(encoder)
    return {names[k]: v for k, v in encoder.state_dict().items()}
