"""Findings 4 and 12: a damaged workspace is repaired or named, never a traceback.

A truncated shard in `<name>.parts/` or a broken `counts.json` is redone on resume; shards reach the
disk (fsync) before their rename. Damaged model files, configs and caches, and a read-only workspace,
are one line with exit code 2 naming the file.
"""

import json
import os

import numpy as np
import pytest

from dfake_cli import io as dio
from dfake_cli.api.prepare import prepare_testset
from dfake_cli.data import cache as cache_mod
from dfake_cli.data import prepare as prep
from dfake_cli.data.cache import FaceCache
from dfake_cli.workspace import Workspace
from helpers.tartools import png_bytes, write_tar


def _wdf_tree(root, n=3):
    base = root / "deepfake_in_the_wild"
    write_tar(base / "real_test" / "1.tar.gz", [(f"./1/real/{s}/1.png", png_bytes(10 + s, 8)) for s in range(n)])
    write_tar(base / "fake_test" / "1.tar.gz", [(f"./1/fake/{s}/1.png", png_bytes(100 + s, 8)) for s in range(n)])
    return root


def _ffpp_tree(root):
    """The smallest FF++ layout: two 3-frame reals, their two Deepfakes, one training pair."""
    from dfake_cli.sampledata.videoio import write_video

    for rel in ("original_sequences/youtube/c23/videos/000.mp4", "original_sequences/youtube/c23/videos/001.mp4",
                "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4",
                "manipulated_sequences/Deepfakes/c23/videos/001_000.mp4"):
        write_video(root / rel, np.zeros((3, 16, 16, 3), np.uint8))
    for split, pairs in (("train", [["000", "001"]]), ("val", []), ("test", [])):
        (root / f"{split}.json").write_text(json.dumps(pairs))
    return root


def _interrupted_prepare(tmp_path, monkeypatch):
    """A WildDeepfake prepare killed just before assembly: every shard written, no cache yet."""
    root = _wdf_tree(tmp_path / "wdf")
    ws = Workspace(tmp_path / "ws")

    def killed(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(cache_mod, "assemble", killed)
        with pytest.raises(KeyboardInterrupt):
            prepare_testset(ws, "wdf", root, frames=1, size=16, progress=False, workers=1)
    shards = sorted((ws.data_dir / "wdf.parts").glob("*.npz"))
    assert len(shards) == 6
    return ws, root, shards


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_damaged_shard_is_redone_on_resume(tmp_path, monkeypatch, damage):
    ws, root, shards = _interrupted_prepare(tmp_path, monkeypatch)
    data = shards[2].read_bytes()
    shards[2].write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"PK\x03\x04junk"}[damage])
    result = prepare_testset(ws, "wdf", root, frames=1, size=16, progress=False, workers=1)
    assert result.processed_units == 1 and result.prepared == 6
    with FaceCache(ws.cache_path("wdf")) as cache:
        assert len(cache.index) == 6


def test_broken_counts_json_is_rescanned(tmp_path):
    from dfake_cli.data.datasets import get_parser

    root = _ffpp_tree(tmp_path / "FaceForensics++")
    manifest = get_parser("ffpp")(root)
    parts = tmp_path / "ffpp.parts"
    parts.mkdir()
    for broken in ("{not json", "[1, 2]", '{"x": {"y": 1}}'):
        (parts / "counts.json").write_text(broken)
        skipped = []
        units, _ = prep.plan_units(manifest, manifest.items, 2, True, parts, skipped)
        assert len(units) == 4 and skipped == []
        counts = json.loads((parts / "counts.json").read_text())
        assert sorted(counts.values()) == [3, 3, 3, 3]


