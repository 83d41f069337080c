"""Finding 5: two processes on one cache or one run.

A workspace lock (a file holding the holder's pid, host and start time, flock-ed so that the kernel
frees it when the holder dies) guards the preparation of one cache name and a training run. The second
process gets one line naming the holder and touches nothing: no stray `.parts/`, and the holder's
temporary files are left alone. A lock left by a dead process is taken over.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from helpers.clitools import run
from dfake_cli.workspace import Workspace, hold_lock, read_lock

_HOLDER = textwrap.dedent("""
    import sys
    from dfake_cli.workspace import hold_lock
    with hold_lock(sys.argv[1], "test holder"):
        print("held", flush=True)
        sys.stdin.readline()   # hold until the test closes our stdin
""")


@pytest.fixture()
def holder():
    """Start a process that holds a lock file until the test is done with it (no sleeps: it says 'held')."""
    procs = []

    def start(lock_path):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        p = subprocess.Popen([sys.executable, "-c", _HOLDER, str(lock_path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env)
        procs.append(p)
        assert p.stdout.readline().strip() == "held"
        return p

    yield start
    for p in procs:
        p.stdin.close()
        p.wait(timeout=30)


def _folder_tree(root):
    for cls in ("real", "fake"):
        (root / cls).mkdir(parents=True)
        Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(root / cls / "a.png")
    return root


def test_second_prepare_of_one_name_gets_one_line_naming_the_holder(tmp_path, capsys, holder):
    ws = Workspace(tmp_path / "ws").ensure()
    proc = holder(ws.cache_lock("mine"))
    theirs = ws.data_dir / ".mine.h5.abc123.partial.tmp"  # the holder's assembly in progress
    theirs.write_bytes(b"half written")
    code, out, err = run(["--workspace", ws.root, "prepare", "folder", _folder_tree(tmp_path / "t"), "--name", "mine",
                          "--workers", "1"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"pid {proc.pid}" in lines[0] and socket.gethostname() in lines[0]
    assert "already running" in lines[0]
    assert theirs.read_bytes() == b"half written"
    assert not (ws.data_dir / "mine.parts").exists() and not ws.cache_path("mine").exists()


def test_lock_records_holder_and_is_released(tmp_path):
    path = tmp_path / "x.lock"
    with hold_lock(path, "prepare of 'x'"):
        rec = read_lock(path)
        assert rec["pid"] == os.getpid() and rec["host"] == socket.gethostname() and rec["what"] == "prepare of 'x'"
    assert not path.exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / "x.lock"
    path.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": "earlier", "what": "x"}))
    with hold_lock(path, "prepare of 'x'") as stale:
        assert stale["pid"] == dead.pid  # detected and reported to the caller
        assert read_lock(path)["pid"] == os.getpid()


def test_second_training_of_one_run_is_refused(tmp_path, holder):
    from dfake_cli.errors import InputError
    from dfake_cli.train.trainer import train
    from helpers.traincache import make_cache, tiny_config

    ws = Workspace(tmp_path / "ws").ensure()
    make_cache(ws.data_dir / "ffpp.h5", videos={"train": 2, "val": 1}, frames=2)
    proc = holder(ws.run_lock("t"))
    with pytest.raises(InputError, match=f"pid {proc.pid}"):
        train(tiny_config(steps=1, run="t", val_losses=False), ws)
    assert not (ws.run_dir("t") / "last").exists()
