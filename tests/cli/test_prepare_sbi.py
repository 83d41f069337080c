"""`dfake prepare sbi`: options reach the engine, bad ones fail in one line before any work."""

from __future__ import annotations

import json

import pytest

from helpers.clitools import run


@pytest.mark.parametrize("args, needle", [
    (["--blend-ratios", "half"], "--blend-ratios"),
    (["--mask-blur", "3"], "--mask-blur"),
    (["--variants", "0"], "--variants"),
    (["--target-aug", "2"], "--target-aug"),
    (["--layout", "ffpp"], "FaceForensics++"),
    (["--name", "../x"], "--name"),
    ([], "--sd"),  # no SD and no $DFAKE_SD: never the random tiny SD by default
])
def test_bad_options_are_one_line(tmp_path, capsys, monkeypatch, args, needle):
    monkeypatch.delenv("DFAKE_SD", raising=False)
    (tmp_path / "root").mkdir()
    sd = [] if needle == "--sd" else ["--sd", "tiny"]
    code, out, err = run(["--workspace", tmp_path / "ws", "prepare", "sbi", tmp_path / "root", *sd, *args], capsys)
    assert code == 2 and needle in err and "Traceback" not in err
    assert len([line for line in err.strip().splitlines() if line.strip()]) <= 2
    assert not (tmp_path / "ws" / "data" / "sbi.h5").exists()


@pytest.fixture(scope="module")
def reals(tmp_path_factory):
    """One real video in train (no fakes: SBI needs none)."""
    from dfake_cli.sampledata.trees import write_ffpp_tree

    root = tmp_path_factory.mktemp("sbi_cli") / "FaceForensics++"
    write_ffpp_tree(root, [0, 1], {"train": [("000", "001")]}, methods=(), n_frames=4, size=128, seed=5)
    return root


def test_preview_json(reals, tmp_path, capsys):
    out_png = tmp_path / "grid.png"
    code, out, err = run(["--workspace", tmp_path / "ws", "prepare", "sbi", reals, "--frames", "2",
                          "--size", "64", "--workers", "1", "--preview", "3", "--preview-out", out_png, "--json"],
                         capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["preview"] == str(out_png) and out_png.stat().st_size > 0
    assert not (tmp_path / "ws" / "data" / "sbi.h5").exists()
