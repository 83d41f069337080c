"""Finding 6: hostile WildDeepfake archives.

A sequence named `..` (or an absolute / '..' member path) must not make two archives write into one
folder; one sequence key in two archives must not crash the parse (nor leave `wdf.extract/` behind);
a member far larger than any face image (a small archive can hold a huge sparse member) is never read.
Each is skipped with its reason and listed; the other sequences are kept.
"""

import io
import tarfile

import numpy as np
import pytest

from dfake_cli.api.prepare import prepare_testset
from dfake_cli.data.cache import FaceCache
from dfake_cli.data.datasets import wdf
from dfake_cli.data.datasets.wdf import parse_wdf
from dfake_cli.workspace import Workspace
from helpers.tartools import png_bytes, write_tar


def _png(value):
    return png_bytes(value, 8)


def _reasons(m):
    return sorted(row[2] for row in m.skipped)


def test_dotdot_sequences_of_two_archives_keep_their_own_pixels(tmp_path):
    base = tmp_path / "wdf" / "deepfake_in_the_wild"
    write_tar(base / "real_test" / "1.tar.gz", [("./1/real/5/1.png", _png(10))])
    write_tar(base / "fake_test" / "1.tar.gz", [("./1/fake/../1.png", _png(100)), ("./1/fake/7/1.png", _png(50))])
    write_tar(base / "fake_test" / "2.tar.gz", [("./2/fake/../1.png", _png(200)), ("/abs/2/fake/9/1.png", _png(1))])
    out = tmp_path / "x"
    m = parse_wdf(tmp_path / "wdf", extract_dir=out, frames=4)
    assert sorted(it.video_id for it in m.items) == ["WildDeepfake/fake_test/1_7", "WildDeepfake/real_test/1_5"]
    assert _reasons(m) == ["unsafe member name"] * 3
    # every extracted file is under the extraction folder, one per frame, with its own pixels
    for it in m.items:
        for p in it.frames:
            assert p.resolve().is_relative_to(out.resolve()) and p.is_file()
    extracted = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(extracted) == 2


def test_same_sequence_key_in_two_archives_is_skipped_not_fatal(tmp_path):
    base = tmp_path / "wdf" / "deepfake_in_the_wild"
    write_tar(base / "real_test" / "1.tar.gz", [("./1/real/5/1.png", _png(10)), ("./1/real/5/2.png", _png(11))])
    write_tar(base / "fake_test" / "1.tar.gz", [("./1/fake/7/1.png", _png(100))])
    write_tar(base / "fake_test" / "2.tar.gz", [("./1/fake/7/1.png", _png(200))])  # same key (N=1, seq 7)
    ws = Workspace(tmp_path / "ws")
    result = prepare_testset(ws, "wdf", tmp_path / "wdf", frames=2, size=16, progress=False, workers=1)
    assert result.prepared == 2
    assert result.skipped == {"duplicate sequence": 1}
    skipped_csv = ws.skipped_path("wdf").read_text()
    assert "duplicate sequence" in skipped_csv and "2.tar.gz" in skipped_csv
    with FaceCache(ws.cache_path("wdf")) as cache:
        fake_row = int(np.flatnonzero(cache.index["label"].to_numpy() == 1)[0])
        assert int(cache.faces([fake_row]).mean()) == 100  # the first archive's pixels
    assert not (ws.data_dir / "wdf.extract").exists()


def test_member_far_larger_than_a_face_is_skipped_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(wdf, "MAX_MEMBER_BYTES", 64 << 10)
    base = tmp_path / "wdf" / "deepfake_in_the_wild"
    write_tar(base / "real_test" / "1.tar.gz", [("./1/real/5/1.png", _png(10))])
    path = base / "fake_test" / "1.tar.gz"
    path.parent.mkdir(parents=True)
    with tarfile.open(path, "w:gz") as tar:  # 4 MB of zeros: a few kB compressed
        info = tarfile.TarInfo("./1/fake/7/1.png")
        info.size = 4 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
        ok = tarfile.TarInfo("./1/fake/8/1.png")
        data = _png(99)
        ok.size = len(data)
        tar.addfile(ok, io.BytesIO(data))
    reads = []
    real_extract = tarfile.TarFile.extractfile

    def spy(self, member):
        reads.append(getattr(member, "name", member))
        return real_extract(self, member)

    monkeypatch.setattr(tarfile.TarFile, "extractfile", spy)
    m = parse_wdf(tmp_path / "wdf", extract_dir=tmp_path / "x", frames=4)
    assert sorted(it.video_id for it in m.items) == ["WildDeepfake/fake_test/1_8", "WildDeepfake/real_test/1_5"]
    assert _reasons(m) == ["member too large"]
    assert "./1/fake/7/1.png" not in reads


@pytest.mark.parametrize("seq", ["..", "."])
def test_unsafe_sequence_names_are_listed(tmp_path, seq):
    base = tmp_path / "wdf" / "deepfake_in_the_wild"
    write_tar(base / "real_test" / "1.tar.gz", [(f"./1/real/{seq}/1.png", _png(10)), ("./1/real/4/1.png", _png(4))])
    write_tar(base / "fake_test" / "1.tar.gz", [("./1/fake/7/1.png", _png(100))])
    m = parse_wdf(tmp_path / "wdf", extract_dir=tmp_path / "x", frames=4)
    assert len(m.items) == 2
    assert _reasons(m) == ["unsafe member name"]
