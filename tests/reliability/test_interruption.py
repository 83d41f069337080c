"""Findings 8, 10 and 11: interruptions and faults at the worst moment.

- Replacing a checkpoint folder (`last/`): a kill at any step leaves a loadable `last/` (the old or the
  new one). Tested by stopping at every file-system step of the swap, with and without the atomic
  exchange, and loading what a rerun would find at that instant.
- Ctrl-C during an epoch-end validation: the resume redoes that validation, so best/ cannot miss it;
  Ctrl-C prints the one-line "interrupted ... run the same command again to resume".
- Disk full while assembling a cache: one line, exit 1, and no crash of h5py at exit.
"""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from helpers.clitools import run
from dfake_cli import io as dio


# ------------------------------------------------------------------------------------------ checkpoint swap


def _tiny_model():
    from dfake_cli.models.diffusionfake import DiffusionFake, DiffusionFakeConfig

    torch.manual_seed(0)
    return DiffusionFake(DiffusionFakeConfig(backbone="test_efficientnet", image_size=64, use_guide=False))


def _loadable_step(run_dir) -> int:
    """What a rerun finds in `run_dir` (after its own recovery): the step of a whole last/ checkpoint."""
    from dfake_cli.models.checkpoints import checkpoint_of_run
    from dfake_cli.models.config import DiffusionFakeConfig
    from dfake_cli.train.checkpoint import read_state

    found = checkpoint_of_run(run_dir)
    assert found is not None and found.name == "last", f"no loadable checkpoint in {sorted(os.listdir(run_dir))}"
    DiffusionFakeConfig.load(found)
    assert dio.read_safetensors(found / "model.safetensors")
    _, state = read_state(found)
    return int(state["step"])


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames"])
def test_kill_at_every_step_of_the_last_swap_leaves_a_loadable_last(tmp_path, monkeypatch, exchange):
    from dfake_cli.train.checkpoint import save_checkpoint

    model = _tiny_model()
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)
    run_dir = tmp_path / "run"
    save_checkpoint(model, run_dir / "last", opt, {"step": 1})
    if not exchange:
        monkeypatch.setattr(dio, "_exchange", lambda a, b: False)
    seen = []
    copytree, rmtree, busy = shutil.copytree, shutil.rmtree, []

    def at_step(name, fn):
        def wrapped(*args, **kwargs):
            if not busy:  # a kill right now: copy the run folder as it is, load what a rerun would load
                busy.append(1)
                snap = tmp_path / f"snap{len(seen)}"
                copytree(run_dir, snap, symlinks=True)
                seen.append((name, _loadable_step(snap)))
                rmtree(snap)
                busy.clear()
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(dio.os, "replace", at_step("rename", os.replace))
    monkeypatch.setattr(dio.shutil, "rmtree", at_step("rmtree", shutil.rmtree))
    monkeypatch.setattr(dio, "_fsync_fd", at_step("fsync", dio._fsync_fd))
    monkeypatch.setattr(dio, "_exchange", at_step("exchange", dio._exchange))
    save_checkpoint(model, run_dir / "last", opt, {"step": 2})
    monkeypatch.undo()
    names = [n for n, _ in seen]
    assert ("exchange" in names) and (names.count("rename") >= (0 if exchange else 2)), names
    steps = [s for _, s in seen]
    assert set(steps) <= {1, 2} and steps[0] == 1  # the old checkpoint until the swap, then the new one
    assert _loadable_step(run_dir) == 2
    assert sorted(p.name for p in run_dir.iterdir()) == ["last"]  # nothing left aside


def test_two_renames_killed_in_between_is_recovered_by_the_next_run(tmp_path, monkeypatch):
    """Where the file system has no atomic exchange: a kill between the renames leaves last/ aside."""
    from dfake_cli.train.checkpoint import save_checkpoint

    model = _tiny_model()
    run_dir = tmp_path / "run"
    save_checkpoint(model, run_dir / "last", None, None)
    monkeypatch.setattr(dio, "_exchange", lambda a, b: False)
    calls = []
    real = os.replace

    class Killed(BaseException):
        pass

    def replace(src, dst):
        calls.append(dst)
        if str(dst) == str(run_dir / "last") and (run_dir / ".last.old").exists():
            raise Killed  # after last/ went aside, before the new one moved in
        return real(src, dst)

    monkeypatch.setattr(dio.os, "replace", replace)
    with pytest.raises(Killed):
        save_checkpoint(model, run_dir / "last", None, None)
    monkeypatch.undo()
    assert not (run_dir / "last").exists()
    from dfake_cli.models.checkpoints import checkpoint_of_run

    assert checkpoint_of_run(run_dir) == run_dir / "last"  # put back by the reader
    assert (run_dir / "last" / "model.safetensors").is_file()


