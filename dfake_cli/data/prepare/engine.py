"""`prepare_manifest`: options checked, finished caches recognised, units run, shards assembled.

Work is split into units, one per video (plus originals that only lend source faces); each unit ends in
one atomic shard, so a killed run resumes where it stopped and a finished cache reruns in seconds.
Under torchrun the units are split over the ranks and rank 0 assembles (distributed.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Optional

from dfake_cli import __version__
from dfake_cli.data import cache as cache_mod
from dfake_cli.data.prepare import testhooks
from dfake_cli.data.prepare.distributed import Ranks, join_ranks, rank_device
from dfake_cli.data.datasets import Manifest
from dfake_cli.data.faces import FaceAlignConfig
from dfake_cli.data.prepare.results import (
    PrepareResult, cache_options, option_diff, result_from_attrs, write_skipped_csv,
)
from dfake_cli.data.prepare.units import Unit, group_units, plan_units, select_items
from dfake_cli.data.prepare.worker import STAGES, UnitWorker
from dfake_cli.errors import InputError, RunError
from dfake_cli.io import printable
from dfake_cli.runtime import DEFAULT_MARGIN, DEFAULT_SIZE, check_device


MAX_SIZE = 1024  # a face crop side beyond this only costs memory (100000 px would be 30 GB per face)
MARGIN_RANGE = (0.5, 4.0)  # below: the crop cuts into the face; above: the face is a few pixels of context
MAX_WORKERS = 64


def check_options(frames: int, size: int, margin: float, workers: int = 1, where: str = "") -> None:
    """Refuse option values that would fail or produce a useless cache, before any work.

    `where` says where a value came from when it was not given on the command line (e.g. "copied from
    ffpp.h5"): a bad value inherited from an old cache is named as such.
    """
    src = f" ({where})" if where else ""
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise InputError(f"--frames {frames}: must be a whole number >= 1")
    if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= MAX_SIZE or size % 8:
        raise InputError(f"--size {size}{src}: must be a multiple of 8 between 16 and {MAX_SIZE} "
                         "(latents are size/8; 256 for SD-1.5)")
    lo, hi = MARGIN_RANGE
    if not isinstance(margin, (int, float)) or not math.isfinite(margin) or not lo <= margin <= hi:
        raise InputError(f"--margin {margin}{src}: must be a number between {lo} and {hi} (1.3 is the default)")
    if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= MAX_WORKERS:
        raise InputError(f"--workers {workers}: must be between 1 and {MAX_WORKERS} (or 0 for one per CPU core)")


def _check_options(frames: int, size: int, margin: float, workers: int, device: str) -> int:
    """Validate before any work; returns the worker count (0 = one per CPU core, 1 on CUDA)."""
    check_options(frames, size, margin, workers)
    check_device(device)
    if workers == 0:  # auto: MTCNN/VAE scale better as single-thread processes than as threads (measured 3x)
        workers = 1 if device.startswith("cuda") else max(1, min(os.cpu_count() or 1, 8))
    return workers


def _finished(cache_path: Path, skipped_csv: Path, options: dict, t_start: float) -> Optional[PrepareResult]:
    """The result of an already finished cache with the same options; InputError when they differ."""
    existing = cache_mod.cache_attrs(cache_path)
    if existing is not None:
        diff = option_diff(json.loads(existing.get("options", "{}")), options)
        if not diff:
            return result_from_attrs(cache_path, skipped_csv if skipped_csv.is_file() else None, existing,
                                     time.perf_counter() - t_start)
        raise InputError(
            f"{cache_path} was prepared with different options ({'; '.join(diff)}): "
            f"pass --name NEW for a second cache, or delete {cache_path}"
        )
    if cache_path.exists():
        raise InputError(f"{cache_path} exists but is not a finished dfake cache: delete it and run again")
    return None


def parts_dir(cache_path: Path) -> Path:
    """`<name>.parts/` next to the cache: the shards of a preparation in progress."""
    return cache_path.with_name(cache_path.name[: -len(cache_path.suffix)] + ".parts")


def content_key(options: dict) -> str:
    """What a shard's content depends on (beyond its unit): a changed option never reuses a stale shard."""
    keys = ("frames", "size", "margin", "training", "sd_identity", "align")
    spec = {k: options[k] for k in keys}
    if options["training"]:  # shards written before they held flipped-face latents are not reused
        spec["latents"] = "moments+flipped"
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()


STAGE_CHOICES = ("auto", "video", "batched")


def run_units(todo: list[Unit], config: FaceAlignConfig, frames: int, device: str, training: bool,
              sd: Optional[str], workers: int, on_meta: Callable[[dict], None], stage: str = "video") -> float:
    """Run `todo` in this process (one worker) or in a pool of worker processes, an original and the fakes
    it lends its frames to in one worker (units.group_units); returns start-up seconds (worker start +
    model loading, wall time), which benchmarks report apart from the steady rate. `stage="batched"`:
    `workers` decode processes (one per core but one when 1) feed one process that runs the models."""
    if not todo:
        return 0.0
    groups = group_units(todo)
    if stage == "batched":  # decode processes feeding one model process (stage.py)
        from dfake_cli.data.prepare.stage import run_staged

        decoders = workers if workers > 1 else max(1, min(8, (os.cpu_count() or 2) - 1))
        return run_staged(groups, config, frames, device, training, sd, decoders, on_meta)
    if workers == 1:
        t0 = time.perf_counter()
        worker = UnitWorker(config, frames, device, training, sd)
        worker.warm()
        startup = time.perf_counter() - t0
        for unit in (u for group in groups for u in group):
            on_meta(worker.run(unit))
        return startup
    from dfake_cli.data.prepare.pool import run_pool

    return run_pool(groups, config, frames, device, training, sd, workers, on_meta)


def _cache_attrs(manifest: Manifest, config: FaceAlignConfig, options: dict, frames: int, training: bool,
                 sd_id: str, scaling: float, limit: Optional[int]) -> dict:
    return {
        "dataset": manifest.dataset, "root": printable(manifest.root), "sd_identity": sd_id,
        "latent_scaling": scaling, "size": config.size, "margin": config.margin,
        "frames_per_video": frames, "dfake_version": __version__, "created": cache_mod.now_iso(),
        "align": json.dumps(config.to_dict()), "training": training,
        "limit": -1 if limit is None else int(limit), "options": json.dumps(options, sort_keys=True),
        "score": "(cos(mean_input, mean_branch) + 1) / 2 over flattened VAE latent means",
        "labels": "0 real, 1 fake", "notes": json.dumps(manifest.notes),
    }


def assemble_units(units: list[Unit], manifest: Manifest, cache_path: Path, skipped_csv: Path,
                   skipped: list[tuple[str, str, str, str]], attrs: dict, training: bool, size: int,
                   videos: int) -> PrepareResult:
    """Shards -> cache, with the skip list and the summary a rerun shows written before it is complete."""
    metas = [cache_mod.read_shard_meta(u.shard) for u in units]
    for m in metas:
        if m["status"] != "ok" and m.get("is_input", True):
            skipped.append((m["video_id"], m["path"], m["reason"], m.get("detail", "")))
    if training:  # recorded by the workers that loaded the VAE
        attrs["latent_scaling"] = next((float(m["latent_scaling"]) for m in metas if m.get("latent_scaling")),
                                       attrs["latent_scaling"])
    input_units = [m for m in metas if m.get("is_input", True)]
    result = PrepareResult(
        cache_path=cache_path, skipped_csv=skipped_csv, videos=videos,
        frames=sum(int(m.get("frames_read", 0)) for m in input_units),
        no_face_frames=sum(int(m.get("no_face", 0)) for m in input_units),
        notes=list(manifest.notes),
    )

    def finish(h, stats: cache_mod.AssembleStats) -> None:
        skipped.extend(stats.skipped)
        result.skipped = dict(Counter(r[2] for r in skipped))
        result.dropped_frames = stats.dropped_frames
        ok = {m["video_id"] for m in input_units if m["status"] == "ok"} - {r[0] for r in stats.skipped}
        result.prepared = len(ok)
        write_skipped_csv(skipped_csv, skipped)
        h.attrs["summary"] = json.dumps({
            "videos": result.videos, "prepared": result.prepared, "frames": result.frames,
            "faces": stats.inputs, "rows": stats.rows, "no_face_frames": result.no_face_frames,
            "skipped": result.skipped, "dropped_frames": stats.dropped_frames,
        })

    failure = None
    try:
        stats = cache_mod.assemble([u.shard for u in units], cache_path, attrs, training, size,
                                   before_complete=finish)
    except OSError as exc:  # a full disk, a quota, an I/O error: the shards stay, a rerun only assembles
        failure = exc.strerror or " ".join(str(exc).split())
    if failure is not None:
        # The traceback (and the h5py objects of the failed write in its frames) went with the except
        # clause; collect now, so that h5py does not close them during interpreter shutdown (a segfault).
        import gc

        gc.collect()
        raise RunError(f"cannot write {cache_path}: {failure}; free space in {cache_path.parent} and run the "
                       "same command again (finished videos are kept)")
    result.rows = stats.rows
    result.faces = stats.inputs
    return result


def prepare_manifest(manifest: Manifest, cache_path: str | Path, **options) -> PrepareResult:
    """Prepare every item of `manifest` into the cache at `cache_path` (resumable, atomic).

    training=True pairs FF++ fakes with their source/target faces and stores SD-VAE latent moments and
    weight targets; False stores faces and the index only (source_row = target_row = -1, no /latents).
    `stage`: "video" runs each video start to end in one worker; "batched" has CPU processes decode for
    one process that holds the models (stage.py; the same cache); "auto" is "batched" on CUDA.
    Holds `<name>.lock` next to the cache: two preparations of one cache never run at once (the api layer
    takes the same lock earlier, around parsing; the nested hold is a no-op).
    """
    from dfake_cli.workspace import hold_lock

    cache_path = Path(cache_path)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    with hold_lock(cache_path.with_suffix(".lock"), f"prepare of {cache_path.stem!r}"):
        return _prepare_manifest(manifest, cache_path, **options)


def _prepare_manifest(
    manifest: Manifest, cache_path: str | Path, *, frames: int = 32, size: int = DEFAULT_SIZE, margin: float = DEFAULT_MARGIN,
    device: str = "cpu", workers: int = 1, limit: Optional[int] = None, training: bool = False,
    sd: Optional[str] = None, skipped_csv: str | Path | None = None, progress: bool = True,
    align: Optional[FaceAlignConfig] = None, stage: str = "auto",
) -> PrepareResult:
    """The body of `prepare_manifest`, run under the cache's lock."""
    t_start = time.perf_counter()
    workers = _check_options(frames, size, margin, workers, device)
    if stage not in STAGE_CHOICES:
        raise InputError(f"--stage {stage}: must be one of {', '.join(STAGE_CHOICES)}")
    if stage == "auto":
        stage = "batched" if device.startswith("cuda") else "video"
    ranks = join_ranks()
    try:
        return _prepare(manifest, Path(cache_path), frames=frames, size=size, margin=margin,
                        device=rank_device(device, ranks), workers=workers, limit=limit, training=training, sd=sd,
                        skipped_csv=skipped_csv, progress=progress and ranks.is_main, align=align, ranks=ranks,
                        t_start=t_start, stage=stage)
    finally:
        ranks.close()


def _prepare(
    manifest: Manifest, cache_path: Path, *, frames: int, size: int, margin: float, device: str, workers: int,
    limit: Optional[int], training: bool, sd: Optional[str], skipped_csv: str | Path | None, progress: bool,
    align: Optional[FaceAlignConfig], ranks: Ranks, t_start: float, stage: str,
) -> PrepareResult:
    skipped_csv = Path(skipped_csv) if skipped_csv is not None else cache_path.with_suffix(".skipped.csv")
    config = align or FaceAlignConfig()
    config = FaceAlignConfig.from_dict({**config.to_dict(), "size": size, "margin": margin})

    sd_id = ""
    if training:
        from dfake_cli.models.sd import sd_identity

        if sd is None:
            raise InputError("a training cache needs a Stable Diffusion for its latents: pass --sd PATH (or set "
                             "$DFAKE_SD; 'tiny' for the demo SD)")
        sd_id = sd_identity(sd)
    selected = select_items(manifest.items, limit)
    options = cache_options(manifest, selected, frames, config, training, sd_id, limit)
    done = _finished(cache_path, skipped_csv, options, t_start)
    if done is not None:
        return done

    parts = parts_dir(cache_path)
    parts.mkdir(parents=True, exist_ok=True)
    if ranks.is_main:  # an assembly killed by SIGKILL; we hold the cache's lock, so it is nobody else's
        for stale in cache_path.parent.glob(f".{cache_path.name}.*.partial.tmp"):
            stale.unlink(missing_ok=True)
    content = content_key(options)
    skipped: list[tuple[str, str, str, str]] = [tuple(list(s) + [""] * (4 - len(s)))[:4] for s in manifest.skipped]

    from dfake_cli.console import progress as make_progress

    bar = make_progress(unit="frames")
    if not progress:
        bar.disable = True
    timings = {k: 0.0 for k in STAGES}
    processed = 0
    with bar:
        if training:
            scan_task = bar.add_task("scanning videos", total=None, rate="", info="")
            units, extra = plan_units(manifest, selected, frames, training, parts, skipped,
                                      lambda: bar.advance(scan_task))
            bar.update(scan_task, visible=False)
            timings["scan"] += extra.get("scan", 0.0)
        else:
            units, _ = plan_units(manifest, selected, frames, training, parts, skipped)
        for unit in units:
            unit.shard = parts / f"{unit.key(content)}.npz"
        mine = [u for group in ranks.share(group_units(units)) for u in group]  # all of them in one process
        todo = [u for u in mine if not cache_mod.shard_is_usable(u.shard)]  # a damaged shard is redone
        task = bar.add_task(f"prepare {manifest.dataset}", total=len(mine), completed=len(mine) - len(todo),
                            rate="", info="")
        frames_done, t_loop = 0, time.perf_counter()

        def on_meta(meta: dict) -> None:
            nonlocal frames_done, processed
            processed += 1
            frames_done += int(meta.get("frames_read", 0))
            for k, v in meta.get("timings", {}).items():
                timings[k] = timings.get(k, 0.0) + float(v)
            rate = frames_done / max(1e-9, time.perf_counter() - t_loop)
            bar.update(task, advance=1, rate=f"{rate:.1f} frames/s", info=meta["video_id"].rsplit("/", 1)[-1])
            testhooks.after_shard(processed)  # no-op unless a test asks the run to halt here

        timings["startup"] = run_units(todo, config, frames, device, training, sd, workers, on_meta, stage)

    ranks.barrier()  # every rank's shards are written
    t0 = time.perf_counter()
    if ranks.is_main:
        attrs = _cache_attrs(manifest, config, options, frames, training, sd_id, float("nan"), limit)
        result = assemble_units(units, manifest, cache_path, skipped_csv, skipped, attrs, training, config.size,
                                len(selected))
        shutil.rmtree(parts, ignore_errors=True)
    ranks.barrier()  # rank 0 has assembled the cache
    if not ranks.is_main:
        result = result_from_attrs(cache_path, skipped_csv, cache_mod.cache_attrs(cache_path) or {}, 0.0)
        result.already_prepared = False
    timings["assemble"] += time.perf_counter() - t0
    result.processed_units = processed
    result.workers = workers
    result.stage = stage
    result.timings = timings
    result.elapsed = time.perf_counter() - t_start
    return result
