"""The committed sample_data/ is a valid FaceForensics++ / Celeb-DF v2 miniature."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from dfake_cli.data.video import frame_count, read_frames
from dfake_cli.sampledata.generate import MAX_TOTAL_BYTES
from dfake_cli.sampledata.landmarks import detect

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
FF = SAMPLE / "FaceForensics++"
CDF = SAMPLE / "Celeb-DF-v2"
METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
REALS = FF / "original_sequences" / "youtube" / "c23" / "videos"


def fake_dir(method: str) -> Path:
    return FF / "manipulated_sequences" / method / "c23" / "videos"


def all_videos() -> list[Path]:
    return sorted(SAMPLE.rglob("*.mp4"))


def test_ffpp_layout_fakes_have_their_target_and_source_originals():
    reals = {p.stem for p in REALS.glob("*.mp4")}
    assert len(reals) >= 8 and all(re.fullmatch(r"\d{3}", r) for r in reals)
    for method in METHODS:
        fakes = sorted(fake_dir(method).glob("*.mp4"))
        assert len(fakes) == len(reals), method  # every real is the target of exactly one fake
        for fake in fakes:
            target, source = fake.stem.split("_")
            assert target in reals and source in reals and target != source, fake
            assert (FF / "manipulated_sequences" / method / "masks" / "videos" / fake.name).is_file()


def test_ffpp_split_files_use_the_official_pair_format_and_cover_every_id():
    reals = {p.stem for p in REALS.glob("*.mp4")}
    seen: dict[str, str] = {}
    for split in ("train", "val", "test"):
        pairs = json.loads((FF / f"{split}.json").read_text())
        assert pairs and all(isinstance(p, list) and len(p) == 2 for p in pairs), split
        for a, b in pairs:
            assert re.fullmatch(r"\d{3}", a) and re.fullmatch(r"\d{3}", b)
            for vid in (a, b):
                assert vid not in seen, f"{vid} in {seen.get(vid)} and {split}"
                seen[vid] = split
            for method in METHODS:  # both orders of each pair exist, in the same split
                assert (fake_dir(method) / f"{a}_{b}.mp4").is_file() and (fake_dir(method) / f"{b}_{a}.mp4").is_file()
    assert set(seen) == reals


def test_every_video_decodes_with_the_expected_shape_and_fakes_match_target_length():
    counts = {}
    for video in all_videos():
        n = frame_count(video)
        assert 48 <= n <= 64, video
        counts[video] = n
    for video in [REALS / "000.mp4", fake_dir("Deepfakes") / "000_004.mp4", CDF / "Celeb-real" / "id0_0000.mp4"]:
        frames, _ = read_frames(video, 1)
        assert frames.shape[1:] == (256, 256, 3) and frames.dtype == np.uint8
    for method in METHODS:
        for fake in fake_dir(method).glob("*.mp4"):
            assert counts[fake] == counts[REALS / f"{fake.stem.split('_')[0]}.mp4"], fake
    for fake in (CDF / "Celeb-synthesis").glob("*.mp4"):
        target, _, clip = fake.stem.split("_")
        assert counts[fake] == counts[CDF / "Celeb-real" / f"{target}_{clip}.mp4"], fake


def test_mtcnn_finds_a_face_in_every_video():
    for video in all_videos():
        if "masks" in video.parts:
            continue
        frames, _ = read_frames(video, 2)
        assert all(d is not None for d in detect(frames)), video


@pytest.mark.parametrize("method", METHODS)
def test_fakes_change_only_their_masked_region(method):
    fake = fake_dir(method) / "006_007.mp4"
    mask_video = FF / "manipulated_sequences" / method / "masks" / "videos" / "006_007.mp4"
    f, _ = read_frames(fake, indices=[10])
    t, _ = read_frames(REALS / "006.mp4", indices=[10])
    m, _ = read_frames(mask_video, indices=[10])
    diff = np.abs(f.astype(np.float32) - t.astype(np.float32)).mean(-1)[0]
    inside, outside = m[0, ..., 0] > 200, m[0, ..., 0] < 10
    assert inside.sum() > 100 and outside.sum() > 10000
    assert diff[inside].mean() > 4 * max(diff[outside].mean(), 1.0), (diff[inside].mean(), diff[outside].mean())


def test_celebdf_list_matches_the_files():
    text = (CDF / "List_of_testing_videos.txt").read_text()
    assert not text.endswith("\n")  # the real file's quirk
    entries = [line.split(" ") for line in text.split("\n")]
    listed = set()
    for label, rel in entries:
        assert (CDF / rel).is_file(), rel
        assert label == ("0" if rel.startswith("Celeb-synthesis/") else "1"), rel
        listed.add(rel)
    on_disk = {p.relative_to(CDF).as_posix() for p in CDF.rglob("*.mp4")}
    assert listed < on_disk  # some videos are in the folders only, as in the real dataset
    assert len([r for r in listed if r.startswith("Celeb-real/")]) >= 3
    assert len([r for r in listed if r.startswith("YouTube-real/")]) >= 2
    assert len([r for r in listed if r.startswith("Celeb-synthesis/")]) >= 4
    for rel in on_disk:
        if rel.startswith("Celeb-synthesis/"):
            target, source, clip = Path(rel).stem.split("_")
            assert (CDF / "Celeb-real" / f"{target}_{clip}.mp4").is_file()
            assert any((CDF / "Celeb-real").glob(f"{source}_*.mp4"))
        elif rel.startswith("YouTube-real/"):
            assert re.fullmatch(r"YouTube-real/\d{5}\.mp4", rel)
        else:
            assert re.fullmatch(r"Celeb-real/id\d+_\d{4}\.mp4", rel)


def test_size_readme_and_checksums():
    files = [p for p in SAMPLE.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= MAX_TOTAL_BYTES
    readme = (SAMPLE / "README.md").read_text()
    assert "python -m dfake_cli.sampledata.generate --out sample_data --seed 0" in readme
    assert "public domain" in readme and "CC0" in readme
    sums = dict(reversed(line.split("  ", 1)) for line in (SAMPLE / "SHA256SUMS").read_text().splitlines())
    dataset_files = {p.relative_to(SAMPLE).as_posix() for p in files if p.parts[-1] not in ("README.md", "SHA256SUMS")}
    assert set(sums) == dataset_files
    for rel, digest in sums.items():
        assert hashlib.sha256((SAMPLE / rel).read_bytes()).hexdigest() == digest, rel
