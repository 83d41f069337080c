"""DFDC-Preview parser: dataset.json `set == "test"`, methods A/B, missing files and bad labels."""

import json

import numpy as np
import pytest

from dfake_cli.data.datasets.dfdcp import parse_dfdcp
from dfake_cli.errors import InputError
from dfake_cli.sampledata.videoio import write_video


@pytest.fixture()
def tree(tmp_path):
    release = tmp_path / "dfdcp" / "fb_dfd_release_0.1_final"
    files = {
        "original_videos/1003254/1003254_A_001.mp4": {"label": "real", "set": "test"},
        "original_videos/1003254/1003254_A_002.mp4": {"label": "real", "set": "train"},
        "method_A/1003254/1003254_A/1255229_1003254_A_001.mp4": {"label": "fake", "set": "test"},
        "method_B/1003254/1003254_B/1255229_1003254_B_001.mp4": {"label": "fake", "set": "test"},
    }
    for rel in files:
        write_video(release / rel, np.zeros((2, 16, 16, 3), np.uint8))
    # SBI's copies add a videos/ level
    write_video(release / "method_B/videos/1/1_B/2_1_B_003.mp4", np.zeros((2, 16, 16, 3), np.uint8))
    files["method_B/1/1_B/2_1_B_003.mp4"] = {"label": "FAKE", "set": "test"}
    files["method_A/9/9_A/missing.mp4"] = {"label": "fake", "set": "test"}
    files["original_videos/5/odd.mp4"] = {"label": "unknown", "set": "test"}
    (release / "dataset.json").write_text(json.dumps(files))
    return tmp_path / "dfdcp"


def test_takes_test_set_only(tree):
    m = parse_dfdcp(tree)  # the parent of the release folder is accepted
    by_id = {it.video_id: it for it in m.items}
    assert sorted(by_id) == [
        "DFDC-P/method_A/1003254/1003254_A/1255229_1003254_A_001",
        "DFDC-P/method_B/1/1_B/2_1_B_003",
        "DFDC-P/method_B/1003254/1003254_B/1255229_1003254_B_001",
        "DFDC-P/original/1003254/1003254_A_001",
    ]
    assert [by_id[k].label for k in sorted(by_id)] == [1, 1, 1, 0]
    assert {it.method for it in m.items} == {"original", "method_A", "method_B"}
    assert all(it.path.is_file() for it in m.items)
    reasons = {path: reason for _, path, reason, _ in m.skipped}
    assert reasons == {"method_A/9/9_A/missing.mp4": "not found", "original_videos/5/odd.mp4": "bad label"}


def test_all_subset_includes_train(tree):
    assert len(parse_dfdcp(tree, subset="all").items) == 5


def test_missing_dataset_json(tmp_path):
    with pytest.raises(InputError, match="dataset.json"):
        parse_dfdcp(tmp_path)
