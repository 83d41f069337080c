"""Encoders: channel count and map size come from the model; ViT tokens become a map; input normalisation."""

import numpy as np
import pytest
import torch

from dfake_cli.errors import InputError
from dfake_cli.models.backbone import DetectorNet, Encoder, preprocess_images


def test_cnn_and_vit_maps():
    enc = Encoder("resnet34", 64)
    assert enc.channels == 512 and enc.grid == (2, 2)
    vit = Encoder("vit_small_patch16_224", 64)
    assert vit.channels == 384 and vit.grid == (4, 4) and vit.prefix_tokens == 1
    assert vit(torch.randn(2, 3, 64, 64)).shape == (2, 384, 4, 4)


def test_detector_logits_shape():
    net = DetectorNet("resnet34", 64)
    logits, feat = net(torch.randn(3, 3, 64, 64))
    assert logits.shape == (3,) and feat.shape == (3, 512, 2, 2)
    assert net.head.in_features == 512


def test_unknown_backbone_is_an_input_error():
    with pytest.raises(InputError, match="timm"):
        Encoder("no_such_net_xyz", 64)


def test_preprocess_normalises_and_resizes():
    img = np.zeros((2, 32, 32, 3), np.uint8)
    img[..., 0] = 255
    x = preprocess_images(img, 64, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert x.shape == (2, 3, 64, 64)
    assert torch.allclose(x[:, 0], torch.ones(1)) and torch.allclose(x[:, 1], -torch.ones(1))
    with pytest.raises(InputError):
        preprocess_images(np.zeros((2, 32, 32), np.uint8), 64, (0.5,) * 3, (0.5,) * 3)


def _save(state, path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_local_backbone_weights_load_whole_with_the_classifier_dropped(tmp_path):
    import timm

    src = timm.create_model("resnet18", pretrained=False, num_classes=1000)  # an ImageNet-style file, fc included
    path = _save(src.state_dict(), tmp_path / "r18.safetensors")
    dst = Encoder("resnet18", 64, weights=path)
    own = dst.model.state_dict()
    assert all(torch.equal(own[k], src.state_dict()[k]) for k in own)
    bad = _save({"x": torch.zeros(1)}, tmp_path / "bad.safetensors")
    with pytest.raises(InputError, match="unexpected in the file"):
        Encoder("resnet18", 64, weights=bad)


def test_a_partial_or_foreign_file_is_refused_with_counts(tmp_path):
    import timm

    state = timm.create_model("resnet18", pretrained=False).state_dict()
    short = dict(state)
    short.pop("layer1.0.conv1.weight")
    with pytest.raises(InputError, match=r"1 of \d+ backbone tensors unmatched \(1 missing, 0 of another shape\)") as err:
        Encoder("resnet18", 64, weights=_save(short, tmp_path / "short.safetensors"))
    assert "\n" not in str(err.value) and "--backbone resnet18" in str(err.value)
    with pytest.raises(InputError, match="backbone tensors unmatched"):  # resnet18 weights for resnet34
        Encoder("resnet34", 64, weights=_save(state, tmp_path / "r18.safetensors"))


def test_vit_weights_saved_at_224_are_resampled_by_timms_filter(tmp_path):
    import timm
    from timm.layers import resample_abs_pos_embed

    src = timm.create_model("test_vit", pretrained=False, img_size=224, num_classes=10)
    path = _save(src.state_dict(), tmp_path / "vit224.safetensors")
    enc = Encoder("test_vit", 256, weights=path)  # 14x14 -> 16x16 patch grid
    got = enc.model.pos_embed.detach()
    want = resample_abs_pos_embed(src.pos_embed.detach(), new_size=(16, 16), num_prefix_tokens=enc.prefix_tokens)
    assert got.shape == want.shape and src.pos_embed.shape != got.shape
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.equal(enc.model.patch_embed.proj.weight, src.patch_embed.proj.weight)


def test_the_papers_backbone_name_builds():
    enc = Encoder("tf_efficientnet_b4.ns_jft_in1k", 64)
    assert enc.channels == 1792 and enc.grid == (2, 2)


def test_head_parts_after_pooling_are_frozen():
    enc = Encoder("test_convnext", 64)  # timm ConvNeXt normalises after pooling, in its classifier head
    assert enc.unused == ["head.norm.weight", "head.norm.bias"]
    assert not enc.model.head.norm.weight.requires_grad and enc.model.stem[0].weight.requires_grad
    enc(torch.randn(2, 3, 64, 64)).sum().backward()
    assert all(p.grad is not None for p in enc.parameters() if p.requires_grad)
