"""Speed settings must not change what the step computes: bf16 autocast keeps the loss within 1e-2
relative of fp32 on the same inputs, noise and timesteps; the official-like step computes our function."""

import copy

import pytest
import torch

from dfake_cli.bench.official import _unet_with_frozen_encoder, official_mode
from dfake_cli.bench.train_step import TrainStepSetup, build_model, make_inputs, our_losses
from dfake_cli.train.step import prepare_model

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def toy():
    # 64 px and batch 4 in train mode: the backbone's last BatchNorm normalises over 4 x 2 x 2 values. (At
    # 32 px / batch 2 it normalises two numbers, which turns any rounding into a different sign: a property
    # of that toy, not of bf16.)
    setup = TrainStepSetup(sd="tiny", backbone="test_efficientnet", image_size=64, batch_size=4,
                           weight_widths=(16, 16, 8, 8))
    model, _ = build_model(setup, CPU, seed=0)
    model.text_embedding.normal_()  # a non-zero context so cross-attention does real work
    inputs = make_inputs(model, setup.batch_size, CPU, seed=0)
    return model, inputs


def _loss(model, inputs, precision):
    gen = torch.Generator().manual_seed(123)  # same latent samples, t and noise for every precision
    torch.manual_seed(5)  # and the same global RNG (dropout, if any)
    with torch.no_grad():
        out = our_losses(model, inputs, precision, gen)
    return {k: float(out[k]) for k in ("total", "bce", "source", "target")}


def test_bf16_loss_within_1e2_relative_of_fp32(toy):
    model, inputs = toy
    fp32 = _loss(model, inputs, "fp32")
    again = _loss(model, inputs, "fp32")
    held = prepare_model(copy.deepcopy(model), "bf16", CPU)  # as the trainer runs bf16: frozen UNet held in bf16
    assert next(held.sd.unet.parameters()).dtype == torch.bfloat16
    bf16 = _loss(held, inputs, "bf16")
    assert fp32 == again  # same generator seed -> same noise and t: the comparison is like for like
    rel = abs(bf16["total"] - fp32["total"]) / abs(fp32["total"])
    assert rel < 1e-2, (fp32, bf16)
    assert bf16 != fp32  # autocast really ran in bf16 (otherwise the test would prove nothing)


def test_official_unet_path_equals_our_guided_prediction(toy):
    """The reference code's UNet (encoder under no_grad, residuals on skips and middle) is our function."""
    model, inputs = toy
    g = torch.Generator().manual_seed(1)
    b = inputs.x.shape[0]
    z = torch.randn(b, 4, 8, 8, generator=g)
    t = torch.tensor([10, 700, 300, 999])
    cond = torch.randn(b, model.sd.guide_width, 8, 8, generator=g)
    w = torch.tensor([0.3, 0.9, 1.0, 0.0])
    for m in model.guide.controlnet_down_blocks:  # non-zero residuals, so the injection is exercised
        torch.nn.init.normal_(m.weight, std=0.1)
    torch.nn.init.normal_(model.guide.controlnet_mid_block.weight, std=0.1)
    with torch.no_grad():
        ours = model.guided_eps(z, t, cond, w)
        ctx = model._context(b, z.dtype)
        down, mid = model.guide(z, t, encoder_hidden_states=ctx, controlnet_cond=cond, return_dict=False)
        scale = w.view(-1, 1, 1, 1)
        official = _unet_with_frozen_encoder(model.sd.unet, z, t, ctx, [d * scale for d in down], mid * scale)
        plain = model.unet_eps(z, t)
    assert torch.allclose(ours, official, atol=1e-5)
    assert not torch.allclose(ours, plain, atol=1e-3)  # the residuals changed the prediction


def test_official_mode_restores_our_settings(toy):
    model, _ = toy
    unet = model.sd.unet
    with official_mode(model):
        assert all(p.requires_grad for p in unet.parameters())
        assert unet.is_gradient_checkpointing and model.guide.is_gradient_checkpointing
        next(unet.parameters()).grad = torch.ones_like(next(unet.parameters()))
    assert not any(p.requires_grad for p in unet.parameters())
    assert all(p.grad is None for p in unet.parameters())
    assert not unet.is_gradient_checkpointing and not model.guide.is_gradient_checkpointing


def test_gradient_checkpointing_keeps_loss_and_gradients():
    """`--low-memory` (config.gradient_checkpointing) recomputes activations: same loss, same gradients."""
    setup = TrainStepSetup(sd="tiny", backbone="test_efficientnet", image_size=64, batch_size=2,
                           weight_widths=(8, 8, 8, 8))
    results = []
    for ckpt in (False, True):
        model, _ = build_model(setup, CPU, seed=0, gradient_checkpointing=ckpt)
        assert model.sd.unet.is_gradient_checkpointing == ckpt and model.guide.is_gradient_checkpointing == ckpt
        model.text_embedding.fill_(0.5)
        inputs = make_inputs(model, setup.batch_size, CPU, seed=0)
        torch.manual_seed(5)
        out = our_losses(model, inputs, "fp32", torch.Generator().manual_seed(7))
        out["total"].backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        stats = {n: b.clone() for n, b in model.detector.named_buffers() if "running" in n or "num_batches" in n}
        results.append((float(out["total"].detach()), grads, stats, model))
    (loss0, g0, s0, plain), (loss1, g1, s1, low) = results
    # the BatchNorm backbone and the upsamplers/filters are recomputed too, not only guide and UNet
    assert low.detector.recompute and low.recompute_conditions and not plain.detector.recompute
    assert loss1 == pytest.approx(loss0, rel=1e-6)
    assert g0.keys() == g1.keys() and len(g0) > 10
    for name in g0:
        assert torch.allclose(g0[name], g1[name], rtol=1e-4, atol=1e-6), name
    # recomputing the backbone in backward must not update BatchNorm's running statistics a second time
    assert s0.keys() == s1.keys() and len(s0) > 3
    for name in s0:
        assert torch.equal(s0[name], s1[name]), name
