"""Miniature FaceForensics++ trees for the data tests (built once per session, copied per test)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

TINY_IDS = ["000", "001"]
TINY_PAIRS = {"train": [("000", "001")], "val": [], "test": []}
TINY_FRAMES = 10
TINY_SIZE = 128


@pytest.fixture(scope="session")
def tiny_ffpp_master(tmp_path_factory) -> Path:
    """2 ids, 1 training pair, Deepfakes only: 2 reals + 2 fakes of 10 frames at 128 px."""
    from dfake_cli.sampledata.trees import write_ffpp_tree

    root = tmp_path_factory.mktemp("ffpp_master") / "FaceForensics++"
    write_ffpp_tree(root, [0, 1], TINY_PAIRS, methods=("Deepfakes",), n_frames=TINY_FRAMES, size=TINY_SIZE, seed=3)
    return root


@pytest.fixture
def tiny_ffpp(tiny_ffpp_master, tmp_path) -> Path:
    """A private copy of the miniature tree that a test may change."""
    dst = tmp_path / "FaceForensics++"
    shutil.copytree(tiny_ffpp_master, dst)
    return dst


@pytest.fixture(scope="session")
def blank_frames() -> np.ndarray:
    """10 frames with no face in them (a smooth colour gradient), 128 px."""
    n, size = 10, TINY_SIZE
    ramp = np.linspace(40, 200, size, dtype=np.float32)
    img = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (size, 1)), np.full((size, size), 90.0)], -1)
    return np.repeat(img[None].astype(np.uint8), n, axis=0)
