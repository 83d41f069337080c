"""Two ways to the same cache: an original decoded once for all of its fakes (its frames lent to their
target warps), and the batched stage (decode processes feeding one model process). Both must give the
per-video path's cache, dataset by dataset, with the same skipped videos."""

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
KEEP = {"000", "004", "000_004", "004_000"}  # one training pair: two originals, each the target of a fake


def _datasets(path: Path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as h:
        h.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def _prepare(out: Path, **kw) -> Path:
    """The Deepfakes training cache of one sample-data pair (2 frames, 64 px)."""
    manifest = get_parser("ff++")(ROOT, methods="Deepfakes")
    manifest = replace(manifest, items=[i for i in manifest.items if i.video_id.rsplit("/", 1)[-1] in KEEP])
    return prep.prepare_manifest(manifest, out, frames=2, size=64, training=True, sd="tiny", progress=False,
                                 **kw).cache_path


def _assert_same_cache(got: Path, ref: Path, float_tol: float = 0.0) -> None:
    """Every dataset equal; with `float_tol`, floating-point ones (latent moments and the weight scores
    computed from them) within that absolute and relative tolerance, the rest (faces, index) exact."""
    a, b = _datasets(got), _datasets(ref)
    assert sorted(a) == sorted(b)
    for name in b:
        if float_tol and np.issubdtype(b[name].dtype, np.floating):
            np.testing.assert_allclose(a[name], b[name], rtol=float_tol, atol=float_tol, err_msg=name)
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    with h5py.File(got) as g, h5py.File(ref) as r:
        assert g.attrs["summary"] == r.attrs["summary"]
    assert got.with_suffix(".skipped.csv").read_text() == ref.with_suffix(".skipped.csv").read_text()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The per-video path, one worker, with its originals lending their frames (the default)."""
    assert ROOT.is_dir(), f"{ROOT} is missing: sample_data/ is part of the repository (make sample-data)"
    return _prepare(tmp_path_factory.mktemp("ref") / "ref.h5", workers=1, stage="video")


def test_lent_target_frames_give_the_same_cache(reference, tmp_path, monkeypatch):
    lent: list[bool] = []
    monkeypatch.setattr(UnitWorker, "_lent_frames", lambda self, path, indices: lent.append(False))
    decoded = _prepare(tmp_path / "decoded.h5", workers=1, stage="video")  # every fake decodes its target
    assert len(lent) == 2  # both fakes asked (and were refused); the reference's fakes were lent
    _assert_same_cache(reference, decoded)


def test_batched_stage_gives_the_same_cache(reference, tmp_path):
    # The batched stage VAE-encodes the faces of several videos in one batch: oneDNN then picks kernels for
    # another batch size and sums in another order, so latents (and the scores made from them) differ by
    # float rounding (seen: up to 5.5e-6 in latents/flip_logvar, 6e-8 in index/score_s, depending on what ran
    # earlier in the process). A wrong pairing or alignment would differ by 1e-1 or more. Faces are exact.
    got = _prepare(tmp_path / "batched.h5", workers=2, stage="batched")
    _assert_same_cache(got, reference, float_tol=1e-4)


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
