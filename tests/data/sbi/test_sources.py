"""Which real items SBI prepares, and in which split (parsers only: no video is decoded)."""

from __future__ import annotations

import json

import pytest

from dfake_cli.data.sbi.sources import detect_layout, hashed_split, real_manifest
from dfake_cli.errors import InputError


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_ffpp_reals_keep_the_official_splits_without_manipulated_folders(tmp_path):
    root = tmp_path / "FaceForensics++"
    for name in ("000", "001", "002", "009"):
        _touch(root / "original_sequences/youtube/c23/videos" / f"{name}.mp4")
    for split, pairs in (("train", [["000", "001"]]), ("val", []), ("test", [["002", "003"]])):
        (root / f"{split}.json").write_text(json.dumps(pairs))
    assert detect_layout(tmp_path) == "ffpp"
    m = real_manifest(tmp_path)
    assert {i.video_id: i.split for i in m.items} == {
        "FaceForensics++/youtube/000": "train", "FaceForensics++/youtube/001": "train",
        "FaceForensics++/youtube/002": "test"}
    assert [s[2] for s in m.skipped] == ["not in any split"]  # 009
    assert all(i.label == 0 for i in m.items)


def test_celebdf_identities_never_cross_splits(tmp_path):
    root = tmp_path / "Celeb-DF-v2"
    for name in ("id0_0000", "id0_0001", "id1_0000", "id1_0003", "id7_0002"):
        _touch(root / "Celeb-real" / f"{name}.mp4")
    for name in ("00000", "00001"):
        _touch(root / "YouTube-real" / f"{name}.mp4")
    _touch(root / "Celeb-synthesis" / "id0_id1_0000.mp4")
    (root / "List_of_testing_videos.txt").write_text(
        "1 Celeb-real/id0_0000.mp4\n1 YouTube-real/00001.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4")
    assert detect_layout(root) == "celebdf"
    split = {i.video_id: i.split for i in real_manifest(root).items}
    assert split["Celeb-DF/Celeb-real/id0_0000"] == split["Celeb-DF/Celeb-real/id0_0001"] == "test"
    assert split["Celeb-DF/YouTube-real/00001"] == "test"
    assert split["Celeb-DF/Celeb-real/id1_0000"] == split["Celeb-DF/Celeb-real/id1_0003"] != "test"
    assert split["Celeb-DF/YouTube-real/00000"] != "test"
    assert not any("synthesis" in v for v in split)


def test_folder_identity_is_the_first_level(tmp_path):
    root = tmp_path / "faces"
    for ident in ("alice", "bob", "carol", "dan"):
        for k in range(3):
            _touch(root / ident / f"clip{k}.mp4")
    _touch(root / "loose.jpg")
    _touch(root / "notes.txt")
    m = real_manifest(root)
    assert detect_layout(root) == "folder"
    by_ident: dict[str, set] = {}
    for item in m.items:
        ident = item.video_id.split("/")[2] if item.video_id.count("/") > 2 else item.path.stem
        by_ident.setdefault(ident, set()).add(item.split)
        assert item.split == hashed_split(ident)
    assert all(len(s) == 1 for s in by_ident.values())
    assert {i.kind for i in m.items} == {"video", "image"}
    assert [s[2] for s in m.skipped] == ["not media"]


def test_folder_with_split_folders(tmp_path):
    root = tmp_path / "faces"
    _touch(root / "train" / "a" / "x.png")
    _touch(root / "val" / "b" / "y.png")
    assert {i.split for i in real_manifest(root, "folder").items} == {"train", "val"}


def test_bad_layout_and_empty_folder(tmp_path):
    with pytest.raises(InputError, match="--layout"):
        real_manifest(tmp_path, "dfdc")
    with pytest.raises(InputError, match="no images or videos"):
        real_manifest(tmp_path)
