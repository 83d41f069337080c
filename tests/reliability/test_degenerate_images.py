"""Finding 2: images too small or too thin to hold a face (6x6, 30000x2).

MTCNN's image pyramid is empty for them and it failed with `torch.cat(): expected a non-empty list`,
which aborted `detect` (every other file's result lost), `reconstruct` and `prepare folder|diffswap`.
Now such a file is skipped with its own reason and the others' results are kept.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from helpers.clitools import run
from dfake_cli.api.detect import run_detect
from dfake_cli.data.cache import FaceCache
from dfake_cli.workspace import Workspace

SHAPES = {"tiny.png": (6, 6), "thin.png": (2, 30000)}  # (height, width)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """The degenerate images and a real portrait (matplotlib's Grace Hopper), 160 px to keep MTCNN quick."""
    import matplotlib

    d = tmp_path_factory.mktemp("imgs")
    for name, (h, w) in SHAPES.items():
        Image.fromarray(np.full((h, w, 3), 120, np.uint8)).save(d / name)
    src = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(src) as im:
        im.convert("RGB").resize((134, 160)).save(d / "face.png")
    return d


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A workspace whose run r1 holds a small detector export (resnet10t, 32 px)."""
    from safetensors.torch import save_file

    from dfake_cli.models.backbone import DetectorNet

    ws = Workspace(tmp_path_factory.mktemp("ws"))
    best = ws.run_dir("r1") / "best"
    best.mkdir(parents=True)
    torch.manual_seed(0)
    net = DetectorNet("resnet10t", 32)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(best / "detector.safetensors"))
    (best / "detector.json").write_text(json.dumps({"backbone": "resnet10t", "image_size": 32}))
    return ws


def test_detect_skips_degenerate_files_and_keeps_the_others(workspace, images):
    files = [str(images / "tiny.png"), str(images / "face.png"), str(images / "thin.png")]
    result = run_detect(workspace, files, device="cpu").to_dict()["results"]
    status = {Path(r["path"]).name: r["status"] for r in result}
    assert status["face.png"] == "ok"
    assert status["tiny.png"].startswith("too small") and status["thin.png"].startswith("too small")
    assert result[1]["prob_fake"] is not None


@pytest.mark.parametrize("name", list(SHAPES))
def test_reconstruct_refuses_a_degenerate_image_in_one_line(tmp_path, images, name, capsys):
    code, out, err = run(["--workspace", tmp_path / "ws", "reconstruct", images / name, "--steps", "1",
                          "--seeds", "1", "--device", "cpu"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "too small" in lines[0] and name in lines[0]


@pytest.mark.parametrize("dataset", ["folder", "diffswap"])
def test_prepare_skips_degenerate_images_with_a_reason(tmp_path, images, dataset, capsys):
    root = tmp_path / "set"
    for cls in ("real", "fake"):
        (root / cls).mkdir(parents=True)
        shutil.copy(images / "face.png", root / cls / "face.png")
    shutil.copy(images / "tiny.png", root / "real" / "tiny.png")
    shutil.copy(images / "thin.png", root / "fake" / "thin.png")
    ws = tmp_path / "ws"
    code, out, err = run(["--workspace", ws, "prepare", dataset, root, "--name", "d", "--size", "32", "--workers", "1"],
                         capsys)
    assert code == 0, err
    skipped = pd.read_csv(ws / "data" / "d.skipped.csv")
    assert sorted(Path(p).name for p in skipped["path"]) == ["thin.png", "tiny.png"]
    assert set(skipped["reason"]) == {"image too small"}
    with FaceCache(ws / "data" / "d.h5") as cache:
        assert sorted(cache.index["label"].tolist()) == [0, 1]  # both portraits kept
