"""Celeb-DF v2 parser on a miniature tree: label flip (1 = real in the list), spelling, bad lines."""

import numpy as np
import pytest

from dfake_cli.data.datasets.celebdf import parse_celebdf
from dfake_cli.errors import InputError
from dfake_cli.sampledata.videoio import write_video


def _video(path):
    write_video(path, np.zeros((2, 16, 16, 3), np.uint8))


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "Celeb-DF-v2"
    for rel in ["Celeb-real/id0_0000.mp4", "Celeb-real/id1_0001.mp4", "Youtube-real/00170.mp4",
                "Celeb-synthesis/id0_id1_0000.mp4", "Celeb-synthesis/videos/id1_id0_0001.mp4"]:
        _video(root / rel)
    lines = [
        "1 YouTube-real/00170.mp4",            # the list's spelling; the folder on disk is Youtube-real
        "0 Celeb-synthesis/id0_id1_0000.mp4",
        "",
        "1 Celeb-real/id0_0000.mp4",
        "1 Celeb-real/id9_0009.mp4",           # listed, not on disk
        "garbage",                             # malformed
        "1 Celeb-synthesis/id0_id1_0000.mp4",  # label contradicts the folder
        "0 Celeb-synthesis/id0_id1_0000.mp4",  # listed twice
        "0 Celeb-synthesis/id1_id0_0001.mp4",  # SBI's videos/ level, and the last line has no newline
    ]
    (root / "List_of_testing_videos.txt").write_text("\n".join(lines))
    return root


def test_parses_list_with_flipped_labels(tree):
    m = parse_celebdf(tree)
    by_id = {it.video_id: it for it in m.items}
    assert sorted(by_id) == [
        "Celeb-DF/Celeb-real/id0_0000", "Celeb-DF/Celeb-synthesis/id0_id1_0000",
        "Celeb-DF/Celeb-synthesis/id1_id0_0001", "Celeb-DF/YouTube-real/00170",
    ]
    assert by_id["Celeb-DF/YouTube-real/00170"].label == 0
    assert by_id["Celeb-DF/YouTube-real/00170"].path == tree / "Youtube-real" / "00170.mp4"
    fake = by_id["Celeb-DF/Celeb-synthesis/id1_id0_0001"]
    assert fake.label == 1 and fake.path.is_file() and fake.method == "Celeb-synthesis"
    assert fake.target == "Celeb-DF/Celeb-real/id1_0001" and fake.source == "Celeb-DF/Celeb-real/id0_0001"
    assert all(it.split == "test" and it.kind == "video" for it in m.items)
    assert m.dataset == "Celeb-DF"


def test_bad_lines_are_skipped_with_reasons(tree):
    m = parse_celebdf(tree)
    reasons = sorted(reason for _, _, reason, _ in m.skipped)
    assert reasons == ["label contradicts folder", "listed twice", "malformed line", "not found"]
    missing = next(s for s in m.skipped if s[2] == "not found")
    assert missing[0] == "Celeb-DF/Celeb-real/id9_0009" and "line 5" in missing[3]
    assert any("518" in n for n in m.notes)  # 8 entries, not the official 518


def test_missing_list_is_one_clear_error(tmp_path):
    (tmp_path / "Celeb-real").mkdir()
    with pytest.raises(InputError, match="List_of_testing_videos.txt"):
        parse_celebdf(tmp_path)
