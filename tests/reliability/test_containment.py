"""Finding 7: paths read from index files (Celeb-DF's list, DFDC-P's dataset.json) never leave the root.

A list line or a dataset.json key that is absolute, climbs out with '..', or names a symlink leading out
of the root is refused and listed in skipped with the reason "outside the root"; the file is not taken.
"""

import json

import numpy as np
import pytest

from dfake_cli.data.datasets.celebdf import parse_celebdf
from dfake_cli.data.datasets.dfdcp import parse_dfdcp
from dfake_cli.sampledata.videoio import write_video


def _video(path):
    write_video(path, np.zeros((2, 16, 16, 3), np.uint8))
    return path


@pytest.fixture()
def outside(tmp_path):
    """A video outside every dataset root: what a hostile index would pull in."""
    return _video(tmp_path / "secret" / "victim.mp4")


def _reasons(manifest):
    return {row[1]: row[2] for row in manifest.skipped}


def test_celebdf_list_line_with_dotdot_is_refused(tmp_path, outside):
    root = tmp_path / "data" / "Celeb-DF-v2"
    _video(root / "Celeb-real" / "id0_0000.mp4")
    _video(root / "Celeb-synthesis" / "id0_id1_0000.mp4")
    (root / "List_of_testing_videos.txt").write_text(
        "1 Celeb-real/id0_0000.mp4\n"
        "0 Celeb-synthesis/id0_id1_0000.mp4\n"
        "1 Celeb-real/../../../secret/victim.mp4\n"
    )
    m = parse_celebdf(root)
    assert all("victim" not in str(it.path) for it in m.items)
    assert len(m.items) == 2
    assert _reasons(m)["Celeb-real/../../../secret/victim.mp4"] == "outside the root"


def test_celebdf_symlink_leading_out_is_refused(tmp_path, outside):
    root = tmp_path / "data" / "Celeb-DF-v2"
    _video(root / "Celeb-real" / "id0_0000.mp4")
    (root / "Celeb-real" / "id1_0000.mp4").symlink_to(outside)
    (root / "List_of_testing_videos.txt").write_text("1 Celeb-real/id0_0000.mp4\n1 Celeb-real/id1_0000.mp4\n")
    m = parse_celebdf(root)
    assert [it.path.name for it in m.items] == ["id0_0000.mp4"]
    assert _reasons(m)["Celeb-real/id1_0000.mp4"] == "outside the root"


@pytest.mark.parametrize("key", ["absolute", "original_videos/../../../secret/victim.mp4",
                                 "method_A/1/../../../../secret/victim.mp4"])
def test_dfdcp_key_outside_the_root_is_refused(tmp_path, outside, key):
    release = tmp_path / "dfdcp" / "fb_dfd_release_0.1_final"
    _video(release / "original_videos" / "1" / "a.mp4")
    _video(release / "method_A" / "1" / "1_A" / "b.mp4")
    key = str(outside) if key == "absolute" else key
    index = {"original_videos/1/a.mp4": {"label": "real", "set": "test"},
             "method_A/1/1_A/b.mp4": {"label": "fake", "set": "test"},
             key: {"label": "fake", "set": "test"}}
    (release / "dataset.json").write_text(json.dumps(index))
    m = parse_dfdcp(tmp_path / "dfdcp")
    assert sorted(it.path.name for it in m.items) == ["a.mp4", "b.mp4"]
    assert _reasons(m)[key] == "outside the root"


# ------------------------------------------------------------------- FF++ split files that lie (finding 13)


def _ffpp(tmp_path, splits):
    root = tmp_path / "FaceForensics++"
    for rel in ("original_sequences/youtube/c23/videos/000.mp4", "original_sequences/youtube/c23/videos/001.mp4",
                "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4"):
        _video(root / rel)
    for split in ("train", "val", "test"):
        (root / f"{split}.json").write_text(splits.get(split, "[]"))
    return root


@pytest.mark.parametrize("text", ['{"000": "001"}', '"000001"', '[["000", "001", "002"]]', '[[true, false]]',
                                  '[["../x", "001"]]', "[1, 2]"])
def test_a_split_file_that_is_not_a_list_of_pairs_is_refused(tmp_path, text):
    from dfake_cli.data.datasets.ffpp import parse_ffpp
    from dfake_cli.errors import InputError

    root = _ffpp(tmp_path, {"test": text, "train": '[["000", "001"]]'})
    with pytest.raises(InputError, match="test.json: expected a JSON list of \\[id, id\\] pairs"):
        parse_ffpp(root)


def test_a_pair_listed_in_train_and_test_is_refused(tmp_path):
    from dfake_cli.data.datasets.ffpp import parse_ffpp
    from dfake_cli.errors import InputError

    root = _ffpp(tmp_path, {"train": '[["000", "001"]]', "test": '[["001", "000"]]'})
    with pytest.raises(InputError, match="both train.json and test.json"):
        parse_ffpp(root)
