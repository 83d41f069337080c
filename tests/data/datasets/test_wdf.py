"""WildDeepfake parser on tar.gz archives built here: sequences, frame choice, bad members and archives."""


import numpy as np
import pytest
from PIL import Image

from dfake_cli.data.datasets.wdf import parse_wdf
from dfake_cli.errors import InputError
from helpers.tartools import png_bytes, write_tar


def _png(value):
    return png_bytes(value, 8)


@pytest.fixture()
def tree(tmp_path):
    base = tmp_path / "wdf" / "deepfake_in_the_wild"
    write_tar(base / "real_test" / "1.tar.gz", [
        ("./1/real/10/3.png", _png(3)), ("./1/real/10/1.png", _png(1)), ("./1/real/10/2.png", _png(2)),
        ("./1/real/11/5.png", _png(5)), ("./1/real/11/6.png", _png(6)),
        ("./1/fake/12/1.png", _png(9)),  # labelled fake inside real_test: refused
        ("./1/notes.txt", b"x"),
    ])
    # the original README's spelling with a space
    write_tar(base / "fake test" / "1.tar.gz", [("./1/fake/10/942.png", _png(42)), ("./1/fake/10/943.png", _png(43)),
                                            ("./1/fake/10/944.png", _png(44))])
    (base / "fake test" / "2.tar.gz").write_bytes(b"this is not a gzip file")
    return tmp_path / "wdf"


def test_sequences_are_videos_with_extracted_frames(tree, tmp_path):
    m = parse_wdf(tree, extract_dir=tmp_path / "x", frames=2)
    by_id = {it.video_id: it for it in m.items}
    # real_test/1/10 and fake_test/1/10 share (N, seq_id) but not the split: separate videos
    assert sorted(by_id) == ["WildDeepfake/fake_test/1_10", "WildDeepfake/real_test/1_10", "WildDeepfake/real_test/1_11"]
    real = by_id["WildDeepfake/real_test/1_10"]
    assert real.kind == "frames" and real.label == 0 and len(real.frames) == 2
    # frames 1 and 3 of 1..3, sorted by frame number, extracted with their content
    assert [p.name for p in real.frames] == ["000001.png", "000003.png"]
    assert np.asarray(Image.open(real.frames[1]))[0, 0, 0] == 3
    fake = by_id["WildDeepfake/fake_test/1_10"]
    assert fake.label == 1 and all(p.is_file() for p in fake.frames)
    reasons = sorted(reason for _, _, reason, _ in m.skipped)
    assert reasons == ["label contradicts folder", "unreadable archive"]
    assert any("1 archive members ignored" in n for n in m.notes)


def test_all_frames_and_rerun_is_idempotent(tree, tmp_path):
    a = parse_wdf(tree, extract_dir=tmp_path / "x", frames=None)
    b = parse_wdf(tree, extract_dir=tmp_path / "x", frames=None)
    counts = {it.video_id.rsplit("/", 2)[-2] + "/" + it.video_id.rsplit("/", 1)[-1]: len(it.frames) for it in a.items}
    assert counts == {"real_test/1_10": 3, "real_test/1_11": 2, "fake_test/1_10": 3}
    assert [it.frames for it in a.items] == [it.frames for it in b.items]


def test_missing_split_folder(tmp_path):
    (tmp_path / "real_test").mkdir()
    with pytest.raises(InputError, match="fake_test"):
        parse_wdf(tmp_path, extract_dir=tmp_path / "x")
