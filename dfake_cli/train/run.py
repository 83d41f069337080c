"""The run folder and its bookkeeping: naming, resume checks, cache checks, replicas, the result.

    runs/<run>/config.json   the resolved TrainConfig
    runs/<run>/metrics.csv   every logged training step and every validation
    runs/<run>/samples.csv   the cache rows of every step (all ranks), to audit what data a run saw
    runs/<run>/best/         the model with the best validation frame AUC
    runs/<run>/last/         the latest model + trainer state (what --resume continues from)
    runs/<run>/replicas.json DDP: every rank's parameter digest
    runs/<run>/events.*      TensorBoard events, when tensorboard is installed
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from dfake_cli.errors import InputError, RunError
from dfake_cli.io import atomic_path, recover_swap
from dfake_cli.train.config import FIXED_ON_RESUME, TrainConfig
from dfake_cli.train.distributed import DistInfo, broadcast_object
from dfake_cli.workspace import Workspace


@dataclass
class TrainResult:
    run_dir: Path
    step: int                      # steps completed (the run's step count)
    epoch: int                     # epochs completed (fractional epochs round down)
    best_dir: Path
    last_dir: Path
    best_auc: float | None
    best_step: int | None
    val: dict[str, Any] = field(default_factory=dict)  # the last validation's metrics
    seconds: float = 0.0
    images: int = 0                # training images processed in this invocation (all ranks)
    model: Any = field(default=None, repr=False)  # the trained model in memory (this process's replica)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (`dfake train --json`, the demo)."""
        return summarise(self)


def default_run_name(config: TrainConfig) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    tag = "noguide-" if not config.use_guide else ""
    return f"{stamp}-{tag}{config.backbone.replace('/', '_')}"


def open_cache(path: Path | tuple[Path, ...]):
    """One cache (a FaceCache), or a mixture of several (`--data a,b`: a MultiCache with the same interface)."""
    from dfake_cli.data.multicache import open_caches

    return open_caches(path)


def parameter_digest(params) -> str:
    """sha256 over the raw bytes of parameters: equal digests = bitwise-identical replicas."""
    h = hashlib.sha256()
    for p in params:
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def resolve_run(config: TrainConfig, workspace: Workspace, info: DistInfo) -> Path:
    if config.resume:
        if config.run is None:
            latest = workspace.latest_run()
            if latest is None:
                raise InputError(f"--resume: no runs in {workspace.runs_dir}; start one without --resume")
            config.run = latest.name
        run_dir = workspace.run_dir(config.run)
        recover_swap(run_dir / "last")  # a save killed between its two renames (no atomic exchange here)
        if not (run_dir / "last").is_dir():
            raise InputError(f"--resume: {run_dir} has no last/ checkpoint to continue from; drop --resume")
        saved = TrainConfig.load(run_dir / "config.json") if (run_dir / "config.json").is_file() else None
        if saved is not None:
            for key in FIXED_ON_RESUME:
                if getattr(saved, key) != getattr(config, key):
                    raise InputError(
                        f"--resume: {key} was {getattr(saved, key)!r} in run {config.run}, now "
                        f"{getattr(config, key)!r}; a resumed run keeps it (start a new --run to change it)"
                    )
        return run_dir
    if config.run is None:
        config.run = broadcast_object(info, default_run_name(config))
    run_dir = workspace.run_dir(config.run)
    if (run_dir / "last").exists() or (run_dir / "best").exists():
        raise InputError(f"run {config.run} already exists in {workspace.runs_dir}; pass --resume to continue it "
                         "or --run NAME for a new one")
    return run_dir


def check_cache(config: TrainConfig, cache, path: Path | str) -> None:
    attrs = dict(cache.attrs)
    if config.use_guide:
        if config.sd is None:
            have = str(attrs.get("sd_identity", "")) or "unknown"
            raise InputError(f"no Stable Diffusion given for a guided run (cache {path} was prepared with {have!r}): "
                             "pass --sd PATH (or set $DFAKE_SD; 'tiny' for the demo SD), or --no-guide")
        if not getattr(cache, "has_latents", True):
            raise InputError(f"cache {path} has no SD latents (a test cache?); train on a training cache "
                             "prepared with --sd, or pass --no-guide")
        from dfake_cli.models.sd import sd_identity

        want = sd_identity(config.sd)
        have = str(attrs.get("sd_identity", ""))
        if have != want:
            raise InputError(f"cache {path} was prepared with Stable Diffusion {have!r} but --sd {config.sd} is "
                             f"{want!r}; pass the same --sd as prepare, or prepare the cache again")
        if config.flip > 0 and not getattr(cache, "has_flipped_latents", True):
            raise InputError(f"cache {path} has no flipped-face latents (prepared by an older dfake): delete it "
                             "and prepare it again, or train with --flip 0")


def check_replicas(info: DistInfo, params, run_dir: Path, step: int) -> None:
    """All ranks must hold identical weights after training; rank 0 records every rank's digest."""
    import torch.distributed as dist

    digest = parameter_digest(params)
    gathered: list[str] = [""] * info.world_size
    dist.all_gather_object(gathered, digest)
    if info.is_main:
        with atomic_path(run_dir / "replicas.json") as tmp:
            tmp.write_text(json.dumps({"step": step, "digests": gathered}, indent=2) + "\n")
    if len(set(gathered)) != 1:
        raise RunError(f"the {info.world_size} DDP replicas diverged by step {step} (parameter digests differ); "
                       "see replicas.json in the run folder")


def plain(value: Any) -> Any:
    """HDF5 attributes come back as numpy scalars: make them JSON-able."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value


def summarise(result: TrainResult) -> dict[str, Any]:
    """TrainResult as JSON-able data (the CLI's --json and the demo read this)."""
    return {
        "run_dir": str(result.run_dir), "step": result.step, "epoch": result.epoch,
        "best_dir": str(result.best_dir), "last_dir": str(result.last_dir), "best_auc": result.best_auc,
        "best_step": result.best_step, "val": result.val, "seconds": round(result.seconds, 2),
        "images": result.images,
        "images_per_s": round(result.images / result.seconds, 2) if result.seconds > 0 else None,
    }

