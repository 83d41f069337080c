"""`dfake prepare <testset>` end to end: the Celeb-DF miniature (sample-data generator), WDF tars, a folder."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dfake_cli.api.prepare import default_cache_name, prepare_testset
from dfake_cli.data.cache import FaceCache
from dfake_cli.errors import InputError
from dfake_cli.sampledata.generate import SampleLayout
from dfake_cli.sampledata.trees import write_celebdf_tree
from dfake_cli.workspace import Workspace
from helpers.clitools import run
from helpers.tartools import png_bytes, write_tar


@pytest.fixture(scope="module")
def celebdf_root(tmp_path_factory):
    """The sample-data Celeb-DF layout, smaller: 2 celebrities, 1 YouTube video, 2 fakes, one held out."""
    layout = SampleLayout()
    root = tmp_path_factory.mktemp("cdf") / "Celeb-DF-v2"
    write_celebdf_tree(root, layout.celeb_ids[:2], layout.youtube_ids[:1], [(0, 1), (1, 0)],
                       held_out=["Celeb-synthesis/id1_id0_0000.mp4"], n_frames=3, size=128, seed=0)
    return root


def test_prepare_celebdf_then_eval(celebdf_root, tmp_path, capsys):
    ws = tmp_path / "ws"
    code, out, err = run(["--workspace", str(ws), "prepare", "celebdf", str(celebdf_root), "--frames", "2"], capsys)
    assert code == 0, err
    assert "dfake eval --dataset celebdf" in out
    with FaceCache(ws / "data" / "celebdf.h5") as cache:
        index = cache.index
        assert not cache.has_latents and cache.attrs["dataset"] == "Celeb-DF"
    # 2 real celebrities + 1 YouTube + 1 listed fake, 2 frames each; the held-out fake is not in the list
    assert sorted(index["video_id"].unique()) == [
        "Celeb-DF/Celeb-real/id0_0000", "Celeb-DF/Celeb-real/id1_0000", "Celeb-DF/Celeb-synthesis/id0_id1_0000",
        "Celeb-DF/YouTube-real/00000"]
    assert len(index) == 8 and set(index["split"]) == {"test"} and set(index["role"]) == {"input"}
    assert index.groupby("video_id")["label"].first().tolist() == [0, 0, 1, 0]

    _tiny_checkpoint(ws / "runs" / "r1" / "best")
    code, out, err = run(["--workspace", str(ws), "eval", "--dataset", "celebdf", "--out", str(tmp_path / "rep")], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["datasets"]["celebdf"]["counts"]["videos"] == 4
    assert report["protocol"]["checkpoint_name"] == "r1/best" and report["protocol"]["frames_per_video"] == 2
    assert "Celeb-DF" in out and "AUC / EER" in out


def _tiny_checkpoint(best):
    import torch
    from safetensors.torch import save_file

    from dfake_cli.models.backbone import DetectorNet

    torch.manual_seed(0)
    net = DetectorNet("resnet10t", 32)
    best.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(best / "detector.safetensors"))
    (best / "detector.json").write_text(json.dumps({"backbone": "resnet10t", "image_size": 32}))


def _png(value):
    return png_bytes(value, 20)


def test_prepare_wdf_without_detection(tmp_path):
    base = tmp_path / "wdf" / "deepfake_in_the_wild"
    write_tar(base / "real_test" / "1.tar.gz", [(f"./1/real/7/{i}.png", _png(i)) for i in (10, 11, 12, 13)])
    write_tar(base / "fake_test" / "1.tar.gz", [(f"./1/fake/7/{i}.png", _png(200 + i)) for i in (5, 6)])
    ws = Workspace(tmp_path / "ws")
    result = prepare_testset(ws, "wdf", tmp_path / "wdf", frames=3, size=32, progress=False)
    assert result.prepared == 2 and result.faces == 5
    with FaceCache(ws.cache_path("wdf")) as cache:
        index = cache.index
        faces = cache.faces(np.arange(len(index)))
    assert faces.shape == (5, 32, 32, 3)
    real = index[index["label"] == 0]
    # 3 of frames 10..13, evenly spaced (linspace 0, 1.5, 3 rounded), keep their frame numbers
    assert real["video_id"].unique().tolist() == ["WildDeepfake/real_test/1_7"] and real["frame_index"].tolist() == [10, 12, 13]
    assert faces[index.index[index["frame_index"] == 13][0], 0, 0, 0] == 13
    assert not (ws.data_dir / "wdf.extract").exists()  # extracted frames are removed once the cache is whole


def test_prepare_folder_images_and_cache_name(tmp_path):
    import matplotlib.cbook as cbook

    hopper = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB").resize((256, 300)))
    root = tmp_path / "my images"
    for rel, img in [("real/a.png", hopper), ("fake/b.png", hopper[:, ::-1]), ("fake/blank.png", np.zeros_like(hopper))]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(img)).save(root / rel)
    assert default_cache_name("folder", root) == "folder-my-images"
    ws = Workspace(tmp_path / "ws")
    result = prepare_testset(ws, "folder", root, size=64, progress=False)
    assert result.prepared == 2 and result.skipped == {"no face found": 1}
    skipped = pd.read_csv(ws.skipped_path("folder-my-images"))
    assert skipped["path"].str.endswith("blank.png").tolist() == [True]
    with FaceCache(ws.cache_path("folder-my-images")) as cache:
        assert sorted(cache.index["video_id"]) == ["my images/fake/b.png", "my images/real/a.png"]


def test_prepare_errors_are_one_line(tmp_path, capsys):
    code, _, err = run(["--workspace", str(tmp_path / "ws"), "prepare", "celebdf", str(tmp_path)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "List_of_testing_videos.txt" in err
    (tmp_path / "real").mkdir()
    (tmp_path / "fake").mkdir()
    with pytest.raises(InputError, match="no images or videos"):
        prepare_testset(Workspace(tmp_path / "ws"), "diffswap", tmp_path, progress=False)
