"""Single-file SD loading, offline: an LDM-layout file written from known modules loads back exactly, and an
SD-1.5-shaped file (shapes only, meta device) has every tensor consumed and none missing."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from dfake_cli.errors import InputError
from dfake_cli.models import sd_configs as cfgmod
from dfake_cli.models import sd_file as sdmod
from dfake_cli.models import text as textmod

from .ldm_layout import text_to_ldm, unet_to_ldm, vae_to_ldm

TINY = cfgmod.CONFIG_ROOT / "tiny"
SD15 = cfgmod.CONFIG_ROOT / "sd15"
# What real SD-1.5 files carry besides the three models: the DDPM schedule, EMA bookkeeping, CLIP's position ids.
EXTRAS = {**{k: torch.zeros(1000) for k in sdmod.LDM_SCHEDULE_BUFFERS}, "model_ema.decay": torch.tensor(0.9999),
          "model_ema.num_updates": torch.tensor(1, dtype=torch.int32)}


def _tiny_parts():
    torch.manual_seed(5)  # weights unlike the seeded tiny SD's, so nothing passes by coincidence
    unet, vae = cfgmod.build_unet(TINY / "unet"), cfgmod.build_vae(TINY / "vae")
    encoder = textmod.build_text_encoder(TINY / "text_encoder")
    return unet.eval(), vae.eval(), encoder


def _ldm_file(tmp_path, unet, vae, encoder, extra=None, name="sd.safetensors"):
    tensors = {**unet_to_ldm(unet), **vae_to_ldm(vae), **(text_to_ldm(encoder) if encoder is not None else {}),
               **EXTRAS, **(extra or {})}
    if encoder is not None:
        tensors[textmod.LDM_TEXT_PREFIX + "text_model.embeddings.position_ids"] = torch.arange(77)[None]
    path = tmp_path / name
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    else:
        torch.save({"state_dict": tensors}, str(path))
    return path


@pytest.mark.parametrize("name", ["sd.safetensors", "sd.ckpt"])
def test_ldm_file_round_trips_unet_vae_and_context(tmp_path, name):
    unet, vae, encoder = _tiny_parts()
    path = _ldm_file(tmp_path, unet, vae, encoder, name=name)
    got_unet, got_vae, got_encoder = sdmod.load_single_file(path, TINY)
    for want, got in ((unet, got_unet), (vae, got_vae), (encoder, got_encoder)):
        a, b = want.state_dict(), got.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k].reshape(a[k].shape)) for k in a)
    context = textmod.encode_empty_prompt(got_encoder)
    assert context.shape == (1, 77, 32) and torch.equal(context, textmod.encode_empty_prompt(encoder))
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():  # the loaded UNet computes what the original does, on the real context
        assert torch.equal(unet(x, 10, encoder_hidden_states=context).sample,
                           got_unet(x, 10, encoder_hidden_states=context).sample)


def test_empty_prompt_ids_are_clip_padding():
    ids = textmod.empty_prompt_ids()
    assert ids.shape == (1, 77) and ids[0, 0] == 49406 and (ids[0, 1:] == 49407).all()


def test_no_text_encoder_is_one_line_unless_zero_context(tmp_path):
    unet, vae, _ = _tiny_parts()
    path = _ldm_file(tmp_path, unet, vae, None)
    with pytest.raises(InputError, match="no text-encoder weights.*--zero-context") as err:
        sdmod.load_single_file(path, TINY)
    assert "\n" not in str(err.value)
    got_unet, _, encoder = sdmod.load_single_file(path, TINY, zero_context=True)
    assert encoder is None and torch.equal(got_unet.conv_in.weight, unet.conv_in.weight)


def test_unmatched_tensors_are_refused_with_counts(tmp_path):
    unet, vae, encoder = _tiny_parts()
    path = _ldm_file(tmp_path, unet, vae, encoder, extra={"control_model.zero_convs.0.weight": torch.zeros(2)})
    with pytest.raises(InputError, match=r"1 of \d+ tensors fit no SD-1.5 part \(e.g. control_model"):
        sdmod.load_single_file(path, TINY)
    unet_only = {k: v for k, v in unet_to_ldm(unet).items() if k != "model.diffusion_model.out.2.bias"}
    path = tmp_path / "short.safetensors"
    save_file({**unet_only, **vae_to_ldm(vae), **text_to_ldm(encoder)}, str(path))
    with pytest.raises(InputError, match=r"the UNet does not fit .*1 of \d+ tensors missing.*conv_out.bias"):
        sdmod.load_single_file(path, TINY)


def test_sd15_shaped_file_is_consumed_completely_on_the_meta_device():
    with torch.device("meta"):
        unet, vae = cfgmod.build_unet(SD15 / "unet"), cfgmod.build_vae(SD15 / "vae")
        encoder = textmod.build_text_encoder(SD15 / "text_encoder")
        target = textmod.build_text_encoder(SD15 / "text_encoder")
        checkpoint = {**unet_to_ldm(unet), **vae_to_ldm(vae), **text_to_ldm(encoder),
                      **{k: v.to("meta") for k, v in EXTRAS.items()},
                      textmod.LDM_TEXT_PREFIX + "text_model.embeddings.position_ids": torch.empty(1, 77)}
    counts = [sum(k.startswith(p) for k in checkpoint)
              for p in (sdmod.LDM_UNET_PREFIX, sdmod.LDM_VAE_PREFIX, textmod.LDM_TEXT_PREFIX)]
    assert counts == [686, 248, 197]  # SD-1.5's UNet, VAE and CLIP text tower in the LDM layout
    parts = sdmod.split_single_file(checkpoint, SD15, target)
    assert parts.unused == [] and sorted(parts.ignored) == sorted(EXTRAS)
    assert len(parts.consumed) == sum(counts)
    for module, state, what in ((unet, parts.unet, "UNet"), (vae, parts.vae, "VAE"), (target, parts.text, "text")):
        sdmod.check_state(module, state, what, "sd15")  # none missing, none extra, every shape right
    assert parts.text["embeddings.token_embedding.weight"].shape == (49408, 768)
