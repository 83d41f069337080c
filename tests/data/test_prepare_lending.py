"""An original decoded once for all of its fakes: the lent frames give the cache a fresh decode gives."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from dfake_cli.data import prepare as prep
from dfake_cli.data.datasets import get_parser
from dfake_cli.data.prepare.units import group_units
from dfake_cli.data.prepare.worker import UnitWorker

ROOT = Path(__file__).resolve().parents[2] / "sample_data" / "FaceForensics++"


def _datasets(path: Path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as h:
        h.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def _prepare(out: Path, monkeypatch, lend: bool) -> tuple[Path, list[bool]]:
    """The Deepfakes training cache of one sample-data pair (2 frames, 64 px); `lent` records, per fake, whether
    its target frames came from its original's unit."""
    real = UnitWorker._lent_frames
    lent: list[bool] = []

    def spy(self, path, indices):
        frames = real(self, path, indices) if lend else None
        lent.append(frames is not None)
        return frames

    monkeypatch.setattr(UnitWorker, "_lent_frames", spy)
    manifest = get_parser("ff++")(ROOT, methods="Deepfakes")
    keep = {"000", "004", "000_004", "004_000"}  # one training pair: two originals, each the target of a fake
    manifest = replace(manifest, items=[i for i in manifest.items if i.video_id.rsplit("/", 1)[-1] in keep])
    result = prep.prepare_manifest(manifest, out, frames=2, size=64, training=True, sd="tiny", progress=False)
    return result.cache_path, lent


def test_lent_target_frames_give_the_same_cache(tmp_path, monkeypatch):
    if not ROOT.is_dir():
        pytest.skip("sample_data/FaceForensics++ is not in this checkout")
    got, lent = _prepare(tmp_path / "lent.h5", monkeypatch, lend=True)
    ref, decoded = _prepare(tmp_path / "decoded.h5", monkeypatch, lend=False)
    assert len(lent) == 2 and all(lent) and not any(decoded)  # every fake warped its original's lent frames
    a, b = _datasets(got), _datasets(ref)
    assert sorted(a) == sorted(b)
    for name in b:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    with h5py.File(got) as g, h5py.File(ref) as r:
        assert g.attrs["summary"] == r.attrs["summary"]
    assert Path(str(got).replace(".h5", ".skipped.csv")).read_text() == \
        Path(str(ref).replace(".h5", ".skipped.csv")).read_text()


def test_groups_put_each_original_before_its_fakes():
    from dfake_cli.data.datasets import VideoItem
    from dfake_cli.data.prepare.units import Unit

    def item(vid, label, target=None):
        return VideoItem(vid, Path(f"/v/{vid}.mp4"), label, "youtube" if label == 0 else "Deepfakes", "train",
                         target=target)

    t0, t1 = Unit(item("0", 0), True), Unit(item("1", 0), True)
    f10 = Unit(item("1_0", 1, "1"), True, target_path=Path("/v/1.mp4"))
    f9 = Unit(item("9_0", 1, "9"), True, target_path=Path("/v/9.mp4"))  # its target is no unit: alone
    f01 = Unit(item("0_1", 1, "0"), True, target_path=Path("/v/0.mp4"))
    groups = group_units([t0, t1, f10, f9, f01])
    assert [[u.item.video_id for u in g] for g in groups] == [["0", "0_1"], ["1", "1_0"], ["9_0"]]
