"""The self-blend generator: seeded, pixel-aligned, mask where the face is, parameters validated."""

from __future__ import annotations

import numpy as np
import pytest

from dfake_cli.data.faces import template
from dfake_cli.data.sbi import SBIConfig, face_rng, self_blend
from dfake_cli.data.sbi.blend import hull_mask
from dfake_cli.data.sbi.landmarks import TEMPLATE_5, TEMPLATE_68, landmarks68
from dfake_cli.data.sbi.preview import preview_grid
from dfake_cli.errors import InputError

SIZE = 64


def _face(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((SIZE, SIZE, 3), 90, np.uint8)
    img[16:56, 18:46] = rng.integers(150, 220, (40, 28, 3))  # a "face" brighter than the background
    return img


def test_template_maps_onto_the_five_points():
    pts5 = template(SIZE, 1.3)
    lm = landmarks68(pts5)
    assert lm.shape == (68, 2)
    # the template's own 5 points land exactly on the face's (a similarity fit of a similar shape)
    assert np.allclose(landmarks68(TEMPLATE_5 * 10 + 5)[30], TEMPLATE_68[30] * 10 + 5, atol=1e-3)
    eyes = (lm[36:42].mean(0), lm[42:48].mean(0))
    assert np.allclose(eyes, pts5[:2], atol=1.5)
    assert lm[8, 1] > lm[57, 1] > lm[30, 1] > eyes[0][1] > lm[19, 1]  # brows above eyes above nose, mouth, chin


def test_mask_covers_the_face_and_not_the_corners():
    mask = hull_mask(template(SIZE, 1.3), SIZE)
    centre = template(SIZE, 1.3)[2].round().astype(int)  # nose tip
    assert mask[centre[1], centre[0]] == 1.0
    assert mask[0, 0] == mask[0, -1] == mask[-1, 0] == 0.0
    assert 0.15 < mask.mean() < 0.6


def test_blend_is_seeded_and_pixel_aligned():
    face, pts = _face(), template(SIZE, 1.3)
    a = self_blend(face, pts, face_rng(0, "v", 3, 1))
    b = self_blend(face, pts, face_rng(0, "v", 3, 1))
    c = self_blend(face, pts, face_rng(0, "v", 3, 0))
    for key in ("target", "source", "mask", "blended"):
        assert np.array_equal(getattr(a, key), getattr(b, key))
    assert not np.array_equal(a.blended, c.blended)
    for blend in (a, c):
        assert blend.blended.shape == blend.source.shape == blend.target.shape == face.shape
        assert blend.mask.min() >= 0 and blend.mask.max() <= blend.ratio + 1e-6
        out = blend.mask < 1e-4  # outside the mask the fake IS the target, pixel for pixel
        assert np.abs(blend.blended[out].astype(int) - blend.target[out].astype(int)).max() <= 1
        if not blend.target_augmented:
            assert np.array_equal(blend.target, face)


def test_target_or_source_takes_the_augmentation():
    face, pts = _face(), template(SIZE, 1.3)
    only_target = self_blend(face, pts, face_rng(1, "v", 0, 0), SBIConfig(target_augment_prob=1.0))
    only_source = self_blend(face, pts, face_rng(1, "v", 0, 0), SBIConfig(target_augment_prob=0.0))
    assert only_target.target_augmented and not np.array_equal(only_target.target, face)
    assert not only_source.target_augmented and np.array_equal(only_source.target, face)


@pytest.mark.parametrize("bad", [dict(variants=0), dict(target_augment_prob=1.5), dict(blend_ratios=()),
                                 dict(mask_blur=(5, 1)), dict(downscale=(0.0, 0.5))])
def test_config_validation_is_one_line(bad):
    with pytest.raises(InputError) as err:
        SBIConfig(**bad).validated()
    assert "\n" not in str(err.value)


def test_config_round_trips_as_json():
    cfg = SBIConfig(variants=3, blend_ratios=(0.5, 1.0))
    assert SBIConfig.from_dict(cfg.to_dict()) == cfg


def test_preview_grid_shape():
    face, pts = _face(), template(SIZE, 1.3)
    blends = [self_blend(face, pts, face_rng(0, "v", 0, k)) for k in range(3)]
    grid = preview_grid(blends, labels=["a", "b", "c"])
    assert grid.dtype == np.uint8 and grid.shape[1] == 4 * (SIZE + 4) + 4 and grid.shape[0] > 3 * SIZE
