"""Batched augmentation on the device: flips move the latents with the face, photometric ops the input only."""

from __future__ import annotations

import numpy as np
import torch

from dfake_cli.train import augment
from dfake_cli.train.augment import NO_AUGMENT, AugmentConfig

ID_SCALE, ID_BIAS = torch.ones(3), torch.zeros(3)  # normalisation off: pixel values out


def _faces(n=4, size=16, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype(np.uint8))


def _params(aug, n=4, size=16, step=0):
    return {k: torch.from_numpy(v) for k, v in augment.draw(aug, n, size, seed=1, step=step, rank=0).items()}


def test_draw_is_a_pure_function_of_seed_step_rank():
    a = augment.draw(AugmentConfig(cutout=0.5), 8, 64, seed=1, step=5, rank=0)
    b = augment.draw(AugmentConfig(cutout=0.5), 8, 64, seed=1, step=5, rank=0)
    c = augment.draw(AugmentConfig(cutout=0.5), 8, 64, seed=1, step=5, rank=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_flip_mirrors_exactly_the_drawn_faces_and_normalises():
    faces = _faces()
    params = _params(AugmentConfig(flip=0.5, color_jitter=0.0, gray=0.0, noise=0.0), step=3)
    flip = params["flip"].numpy()
    assert 0 < flip.sum() < len(flip)
    x = augment.apply(faces.clone(), params, torch.full((3,), 2.0), torch.full((3,), -1.0))
    want = faces.numpy().astype(np.float32)
    want[flip] = want[flip][:, :, ::-1]
    assert np.allclose(x.permute(0, 2, 3, 1).numpy(), want * 2.0 - 1.0)
    assert x.shape == (4, 3, 16, 16) and x.is_contiguous(memory_format=torch.channels_last)


def test_no_augmentation_is_the_identity():
    faces = _faces()
    x = augment.apply(faces.clone(), _params(NO_AUGMENT), ID_SCALE, ID_BIAS)
    assert torch.equal(x.permute(0, 2, 3, 1), faces.float())


def test_photometric_changes_and_cutout():
    faces = _faces(size=16)
    params = _params(AugmentConfig(flip=0.0, color_jitter=0.3, gray=1.0, noise=1.0, cutout=1.0))
    gen = torch.Generator().manual_seed(0)
    x = augment.apply(faces.clone(), params, ID_SCALE, ID_BIAS, gen)
    assert not torch.equal(x.permute(0, 2, 3, 1), faces.float())
    assert float(x.min()) >= 0.0 and float(x.max()) <= 255.0
    for i, (y0, x0, h, w) in enumerate(params["cutout"].tolist()):
        assert h == 4 and (x[i, :, y0 : y0 + h, x0 : x0 + w] == 0).all()  # a quarter-side square per face


def test_flip_where_mirrors_latents_along_width():
    t = torch.arange(2 * 4 * 2 * 3, dtype=torch.float32).view(2, 4, 2, 3)
    out = augment.flip_where(t, torch.tensor([True, False]))
    assert torch.equal(out[0], t[0].flip(-1)) and torch.equal(out[1], t[1])
