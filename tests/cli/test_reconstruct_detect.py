"""`dfake detect` and `dfake reconstruct` end to end on a real portrait, a video made from it and bad files."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from dfake_cli.api.detect import run_detect
from dfake_cli.cli.main import main
from dfake_cli.api.reconstruct import run_reconstruct
from dfake_cli.workspace import Workspace

SIZE = 64


@pytest.fixture(scope="module")
def portrait():
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A workspace whose run 'r1' has a small (timm test_convnext, 64 px, tiny SD) checkpoint in best/."""
    from dfake_cli.models.diffusionfake import DiffusionFake, DiffusionFakeConfig
    from dfake_cli.models.sd import load_stable_diffusion

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("ws")
    cfg = DiffusionFakeConfig(backbone="test_convnext", image_size=SIZE, sd="tiny", weight_widths=(64, 32, 16, 8),
                              face_align={"size": SIZE, "margin": 1.3})
    model = DiffusionFake(cfg, load_stable_diffusion("tiny"))
    model.save_pretrained(root / "runs" / "r1" / "best")
    return Workspace(root)


@pytest.fixture(scope="module")
def files(tmp_path_factory, portrait):
    """A short video of the portrait, a faceless image, a corrupt image."""
    import cv2
    from PIL import Image

    d = tmp_path_factory.mktemp("inputs")
    img = np.asarray(Image.open(portrait).convert("RGB"))
    h, w = img.shape[:2]
    writer = cv2.VideoWriter(str(d / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
    for k in range(6):
        writer.write(cv2.cvtColor(np.roll(img, 2 * k, axis=1), cv2.COLOR_RGB2BGR))
    writer.release()
    Image.fromarray(np.full((200, 200, 3), 127, np.uint8)).save(d / "blank.png")
    (d / "broken.jpg").write_bytes(b"not an image")
    return d


def _cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_detect_scores_images_and_videos(workspace, portrait, files):
    from dfake_cli.data.faces import FaceAlignConfig, FaceExtractor
    from dfake_cli.data.video import read_image
    from dfake_cli.models.detector import Detector

    out = run_detect(workspace, [str(portrait), str(files / "clip.mp4")], frames=4).to_dict()
    assert out["checkpoint"] == str(workspace.runs_dir / "r1" / "best")
    image, video = out["results"]
    assert image["status"] == video["status"] == "ok"
    assert image["frames"] == 1 and video["frames"] == 4 and video["kind"] == "video"
    # the same number the detector gives on the face aligned as preparation aligns it
    crop, _ = FaceExtractor(FaceAlignConfig(size=SIZE, margin=1.3)).extract_image(read_image(portrait))
    expected = Detector.from_pretrained(workspace.runs_dir / "r1" / "best").predict_proba(crop[None])[0]
    assert image["prob_fake"] == pytest.approx(expected, abs=1e-9)
    assert 0 < video["prob_fake"] < 1 and image["label"] in ("real", "fake")


def test_detect_per_file_status_and_json(workspace, portrait, files, capsys, monkeypatch):
    monkeypatch.setenv("DFAKE_WORKSPACE", str(workspace.root))
    monkeypatch.delenv("DFAKE_NO_PROGRESS", raising=False)  # the bar goes to stderr, the JSON alone to stdout
    args = ["detect", str(portrait), str(files / "blank.png"), str(files / "broken.jpg"),
            str(files / "missing.png"), "--json", "--checkpoint", "r1"]
    code, out, err = _cli(args, capsys)
    assert code == 0, err
    rows = {Path(r["path"]).name: r for r in json.loads(out)["results"]}
    assert "detect" in err and "4/4" in err
    assert rows["grace_hopper.jpg"]["status"] == "ok"
    assert rows["blank.png"]["status"] == "no face" and rows["blank.png"]["prob_fake"] is None
    assert rows["broken.jpg"]["status"].startswith("unreadable")
    assert rows["missing.png"]["status"] == "not found"
    code, out, _ = _cli(["detect", str(files / "blank.png")], capsys)
    assert code == 1 and "no face" in out  # a table, and a failing exit when nothing could be scored


def test_detect_without_a_run_is_one_line(tmp_path, portrait, capsys, monkeypatch):
    monkeypatch.setenv("DFAKE_WORKSPACE", str(tmp_path / "empty"))
    code, _, err = _cli(["detect", str(portrait)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "dfake train" in err and "--checkpoint" in err


def test_reconstruct_with_the_latest_run(workspace, portrait, tmp_path, capsys, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("DFAKE_WORKSPACE", str(workspace.root))
    monkeypatch.delenv("DFAKE_NO_PROGRESS", raising=False)  # the DDIM bar goes to stderr
    target = tmp_path / "grid.png"
    code, out, err = _cli(["reconstruct", str(portrait), "--steps", "2", "--seeds", "2", "--out", str(target),
                           "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert "DDIM" in err
    assert result["output"] == str(target) and result["trained"] and result["checkpoint"].endswith("best")
    assert 0 <= result["w_s"] <= 1 and 0 <= result["w_t"] <= 1 and result["seeds"] == [0, 1]
    grid = Image.open(target)
    assert grid.size == (160 * 5, 160 + 46)  # input | 2 source | 2 target, header + labels
    # reconstruct aligns the face exactly as detect does: the same probability
    detected = run_detect(workspace, [str(portrait)]).results[0].prob_fake
    assert result["prob_fake"] == pytest.approx(detected, abs=1e-6)
    # the reconstructions are images that differ per seed
    tiles = np.asarray(grid)[46:, :, :]
    assert not np.array_equal(tiles[:, 160:320], tiles[:, 320:480])


def test_reconstruct_without_a_run_uses_an_untrained_model(tmp_path, portrait, capsys, monkeypatch):
    monkeypatch.setenv("DFAKE_WORKSPACE", str(tmp_path / "fresh"))
    code, out, err = _cli(["reconstruct", str(portrait), "--steps", "1", "--seeds", "1"], capsys)
    assert code == 0, err
    assert "UNTRAINED" in err and (tmp_path / "fresh" / "reconstructions" / "grace_hopper.png").is_file()


def test_reconstruct_errors(workspace, files, tmp_path):
    from dfake_cli.errors import InputError

    with pytest.raises(InputError, match="no face"):
        run_reconstruct(workspace, str(files / "blank.png"), steps=1, seeds=1, out=str(tmp_path / "x.png"))
    with pytest.raises(InputError, match="not found"):
        run_reconstruct(workspace, str(tmp_path / "nope.jpg"))
