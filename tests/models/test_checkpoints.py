"""--checkpoint resolution shared by eval, detect and reconstruct."""

import os
import time

import pytest

from dfake_cli.errors import InputError
from dfake_cli.models.checkpoints import resolve_checkpoint
from dfake_cli.workspace import Workspace


def _ckpt(folder):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    return folder


def test_resolution(tmp_path):
    ws = Workspace(tmp_path / "ws")
    assert resolve_checkpoint(ws) is None  # no runs at all
    old = _ckpt(ws.runs_dir / "old" / "last")
    past = time.time() - 100
    os.utime(ws.runs_dir / "old", (past, past))
    new_last = _ckpt(ws.runs_dir / "new" / "last")
    new_best = _ckpt(ws.runs_dir / "new" / "best")
    assert resolve_checkpoint(ws) == new_best  # latest run, validation-best first
    assert resolve_checkpoint(ws, "old") == old  # run name -> last/ when there is no best/
    assert resolve_checkpoint(ws, str(ws.runs_dir / "new")) == new_best  # run folder
    assert resolve_checkpoint(ws, str(new_last)) == new_last  # checkpoint folder
    (ws.runs_dir / "empty").mkdir()
    with pytest.raises(InputError, match="no checkpoint"):
        resolve_checkpoint(ws, "empty")
    with pytest.raises(InputError, match="no such run"):
        resolve_checkpoint(ws, "missing")
