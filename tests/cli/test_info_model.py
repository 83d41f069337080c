"""`dfake info` reports the SD-1.5 model's trainable parameter count (built on the meta device)."""

import json

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
