"""`dfake eval` as a command: the table, the files, and one-line errors."""

import json

import numpy as np
import pytest

from dfake_cli.evaluation.synthetic import SyntheticVideo, write_cache
from dfake_cli.workspace import Workspace
from helpers.clitools import run


@pytest.fixture()
def ws(tmp_path):
    ws = Workspace(tmp_path / "ws").ensure()
    rng = np.random.default_rng(0)
    for name, display in (("celebdf", "Celeb-DF"), ("dfdcp", "DFDC-P")):
        write_cache(ws.cache_path(name), [
            SyntheticVideo(f"{display}/real/{i}", 0, "real", rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8))
            for i in range(2)
        ] + [
            SyntheticVideo(f"{display}/fake/{i}", 1, "fake", rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8))
            for i in range(2)
        ], dataset=display)
    return ws


def _checkpoint(folder):
    import torch
    from safetensors.torch import save_file

    from dfake_cli.models.backbone import DetectorNet

    torch.manual_seed(0)
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in DetectorNet("resnet10t", 32).state_dict().items()},
              str(folder / "detector.safetensors"))
    (folder / "detector.json").write_text(json.dumps({"backbone": "resnet10t", "image_size": 32, "sd_identity": "x"}))
    return folder


def test_eval_all_with_explicit_checkpoint(ws, tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "elsewhere" / "ckpt")
    out_dir = tmp_path / "report"
    code, out, err = run(["--workspace", str(ws.root), "eval", "--dataset", "all", "--checkpoint", str(ckpt),
                          "--out", str(out_dir), "--frames", "2", "--batch-size", "3", "--precision", "fp32"], capsys)
    assert code == 0, err
    assert {p.name for p in out_dir.iterdir()} == {"report.json", "predictions.csv", "roc.png"}
    report = json.loads((out_dir / "report.json").read_text())
    assert list(report["datasets"]) == ["celebdf", "dfdcp"]
    assert report["protocol"]["checkpoint"] == str(ckpt) and report["protocol"]["frames_per_video"] == 2
    # the Table-1 layout: one column per dataset plus Avg
    for word in ("Celeb-DF", "DFDC-P", "Avg", "faces/s"):
        assert word in out


def test_eval_json_is_one_document_with_progress_on_stderr(ws, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DFAKE_NO_PROGRESS", raising=False)
    ckpt = _checkpoint(tmp_path / "ckpt")
    code, out, err = run(["--workspace", str(ws.root), "eval", "-d", "celebdf", "-c", str(ckpt), "--out",
                          str(tmp_path / "r"), "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert list(report["datasets"]) == ["celebdf"] and report["files"]["report.json"] == str(tmp_path / "r" / "report.json")
    assert "eval celebdf" in err


@pytest.mark.parametrize("args, message", [
    (["--dataset", "wdf"], "run 'dfake prepare wdf ROOT' first"),
    (["--dataset", "celebdf"], "no trained run"),
    (["--dataset", "celebdf", "--checkpoint", "nope"], "--checkpoint nope"),
    (["--dataset", "celebdf", "--precision", "fp16", "--checkpoint", "CKPT"], "'--precision': 'fp16' is not one of 'bf16', 'fp32'"),
])
def test_eval_errors_are_one_line(ws, tmp_path, capsys, args, message):
    if "CKPT" in args:
        args = [str(_checkpoint(tmp_path / "c")) if a == "CKPT" else a for a in args]
    code, _, err = run(["--workspace", str(ws.root), "eval", *args], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err
