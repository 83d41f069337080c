"""FF++ parsing and preparation end to end on miniature trees: pairs, skips, resume, reruns."""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from dfake_cli.data import prepare as prep
from dfake_cli.data.cache import FaceCache
from dfake_cli.data.datasets import get_parser
from dfake_cli.data.faces import FaceAlignConfig, FaceExtractor
from dfake_cli.data.video import frame_count, read_frames
from dfake_cli.errors import InputError
from dfake_cli.models.sd import TINY_IDENTITY
from dfake_cli.sampledata.videoio import write_video

FRAMES, SIZE = 4, 64


def _add_bad_inputs(root, blank_frames):
    """A corrupt fake, a fake without a face, a real in no split, and a fake whose source is missing."""
    vids = root / "manipulated_sequences"
    (vids / "FaceSwap" / "c23" / "videos").mkdir(parents=True)
    (vids / "FaceSwap" / "c23" / "videos" / "000_001.mp4").write_bytes(b"\x00not a video\x00" * 64)
    write_video(vids / "FaceSwap" / "c23" / "videos" / "001_000.mp4", blank_frames)
    real = root / "original_sequences" / "youtube" / "c23" / "videos"
    shutil.copy(real / "000.mp4", real / "099.mp4")
    shutil.copy(vids / "Deepfakes" / "c23" / "videos" / "000_001.mp4", vids / "Deepfakes" / "c23" / "videos" / "000_007.mp4")
    (root / "val.json").write_text(json.dumps([["000", "007"]]))


@pytest.fixture(scope="module")
def prepared(tiny_ffpp_master, blank_frames, tmp_path_factory):
    base = tmp_path_factory.mktemp("prepared")
    root = base / "FaceForensics++"
    shutil.copytree(tiny_ffpp_master, root)
    _add_bad_inputs(root, blank_frames)
    manifest = get_parser("ff++")(root)
    result = prep.prepare_manifest(manifest, base / "data" / "ffpp.h5", frames=FRAMES, size=SIZE, training=True, sd="tiny",
                                   progress=False)
    return root, manifest, result


# ------------------------------------------------------------------------------------------- parser


def test_parser_ids_splits_and_pairs(tiny_ffpp):
    m = get_parser("ffpp")(tiny_ffpp)
    ids = {i.video_id: i for i in m.items}
    assert set(ids) == {"FaceForensics++/youtube/000", "FaceForensics++/youtube/001",
                        "FaceForensics++/Deepfakes/000_001", "FaceForensics++/Deepfakes/001_000"}
    fake = ids["FaceForensics++/Deepfakes/000_001"]
    assert (fake.label, fake.split, fake.target, fake.source) == (
        1, "train", "FaceForensics++/youtube/000", "FaceForensics++/youtube/001")
    assert ids["FaceForensics++/youtube/001"].label == 0 and ids["FaceForensics++/youtube/001"].method == "youtube"
    assert any("Face2Face not found" in n for n in m.notes)
    # The parent folder works too, and the alias names the same parser.
    assert len(get_parser("FF++")(tiny_ffpp.parent).items) == 4


def test_parser_errors_name_what_was_expected(tiny_ffpp, tmp_path):
    with pytest.raises(InputError, match="not a FaceForensics\\+\\+ tree.*original_sequences/youtube/c23/videos"):
        get_parser("ffpp")(tmp_path / "elsewhere")
    with pytest.raises(InputError, match="--methods FaceSwap: not found"):
        get_parser("ffpp")(tiny_ffpp, methods="Deepfakes,FaceSwap")
    with pytest.raises(InputError, match="c40"):
        get_parser("ffpp")(tiny_ffpp, compression="c40")
    (tiny_ffpp / "val.json").unlink()
    with pytest.raises(InputError, match="split file missing: .*val.json"):
        get_parser("ffpp")(tiny_ffpp)
    with pytest.raises(InputError, match="unknown dataset"):
        get_parser("nope")


