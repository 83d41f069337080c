"""Several videos at once: one single-thread worker process per core, each writing its own shards."""

from __future__ import annotations

import os
import time
from typing import Callable, Optional

from dfake_cli.data.faces import FaceAlignConfig
from dfake_cli.data.prepare.lifeline import die_with_parent
from dfake_cli.data.prepare.units import Unit
from dfake_cli.data.prepare.worker import UnitWorker

_WORKER: Optional[UnitWorker] = None
_READY_AT = 0.0  # time.time() when this worker had started and loaded its models


def _init_worker(config: dict, frames: int, device: str, training: bool, sd: Optional[str], threads: int,
                 parent_pid: int) -> None:
    global _WORKER, _READY_AT
    import signal

    die_with_parent(parent_pid)  # a SIGKILLed parent leaves no orphan worker behind
    import torch

    # Ctrl-C is the parent's to handle (one message, pending videos cancelled); a worker finishes its video.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(max(1, threads))
    _WORKER = UnitWorker(FaceAlignConfig.from_dict(config), frames, device, training, sd)
    _WORKER.warm()
    _READY_AT = time.time()


def _run_in_worker(group: list[Unit]) -> list[dict]:
    """One group (an original, then the fakes it lends its frames to) in order, in this worker."""
    assert _WORKER is not None
    metas = [_WORKER.run(unit) for unit in group]
    for meta in metas:
        meta["ready_at"] = _READY_AT
    return metas


def run_pool(todo: list[list[Unit]], config: FaceAlignConfig, frames: int, device: str, training: bool,
              sd: Optional[str], workers: int, on_meta: Callable[[dict], None]) -> float:
    """Several groups of videos (units.group_units) at once in spawned processes (torch and fork do not
    mix); each unit writes its own shard.

    Returns the start-up wall time: from starting the pool until the last worker that ran a unit had
    loaded its models.

    On Ctrl-C or an error the workers are terminated at once: a shard is renamed into place only when
    complete, so killing a worker mid-video loses nothing but that video, which the next run redoes.
    """
    import multiprocessing as mp

    threads = max(1, (os.cpu_count() or 1) // workers)
    started, ready = time.time(), 0.0
    pool = mp.get_context("spawn").Pool(
        workers, initializer=_init_worker,
        initargs=(config.to_dict(), frames, device, training, sd, threads, os.getpid()),
    )
    try:
        for metas in pool.imap_unordered(_run_in_worker, todo, chunksize=1):
            for meta in metas:
                ready = max(ready, float(meta.pop("ready_at", 0.0)))
                on_meta(meta)
    except BaseException:
        pool.terminate()
        pool.join()
        raise
    pool.close()
    pool.join()
    return max(0.0, ready - started)
