"""The batched stage: CPU processes decode, ONE process holds the models and runs them over many videos.

    decode process 1 ─┐
    decode process 2 ─┼─ bounded queue of decoded videos (numpy arrays) ─> model process (this one):
    ...              ─┘     MTCNN + tracking + alignment per video, VAE encoder over the faces of
                            up to BATCH_VIDEOS videos at once, one shard per video as always

On CUDA this is the default (`stage="auto"`): the GPU is fed by every core instead of waiting for one
process's decode; `stage="batched"` asks for it on the CPU too (how the tests check that the cache is the
one the per-video path makes). Decode processes take whole groups (units.group_units), so an original is
still decoded once for all of its fakes: a fake's target frames are taken from its original's decode
when it covered them. Each decoded video is exactly what `UnitWorker._video` would read itself
(worker.Decoded), so the shards, and the cache, are the per-video path's.
"""

from __future__ import annotations

import os
import queue
import time
from typing import Callable, Optional

from dfake_cli.data.faces import FaceAlignConfig
from dfake_cli.data.prepare.units import Unit
from dfake_cli.data.prepare.worker import Decoded, UnitWorker, read_masks, wanted_frames

BATCH_VIDEOS = 8  # videos whose faces go through the VAE encoder together
QUEUE_VIDEOS = 16  # decoded videos waiting at most (memory: ~30 MB each at 640x480 x 32 frames, x2 for fakes)
_DONE = "done"


def decode_unit(unit: Unit, frames: int, lent: dict[int, object] | None) -> Decoded:
    """What the unit's worker would decode: its frames, its mask frames, and (a training fake) its
    target's frames at all of its own indices (any of them may be aligned); `lent`: the frames the
    group's original decoded, by index."""
    import numpy as np

    from dfake_cli.data.video import VideoReadError, read_frames

    t0 = time.perf_counter()
    out = Decoded()
    try:
        out.frames, idx = read_frames(unit.item.path, num=frames, indices=wanted_frames(unit))
        out.idx = np.asarray([int(i) for i in idx])
        out.masks = read_masks(unit, out.idx, out.frames.shape[1:3])
    except VideoReadError as exc:
        out.error = str(exc)
    if unit.target_path is not None and out.error is None:
        need = [int(i) for i in out.idx]
        if lent is not None and all(i in lent for i in need):
            out.target = {i: lent[i] for i in need}
        else:
            try:
                tframes, _ = read_frames(unit.target_path, indices=need)
                out.target = dict(zip(need, tframes))
            except VideoReadError as exc:
                out.target_error = str(exc)
    out.seconds = time.perf_counter() - t0
    return out


def _decode_groups(groups: list[list[Unit]], frames: int, out: "queue.Queue", parent_pid: int) -> None:
    """A decode process: every group given to it, in order; then one _DONE."""
    from dfake_cli.data.prepare.lifeline import die_with_parent

    die_with_parent(parent_pid)
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    torch.set_num_threads(1)
    for group in groups:
        lent = None
        for unit in group:
            if unit.item.kind != "video":  # images and face folders: read where they run
                out.put((unit, None))
                continue
            decoded = decode_unit(unit, frames, lent)
            if unit.target_path is None and unit.item.label == 0 and decoded.error is None:
                lent = dict(zip((int(i) for i in decoded.idx), decoded.frames))
            out.put((unit, decoded))
    out.put(_DONE)


def run_staged(groups: list[list[Unit]], config: FaceAlignConfig, frames: int, device: str, training: bool,
               sd: Optional[str], decoders: int, on_meta: Callable[[dict], None]) -> float:
    """Run `groups` with `decoders` decode processes feeding this process's models; returns start-up
    seconds (decode processes started and models loaded, wall time)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    decoders = max(1, min(decoders, len(groups)))
    q = ctx.Queue(maxsize=QUEUE_VIDEOS)
    procs = [ctx.Process(target=_decode_groups, args=(groups[k::decoders], frames, q, os.getpid()), daemon=True)
             for k in range(decoders)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    worker = UnitWorker(config, frames, device, training, sd)
    worker.warm()
    startup = time.perf_counter() - t0
    try:
        done, pending = 0, []
        while done < decoders:
            try:
                got = q.get(timeout=5.0)
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in procs):
                    raise RuntimeError("a decode process of the batched stage died; rerun to resume") from None
                continue
            if got == _DONE:
                done += 1
            else:
                pending.append(got)
            if len(pending) >= BATCH_VIDEOS or (pending and (done == decoders or q.empty())):
                for meta in worker.run_many(pending):
                    on_meta(meta)
                pending = []
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    return startup