def test_parser_skips_unsplit_and_orphans(tiny_ffpp, blank_frames):
    _add_bad_inputs(tiny_ffpp, blank_frames)
    m = get_parser("ffpp")(tiny_ffpp, methods=["Deepfakes"])
    reasons = {s[0]: s[2] for s in m.skipped}
    assert reasons == {"FaceForensics++/youtube/099": "not in any split",
                       "FaceForensics++/Deepfakes/000_007": "original missing"}


def test_limit_is_per_method_and_split(tiny_ffpp):
    m = get_parser("ffpp")(tiny_ffpp)
    chosen = prep.select_items(m.items, 1)
    assert [i.video_id for i in chosen] == ["FaceForensics++/youtube/000", "FaceForensics++/Deepfakes/000_001"]
    with pytest.raises(InputError):
        prep.select_items(m.items, 0)


# ---------------------------------------------------------------------------------------- prepared


def assert_pairs_right(cache_path, manifest, size) -> int:
    """Every fake input's target is original T's same frame warped with the fake's matrix (pixel-aligned),
    and its source is original S's frame min(i, len(S) - 1) with S's own alignment. Returns the fake count."""
    by_id = manifest.by_id()
    warp = FaceExtractor(FaceAlignConfig(size=size)).warp
    border = np.zeros((size, size), bool)
    b = size // 8
    border[:b], border[-b:], border[:, :b], border[:, -b:] = True, True, True, True
    with FaceCache(cache_path) as c:
        df = c.index
        fakes = df[(df.role == "input") & (df.label == 1)]
        for r in fakes.index:
            fake = by_id[df.video_id[r]]
            t, s = int(df.target_row[r]), int(df.source_row[r])
            i = int(df.frame_index[r])
            # Target: original T at the same frame, warped with the fake's own matrix (pixel-aligned).
            assert df.video_id[t] == fake.target and df.frame_index[t] == i and df.role[t] == "reference"
            m = c.matrices([r])[0]
            np.testing.assert_array_equal(c.matrices([t])[0], m)
            t_frame = read_frames(by_id[fake.target].path, indices=[i])[0][0]
            np.testing.assert_array_equal(c.faces([t])[0], warp(t_frame, m))
            # ... so away from the swapped face, fake and target agree; a shift of size/16 px breaks that.
            f, tg = c.faces([r, t]).astype(np.float32)
            shifted = m.copy()
            shifted[0, 2] += size / 16
            off = warp(t_frame, shifted).astype(np.float32)
            assert np.abs(f - tg)[border].mean() < 0.5 * np.abs(f - off)[border].mean()
            # Source: original S at frame min(i, len(S) - 1), aligned by its own detection.
            src = by_id[fake.source]
            assert df.video_id[s] == fake.source
            assert df.frame_index[s] == min(i, frame_count(src.path) - 1)
            s_frame = read_frames(src.path, indices=[int(df.frame_index[s])])[0][0]
            np.testing.assert_array_equal(c.faces([s])[0], warp(s_frame, c.matrices([s])[0]))
            assert 0 < df.score_s[r] <= 1 and 0 < df.score_t[r] <= 1
        return len(fakes)


def test_pairs_are_pixel_aligned_and_from_the_right_videos(prepared):
    _, manifest, result = prepared
    assert assert_pairs_right(result.cache_path, manifest, SIZE) >= 2 * FRAMES - 1
    with FaceCache(result.cache_path) as c:
        df = c.index
        fakes = df[(df.role == "input") & (df.label == 1)]
        # Identity swaps keep the target's pose and background: the fake is closer to its target.
        assert (fakes.score_t > fakes.score_s).mean() >= 0.75


def test_sample_data_builds_a_cache_with_right_pairs(tmp_path):
    """The shipped miniature (8 ids, three splits, 48-64 frames): a subset keeps the test short."""
    root = Path(__file__).resolve().parents[2] / "sample_data" / "FaceForensics++"
    manifest = get_parser("ff++")(root, methods="Deepfakes,Face2Face")
    result = prep.prepare_manifest(manifest, tmp_path / "ffpp.h5", frames=3, size=SIZE, training=True, sd="tiny", limit=1,
                                   progress=False)
    assert result.skipped == {} and result.prepared == result.videos == 9
    assert assert_pairs_right(result.cache_path, manifest, SIZE) >= 5 * 3
    with FaceCache(result.cache_path) as c:
        assert set(c.index.split[c.input_rows()]) == {"train", "val", "test"}


