"""The generator: seeded and reproducible, and its small API builds valid miniature trees."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dfake_cli.data.video import frame_count, read_frames
from dfake_cli.sampledata import (
    RECIPES, identities, make_clip, portrait, render_clip, swap_face, write_celebdf_tree, write_ffpp_tree,
)
from dfake_cli.sampledata.generate import SampleLayout, main

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


def test_regenerating_a_subset_gives_the_committed_bytes(tmp_path):
    layout = SampleLayout()
    ids = {v: layout.ffpp_ids[v] for v in ("006", "007")}
    write_ffpp_tree(tmp_path / "ff", ids, {"test": [("006", "007")]}, ["Deepfakes"], layout.n_frames,
                    layout.size, seed=0, masks=True)
    write_celebdf_tree(tmp_path / "cdf", layout.celeb_ids[:2], [], [(0, 1)], n_frames=layout.n_frames,
                       size=layout.size, seed=0)
    rels = [
        "FaceForensics++/original_sequences/youtube/c23/videos/006.mp4",
        "FaceForensics++/original_sequences/youtube/c23/videos/007.mp4",
        "FaceForensics++/manipulated_sequences/Deepfakes/c23/videos/006_007.mp4",
        "FaceForensics++/manipulated_sequences/Deepfakes/masks/videos/007_006.mp4",
        "Celeb-DF-v2/Celeb-real/id1_0000.mp4",
        "Celeb-DF-v2/Celeb-synthesis/id0_id1_0000.mp4",
    ]
    for rel in rels:
        mine = tmp_path / rel.replace("FaceForensics++", "ff").replace("Celeb-DF-v2", "cdf")
        assert mine.read_bytes() == (SAMPLE / rel).read_bytes(), rel


def test_same_seed_same_bytes_other_seed_other_content(tmp_path):
    def tree(name, seed):
        root = tmp_path / name
        write_ffpp_tree(root, ["hopper", "collins"], {"train": [("000", "001")]}, ["FaceSwap"], 6, 64, seed)
        return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    a, b, c = tree("a", 3), tree("b", 3), tree("c", 4)
    assert a == b
    assert a.keys() == c.keys()
    assert a[Path("original_sequences/youtube/c23/videos/000.mp4")] != c[Path("original_sequences/youtube/c23/videos/000.mp4")]


def test_tiny_ffpp_tree_for_other_tests(tmp_path):
    written = write_ffpp_tree(tmp_path, ["hopper", "collins", "hopper-m", "collins-m"],
                              {"train": [("000", "001")], "test": [("002", "003")]},
                              n_frames=(10, 14), size=128, seed=0)
    assert len([p for p in written if p.suffix == ".mp4"]) == 4 + 4 * 4
    assert json.loads((tmp_path / "train.json").read_text()) == [["000", "001"]]
    assert json.loads((tmp_path / "val.json").read_text()) == []
    real = tmp_path / "original_sequences/youtube/c23/videos/002.mp4"
    fake = tmp_path / "manipulated_sequences/NeuralTextures/c23/videos/002_003.mp4"
    assert 10 <= frame_count(real) <= 14 and frame_count(fake) == frame_count(real)
    frames, _ = read_frames(fake, 1)
    assert frames.shape == (1, 128, 128, 3)


def test_tree_writers_reject_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="pair"):
        write_ffpp_tree(tmp_path, ["hopper"], {"train": [("000", "009")]}, n_frames=4, size=64)
    with pytest.raises(ValueError, match="method"):
        write_ffpp_tree(tmp_path, ["hopper", "collins"], {"train": [("000", "001")]}, ["DeepFakes"], 4, 64)
    with pytest.raises(ValueError, match="split"):
        write_ffpp_tree(tmp_path, ["hopper", "collins"], {"training": [("000", "001")]}, n_frames=4, size=64)
    with pytest.raises(ValueError, match="held_out"):
        write_celebdf_tree(tmp_path, ["hopper", "collins"], [], [(0, 1)], held_out=["Celeb-real/id7_0000.mp4"])
    with pytest.raises(ValueError, match="fake pair"):
        write_celebdf_tree(tmp_path, ["hopper", "collins"], [], [(0, 2)])


def test_tiny_celebdf_tree_list(tmp_path):
    write_celebdf_tree(tmp_path, ["hopper", "collins"], ["hopper-m"], [(0, 1), (1, 0)],
                       held_out=["Celeb-synthesis/id1_id0_0000.mp4"], n_frames=8, size=64, seed=1)
    text = (tmp_path / "List_of_testing_videos.txt").read_text()
    assert text == ("1 Celeb-real/id0_0000.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n"
                    "1 Celeb-real/id1_0000.mp4\n1 YouTube-real/00000.mp4")
    assert (tmp_path / "Celeb-synthesis/id1_id0_0000.mp4").is_file()


def test_portraits_and_clips():
    names = identities()
    assert len(names) >= 13 and len(set(names)) == len(names)
    img = portrait("collins-m")
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert np.array_equal(img, portrait(names.index("collins-m")))
    assert np.abs(img.astype(int) - portrait("collins").astype(int)).mean() > 10  # a different identity
    with pytest.raises(ValueError, match="unknown identity"):
        portrait("nobody")
    clip = render_clip("hopper", 12, 96, seed=5)
    assert clip.frames.shape == (12, 96, 96, 3) and clip.landmarks.shape == (12, 5, 2)
    assert np.array_equal(make_clip("hopper", 12, 96, 5), clip.frames)
    assert np.abs(clip.frames[0].astype(int) - clip.frames[-1].astype(int)).mean() > 2  # the camera moves
    # Landmarks follow the camera: the eyes are inside the frame, left of right, above the mouth.
    lm = clip.landmarks
    assert (lm >= 0).all() and (lm < 96).all()
    assert (lm[:, 0, 0] < lm[:, 1, 0]).all() and (lm[:, :2, 1].mean(1) < lm[:, 3:, 1].mean(1)).all()


@pytest.fixture(scope="module")
def pair():
    return render_clip("hopper", 6, 128, 0, key="t"), render_clip("collins-m", 4, 128, 0, key="s")


@pytest.mark.parametrize("recipe", RECIPES)
def test_swap_face_changes_the_face_not_the_background(pair, recipe):
    t, s = pair
    fakes, masks = swap_face(t.frames, s.frames, recipe, 0, t.landmarks, s.landmarks, return_masks=True)
    assert fakes.shape == t.frames.shape and masks.shape == t.frames.shape[:3]
    diff = np.abs(fakes.astype(np.float32) - t.frames.astype(np.float32)).mean(-1)
    face = masks > 128
    assert face.any() and diff[face].mean() > 3
    far = np.zeros_like(face)
    far[:, :12], far[:, -12:] = True, True  # top and bottom rows are far from any face
    assert diff[far].mean() < 1.0
    # Identity swaps replace the whole face; reenactments only the mouth (and eyes).
    area = face.mean()
    assert area > 0.05 if recipe in ("Deepfakes", "FaceSwap", "CelebDF") else area < 0.05


def test_swap_face_clamps_a_short_source(pair):
    t, s = pair
    padded_frames = np.concatenate([s.frames, np.repeat(s.frames[-1:], 2, 0)])
    padded_lm = np.concatenate([s.landmarks, np.repeat(s.landmarks[-1:], 2, 0)])
    short = swap_face(t.frames, s.frames, "Deepfakes", 7, t.landmarks, s.landmarks)
    padded = swap_face(t.frames, padded_frames, "Deepfakes", 7, t.landmarks, padded_lm)
    assert len(short) == len(t.frames) and np.array_equal(short, padded)


def test_swap_face_finds_landmarks_itself_or_fails_clearly(pair):
    t, s = pair
    fakes = swap_face(t.frames[:2], s.frames[:2], "FaceSwap", 0)
    assert np.abs(fakes.astype(int) - t.frames[:2].astype(int)).mean() > 1
    grey = np.full((2, 64, 64, 3), 128, np.uint8)
    with pytest.raises(ValueError, match="no face"):
        swap_face(grey, s.frames[:2], "FaceSwap", 0)
    with pytest.raises(ValueError, match="recipe"):
        swap_face(t.frames, s.frames, "Faceswap", 0, t.landmarks, s.landmarks)


def test_cli_rejects_a_file_as_output(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["--out", str(target)]) == 2
    assert "--out" in capsys.readouterr().err
