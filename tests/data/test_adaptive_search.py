"""The adaptive face search (faster) loses no face against the full search, frame by frame.

Compared on the FF++ and Celeb-DF sample videos and on generated 640x480 videos of a moving portrait:
the same frames get a face, the landmarks agree and the aligned crops are within a few grey levels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dfake_cli.data.faces import FaceAlignConfig, FaceExtractor, search_min_size
from dfake_cli.data.video import read_frames

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
SAMPLE_VIDEOS = [
    SAMPLE / "FaceForensics++/original_sequences/youtube/c23/videos/000.mp4",
    SAMPLE / "FaceForensics++/manipulated_sequences/Deepfakes/c23/videos/000_004.mp4",
    SAMPLE / "FaceForensics++/manipulated_sequences/NeuralTextures/c23/videos/001_003.mp4",
    SAMPLE / "Celeb-DF-v2/Celeb-synthesis/id0_id1_0000.mp4",
]


def _compare(frames: np.ndarray, config: FaceAlignConfig) -> None:
    full = FaceExtractor(config, adaptive=False)
    fast = FaceExtractor(config, adaptive=True)
    ref, got = full.track(frames), fast.track(frames)
    assert [f is None for f in got] == [f is None for f in ref]
    assert any(f is not None for f in ref)
    for frame, a, b in zip(frames, ref, got):
        if a is None:
            continue
        assert np.abs(a.landmarks - b.landmarks).max() < 1.0
        crop_a, _ = full.align(frame, a)
        crop_b, _ = full.align(frame, b)
        assert np.abs(crop_a.astype(np.int16) - crop_b.astype(np.int16)).mean() < 3.0


@pytest.mark.parametrize("video", SAMPLE_VIDEOS, ids=lambda p: p.stem)
def test_adaptive_search_matches_full_search_on_sample_videos(video):
    if not video.is_file():
        pytest.skip(f"{video} is not in this checkout")
    frames, _ = read_frames(video, num=8)
    _compare(frames, FaceAlignConfig(size=128))


def test_adaptive_search_matches_full_search_on_640x480_videos():
    from dfake_cli.bench.videos import moving_frames

    for seed in (0, 1):
        _compare(moving_frames(60, seed=seed)[::6], FaceAlignConfig(size=128))


def test_adaptive_search_falls_back_to_full_range_where_the_face_shrinks(monkeypatch):
    """A face that becomes smaller than the narrowed search allows is still found (the full-range retry)."""
    import cv2

    from dfake_cli.bench.videos import moving_frames

    big = moving_frames(1, seed=0)[0]
    full = FaceExtractor(FaceAlignConfig(size=128), adaptive=False)
    box = full.detect([big])[0][0].box
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    shrink = cv2.getRotationMatrix2D(centre, 0.0, 0.7)  # the same face, 0.7x, about its own centre
    small = cv2.warpAffine(big, shrink, (big.shape[1], big.shape[0]), borderValue=(90, 90, 90))
    frames = np.stack([big, small, small])
    fast = FaceExtractor(FaceAlignConfig(size=128))
    sizes = []
    real_detect = fast.detect

    def spy(batch, min_size=None):
        sizes.append(min_size)
        return real_detect(batch, min_size)

    monkeypatch.setattr(fast, "detect", spy)
    monkeypatch.setattr("dfake_cli.data.faces.SEARCH_RATIO", 4.0)  # narrow enough to miss the smaller face
    got = fast.track(frames)
    assert [f is None for f in got] == [f is None for f in full.track(frames)] == [False] * 3
    assert sizes[0] is None and sizes[1] is not None and sizes[-1] is None  # full, narrowed, full retry


def test_search_size_is_on_the_full_search_pyramid():
    from dfake_cli.data.faces import Face

    face = Face(np.array([0, 0, 200, 160], np.float32), np.zeros((5, 2), np.float32), 0.99)
    size = search_min_size(face, scale=0.5, floor=32, ratio=1.0)  # 80 px in the detection copy
    k = np.log(size / 32) / np.log(1 / 0.709)
    assert abs(k - round(k)) < 1e-9 and 32 <= size <= 80 < size / 0.709