def test_reals_are_their_own_pairs_and_latents_exist(prepared):
    _, _, result = prepared
    with FaceCache(result.cache_path) as c:
        df = c.index
        reals = df[(df.role == "input") & (df.label == 0)]
        assert set(reals.video_id) == {"FaceForensics++/youtube/000", "FaceForensics++/youtube/001"}
        assert (reals.source_row == reals.index).all() and (reals.target_row == reals.index).all()
        assert (reals.score_s == 1).all() and (reals.score_t == 1).all()
        assert set(df.split) == {"train"} and c.has_latents
        mean, logvar = c.latent_moments([0, 1])
        assert mean.shape == (2, 4, SIZE // 8, SIZE // 8) and logvar.shape == mean.shape
        assert np.isfinite(mean).all()
        a = c.attrs
        assert a["sd_identity"] == TINY_IDENTITY and a["frames_per_video"] == FRAMES and a["size"] == SIZE
        assert a["margin"] == pytest.approx(1.3) and a["dfake_version"] and a["created"]
        assert json.loads(a["align"])["min_face_size"] == 32 and a["latent_scaling"] > 0
        # No duplicated (video, frame, role) inputs; every input frame index is one of the evenly spaced ones.
        inputs = df[df.role == "input"]
        assert not inputs.duplicated(["video_id", "frame_index"]).any()
        assert len(reals) == 2 * FRAMES


def test_flipped_latents_are_the_encoding_of_the_flipped_face(prepared):
    import torch

    from dfake_cli.models.sd import encode_latent_moments, load_stable_diffusion
    from dfake_cli.train.loader import CacheRows

    _, _, result = prepared
    with FaceCache(result.cache_path) as c:
        rows = np.arange(len(c))
        mean, _ = c.latent_moments(rows)
        fmean, flogvar = c.latent_moments(rows, flipped=True)
        assert fmean.shape == mean.shape and flogvar.shape == mean.shape and np.isfinite(fmean).all()
        pick = rows[:: max(1, len(rows) // 3)][:3]
        faces = c.faces(pick)
        fake = int(c.input_rows("train")[c.index.label.to_numpy()[c.input_rows("train")] == 1][0])
        batch = CacheRows(c).read(np.array([fake]), latents=True, flip=np.array([True]))
        source_face = c.faces([int(c.index.source_row[fake])])
    vae = load_stable_diffusion("tiny").vae
    x = torch.from_numpy(np.ascontiguousarray(faces[:, :, ::-1])).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    want_mean, want_logvar = encode_latent_moments(vae, x)
    np.testing.assert_allclose(fmean[pick], want_mean.numpy(), atol=1e-5)
    np.testing.assert_allclose(flogvar[pick], want_logvar.numpy(), atol=1e-5)
    assert not np.allclose(fmean[pick], mean[pick][..., ::-1], atol=1e-3)  # not the flipped latent
    # a flipped training input is paired with the flipped source face's moments (no further flip on the device)
    assert not batch["flip_latents"].any()
    xs = torch.from_numpy(np.ascontiguousarray(source_face[:, :, ::-1])).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    np.testing.assert_allclose(batch["mean_s"], encode_latent_moments(vae, xs)[0].numpy(), atol=1e-5)


def test_bad_inputs_are_skipped_listed_and_counted(prepared):
    _, _, result = prepared
    assert result.skipped == {"unreadable video": 1, "no face found": 1, "not in any split": 1,
                              "original missing": 1}
    with open(result.skipped_csv) as f:
        rows = {r["video_id"]: r for r in csv.DictReader(f)}
    assert rows["FaceForensics++/FaceSwap/000_001"]["reason"] == "unreadable video"
    assert rows["FaceForensics++/FaceSwap/001_000"]["reason"] == "no face found"
    assert rows["FaceForensics++/youtube/099"]["reason"] == "not in any split"
    assert "007" in rows["FaceForensics++/Deepfakes/000_007"]["detail"]
    assert result.videos == 6 and result.prepared == 4 and result.frames == 4 * FRAMES + FRAMES
    assert set(result.timings) >= {"decode", "detect", "align", "encode", "write", "assemble"}
    assert result.timings["detect"] > 0 and result.timings["encode"] > 0
    assert not result.cache_path.with_name("ffpp.parts").exists()


def test_rerun_is_fast_and_other_options_are_refused(prepared):
    _, manifest, result = prepared
    mtime = result.cache_path.stat().st_mtime_ns
    t0 = time.perf_counter()
    again = prep.prepare_manifest(manifest, result.cache_path, frames=FRAMES, size=SIZE, training=True, sd="tiny", progress=False)
    assert again.already_prepared and time.perf_counter() - t0 < 5
    assert again.faces == result.faces and again.skipped == result.skipped
    assert result.cache_path.stat().st_mtime_ns == mtime
    with pytest.raises(InputError, match="different options.*frames 4 -> 5.*--name"):
        prep.prepare_manifest(manifest, result.cache_path, frames=5, size=SIZE, training=True, sd="tiny", progress=False)


def test_interrupted_run_resumes_without_duplicates(prepared, tmp_path, monkeypatch):
    _, manifest, full = prepared
    out = tmp_path / "data" / "ffpp.h5"
    real_run = prep.UnitWorker.run
    calls = {"n": 0}

    def dies_on_third(self, unit):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_run(self, unit)

    monkeypatch.setattr(prep.UnitWorker, "run", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        prep.prepare_manifest(manifest, out, frames=FRAMES, size=SIZE, training=True, sd="tiny", progress=False)
    assert not out.exists() and len(list((tmp_path / "data" / "ffpp.parts").glob("*.npz"))) == 2
    monkeypatch.undo()
    (out.parent / ".ffpp.h5.k1ll3d.partial.tmp").write_bytes(b"an assembly killed half-way")
    # Resume in two worker processes: only the remaining units run.
    res = prep.prepare_manifest(manifest, out, frames=FRAMES, size=SIZE, training=True, sd="tiny", progress=False, workers=2)
    assert res.processed_units == full.processed_units - 2 and not res.already_prepared
    assert sorted(p.name for p in out.parent.iterdir()) == ["ffpp.h5", "ffpp.skipped.csv"]
    with FaceCache(out) as c, FaceCache(full.cache_path) as ref:
        cols = ["video_id", "frame_index", "label", "method", "split", "role", "source_row", "target_row"]
        assert c.index[cols].equals(ref.index[cols])
        diff = np.abs(c.faces(range(len(c))).astype(int) - ref.faces(range(len(ref))).astype(int))
        assert diff.mean() < 1.0  # other thread counts may move a landmark by a hair
    assert res.skipped == full.skipped


def test_frames_and_image_items(tmp_path):
    """Kinds the test sets use: pre-cropped face frames (no detection) and single images."""
    import cv2
    import matplotlib

    from dfake_cli.data.datasets import Manifest, VideoItem

    seq = tmp_path / "seq"
    seq.mkdir()
    for k in (5, 12, 30):
        cv2.imwrite(str(seq / f"{k}.png"), np.full((40, 50, 3), k * 4, np.uint8))
    portrait = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((64, 64, 3), 128, np.uint8))
    items = [
        VideoItem("w/fake/1", seq, 1, "wdf", "test", kind="frames"),
        VideoItem("d/real/gh", portrait, 0, "diffswap", "test", kind="image"),
        VideoItem("d/real/blank", blank, 0, "diffswap", "test", kind="image"),
    ]
    res = prep.prepare_manifest(Manifest("mix", tmp_path, items), tmp_path / "mix.h5", frames=2, size=SIZE,
                                progress=False)
    assert res.skipped == {"no face found": 1}
    with FaceCache(res.cache_path) as c:
        df = c.index
        assert list(df.video_id) == ["w/fake/1", "w/fake/1", "d/real/gh"]
        assert list(df.frame_index[:2]) == [5, 30] and np.isnan(df.confidence[0]) and df.confidence[2] > 0.9
        assert c.faces([0])[0].shape == (SIZE, SIZE, 3) and int(c.faces([1])[0].mean()) == 120
        assert not c.has_latents and (df.source_row == -1).all()


def test_mask_video_picks_the_manipulated_face(tmp_path):
    """DFD-style: two people; the mask video marks the smaller one, so that face is cropped throughout."""
    import cv2
    import matplotlib

    from dfake_cli.data.datasets import Manifest, VideoItem

    img = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))[:, :, ::-1]
    frame = np.full((240, 320, 3), 50, np.uint8)
    frame[20:195, 10:160] = cv2.resize(img, (150, 175))
    frame[60:177, 200:300] = cv2.resize(img, (100, 117))[:, ::-1]
    mask = np.zeros_like(frame)
    mask[70:170, 205:295] = 255
    write_video(tmp_path / "v.mp4", [frame] * 4)
    write_video(tmp_path / "m.mp4", [mask] * 4)
    items = [VideoItem("dfd/x/plain", tmp_path / "v.mp4", 1, "x", "test"),
             VideoItem("dfd/x/masked", tmp_path / "v.mp4", 1, "x", "test", mask_path=tmp_path / "m.mp4")]
    res = prep.prepare_manifest(Manifest("dfd", tmp_path, items), tmp_path / "d.h5", frames=2, size=SIZE,
                                progress=False)
    with FaceCache(res.cache_path) as c:
        m = c.matrices(range(4))
        # Where the crop centre comes from in the frame: the left face without the mask, the right one with it.
        inv = [cv2.invertAffineTransform(x.astype(np.float64)) @ np.array([SIZE / 2, SIZE / 2, 1]) for x in m]
        assert all(x[0] < 160 for x in inv[:2]) and all(x[0] > 200 for x in inv[2:])


def test_a_fake_longer_than_its_target_is_skipped_with_a_reason(tiny_ffpp, tmp_path):
    from dfake_cli.data.prepare.units import plan_units

    fake = tiny_ffpp / "manipulated_sequences" / "Deepfakes" / "c23" / "videos" / "000_001.mp4"
    frames, _ = read_frames(fake)
    write_video(fake, np.concatenate([frames, frames[:3]]))  # 3 frames past the end of target 000
    manifest = get_parser("ff++")(tiny_ffpp)
    skipped: list = []
    parts = tmp_path / "parts"
    parts.mkdir()
    units, _ = plan_units(manifest, manifest.items, 4, True, parts, skipped)
    reasons = {vid: (reason, detail) for vid, _, reason, detail in skipped}
    reason, detail = reasons["FaceForensics++/Deepfakes/000_001"]
    assert reason == "longer than its target" and detail == f"{len(frames) + 3} frames, target FaceForensics++/youtube/000 has {len(frames)}"
    assert "FaceForensics++/Deepfakes/001_000" in {u.item.video_id for u in units}  # the other fake is kept


def test_faceshifter_joins_only_when_named(tiny_ffpp):
    fs = tiny_ffpp / "manipulated_sequences" / "FaceShifter" / "c23" / "videos"
    fs.mkdir(parents=True)
    shutil.copy(tiny_ffpp / "manipulated_sequences" / "Deepfakes" / "c23" / "videos" / "000_001.mp4", fs)
    default = get_parser("ff++")(tiny_ffpp)
    assert {i.method for i in default.items} == {"youtube", "Deepfakes"}
    assert any("FaceShifter present but not prepared" in n for n in default.notes)
    named = get_parser("ff++")(tiny_ffpp, methods="Deepfakes,FaceShifter")
    assert "FaceShifter" in {i.method for i in named.items}