def test_shards_are_fsynced_before_their_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("rename", str(src), str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    shard = tmp_path / "parts" / "a.npz"
    cache_mod.write_shard(shard, cache_mod.ShardRows.empty(8), {"status": "ok"})
    renames = [i for i, e in enumerate(events) if e[0] == "rename" and e[2] == str(shard)]
    assert len(renames) == 1
    tmp_name = events[renames[0]][1]
    assert ("fsync", tmp_name) in events[: renames[0]]          # the data, before the rename
    assert ("fsync", str(shard.parent)) in events[renames[0]:]  # the rename itself, after


# ------------------------------------------------------------------------- damaged checkpoints and caches


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A whole tiny checkpoint folder (test_efficientnet, 64 px, no guide) to copy and damage."""
    import torch

    from dfake_cli.models.diffusionfake import DiffusionFake, DiffusionFakeConfig

    torch.manual_seed(0)
    model = DiffusionFake(DiffusionFakeConfig(backbone="test_efficientnet", image_size=64, use_guide=False,
                                              face_align={"size": 64, "margin": 1.3}))
    out = tmp_path_factory.mktemp("ckpt") / "best"
    model.save_pretrained(out)
    return out


def _workspace_with(tmp_path, checkpoint, damage):
    import shutil

    ws = Workspace(tmp_path / "ws").ensure()
    best = ws.run_dir("r1") / "best"
    shutil.copytree(checkpoint, best)
    damage(best)
    return ws, best


def _one_line(code, err, *needles):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    for needle in needles:
        assert str(needle) in lines[0], err


WEIGHT_DAMAGE = {
    "empty": lambda best: (best / "model.safetensors").write_bytes(b""),
    "truncated": lambda best: (best / "model.safetensors").write_bytes((best / "model.safetensors").read_bytes()[:999]),
    "garbage": lambda best: (best / "model.safetensors").write_bytes(b"\x00" * 64),
}


@pytest.mark.parametrize("damage", list(WEIGHT_DAMAGE))
@pytest.mark.parametrize("command", ["detect", "eval", "reconstruct"])
def test_damaged_model_weights_are_one_line_naming_the_file(tmp_path, checkpoint, capsys, damage, command):
    from helpers.clitools import run

    ws, best = _workspace_with(tmp_path, checkpoint, WEIGHT_DAMAGE[damage])
    if command == "reconstruct":  # a guided config, so that reconstruct gets as far as the weights
        cfg = json.loads((best / "config.json").read_text())
        (best / "config.json").write_text(json.dumps({**cfg, "use_guide": True}))
    if command == "eval":
        from helpers.traincache import make_cache

        make_cache(ws.data_dir / "ffpp.h5", videos={"test": 1}, frames=1)
        args = ["eval", "--dataset", "ffpp", "--out", tmp_path / "rep"]
    else:
        (tmp_path / "x.png").write_bytes(png_bytes(5, 64))
        args = [command, tmp_path / "x.png"]
    code, out, err = run(["--workspace", ws.root, *args, "--device", "cpu"], capsys)
    _one_line(code, err, best / "model.safetensors")


CONFIG_DAMAGE = {
    "malformed": "{not json",
    "a list": "[1, 2]",
    "image_size text": json.dumps({"backbone": "test_efficientnet", "image_size": "big"}),
    "backbone number": json.dumps({"backbone": 5, "image_size": 64}),
    "face_align text": json.dumps({"backbone": "test_efficientnet", "image_size": 64, "face_align": "x"}),
}


@pytest.mark.parametrize("damage", list(CONFIG_DAMAGE))
def test_malformed_or_mistyped_config_is_one_line_naming_it(tmp_path, checkpoint, capsys, damage):
    from helpers.clitools import run

    ws, best = _workspace_with(tmp_path, checkpoint, lambda b: (b / "config.json").write_text(CONFIG_DAMAGE[damage]))
    (tmp_path / "x.png").write_bytes(png_bytes(5, 64))
    code, out, err = run(["--workspace", ws.root, "detect", tmp_path / "x.png", "--device", "cpu"], capsys)
    _one_line(code, err, best / "config.json")


def test_config_image_size_that_differs_from_the_weights_is_refused(tmp_path, checkpoint, capsys):
    from helpers.clitools import run

    def edit(best):
        cfg = json.loads((best / "config.json").read_text())
        (best / "config.json").write_text(json.dumps({**cfg, "image_size": 128}))

    ws, best = _workspace_with(tmp_path, checkpoint, edit)
    (tmp_path / "x.png").write_bytes(png_bytes(5, 64))
    code, out, err = run(["--workspace", ws.root, "detect", tmp_path / "x.png", "--device", "cpu"], capsys)
    _one_line(code, err, best / "config.json", "trained at 64")


@pytest.mark.parametrize("dataset", ["index/label", "faces"])
def test_cache_missing_a_dataset_is_one_line_naming_it(tmp_path, checkpoint, capsys, dataset):
    import h5py

    from helpers.clitools import run
    from helpers.traincache import make_cache

    ws, _ = _workspace_with(tmp_path, checkpoint, lambda b: None)
    path = make_cache(ws.data_dir / "ffpp.h5", videos={"test": 1}, frames=1)
    with h5py.File(path, "r+") as h:
        del h[dataset]
    code, out, err = run(["--workspace", ws.root, "eval", "--dataset", "ffpp", "--device", "cpu"], capsys)
    _one_line(code, err, path, f"/{dataset}")


def test_damaged_resume_and_backbone_weights_are_one_line(tmp_path, capsys):
    from helpers.clitools import run
    from helpers.traincache import make_cache

    ws = Workspace(tmp_path / "ws").ensure()
    make_cache(ws.data_dir / "ffpp.h5", videos={"train": 2, "val": 1}, frames=1)
    base = ["--workspace", ws.root, "train", "--backbone", "test_efficientnet", "--batch-size", "2", "--steps", "1",
            "--no-guide", "--no-val-losses", "--device", "cpu"]
    bad = tmp_path / "enc.safetensors"
    bad.write_bytes(b"\x00\x01garbage")
    code, out, err = run([*base, "--run", "b", "--backbone-weights", bad], capsys)
    _one_line(code, err, bad)
    code, out, err = run([*base, "--run", "r"], capsys)
    assert code == 0, err
    last = ws.run_dir("r") / "last"
    (last / "model.safetensors").write_bytes(b"")
    code, out, err = run([*base, "--run", "r", "--resume", "--steps", "2"], capsys)
    _one_line(code, err, last / "model.safetensors")


def test_read_only_workspace_is_one_line(tmp_path, capsys, monkeypatch):
    """Root may write anywhere, so a read-only file system is simulated at mkdir / open."""
    import errno
    import pathlib

    from helpers.clitools import run

    ws = tmp_path / "ro"
    real_mkdir, real_open = pathlib.Path.mkdir, os.open

    def mkdir(self, *a, **k):
        if str(self).startswith(str(ws)):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **k)

    def open_(path, *a, **k):
        if str(path).startswith(str(ws)) and a and a[0] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    root = _wdf_tree(tmp_path / "wdf", n=1)
    code, out, err = run(["--workspace", ws, "prepare", "wdf", root, "--size", "16"], capsys)
    _one_line(code, err, ws, "Read-only")
    code, out, err = run(["--workspace", ws, "train", "--no-guide", "--steps", "1"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
