"""`dfake info` reports the SD-1.5 model's trainable parameter count (built on the meta device)."""

import json

import torch

import pytest

from dfake_cli.cli.main import main


def test_info_shows_sd15_trainable_parameters(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DFAKE_WORKSPACE", str(tmp_path / "ws"))
    with pytest.raises(SystemExit) as exc:
        main(["info", "--json"])
    assert exc.value.code == 0
    size = json.loads(capsys.readouterr().out)["model (SD-1.5, efficientnet_b4)"]
    assert 700e6 < size["trainable"] < 750e6 and size["frozen_sd"] == 859_520_964 + 83_653_863
    assert size["inference"] < 20e6 and size["guide"] > 350e6
    with pytest.raises(SystemExit):
        main(["info"])
    assert "trainable 72" in capsys.readouterr().out


def test_info_sd_says_what_a_stable_diffusion_provides(tmp_path, capsys, monkeypatch):
    from safetensors.torch import save_file

    monkeypatch.setenv("DFAKE_WORKSPACE", str(tmp_path / "ws"))
    with pytest.raises(SystemExit) as exc:
        main(["info", "--sd", "tiny", "--json"])
    assert exc.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sd identity"] == "tiny-v3-seed0" and data["sd context_source"] == "tiny seeded clip text encoder"
    # a single file without cond_stage_model.transformer.*: said so, with what loading will do
    path = tmp_path / "no_text.safetensors"
    save_file({"model.diffusion_model.out.2.bias": torch.zeros(4), "first_stage_model.quant_conv.bias": torch.zeros(8)},
              str(path))
    with pytest.raises(SystemExit):
        main(["info", "--sd", str(path), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["sd unet"].startswith("1 tensors") and data["sd text_encoder"] == "missing"
    assert data["sd context_source"].startswith("none") and "--zero-context" in data["sd context_source"]
