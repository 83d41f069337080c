"""Finding 1: file names that are not valid UTF-8.

On POSIX a file name is bytes. `prepare folder` used to crash at once on such a name (hashing the video
ids) and `prepare ff++` at the very end (writing the skipped list), every rerun the same way. Now the
text copies of such names (ids, skipped list, attributes) are escaped (`\\xNN`), the files still open.
"""

import json
import os

import numpy as np
import pandas as pd
from PIL import Image

from helpers.clitools import run
from dfake_cli.data.cache import FaceCache


def _name(folder, raw: bytes):
    return os.path.join(os.fsdecode(bytes(folder)), os.fsdecode(raw))


def _png(path, value=128, size=20):  # too small for a face: no detector needed
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path, format="PNG")


def test_prepare_folder_with_non_utf8_names(tmp_path, capsys):
    root = tmp_path / "t"
    (root / "real").mkdir(parents=True)
    (root / "fake").mkdir(parents=True)
    _png(_name(root / "real", b"caf\xe9.png"))
    _png(_name(root / "fake", b"\xff\xfe.png"))
    with open(_name(root / "fake", b"notes\xff.txt"), "w") as f:
        f.write("not media")
    code, out, err = run(["--workspace", tmp_path / "ws", "prepare", "folder", root, "--name", "nu", "--workers", "1",
                          "--size", "32"], capsys)
    assert code == 0, err
    rows = pd.read_csv(tmp_path / "ws" / "data" / "nu.skipped.csv")
    assert set(rows["path"].map(os.path.basename)) == {r"caf\xe9.png", r"\xff\xfe.png", r"notes\xff.txt"}
    assert "nu/real/caf\\xe9.png" in set(rows["video_id"].dropna())
    code, out, err = run(["--workspace", tmp_path / "ws", "prepare", "folder", root, "--name", "nu", "--workers", "1",
                          "--size", "32"], capsys)
    assert code == 0 and "already prepared" in out


def test_prepare_ffpp_with_a_non_utf8_name_finishes_and_lists_it(tmp_path, capsys):
    from dfake_cli.sampledata.videoio import write_video

    root = tmp_path / "FaceForensics++"
    for rel in ("original_sequences/youtube/c23/videos/000.mp4", "original_sequences/youtube/c23/videos/001.mp4",
                "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4"):
        write_video(root / rel, np.zeros((2, 16, 16, 3), np.uint8))
    odd = _name(root / "manipulated_sequences/Deepfakes/c23/videos", b"001_\xe9.mp4")
    write_video(odd, np.zeros((2, 16, 16, 3), np.uint8))
    for split, pairs in (("train", [["000", "001"]]), ("val", []), ("test", [])):
        (root / f"{split}.json").write_text(json.dumps(pairs))
    code, out, err = run(["--workspace", tmp_path / "ws", "prepare", "ff++", root, "--sd", "tiny", "--frames", "1", "--size", "16",
                          "--workers", "1"], capsys)
    assert code == 0, err
    rows = pd.read_csv(tmp_path / "ws" / "data" / "ffpp.skipped.csv")
    assert r"FaceForensics++/Deepfakes/001_\xe9" in set(rows["video_id"])
    with FaceCache(tmp_path / "ws" / "data" / "ffpp.h5") as cache:
        assert cache.attrs["complete"]
