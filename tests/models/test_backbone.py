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


def test_local_backbone_weights(tmp_path):
    from safetensors.torch import save_file

    src = Encoder("resnet34", 64)
    path = tmp_path / "r34.safetensors"
    save_file({k: v.contiguous() for k, v in src.model.state_dict().items()}, str(path))
    dst = Encoder("resnet34", 64, weights=path)
    assert torch.equal(dst.model.conv1.weight, src.model.conv1.weight)
    bad = tmp_path / "bad.safetensors"
    save_file({"x": torch.zeros(1)}, str(bad))
    with pytest.raises(InputError, match="no tensor matches"):
        Encoder("resnet34", 64, weights=bad)


def test_head_parts_after_pooling_are_frozen():
    enc = Encoder("test_convnext", 64)  # timm ConvNeXt normalises after pooling, in its classifier head
    assert enc.unused == ["head.norm.weight", "head.norm.bias"]
    assert not enc.model.head.norm.weight.requires_grad and enc.model.stem[0].weight.requires_grad
    enc(torch.randn(2, 3, 64, 64)).sum().backward()
    assert all(p.grad is not None for p in enc.parameters() if p.requires_grad)
