"""`dfake train` through the CLI: a short run, and one-line exit-2 errors for bad options and inputs."""

from __future__ import annotations

import json

import pytest

from helpers.clitools import run
from helpers.traincache import make_cache


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("ws")
    make_cache(root / "data" / "ffpp.h5", videos={"train": 2, "val": 1}, frames=2)
    return root


def test_train_no_guide_baseline_writes_a_run(ws, capsys, monkeypatch):
    monkeypatch.delenv("DFAKE_NO_PROGRESS", raising=False)  # progress stays on: it must go to stderr
    toml = ws / "quick.toml"
    toml.write_text('backbone = "test_efficientnet"\nbatch_size = 4\nlr = 1e-3\n')
    code, out, err = run(["--workspace", str(ws), "train", "--config", str(toml), "--no-guide", "--steps", "2",
                          "--run", "base", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)  # stdout is the one JSON document; progress and logs went to stderr
    assert "train" in err and "steps in" in err
    assert summary["step"] == 2 and summary["best_auc"] is not None
    run_dir = ws / "runs" / "base"
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["use_guide"] is False and saved["backbone"] == "test_efficientnet" and saved["steps"] == 2
    assert saved["backbone_pretrained"] is False and "starts from random weights" in err  # recorded and said
    assert saved["color_jitter"] == 0.0 and saved["cutout"] == 0.5 and saved["flip"] == 0.5  # the paper's recipe
    assert (run_dir / "best" / "model.safetensors").is_file() and (run_dir / "last" / "trainer_state.json").is_file()
    assert (run_dir / "metrics.csv").read_text().startswith("step,epoch,phase,total")
    # --resume --steps 3 continues the same run to step 3
    code, out, err = run(["--workspace", str(ws), "train", "--resume", "--run", "base", "--steps", "3", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["step"] == 3


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--lr", "-1"], "--lr"),
        (["--precision", "fp16"], "--precision"),
        (["--batch-size", "0"], "--batch-size"),
        (["--data", "missing"], "cache not found"),
        (["--config", "/nonexistent/x.toml"], "config file not found"),
        (["--resume", "--run", "never"], "no last/ checkpoint"),
        (["--sd", "/nonexistent/sd15.safetensors"], "--sd"),
        ([], "no Stable Diffusion given for a guided run"),  # no --sd, no $DFAKE_SD: never a silent tiny SD
        (["--sd", "tiny", "--select", "best"], "--select must be one of auc, loss, last"),
    ],
)
def test_bad_input_is_one_line_exit_2(ws, capsys, args, needle):
    code, _, err = run(["--workspace", str(ws), "train", "--backbone", "test_efficientnet", *args], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and needle in lines[0] and "Traceback" not in err
