"""End to end on tiny caches: a brightness "detector" whose every score is known, and a real tiny Detector."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from dfake_cli.errors import InputError
from dfake_cli.api.evaluate import run_eval
from dfake_cli.evaluation.evaluate import evaluate_cache, select_rows
from dfake_cli.evaluation.synthetic import SyntheticVideo, write_cache
from dfake_cli.workspace import Workspace

S = 16


class Brightness:
    """score = mean pixel value / 255: a face filled with value v scores v / 255 exactly."""

    def predict_proba(self, faces):
        return faces.reshape(len(faces), -1).mean(axis=1) / 255.0


def _faces(values):
    return np.stack([np.full((S, S, 3), v, np.uint8) for v in values])


@pytest.fixture()
def ws(tmp_path):
    ws = Workspace(tmp_path / "ws").ensure()
    # FF++-like: reals score 0.2, Deepfakes 0.8 (caught), NeuralTextures 0.1 (missed); both fakes are
    # named 000_003 but are different videos; train rows must never be evaluated.
    write_cache(ws.cache_path("ffpp"), [
        SyntheticVideo("FF++/youtube/000", 0, "youtube", _faces([51] * 4)),
        SyntheticVideo("FF++/youtube/003", 0, "youtube", _faces([51] * 4)),
        SyntheticVideo("FF++/Deepfakes/000_003", 1, "Deepfakes", _faces([204] * 4)),
        SyntheticVideo("FF++/NeuralTextures/000_003", 1, "NeuralTextures", _faces([25] * 4)),
        SyntheticVideo("FF++/youtube/100", 0, "youtube", _faces([255] * 4), split="train"),
    ], dataset="FF++")
    write_cache(ws.cache_path("celebdf"), [
        SyntheticVideo("Celeb-DF/Celeb-real/id0_0000", 0, "Celeb-real", _faces([10, 20, 30, 40, 50, 60])),
        SyntheticVideo("Celeb-DF/Celeb-synthesis/id0_id1_0000", 1, "Celeb-synthesis", _faces([200, 35, 210, 220, 230, 240])),
    ], dataset="Celeb-DF")
    write_cache(ws.cache_path("diffswap"), [
        SyntheticVideo("DiffSwap/real/a.png", 0, "real", _faces([0])),
        SyntheticVideo("DiffSwap/real/b.png", 0, "real", _faces([100])),
        SyntheticVideo("DiffSwap/fake/c.png", 1, "fake", _faces([150])),
    ], dataset="DiffSwap")
    write_cache(ws.cache_path("onlyreal"), [SyntheticVideo("X/real/1", 0, "real", _faces([1, 2]))], dataset="X")
    write_cache(ws.cache_path("wide"), [SyntheticVideo("W/real/1", 0, "real", _faces([1])),
                                        SyntheticVideo("W/fake/1", 1, "fake", _faces([9]))], dataset="W",
                attrs={"margin": 2.0})
    return ws


def test_report_files_and_values(ws, tmp_path):
    out = run_eval(ws, ["ffpp", "celebdf", "diffswap"], detector=Brightness(), out=tmp_path / "r", progress=False)
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert set(report) >= {"protocol", "datasets", "average", "dfake_version", "created"}
    assert list(report["datasets"]) == ["ffpp", "celebdf", "diffswap"]

    ff = report["datasets"]["ffpp"]
    # two fakes named 000_003 under different methods stay two videos; the train video is not evaluated
    assert ff["counts"] == {"videos": 4, "real_videos": 2, "fake_videos": 2, "frames": 16, "skipped": 0}
    assert ff["video"]["n"] == 4
    assert ff["frame"]["auc"] == pytest.approx(0.5) and ff["frame"]["acc_real"] == 1.0 and ff["frame"]["acc_fake"] == 0.5
    assert ff["methods"]["Deepfakes"]["frame"]["auc"] == 1.0 and ff["methods"]["Deepfakes"]["video"]["eer"] == 0.0
    assert ff["methods"]["NeuralTextures"]["frame"]["auc"] == 0.0 and ff["methods"]["NeuralTextures"]["fake_videos"] == 1

    cd = report["datasets"]["celebdf"]
    # frame level: 35 ranks below 40, 50, 60 -> 3 of 36 pairs wrong; video level: 0.137 vs 0.747 -> perfect
    assert cd["frame"]["auc"] == pytest.approx(33 / 36) and cd["video"]["auc"] == 1.0
    assert cd["display_name"] == "Celeb-DF" and "methods" not in cd

    ds = report["datasets"]["diffswap"]
    assert ds["level"] == "image" and ds["video"] is None and ds["frame"]["auc"] == 1.0

    avg = report["average"]
    assert avg["frame"]["auc"] == pytest.approx(np.mean([0.5, 33 / 36, 1.0]))
    assert avg["video"]["n_datasets"] == 2
    assert report["protocol"]["threshold"] == 0.5 and report["protocol"]["split"] == "test"
    assert report["protocol"]["alignment"] == {"size": S, "margin": 1.3, "frames_per_video": 4}
    assert report["notes"] == []

    pred = pd.read_csv(tmp_path / "r" / "predictions.csv")
    assert list(pred.columns) == ["dataset", "video_id", "frame_index", "label", "score"]
    assert len(pred) == 16 + 12 + 3 and set(pred["dataset"]) == {"ffpp", "celebdf", "diffswap"}
    assert pred.loc[pred.video_id == "FF++/Deepfakes/000_003", "score"].tolist() == pytest.approx([0.8] * 4)
    assert (tmp_path / "r" / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.out_dir == tmp_path / "r"


def test_frames_option_takes_evenly_spaced_frames(ws, tmp_path):
    out = run_eval(ws, ["celebdf"], detector=Brightness(), out=tmp_path / "r", frames=3, progress=False)
    assert sorted(out.predictions["frame_index"].tolist()) == [0, 0, 2, 2, 5, 5]
    assert out.report["protocol"]["frames_per_video"] == 3


def test_select_rows_keeps_test_inputs_only():
    index = pd.DataFrame({
        "video_id": ["a", "a", "a", "b", "b"], "frame_index": [0, 1, 2, 0, 1],
        "split": ["test", "test", "test", "train", "test"], "role": ["input", "reference", "input", "input", "input"],
    })
    assert select_rows(index).tolist() == [0, 2, 4]
    assert select_rows(index, frames=1).tolist() == [0, 4]


def test_all_means_every_cache_with_test_rows(ws, tmp_path):
    with pytest.raises(InputError, match="'onlyreal' has only real faces"):
        run_eval(ws, ["all"], detector=Brightness(), out=tmp_path / "r", progress=False)
    ws.cache_path("onlyreal").unlink()
    out = run_eval(ws, ["all"], detector=Brightness(), out=tmp_path / "r", progress=False)
    assert sorted(out.report["datasets"]) == ["celebdf", "diffswap", "ffpp", "wide"]
    # a set cropped with another margin is flagged: its numbers are not comparable
    assert len(out.report["notes"]) == 1 and "wide (16, 2.0)" in out.report["notes"][0]


def test_missing_dataset_and_missing_run(ws, tmp_path):
    with pytest.raises(InputError, match="run 'dfake prepare dfdcp ROOT'"):
        run_eval(ws, ["dfdcp"], detector=Brightness(), progress=False)
    with pytest.raises(InputError, match="run 'dfake prepare folder ROOT --name folder-mine'"):
        run_eval(ws, ["folder-mine"], detector=Brightness(), progress=False)
    with pytest.raises(InputError, match="no trained run"):
        run_eval(ws, ["celebdf"], progress=False)


def test_evaluate_cache_reports_throughput(ws):
    res = evaluate_cache(Brightness(), ws.cache_path("celebdf"), batch_size=5, progress=False)
    assert res.n_faces == 12 and res.faces_per_s > 0 and res.seconds > 0
    assert res.predictions["score"].round(6).tolist()[:3] == pytest.approx([10 / 255, 20 / 255, 30 / 255], abs=1e-6)


def _tiny_checkpoint(run_dir):
    """A real detector export (detector.safetensors + detector.json) with a small random backbone."""
    import torch
    from safetensors.torch import save_file

    from dfake_cli.models.backbone import DetectorNet

    torch.manual_seed(0)
    net = DetectorNet("resnet10t", 32)
    best = run_dir / "best"
    best.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(best / "detector.safetensors"))
    (best / "detector.json").write_text(json.dumps(
        {"backbone": "resnet10t", "image_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3, "sd_identity": "tiny-test",
         "context_source": "tiny seeded clip text encoder", "backbone_pretrained": False}))
    return best


def test_real_detector_from_the_runs_best_checkpoint(ws, tmp_path):
    best = _tiny_checkpoint(ws.run_dir("run1"))
    out = run_eval(ws, ["celebdf", "diffswap"], out=tmp_path / "r", progress=False, precision="bf16", batch_size=4)
    proto = out.report["protocol"]
    assert proto["checkpoint"] == str(best) and proto["checkpoint_name"] == "run1/best"
    assert proto["checkpoint_sha256"] == hashlib.sha256((best / "detector.safetensors").read_bytes()).hexdigest()
    assert proto["sd_identity"] == "tiny-test" and proto["precision"] == "bf16"
    # where the text context and the backbone weights came from
    assert proto["context_source"] == "tiny seeded clip text encoder" and proto["backbone_pretrained"] is False
    scores = out.predictions["score"]
    assert len(scores) == 15 and scores.between(0, 1).all()


def test_scorer_accepts_a_module_with_preprocess_and_a_plain_function():
    import torch

    from dfake_cli.evaluation.evaluate import make_scorer

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(4.0))

        def preprocess(self, faces):
            return torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255.0 - 0.5

        def forward(self, x):
            return self.scale * x.mean(dim=(1, 2, 3)), None  # (logits, features)

    faces = _faces([0, 255])
    probs = make_scorer(Net())(faces)
    assert probs == pytest.approx(1 / (1 + np.exp([2.0, -2.0])))
    assert make_scorer(lambda f: f[:, 0, 0, 0] / 255.0)(faces) == pytest.approx([0.0, 1.0])
    with pytest.raises(InputError, match="preprocess"):
        make_scorer(torch.nn.Linear(1, 1))
