"""`dfake prepare ff++`: the command end to end, its summary, reruns and one-line errors."""

from __future__ import annotations

import json

import pytest

from dfake_cli.data.cache import FaceCache
from helpers.clitools import run


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    from dfake_cli.sampledata.trees import write_ffpp_tree

    root = tmp_path_factory.mktemp("cli_ffpp") / "FaceForensics++"
    write_ffpp_tree(root, [0, 1], {"train": [("000", "001")]}, methods=("Deepfakes",), n_frames=6, size=128, seed=5)
    return root


def _skeleton(root, splits=("train", "val", "test")):
    """Folders and split files only (enough for the errors that come before any decoding)."""
    (root / "original_sequences" / "youtube" / "c23" / "videos").mkdir(parents=True)
    (root / "manipulated_sequences" / "Deepfakes" / "c23" / "videos").mkdir(parents=True)
    for k, s in enumerate(splits):  # a different pair per split: an id in test and another split is refused
        (root / f"{s}.json").write_text(json.dumps([[f"{2 * k:03d}", f"{2 * k + 1:03d}"]]))
    return root


def test_prepare_ffpp_builds_then_reruns(tree, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DFAKE_NO_PROGRESS", raising=False)  # progress on: it goes to stderr, not into the JSON
    ws = tmp_path / "ws"
    args = ["--workspace", str(ws), "prepare", "ff++", str(tree), "--sd", "tiny", "--frames", "2", "--size", "64",
            "--limit", "1"]
    code, out, err = run(args + ["--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["prepared"] == summary["videos"] == 2 and summary["frames_per_second"] > 0
    assert summary["cache_path"] == str(ws / "data" / "ffpp.h5") and "prepare ffpp" in err
    with FaceCache(ws / "data" / "ffpp.h5") as c:
        df = c.index
        assert set(df.video_id[df.role == "input"]) == {"FaceForensics++/youtube/000",
                                                        "FaceForensics++/Deepfakes/000_001"}
        # The source of 000_001 is 001: prepared as a reference although --limit left it out as an input.
        fake = df.index[(df.role == "input") & (df.label == 1)][0]
        assert df.video_id[df.source_row[fake]] == "FaceForensics++/youtube/001"
        assert c.has_latents and c.attrs["frames_per_video"] == 2
    assert (ws / "data" / "ffpp.skipped.csv").read_text().startswith("video_id,path,reason,detail")
    code, out, _ = run(args[:3] + ["ffpp"] + args[4:], capsys)  # the alias, same options: the summary table
    assert code == 0 and "already prepared" in out and "2 prepared of 2" in out and "skipped videos" in out
    code, _, err = run(args + ["--margin", "1.5"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "margin 1.3 -> 1.5" in err and "--name" in err


@pytest.mark.parametrize(
    "setup, extra, expected",
    [
        (lambda r: r.mkdir(), [], "is not a FaceForensics++ tree: expected"),
        (lambda r: _skeleton(r, ("train", "test")), [], "split file missing:"),
        (_skeleton, ["--methods", "Deepfakes,FaceSwap"], "--methods FaceSwap: not found, expected"),
        (_skeleton, ["--compression", "c99"], "'--compression' / '-c': 'c99' is not one of 'raw', 'c23', 'c40'"),
        (_skeleton, [], "no usable videos"),
    ],
)
def test_errors_are_one_line_exit_2(tmp_path, capsys, setup, extra, expected):
    root = tmp_path / "FaceForensics++"
    setup(root)
    code, out, err = run(["--workspace", str(tmp_path / "ws"), "prepare", "ff++", str(root), "--sd", "tiny"] + extra, capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and expected in err and "Traceback" not in err


def test_bad_option_values(tree, tmp_path, capsys):
    base = ["--workspace", str(tmp_path / "ws"), "prepare", "ff++", str(tree), "--sd", "tiny"]
    for extra, expected in ((["--frames", "0"], "'--frames'"), (["--size", "100"], "--size 100"),
                            (["--device", "tpu"], "'--device': 'tpu': use cpu, cuda or cuda:N"), (["--name", "../x"], "invalid cache name")):
        code, _, err = run(base + extra, capsys)
        assert code == 2 and expected in err and len(err.strip().splitlines()) == 1


def test_killed_run_resumes_to_the_same_cache(tree, tmp_path, capsys):
    """SIGKILL mid-run (no cleanup at all), then the same command: it continues and the cache is whole.

    The engine halts after its first shard when DFAKE_TEST_HALT_AFTER_SHARDS asks it to and says so on
    stderr; the test blocks on that line, so the kill always lands on exactly one finished shard.
    """
    import os
    import signal
    import subprocess
    import sys

    from dfake_cli.data.prepare.testhooks import HALT_AFTER_SHARDS, HALTED_LINE

    ws = tmp_path / "ws"
    args = ["--workspace", str(ws), "prepare", "ff++", str(tree), "--sd", "tiny", "--frames", "2", "--size", "64"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DFAKE_NO_PROGRESS": "1", HALT_AFTER_SHARDS: "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dfake_cli", *args, "--workers", "1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        for line in proc.stderr:  # blocks until the engine halts (or exits: then the loop ends)
            seen.append(line)
            if line.strip() == HALTED_LINE.format(n=1):
                break
        assert seen and seen[-1].strip() == HALTED_LINE.format(n=1), f"no halt: {''.join(seen)[-2000:]}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    parts = ws / "data" / "ffpp.parts"
    assert len(list(parts.glob("*.npz"))) == 1 and not (ws / "data" / "ffpp.h5").exists()
    code, out, err = run(args, capsys)
    assert code == 0, err
    with FaceCache(ws / "data" / "ffpp.h5") as c:
        df = c.index
        inputs = df[df.role == "input"]
        assert not inputs.duplicated(["video_id", "frame_index"]).any()
        assert sorted(set(inputs.video_id)) == ["FaceForensics++/Deepfakes/000_001", "FaceForensics++/Deepfakes/001_000",
                                                "FaceForensics++/youtube/000", "FaceForensics++/youtube/001"]
        assert len(inputs) >= 7  # 4 videos x 2 frames (a frame may lack a face)
        fakes = inputs[inputs.label == 1]
        assert (df.video_id[fakes.target_row].to_numpy() != fakes.video_id.to_numpy()).all()
    assert not parts.exists()
