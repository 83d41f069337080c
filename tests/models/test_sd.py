"""Stable Diffusion loading: the seeded tiny SD, diffusers folders, single files, identities, clear errors."""

import pickle

import pytest
import torch

from dfake_cli.errors import InputError
from dfake_cli.models import sd as sdmod
from dfake_cli.models import text as textmod
from dfake_cli.models.sd import build_sd15_random, encode_latent_moments, load_stable_diffusion, sd_identity


def test_tiny_is_seeded_and_frozen(tiny_sd):
    again = load_stable_diffusion("tiny")
    for a, b in ((tiny_sd.unet, again.unet), (tiny_sd.vae, again.vae)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert tiny_sd.identity == "tiny-v3-seed0" == sd_identity("tiny")
    assert not any(p.requires_grad for p in tiny_sd.unet.parameters())
    assert not tiny_sd.unet.training and not tiny_sd.vae.training
    # the context is the seeded tiny CLIP text encoder's encoding of "" (the same path as SD-1.5's)
    encoder = sdmod.seeded(sdmod.TINY_SEED + 2, lambda: textmod.build_text_encoder(sdmod.CONFIG_ROOT / "tiny" / "text_encoder"))
    assert tiny_sd.text_embedding.shape == (1, 77, 32)
    assert torch.equal(tiny_sd.text_embedding, textmod.encode_empty_prompt(encoder))
    assert tiny_sd.text_embedding.std() > 0.5 and tiny_sd.context_source == textmod.CONTEXT_TINY
    zero = load_stable_diffusion("tiny", zero_context=True)
    assert not zero.text_embedding.any() and zero.context_source == textmod.ZERO_CONTEXT
    assert tiny_sd.scaling_factor == pytest.approx(0.18215)
    s = tiny_sd.scheduler.config
    assert s.beta_schedule == "scaled_linear" and s.num_train_timesteps == 1000
    assert s.beta_start == pytest.approx(0.00085) and s.beta_end == pytest.approx(0.012)


def test_tiny_vae_latent_grid(tiny_sd):
    mean, logvar = encode_latent_moments(tiny_sd.vae, torch.rand(2, 3, 256, 256) * 2 - 1)
    assert mean.shape == logvar.shape == (2, 4, 32, 32)
    assert tiny_sd.latent_factor == 8 and tiny_sd.guide_width == 32


def test_random_weights_reinit_unet_only(tiny_sd):
    rnd = load_stable_diffusion("tiny", random_weights=True)
    assert rnd.random_unet and rnd.identity == tiny_sd.identity
    assert not torch.equal(rnd.unet.conv_in.weight, tiny_sd.unet.conv_in.weight)
    assert torch.equal(rnd.vae.encoder.conv_in.weight, tiny_sd.vae.encoder.conv_in.weight)
    again = load_stable_diffusion("tiny", random_weights=True)
    assert torch.equal(rnd.unet.conv_in.weight, again.unet.conv_in.weight)  # reproducible


def _tiny_encoder():
    return sdmod.seeded(sdmod.TINY_SEED + 2, lambda: textmod.build_text_encoder(sdmod.CONFIG_ROOT / "tiny" / "text_encoder"))


def _save_folder(sd, root, text_encoder=True):
    sd.unet.save_pretrained(root / "unet")
    sd.vae.save_pretrained(root / "vae")
    sd.scheduler.save_pretrained(root / "scheduler")
    if text_encoder:
        _tiny_encoder().save_pretrained(root / "text_encoder")


def test_diffusers_folder_round_trip(tiny_sd, tmp_path):
    _save_folder(tiny_sd, tmp_path / "sd")
    loaded = load_stable_diffusion(str(tmp_path / "sd"))
    assert torch.equal(loaded.unet.conv_in.weight, tiny_sd.unet.conv_in.weight)
    assert torch.equal(loaded.vae.decoder.conv_out.weight, tiny_sd.vae.decoder.conv_out.weight)
    assert loaded.identity.startswith("diffusers:") and loaded.identity == sd_identity(str(tmp_path / "sd"))
    # the folder's text_encoder/ encodes the empty prompt (no tokenizer/ needed)
    assert torch.equal(loaded.text_embedding, tiny_sd.text_embedding)
    assert loaded.context_source == textmod.CONTEXT_FOLDER
    info = sdmod.describe_sd(str(tmp_path / "sd"))
    assert info["text_encoder"] == "text_encoder/" and info["context_source"] == textmod.CONTEXT_FOLDER


def test_folder_without_text_encoder_stops_unless_zero_context(tiny_sd, tmp_path):
    _save_folder(tiny_sd, tmp_path / "sd", text_encoder=False)
    with pytest.raises(InputError, match="no text-encoder weights .*--zero-context") as err:
        load_stable_diffusion(str(tmp_path / "sd"))
    assert "\n" not in str(err.value)
    zero = load_stable_diffusion(str(tmp_path / "sd"), zero_context=True)
    assert not zero.text_embedding.any()
    assert sdmod.describe_sd(str(tmp_path / "sd"))["context_source"].startswith("none")


def test_ddim_keeps_set_alpha_to_one_from_the_sd_config(tiny_sd):
    ddim = tiny_sd.ddim_scheduler()
    assert ddim.config.set_alpha_to_one is False  # SD-1.5's scheduler config (DDIM's own default is True)
    ddim.set_timesteps(50)
    assert float(ddim.final_alpha_cumprod) == pytest.approx(float(tiny_sd.scheduler.alphas_cumprod[0]))


def test_folder_missing_component_is_one_clear_line(tiny_sd, tmp_path):
    _save_folder(tiny_sd, tmp_path / "sd")
    import shutil

    shutil.rmtree(tmp_path / "sd" / "vae")
    with pytest.raises(InputError, match="vae/") as err:
        load_stable_diffusion(str(tmp_path / "sd"))
    assert "\n" not in str(err.value)


def test_identity_changes_with_weights(tmp_path):
    a = tmp_path / "a.safetensors"
    a.write_bytes(b"x" * 100)
    first = sd_identity(str(a))
    assert first.startswith("sd15:") and first == sd_identity(str(a))
    a.write_bytes(b"y" * 100)
    assert sd_identity(str(a)) != first
    with pytest.raises(InputError, match="not found"):
        sd_identity(str(tmp_path / "missing.ckpt"))


def test_single_file_missing_component(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "unet_only.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)}, str(path))
    with pytest.raises(InputError, match="no VAE weights"):
        load_stable_diffusion(str(path))


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_ckpt_is_never_unpickled(tmp_path, capsys):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": _Evil()}}, str(path), pickle_module=pickle)
    with pytest.raises(InputError, match="weights-only"):
        load_stable_diffusion(str(path))
    assert "unpickled!" not in capsys.readouterr().out


def test_sd15_configuration_on_meta_device():
    sd = build_sd15_random(device="meta")
    assert sum(p.numel() for p in sd.unet.parameters()) == 859_520_964  # the SD-1.5 UNet
    assert sum(p.numel() for p in sd.vae.parameters()) == 83_653_863  # the SD-1.5 VAE
    assert sd.unet.config.cross_attention_dim == 768 and sd.unet.config.sample_size == 64
    assert sd.text_embedding.shape == (1, 77, 768)
    assert sdmod.CONFIG_ROOT.joinpath("sd15", "unet", "config.json").is_file()


def test_fp16_variant_folder_with_a_pndm_scheduler(tiny_sd, tmp_path):
    """Hub-style SD folders: fp16-variant weight files and a PNDM scheduler config (DDPM keeps its betas)."""
    import json

    root = tmp_path / "sd16"
    tiny_sd.unet.save_pretrained(root / "unet", variant="fp16")
    tiny_sd.vae.save_pretrained(root / "vae", variant="fp16")
    _tiny_encoder().save_pretrained(root / "text_encoder")
    (root / "scheduler").mkdir()
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps({
        "_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "skip_prk_steps": True, "steps_offset": 1,
    }))
    loaded = load_stable_diffusion(str(root))
    assert torch.equal(loaded.unet.conv_in.weight, tiny_sd.unet.conv_in.weight)
    assert loaded.unet.dtype == torch.float32
    assert torch.allclose(loaded.scheduler.alphas_cumprod, tiny_sd.scheduler.alphas_cumprod)
