"""Face geometry (template, similarity transform), tracking rules, and MTCNN on a real portrait."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dfake_cli.data.faces import (
    ARCFACE_TEMPLATE_112,
    Face,
    FaceAlignConfig,
    FaceExtractor,
    follow_track,
    similarity_transform,
    template,
    transform_points,
)


def _face(x1, y1, x2, y2, conf=0.99) -> Face:
    box = np.array([x1, y1, x2, y2], np.float32)
    cx, cy, w = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1
    lm = np.array([[cx - w / 5, cy - w / 8], [cx + w / 5, cy - w / 8], [cx, cy], [cx - w / 6, cy + w / 5],
                   [cx + w / 6, cy + w / 5]], np.float32)
    return Face(box, lm, conf)


@pytest.fixture(scope="module")
def portrait_frame() -> np.ndarray:
    """Grace Hopper (ships with matplotlib) pasted into a 640x480 frame."""
    import matplotlib

    img = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))[:, :, ::-1]
    frame = np.full((480, 640, 3), 30, np.uint8)
    frame[40:440, 200:541] = cv2.resize(img, (341, 400), interpolation=cv2.INTER_AREA)
    return frame


@pytest.fixture(scope="module")
def extractor() -> FaceExtractor:
    return FaceExtractor(FaceAlignConfig(size=128, margin=1.3))


def test_template_is_centred_and_shrinks_with_margin():
    t1 = template(256, 1.0)
    t2 = template(256, 2.0)
    np.testing.assert_allclose(t1, ARCFACE_TEMPLATE_112 * 256 / 112, atol=1e-9)
    # Eyes symmetric about the vertical centre line; a larger margin halves the spread around the centre.
    assert abs((t1[0, 0] + t1[1, 0]) / 2 - 128) < 1.0
    np.testing.assert_allclose(t2 - 128, (t1 - 128) / 2, atol=1e-9)


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 300, (5, 2))
    ang, scale, t = 0.4, 0.7, np.array([12.0, -30.0])
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = scale * src @ rot.T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], scale * rot, atol=1e-5)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-3)
    np.testing.assert_allclose(transform_points(src, m), dst, atol=1e-3)


def test_similarity_transform_never_reflects():
    src = np.array([[0, 0], [10, 0], [5, 5], [2, 9], [8, 9]], float)
    dst = src.copy()
    dst[:, 0] = -dst[:, 0]  # a mirror image: the best similarity is a rotation, not a flip
    m = similarity_transform(src, dst)
    assert np.linalg.det(m[:, :2]) > 0


def test_track_starts_at_largest_and_follows_overlap():
    big, small = _face(100, 100, 200, 200), _face(300, 100, 340, 140)
    moved = _face(110, 105, 210, 205)
    dets = [[small, big], [moved, small], [small], [_face(115, 108, 215, 208)]]
    track = follow_track(dets, min_iou=0.3)
    assert track[0] is big and track[1] is moved
    assert track[2] is None  # only the other person is visible: no jump
    assert track[3] is not None and track[3].box[0] == 115


def test_track_goes_backwards_from_first_face_and_handles_empty():
    a0, a1 = _face(50, 50, 150, 150), _face(55, 52, 155, 152)
    assert follow_track([[], [], []]) == [None, None, None]
    track = follow_track([[], [a0], [a1]])
    assert track == [None, a0, a1]


def test_track_with_mask_picks_the_masked_face():
    big, small = _face(10, 10, 110, 110), _face(150, 20, 190, 60)
    mask = np.zeros((200, 200), bool)
    mask[25:55, 155:185] = True
    track = follow_track([[big, small], [big, _face(152, 21, 192, 61)]], masks=[mask, mask])
    assert track[0] is small and track[1].box[0] == 152


def test_detect_align_on_a_portrait(extractor, portrait_frame):
    faces = extractor.detect([portrait_frame])[0]
    assert len(faces) == 1 and faces[0].confidence > 0.95
    face = faces[0]
    assert 200 < face.box[0] < face.box[2] < 541 and 40 < face.box[1] < face.box[3] < 440
    crop, m = extractor.align(portrait_frame, face)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8 and m.shape == (2, 3)
    # The landmarks land near the template; the crop is exactly the warp of the frame with M.
    lm = transform_points(face.landmarks, m)
    assert np.abs(lm - template(128, 1.3)).max() < 6
    np.testing.assert_array_equal(extractor.warp(portrait_frame, m), crop)


def test_detection_on_a_downscaled_copy_matches_full_resolution(portrait_frame):
    small = FaceExtractor(FaceAlignConfig(size=128, detect_size=320)).detect([portrait_frame])[0][0]
    full = FaceExtractor(FaceAlignConfig(size=128, detect_size=640)).detect([portrait_frame])[0][0]
    assert np.abs(small.landmarks - full.landmarks).max() < 8  # in 640-px frame coordinates


def test_batched_tracking_and_no_face(extractor, portrait_frame):
    shifted = np.roll(portrait_frame, 12, axis=1)
    blank = np.full_like(portrait_frame, 128)
    track = extractor.track(np.stack([portrait_frame, shifted, blank]))
    assert track[0] is not None and track[1] is not None and track[2] is None
    assert 8 < track[1].box[0] - track[0].box[0] < 16
    assert extractor.extract_image(blank) is None
    crop, face = extractor.extract_image(portrait_frame)
    assert crop.shape == (128, 128, 3) and face.confidence > 0.95
