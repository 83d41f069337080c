"""The method itself: zero-initialised guidance, what trains and what stays frozen, losses, ablations,
checkpoints and the detector-only export."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from dfake_cli.errors import InputError
from dfake_cli.models.diffusionfake import DiffusionFake, DiffusionFakeConfig, sd15_parameter_count
from dfake_cli.models.detector import Detector
from dfake_cli.models.modules import FeatureFilter, Projection

from helpers.modelbatch import batch


@pytest.fixture(scope="module")
def fresh_model(tiny_sd, small_config):
    """An untrained model that tests only read (never step or modify)."""
    torch.manual_seed(0)
    return DiffusionFake(small_config(), tiny_sd).eval()


def test_guided_prediction_equals_frozen_unet_at_init(fresh_model):
    model = fresh_model
    x, _, z_s, z_t, _, _ = batch(2)
    with torch.no_grad():
        _, feat = model.detector(x)
        cond_s, cond_t, w_s, w_t = model.guide_conditions(feat)
        t = torch.tensor([10, 500, 10, 500])
        noisy = model.add_noise(torch.cat([z_s, z_t]), torch.randn(4, 4, 8, 8), t)
        guided = model.guided_eps(noisy, t, torch.cat([cond_s, cond_t]), torch.cat([w_s, w_t]))
        plain = model.unet_eps(noisy, t)
        down, mid = model.guide(noisy, t, encoder_hidden_states=model._context(4, noisy.dtype),
                                controlnet_cond=torch.cat([cond_s, cond_t]), return_dict=False)
    assert torch.equal(guided, plain)
    assert len(down) == 6 and all(not d.any() for d in down) and not mid.any()  # 6 zero convs (tiny) + mid
    assert cond_s.shape == (2, 32, 8, 8)  # projected to the UNet's conv_in width
    assert model.detector.encoder.channels == 64 and model.upsample_s.steps[0].in_channels == 64


def test_guide_is_a_copy_of_the_unet_encoder(tiny_sd, fresh_model):
    model = fresh_model
    assert torch.equal(model.guide.conv_in.weight, tiny_sd.unet.conv_in.weight)
    gd, ud = model.guide.down_blocks.state_dict(), tiny_sd.unet.down_blocks.state_dict()
    assert all(torch.equal(gd[k], ud[k]) for k in ud)
    assert model.guide.conv_in.weight.data_ptr() != tiny_sd.unet.conv_in.weight.data_ptr()
    assert isinstance(model.guide.controlnet_cond_embedding, torch.nn.Identity)


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_optimiser_steps_train_everything_but_the_frozen_sd(tiny_sd, small_config):
    torch.manual_seed(0)
    model = DiffusionFake(small_config(), tiny_sd).train()
    # a non-zero context, as a real text encoder gives: with the fixed zero tensor the cross-attention
    # projections see only zeros and (correctly) get no gradient
    model.text_embedding.normal_()
    unet0, vae0 = _snapshot(tiny_sd.unet), _snapshot(tiny_sd.vae)
    trainable = model.trainable_parameters()
    assert not any(p.requires_grad for p in tiny_sd.unet.parameters()) and trainable
    opt = torch.optim.AdamW(trainable, lr=1e-3)
    start = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    g = torch.Generator().manual_seed(0)
    for step in range(2):  # the zero convs block gradients into the guide until they have moved once
        opt.zero_grad()
        out = model.losses(*batch(2, seed=step), generator=g)
        for key in ("total", "bce", "source", "target", "weight_s", "weight_t"):
            assert torch.isfinite(out[key]).all(), key
        out["total"].backward()
        if step == 1:
            named = dict(model.named_parameters())
            no_grad = [n for n, p in named.items() if p.requires_grad and (p.grad is None or not p.grad.any())]
            assert no_grad == []
        opt.step()
    assert not model.frozen.training
    assert all(p.grad is None for p in tiny_sd.unet.parameters()) and all(p.grad is None for p in tiny_sd.vae.parameters())
    for before, module in ((unet0, tiny_sd.unet), (vae0, tiny_sd.vae)):
        after = module.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
    moved = {n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, start[n])}
    for part in ("detector.", "guide.", "upsample_s.", "upsample_t.", "filter_s.", "filter_t.", "weight_s.", "weight_t."):
        assert any(n.startswith(part) for n in moved), part
    assert len(moved) == len(start)


def test_loss_is_the_weighted_sum(fresh_model, monkeypatch):
    model = fresh_model
    monkeypatch.setattr(model.config, "lambda_source", 0.3)
    monkeypatch.setattr(model.config, "lambda_target", 2.0)
    with torch.no_grad():
        out = model.losses(*batch(2), generator=torch.Generator().manual_seed(1))
    expected = out["bce"] + 0.3 * out["source"] + 2.0 * out["target"] + out["weight_s"] + out["weight_t"]
    assert torch.allclose(out["total"], expected)
    assert out["logits"].shape == out["w_s"].shape == out["w_t"].shape == (2,)
    assert float(out["source"]) > 0 and float(out["weight_s"]) > 0 and float(out["target"]) > 0


def test_ablations(tiny_sd, small_config, fresh_model):
    plain = DiffusionFake(small_config(use_guide=False), None)
    assert plain.sd is None and not hasattr(plain, "guide")
    out = plain.losses(*batch(2))
    assert torch.equal(out["total"], out["bce"]) and float(out["source"]) == 0
    assert plain.count_parameters()["trainable"] == sum(p.numel() for p in plain.detector.parameters() if p.requires_grad)

    nofilter = DiffusionFake(small_config(use_filter=False), tiny_sd)
    assert isinstance(nofilter.filter_s, Projection) and isinstance(nofilter.filter_t, Projection)
    full = fresh_model
    assert isinstance(full.filter_s, FeatureFilter)

    noweight = DiffusionFake(small_config(use_weight=False), tiny_sd)
    assert not hasattr(noweight, "weight_s")
    out = noweight.losses(*batch(2))
    assert torch.equal(out["w_s"], torch.ones(2)) and float(out["weight_s"]) == 0 == float(out["weight_t"])

    from dfake_cli.models.sd import load_stable_diffusion

    rnd = DiffusionFake(small_config(random_sd=True), load_stable_diffusion("tiny", random_weights=True))
    assert not torch.equal(rnd.guide.conv_in.weight, full.guide.conv_in.weight)
    with pytest.raises(InputError, match="random_sd"):
        DiffusionFake(small_config(random_sd=True), tiny_sd)


def test_sd_identity_is_checked(tiny_sd, small_config):
    with pytest.raises(InputError, match="mismatch"):
        DiffusionFake(small_config(sd_identity="sd15:0123456789abcdef"), tiny_sd)


def test_config_json_round_trip():
    cfg = DiffusionFakeConfig(backbone="resnet34", image_size=128, use_filter=False, lambda_source=0.5,
                              face_align={"size": 128, "margin": 1.25})
    again = DiffusionFakeConfig.from_json(cfg.to_json())
    assert again == cfg
    with pytest.raises(InputError):
        DiffusionFakeConfig(image_size=100)


def test_save_load_and_detector_export_agree(tiny_sd, small_config, tmp_path):
    torch.manual_seed(0)
    model = DiffusionFake(small_config(), tiny_sd)
    with torch.no_grad():  # move the zero convs so the round trip also covers the guide
        for p in model.guide.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.eval()
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        probs = torch.sigmoid(model.logits(model.preprocess(images))).double().numpy()
    model.save_pretrained(tmp_path / "ckpt")
    model.export_detector(tmp_path / "ckpt")
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["config.json", "detector.json", "detector.safetensors", "model.safetensors"]
    import json

    for name in ("config.json", "detector.json"):  # both say where the context and the backbone came from
        saved = json.loads((tmp_path / "ckpt" / name).read_text())
        assert saved["context_source"] == tiny_sd.context_source != "" and saved["backbone_pretrained"] is False

    loaded = DiffusionFake.from_pretrained(tmp_path / "ckpt", sd=tiny_sd).eval()
    with torch.no_grad():
        assert np.array_equal(torch.sigmoid(loaded.logits(loaded.preprocess(images))).double().numpy(), probs)
        a = model.losses(*batch(2), generator=torch.Generator().manual_seed(3))
        b = loaded.losses(*batch(2), generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a[k], b[k]) for k in ("source", "target", "w_s", "w_t"))

    assert np.array_equal(Detector.from_pretrained(tmp_path / "ckpt").predict_proba(images), probs)
    (tmp_path / "ckpt" / "detector.json").unlink()  # falls back to model.safetensors' detector tensors
    assert np.array_equal(Detector.from_pretrained(tmp_path / "ckpt").predict_proba(images), probs)


def test_detector_loads_without_diffusers(fresh_model, tmp_path):
    fresh_model.export_detector(tmp_path / "export")
    code = (
        "import sys; sys.modules['diffusers'] = None\n"
        "import numpy as np\n"
        "from dfake_cli.models.detector import Detector\n"
        f"d = Detector.from_pretrained({str(tmp_path / 'export')!r})\n"
        "p = d.predict_proba(np.zeros((2, 64, 64, 3), np.uint8))\n"
        "assert p.shape == (2,) and ((p > 0) & (p < 1)).all()\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": ""})
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]


def test_incomplete_checkpoint_is_an_input_error(tiny_sd, fresh_model, tmp_path):
    with pytest.raises(InputError, match="config.json"):
        DiffusionFake.from_pretrained(tmp_path, sd=tiny_sd)
    fresh_model.save_pretrained(tmp_path / "c")
    (tmp_path / "c" / "model.safetensors").unlink()
    with pytest.raises(InputError, match="model.safetensors"):
        DiffusionFake.from_pretrained(tmp_path / "c", sd=tiny_sd)


@pytest.mark.parametrize("backbone", ["efficientnet_b4", "efficientnet_b0", "resnet34", "resnet50", "vit_small_patch16_224"])
def test_each_backbone_trains_one_step(tiny_sd, backbone):
    torch.manual_seed(0)
    # 32 px (latents 4x4) and a narrow WeightNet keep this cheap; channels and map size come from the model
    config = DiffusionFakeConfig(backbone=backbone, image_size=32, sd="tiny", weight_widths=(64, 32, 16, 8))
    model = DiffusionFake(config, tiny_sd)
    enc = model.detector.encoder
    expected = {"efficientnet_b4": 1792, "efficientnet_b0": 1280, "resnet34": 512, "resnet50": 2048,
                "vit_small_patch16_224": 384}[backbone]
    assert enc.channels == expected == model.detector.head.in_features
    opt = torch.optim.SGD(model.trainable_parameters(), lr=1e-3)
    out = model.losses(*batch(2, size=32), generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out["total"])
    out["total"].backward()
    head_before = model.detector.head.weight.detach().clone()
    opt.step()
    assert not torch.equal(head_before, model.detector.head.weight)


def test_sd15_trainable_parameter_count():
    counts = sd15_parameter_count("efficientnet_b4")
    assert counts["frozen_unet"] == 859_520_964
    # the spec's hand count: guide ~361 M, upsamplers 205.5 M, filters 97 M, weight nets 45 M, EN-B4 ~19 M
    assert 355e6 < counts["guide"] < 365e6
    assert counts["upsamplers"] == 4 * 1792 * 1792 * 16
    assert 700e6 < counts["trainable"] < 750e6
    assert counts["inference"] == counts["detector"] < 20e6


def test_plain_detector_checkpoint_round_trip(small_config, tmp_path):
    """The --no-guide baseline saves, reloads and exports like the full model, without any SD."""
    from dfake_cli.models.reconstruct import reconstruct

    torch.manual_seed(0)
    plain = DiffusionFake(small_config(use_guide=False), None).eval()
    plain.save_pretrained(tmp_path / "plain")
    images = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        probs = torch.sigmoid(plain.logits(plain.preprocess(images))).double().numpy()
    again = DiffusionFake.from_pretrained(tmp_path / "plain").eval()
    assert again.sd is None
    with torch.no_grad():
        assert np.array_equal(torch.sigmoid(again.logits(again.preprocess(images))).double().numpy(), probs)
    assert np.array_equal(Detector.from_pretrained(tmp_path / "plain").predict_proba(images), probs)
    with pytest.raises(InputError, match="no guide"):
        reconstruct(again, images[0], steps=1, seeds=(0,))