# ------------------------------------------------------------------------------------ Ctrl-C in training


def test_ctrl_c_during_epoch_end_validation_is_redone_on_resume(tmp_path, monkeypatch):
    from dfake_cli.train import trainer as T
    from dfake_cli.workspace import Workspace
    from helpers.traincache import make_cache, tiny_config

    ws = Workspace(tmp_path / "ws").ensure()
    make_cache(ws.data_dir / "ffpp.h5", videos={"train": 2, "val": 1}, frames=1)
    cfg = dict(steps=2, batch_size=2, run="v", val_losses=False, use_guide=False)  # 2 steps = 1 epoch
    real_validate = T.validate
    calls = []

    def interrupted_validate(*args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt  # Ctrl-C in the first epoch-end validation

    monkeypatch.setattr(T, "validate", interrupted_validate)
    with pytest.raises(KeyboardInterrupt):
        T.train(tiny_config(**cfg), ws)
    monkeypatch.setattr(T, "validate", real_validate)
    assert calls == [1]
    first_epoch_end = T.read_state(ws.run_dir("v") / "last")[1]["step"]
    assert first_epoch_end == 2
    assert not (ws.run_dir("v") / "best").exists()

    validated = []

    def spy(*args, **kwargs):
        out = real_validate(*args, **kwargs)
        validated.append(out)
        return out

    monkeypatch.setattr(T, "validate", spy)
    result = T.train(tiny_config(resume=True, **cfg), ws)
    import pandas as pd

    val_steps = pd.read_csv(ws.run_dir("v") / "metrics.csv").query("phase == 'val'")["step"].tolist()
    assert val_steps == [first_epoch_end]  # the interrupted validation was redone, once
    assert (ws.run_dir("v") / "best").is_dir() and result.best_step is not None


def test_ctrl_c_prints_the_resume_line(capsys, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt  # Ctrl-C while the command runs

    monkeypatch.setattr("dfake_cli.workspace.Workspace.resolve", classmethod(lambda cls, p=None: interrupted()))
    code, out, err = run(["info"], capsys)
    assert code == 130
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and "run the same command again to resume" in lines[0]


# ------------------------------------------------------------------------------------------- disk full


_DISK_FULL = textwrap.dedent("""
    import errno, sys
    import numpy as np
    from dfake_cli.cli.main import main
    from dfake_cli.data.cache import assembly

    real = assembly.read_shard
    def full(path, with_faces=True):
        if with_faces:  # the first face block written into the temporary cache: the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, with_faces)
    assembly.read_shard = full
    main(["--workspace", sys.argv[1], "prepare", "wdf", sys.argv[2], "--frames", "1", "--size", "16",
          "--workers", "1"])
""")


def test_disk_full_during_assembly_is_one_line_and_no_crash_at_exit(tmp_path):
    from helpers.tartools import png_bytes, write_tar

    base = tmp_path / "wdf" / "deepfake_in_the_wild"
    write_tar(base / "real_test" / "1.tar.gz", [("./1/real/5/1.png", png_bytes(10, 8))])
    write_tar(base / "fake_test" / "1.tar.gz", [("./1/fake/7/1.png", png_bytes(100, 8))])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "DFAKE_NO_PROGRESS": "1"}
    p = subprocess.run([sys.executable, "-c", _DISK_FULL, str(tmp_path / "ws"), str(tmp_path / "wdf")],
                       capture_output=True, text=True, env=env, timeout=300)
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert p.returncode == 1, p.stderr
    assert len(lines) == 1 and "No space left" in lines[0] and "wdf.h5" in lines[0], p.stderr
    assert not list((tmp_path / "ws" / "data").glob(".wdf.h5.*"))  # the temporary cache is gone
    assert (tmp_path / "ws" / "data" / "wdf.parts").is_dir()  # the shards are kept for the rerun
