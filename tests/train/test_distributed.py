"""torchrun with 2 CPU processes (gloo): replicas stay bitwise identical, only rank 0 writes the run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

from helpers.traincache import tiny_config  # noqa: F401  (same tiny model settings as the in-process tests)


def test_two_gloo_processes_keep_identical_replicas(workspace):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "DFAKE_NO_PROGRESS": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "dfake_cli", "--workspace", str(workspace.root), "train", "--sd", "tiny", "--backbone", "test_efficientnet",
        "--batch-size", "2", "--steps", "3", "--lr", "1e-3", "--run-name", "ddp", "--device", "cpu",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = workspace.run_dir("ddp")
    replicas = json.loads((run_dir / "replicas.json").read_text())
    assert replicas["step"] == 3 and len(replicas["digests"]) == 2
    assert replicas["digests"][0] == replicas["digests"][1]
    state = json.loads((run_dir / "last" / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and state["global_batch"] == 4 and state["written_by_rank"] == 0
    with open(run_dir / "samples.csv", newline="") as f:
        steps = list(csv.DictReader(f))
    assert [int(r["step"]) for r in steps] == [1, 2, 3]
    assert all(len(r["rows"].split()) == 4 for r in steps)  # both ranks' halves of each global batch
    assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("events.")) == [
        "best", "config.json", "last", "metrics.csv", "replicas.json", "samples.csv"]
