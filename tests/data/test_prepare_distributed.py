"""`torchrun ... -m dfake_cli prepare`: two CPU (gloo) ranks give the single-process cache; a killed rank resumes.

Real processes on the FF++ sample data at tiny sizes (2 frames, 64 px, Deepfakes, one video per method
and split). The kill is deterministic: DFAKE_TEST_HALT_AFTER_SHARDS makes each rank stop after its first
shard and say so; the test blocks on that line, SIGKILLs that rank, and torchrun ends the other one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
ROOT = REPO / "sample_data" / "FaceForensics++"
ARGS = ["prepare", "ff++", str(ROOT), "--sd", "tiny", "--methods", "Deepfakes", "--limit", "1", "--frames", "2", "--size", "64",
        "--workers", "1"]


def _env(**extra: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "DFAKE_NO_PROGRESS": "1", **extra}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def _torchrun(ws: Path) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "dfake_cli", "--workspace", str(ws), *ARGS]


def _datasets(path: Path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as h:
        h.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    """The reference: the same command in one process."""
    if not ROOT.is_dir():
        pytest.skip("sample_data/FaceForensics++ is not in this checkout")
    ws = tmp_path_factory.mktemp("single")
    done = subprocess.run([sys.executable, "-m", "dfake_cli", "--workspace", str(ws), *ARGS], env=_env(),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return ws / "data" / "ffpp.h5"


def _assert_same_cache(got: Path, ref: Path) -> None:
    a, b = _datasets(got), _datasets(ref)
    assert sorted(a) == sorted(b)
    for name in b:
        if b[name].dtype.kind == "f":
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)  # NaN == NaN here
        else:
            assert (a[name] == b[name]).all(), name
    with h5py.File(got) as g, h5py.File(ref) as r:
        assert g.attrs["summary"] == r.attrs["summary"] and g.attrs["options"] == r.attrs["options"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for the rank pids")
def test_two_ranks_match_one_process_and_a_killed_rank_resumes(single, tmp_path):
    from dfake_cli.data.prepare.testhooks import HALT_AFTER_SHARDS, HALTED_LINE

    ws = tmp_path / "ws"
    parts = ws / "data" / "ffpp.parts"
    proc = subprocess.Popen(_torchrun(ws), env=_env(**{HALT_AFTER_SHARDS: "1"}), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        seen = []
        for line in proc.stderr:  # blocks until a rank halts (or torchrun exits: then the loop ends)
            seen.append(line)
            if HALTED_LINE.format(n=1) in line:
                break
        assert seen and HALTED_LINE.format(n=1) in seen[-1], f"no halt: {''.join(seen)[-2000:]}"
        ranks = _children(proc.pid)
        assert len(ranks) == 2
        os.kill(ranks[0], signal.SIGKILL)  # one rank dies; torchrun stops the other and fails
        for _ in proc.stderr:  # drain until torchrun exits
            pass
        assert proc.wait() != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stderr.close()
    written = len(list(parts.glob("*.npz")))
    assert 1 <= written and not (ws / "data" / "ffpp.h5").exists()

    done = subprocess.run(_torchrun(ws) + ["--json"], env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)  # exactly one JSON document: rank 0 reports, once
    assert 0 < report["processed_units"] and not report["already_prepared"]
    assert not parts.exists()
    _assert_same_cache(ws / "data" / "ffpp.h5", single)
