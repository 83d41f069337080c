"""Prepare's worker processes die with their parent: SIGKILL the parent, every worker exits.

The parent is a small script that starts the engine's real worker pool (same initializer as
`dfake prepare --workers 2`), prints the workers' pids and blocks. The test kills it with SIGKILL and
then waits on each worker's pidfd, which becomes readable when that process has exited (an event, not
a poll loop); the generous limit only bounds a failure.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PARENT = textwrap.dedent("""
    import multiprocessing as mp
    import os
    import sys

    from dfake_cli.data.faces import FaceAlignConfig
    from dfake_cli.data.prepare import pool

    if __name__ == "__main__":
        args = (FaceAlignConfig().to_dict(), 4, "cpu", False, None, 1, os.getpid())
        workers = mp.get_context("spawn").Pool(2, initializer=pool._init_worker, initargs=args)
        print(" ".join(str(p.pid) for p in workers._pool), flush=True)
        sys.stdin.read()  # until killed
""")


def _wait_exit(pid: int, timeout_s: float) -> bool:
    """True once process `pid` has exited (or is already gone)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(timeout_s * 1000))
    finally:
        os.close(fd)


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs Linux pidfds to wait for non-child processes")
def test_workers_die_when_the_parent_is_killed(tmp_path: Path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    parent = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert all(_wait_exit(pid, timeout_s=120) for pid in pids)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
