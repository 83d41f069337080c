"""The training loop: resumable to the exact step, DDP-ready, validated and checkpointed per epoch.

`train(config, workspace)` is what `dfake train` (and `torchrun -m dfake_cli train`) calls. The run folder:

    runs/<run>/config.json   the resolved TrainConfig
    runs/<run>/metrics.csv   every logged training step and every validation
    runs/<run>/samples.csv   the cache rows of every step (all ranks), to audit what data a run saw
    runs/<run>/best/         the model with the best validation frame AUC
    runs/<run>/last/         the latest model + trainer state (what --resume continues from)
    runs/<run>/events.*      TensorBoard events, when tensorboard is installed

Speed comes from the cache (VAE moments precomputed, sampled per step), the SD parts frozen with
requires_grad_(False), bf16 autocast where it pays, and a loader thread that reads HDF5 ahead.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfake_cli.errors import InputError, RunError
from dfake_cli.io import atomic_path
from dfake_cli.train.checkpoint import optimizer_from_flat, read_state, rng_from_flat, save_checkpoint
from dfake_cli.train.config import FIXED_ON_RESUME, TrainConfig
from dfake_cli.train.data import (
    AugmentConfig, BalancedSampler, CacheInputs, Prefetcher, StepPlan, sample_latents, step_rng,
)
from dfake_cli.train.distributed import (
    DistInfo, any_true, barrier, broadcast_object, init_distributed, shutdown,
)
from dfake_cli.train.mixture import MixtureSampler, data_names, data_paths
from dfake_cli.runtime import DEFAULT_SIZE, default_precision
from dfake_cli.workspace import Workspace

logger = logging.getLogger(__name__)

LOSS_KEYS = ("total", "bce", "source", "target", "weight_s", "weight_t")
W_KEYS = ("w_s_mean", "w_s_min", "w_s_max", "w_t_mean", "w_t_min", "w_t_max")
METRIC_COLUMNS = ("step", "epoch", "phase", *LOSS_KEYS, *W_KEYS, "auc", "lr", "images_per_s", "seconds")
SATURATED_LOW, SATURATED_HIGH = 0.01, 0.99


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


# ----------------------------------------------------------------------------------------------- helpers


def default_run_name(config: TrainConfig) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    tag = "noguide-" if not config.use_guide else ""
    return f"{stamp}-{tag}{config.backbone.replace('/', '_')}"


def _open_cache(path: Path | tuple[Path, ...]):
    """One cache (a FaceCache), or a mixture of several (`--data a,b`: a MultiCache with the same interface)."""
    from dfake_cli.data.multicache import open_caches

    return open_caches(path)


def _seed_of(*parts: int) -> int:
    """A 63-bit seed derived from integers (numpy's SeedSequence mixes them well)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def parameter_digest(params) -> str:
    """sha256 over the raw bytes of parameters: equal digests = bitwise-identical replicas."""
    h = hashlib.sha256()
    for p in params:
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class _LossModule(torch.nn.Module):
    """Routes `forward` to `model.losses` so DistributedDataParallel's hooks see the training pass."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x, labels, z_source, z_target, score_s, score_t, generator=None):
        return self.model.losses(x, labels, z_source, z_target, score_s, score_t, generator=generator)


class _CsvLog:
    """An append-only CSV with a fixed header; rows beyond a resumed step are dropped on open."""

    def __init__(self, path: Path, columns: tuple[str, ...], keep_until: int | None):
        self.path, self.columns = path, columns
        if keep_until is not None and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= keep_until]
            with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
                w.writeheader()
                w.writerows(rows)
        elif keep_until is None or not path.is_file():
            with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
                csv.DictWriter(f, fieldnames=columns).writeheader()
        self._f = open(path, "a", newline="")
        self._w = csv.DictWriter(self._f, fieldnames=columns, extrasaction="ignore")

    def write(self, row: dict[str, Any]) -> None:
        self._w.writerow({k: _fmt(row.get(k)) for k in self.columns})
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def _fmt(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


class WStats:
    """Running mean/min/max of the weight nets' outputs W_s and W_t over a window of samples.

    A sigmoid output pinned near 0 or 1 has almost no gradient and rarely leaves (the guide's residuals are
    then switched off or always on regardless of the input), so the trainer logs W itself, not only its MSE.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.sums = {"s": 0.0, "t": 0.0}
        self.mins = {"s": float("inf"), "t": float("inf")}
        self.maxs = {"s": float("-inf"), "t": float("-inf")}

    def update(self, w_s: torch.Tensor, w_t: torch.Tensor) -> None:
        for key, w in (("s", w_s), ("t", w_t)):
            w = w.detach().float().reshape(-1)
            self.sums[key] += float(w.sum())
            self.mins[key] = min(self.mins[key], float(w.min()))
            self.maxs[key] = max(self.maxs[key], float(w.max()))
        self.n += int(w_s.numel())

    def row(self) -> dict[str, float]:
        """The W_KEYS columns; empty when nothing was recorded (no weight nets: --no-guide, --no-weight)."""
        if self.n == 0:
            return {}
        out = {}
        for key in ("s", "t"):
            out[f"w_{key}_mean"] = self.sums[key] / self.n
            out[f"w_{key}_min"] = self.mins[key]
            out[f"w_{key}_max"] = self.maxs[key]
        return out

    def saturated(self) -> list[str]:
        """Which W ("W_s", "W_t") stayed below 0.01 or above 0.99 for every sample of the window."""
        if self.n == 0:
            return []
        return [f"W_{key}" for key in ("s", "t")
                if self.maxs[key] < SATURATED_LOW or self.mins[key] > SATURATED_HIGH]


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: metrics.csv is the record
        return None
    return SummaryWriter(log_dir=str(run_dir))


# ----------------------------------------------------------------------------------------------- set-up


def _resolve_run(config: TrainConfig, workspace: Workspace, info: DistInfo) -> Path:
    if config.resume:
        if config.run is None:
            latest = workspace.latest_run()
            if latest is None:
                raise InputError(f"--resume: no runs in {workspace.runs_dir}; start one without --resume")
            config.run = latest.name
        run_dir = workspace.run_dir(config.run)
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


def _check_cache(config: TrainConfig, cache, path: Path) -> None:
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


def _build_model(config: TrainConfig, image_size: int, face_align: dict, device: torch.device,
                 resume_dir: Path | None):
    from dfake_cli.models.diffusionfake import DiffusionFake, DiffusionFakeConfig
    from dfake_cli.models.sd import load_stable_diffusion

    sd = (load_stable_diffusion(config.sd, device=device, dtype=torch.float32, random_weights=config.random_sd,
                                zero_context=config.zero_context)
          if config.use_guide else None)
    if resume_dir is not None:
        model = DiffusionFake.from_pretrained(resume_dir, sd=sd, device=device)
        if config.low_memory:  # a memory setting, not part of the model: may change on resume
            model.enable_gradient_checkpointing()
        return model
    mcfg = DiffusionFakeConfig(
        backbone=config.backbone, image_size=image_size, sd=config.sd,
        sd_identity=sd.identity if sd is not None else "", lambda_source=config.lambda_source,
        lambda_target=config.lambda_target, use_guide=config.use_guide, use_filter=config.use_filter,
        use_weight=config.use_weight, random_sd=config.random_sd, face_align=face_align,
        gradient_checkpointing=config.low_memory, zero_context=config.zero_context,
        backbone_pretrained=config.backbone_weights is not None,
    )
    model = DiffusionFake(mcfg, sd, backbone_weights=config.backbone_weights)
    return model.to(device)


def _param_groups(model, config: TrainConfig) -> list[dict[str, Any]]:
    """One AdamW group, or two with `weight_lr`: the weight nets (W_s, W_t) get their own learning rate.

    A sigmoid weight net trained at the backbone's lr can saturate early and then barely move (its
    gradient vanishes); a larger lr for it alone keeps W responsive (docs/training.md, Weight modules).
    """
    params = list(model.trainable_parameters())
    if config.weight_lr is None or not config.use_guide or not config.use_weight:
        return [{"params": params, "lr": config.lr}]
    ids = {id(p) for net in (model.weight_s, model.weight_t) for p in net.parameters() if p.requires_grad}
    return [{"params": [p for p in params if id(p) not in ids], "lr": config.lr},
            {"params": [p for p in params if id(p) in ids], "lr": config.weight_lr}]


# ----------------------------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(model, inputs: CacheInputs, rows: np.ndarray, config: TrainConfig, device: torch.device,
             autocast, scaling: float, with_losses: bool) -> dict[str, Any]:
    """Frame AUC on `rows` (and, with latents, the mean loss terms with a fixed noise seed)."""
    from dfake_cli.evaluation.metrics import auc as auc_of

    was_training = model.training
    model.eval()
    bs = config.val_batch_size or config.batch_size
    probs, labels = [], []
    sums = {k: 0.0 for k in LOSS_KEYS}
    gen = torch.Generator(device=device)
    gen.manual_seed(_seed_of(config.seed, 0x7A1))
    rng = np.random.default_rng([config.seed, 0x7A1])
    n_loss = 0
    wstats = WStats()
    weights = getattr(model, "sd", None) is not None and model.config.use_weight
    try:
        for start in range(0, len(rows), bs):
            chunk = rows[start : start + bs]
            data = inputs.load(chunk, latents=with_losses)
            x = model.preprocess(data["face"]).to(device)
            y = torch.from_numpy(data["label"].astype(np.float32)).to(device)
            with autocast():
                if with_losses:
                    out = model.losses(
                        x, y,
                        torch.from_numpy(sample_latents(data["mean_s"], data["logvar_s"], rng, scaling)).to(device),
                        torch.from_numpy(sample_latents(data["mean_t"], data["logvar_t"], rng, scaling)).to(device),
                        torch.from_numpy(data["score_s"]).to(device), torch.from_numpy(data["score_t"]).to(device),
                        generator=gen,
                    )
                    logits = out["logits"]
                    if weights:
                        wstats.update(out["w_s"], out["w_t"])
                    for k in LOSS_KEYS:
                        if k in out and out[k] is not None:
                            sums[k] += float(out[k].float()) * len(chunk)
                    n_loss += len(chunk)
                elif weights:
                    logits, feat = model.detector(x)
                    wstats.update(model.weight_s(feat), model.weight_t(feat))
                else:
                    logits = model.logits(x)
            probs.append(torch.sigmoid(logits.float()).cpu().numpy())
            labels.append(data["label"])
    finally:
        model.train(was_training)
    p = np.concatenate(probs) if probs else np.zeros(0)
    y = np.concatenate(labels) if labels else np.zeros(0)
    result: dict[str, Any] = {"faces": int(len(p))}
    result["auc"] = float(auc_of(y, p)) if len(np.unique(y)) == 2 and np.isfinite(p).all() else None
    if not with_losses and len(p):
        eps = 1e-7
        result["bce"] = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
    for k in LOSS_KEYS:
        if n_loss:
            result[k] = sums[k] / n_loss
    result.update(wstats.row())
    return result


def _val_rows(rows: np.ndarray, limit: int | None) -> np.ndarray:
    if limit is None or len(rows) <= limit:
        return rows
    return rows[np.linspace(0, len(rows) - 1, limit).round().astype(np.int64)]


def _selection_score(val: dict[str, Any], select: str = "auc") -> float | None:
    """Higher is better; ties go to the later validation. `select`: auc = val frame AUC (the default, model
    selection on the FF++ val split), loss = the val total loss (lower wins), last = the latest validation."""
    if select == "auc":
        return val.get("auc")
    if select == "loss":
        loss = val.get("total", val.get("bce"))
        return -float(loss) if loss is not None and np.isfinite(loss) else None
    return 0.0


# ----------------------------------------------------------------------------------------------- the loop


def train(config: TrainConfig, workspace: Workspace) -> TrainResult:
    """Train (or resume) one run; returns where it went and how it ended. Raises InputError / RunError."""
    config.validated()
    info = init_distributed(config.device)
    try:
        return _train(config, workspace, info)
    finally:
        shutdown(info)


def _train(config: TrainConfig, workspace: Workspace, info: DistInfo) -> TrainResult:
    from dfake_cli.console import progress

    device = info.device
    precision = default_precision(device.type, config.precision)
    if device.type == "cuda":  # fp32 parts (optimizer, frozen-UNet skips) use TF32; convs pick fast kernels
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    else:
        # After the first steps the zero-initialised guide outputs are tiny: denormal floats then make CPU
        # kernels 10-20x slower (measured: 18 s vs 1.1 s per step). Flushing them changes nothing visible.
        torch.set_flush_denormal(True)
    cache_paths = data_paths(workspace, config.data)
    cache_path = cache_paths[0] if len(cache_paths) == 1 else tuple(cache_paths)
    shown = ", ".join(str(p) for p in cache_paths)  # for messages
    run_dir = _resolve_run(config, workspace, info)
    last_dir, best_dir = run_dir / "last", run_dir / "best"

    cache = _open_cache(cache_path)
    try:
        _check_cache(config, cache, shown)
        train_rows = np.asarray(cache.input_rows("train"), dtype=np.int64)
        val_rows = _val_rows(np.asarray(cache.input_rows("val"), dtype=np.int64), config.val_max_faces)
        if len(train_rows) == 0:
            raise InputError(f"cache {shown} has no training faces (split 'train'); prepare a training set")
        attrs = dict(cache.attrs)
        scaling = float(attrs.get("latent_scaling", 0.18215))
        image_size = int(attrs.get("size", DEFAULT_SIZE))
        face_align = {k: _plain(attrs[k]) for k in ("size", "margin") if k in attrs}
        inputs = CacheInputs(cache, train_rows)
        val_inputs = CacheInputs(cache, val_rows)
        if len(cache_paths) == 1:
            sampler = BalancedSampler(inputs.labels, config.seed)
        else:  # balanced per cache too; the same order as BalancedSampler for one cache
            sampler = MixtureSampler(inputs.labels, cache.cache_of(train_rows), config.seed, data_names(config.data))
        plan = StepPlan(sampler, config.batch_size, info.world_size)
        plan.check()
        total_steps = config.steps if config.steps is not None else config.epochs * plan.steps_per_epoch

        state_tensors, state = (read_state(last_dir) if config.resume else ({}, {}))
        start_step = int(state.get("step", 0))
        if config.resume and int(state.get("world_size", info.world_size)) != info.world_size:
            raise InputError(f"--resume: run {config.run} was trained with {state['world_size']} process(es), "
                             f"now {info.world_size}; resume with the same --nproc_per_node")
        best_auc = state.get("best_auc")
        best_step = state.get("best_step")
        best_score = state.get("best_score", best_auc if config.select == "auc" else None)

        torch.manual_seed(_seed_of(config.seed, 0xB01D))  # model init: identical on every rank
        model = _build_model(config, image_size, face_align, device, last_dir if config.resume else None)
        model.train()
        params = list(model.trainable_parameters())
        groups = _param_groups(model, config)
        optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
        if config.resume:
            optimizer_from_flat(optimizer, state_tensors, state["optimizer"])
            for group, fresh in zip(optimizer.param_groups, groups):  # a resumed run may change learning rates
                group["lr"] = fresh["lr"]
                group["weight_decay"] = config.weight_decay
            rng_from_flat(state_tensors, state["rng"])
        engine: torch.nn.Module = _LossModule(model)
        if info.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            engine = DDP(engine, device_ids=[device.index] if device.type == "cuda" else None)

        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            config.save(run_dir / "config.json", recorded={
                "backbone_pretrained": model.config.backbone_pretrained,
                "context_source": model.config.context_source or None, "sd_identity": model.config.sd_identity or None,
            })
            if not config.resume and not model.config.backbone_pretrained:
                from dfake_cli.console import err_console

                err_console.print(f"[yellow]warning:[/] backbone {config.backbone} starts from random weights (no "
                                  "--backbone-weights): the paper's recipe uses ImageNet-pretrained weights")
        barrier(info)

        def autocast():
            if precision == "bf16":
                return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
            return nullcontext()

        def trainer_state(step: int) -> dict[str, Any]:
            return {
                "step": step, "epoch": step // plan.steps_per_epoch, "position": step % plan.steps_per_epoch,
                "steps_per_epoch": plan.steps_per_epoch, "world_size": info.world_size,
                "global_batch": plan.global_batch, "best_auc": best_auc, "best_step": best_step,
                "best_score": best_score, "select": config.select,
                "run": config.run, "precision": precision, "written_by_rank": info.rank,
            }

        metrics = samples = tb = None
        if info.is_main:
            keep = start_step if config.resume else None
            metrics = _CsvLog(run_dir / "metrics.csv", METRIC_COLUMNS, keep)
            samples = _CsvLog(run_dir / "samples.csv", ("step", "epoch", "rows"), keep)
            tb = _tensorboard(run_dir)

        val_result: dict[str, Any] = {}
        t_start = time.perf_counter()
        images = 0
        with_losses = config.val_losses and config.use_guide and val_inputs.has_pairs
        latents = config.use_guide

        def run_validation(step: int) -> None:
            nonlocal best_auc, best_step, best_score, val_result
            if info.is_main:
                if len(val_rows):
                    val_result = validate(model, val_inputs, val_rows, config, device, autocast, scaling, with_losses)
                else:
                    val_result = {"faces": 0, "auc": None}
                score = _selection_score(val_result, config.select)
                improved = score is not None and (best_score is None or score >= best_score)  # ties: later wins
                if improved:
                    best_score, best_auc, best_step = score, val_result.get("auc"), step
                    save_checkpoint(model, best_dir)
                elif score is None and best_score is None:  # no usable val split: best/ follows the latest
                    best_step = step
                    save_checkpoint(model, best_dir)
                row = {"step": step, "epoch": step / plan.steps_per_epoch, "phase": "val", **val_result,
                       "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t_start}
                metrics.write(row)
                if tb is not None:
                    for k, v in val_result.items():
                        if isinstance(v, float):
                            tb.add_scalar(f"val/{k}", v, step)
                auc_txt = f"{val_result['auc']:.4f}" if val_result.get("auc") is not None else "n/a"
                logger.info("val step %d: frame AUC %s on %d faces%s", step, auc_txt, val_result["faces"],
                         " (best)" if improved else "")
            barrier(info)

        def save_last(step: int) -> None:
            if info.is_main:
                save_checkpoint(model, last_dir, optimizer, trainer_state(step))
            barrier(info)

        if start_step >= total_steps:
            if info.is_main:
                logger.info("run %s is already at step %d (of %d); nothing to do", config.run, start_step, total_steps)
            return TrainResult(run_dir, start_step, start_step // plan.steps_per_epoch, best_dir, last_dir,
                               best_auc, best_step, {}, 0.0, 0, model)

        aug = AugmentConfig.from_train(config)
        loader = Prefetcher(cache_path, _open_cache, train_rows, plan, info.rank, config.seed, aug, scaling,
                            latents, start_step, total_steps, config.prefetch)
        bar = progress("img") if info.is_main else None
        step = start_step
        window = {k: 0.0 for k in LOSS_KEYS}
        window_n, window_t0 = 0, time.perf_counter()
        wstats = WStats()
        track_w = config.use_guide and config.use_weight
        warned_saturated: set[str] = set()
        try:
            if bar is not None:
                bar.start()
                task = bar.add_task("train", total=total_steps, completed=start_step, rate="", info="")
            for batch in loader:
                s = batch.step
                torch.manual_seed(_seed_of(config.seed, s, info.rank, 3))  # dropout etc.: a function of the step
                gen = torch.Generator(device=device)
                gen.manual_seed(_seed_of(config.seed, s, info.rank, 4))
                x = model.preprocess(batch.face).to(device, non_blocking=True)
                y = torch.from_numpy(batch.label).to(device)
                zs = torch.from_numpy(batch.z_source).to(device) if batch.z_source is not None else None
                zt = torch.from_numpy(batch.z_target).to(device) if batch.z_target is not None else None
                ss = torch.from_numpy(batch.score_s).to(device)
                st = torch.from_numpy(batch.score_t).to(device)
                with autocast():
                    out = engine(x, y, zs, zt, ss, st, generator=gen)
                loss = out["total"]
                bad = not bool(torch.isfinite(loss.detach()).all())
                if any_true(info, bad):
                    terms = ", ".join(f"{k} {float(out[k].detach()):.4g}" for k in LOSS_KEYS[1:] if out.get(k) is not None)
                    good = last_dir if last_dir.is_dir() else "none (no checkpoint was written yet)"
                    raise RunError(f"loss became {float(loss.detach()):.4g} at step {s + 1} ({terms}); last good checkpoint: "
                                   f"{good}; try a lower --lr")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step = s + 1
                images += plan.global_batch
                for k in LOSS_KEYS:
                    if out.get(k) is not None:
                        window[k] += float(out[k].detach().float())
                window_n += 1
                if track_w and info.is_main:
                    wstats.update(out["w_s"], out["w_t"])
                if info.is_main:
                    samples.write({"step": step, "epoch": s // plan.steps_per_epoch,
                                   "rows": " ".join(str(int(r)) for r in batch.global_rows)})
                    rate = plan.global_batch * window_n / max(1e-9, time.perf_counter() - window_t0)
                    bar.update(task, completed=step, rate=f"{rate:.1f} img/s",
                               info=" ".join(f"{k} {float(out[k].detach()):.3f}" for k in ("total", "bce", "source", "target")
                                             if out.get(k) is not None))
                    if step % config.log_every == 0 or step == total_steps:
                        row = {k: window[k] / window_n for k in LOSS_KEYS}
                        row.update(wstats.row())
                        row.update(step=step, epoch=step / plan.steps_per_epoch, phase="train",
                                   lr=optimizer.param_groups[0]["lr"], images_per_s=rate,
                                   seconds=time.perf_counter() - t_start)
                        metrics.write(row)
                        if tb is not None:
                            for k in (*LOSS_KEYS, *W_KEYS):
                                if row.get(k) is not None:
                                    tb.add_scalar(f"train/{k}", row[k], step)
                            tb.add_scalar("train/images_per_s", rate, step)
                        for name in wstats.saturated():
                            if name not in warned_saturated:
                                warned_saturated.add(name)
                                _warn_saturated(name, wstats, step, config)
                        wstats.reset()
                        window = {k: 0.0 for k in LOSS_KEYS}
                        window_n, window_t0 = 0, time.perf_counter()
                epoch_end = step % plan.steps_per_epoch == 0
                if epoch_end or step == total_steps:
                    run_validation(step)
                if epoch_end or step == total_steps or step % config.save_every == 0:
                    save_last(step)
        except KeyboardInterrupt:
            # keep the work: last/ at the last completed step, so `--resume` continues exactly from here
            if info.is_main and step > start_step:
                save_checkpoint(model, last_dir, optimizer, trainer_state(step))
            raise
        finally:
            loader.close()
            if bar is not None:
                bar.stop()
            for log in (metrics, samples):
                if log is not None:
                    log.close()
            if tb is not None:
                tb.close()

        if info.distributed:
            _check_replicas(info, params, run_dir, step)
        seconds = time.perf_counter() - t_start
        if info.is_main:
            best_txt = f"{best_auc:.4f} at step {best_step}" if best_auc is not None else "n/a"
            logger.info("run %s: %d steps in %.0f s; best val frame AUC %s; best model: %s", config.run, step, seconds,
                     best_txt, best_dir)
        return TrainResult(run_dir, step, step // plan.steps_per_epoch, best_dir, last_dir, best_auc, best_step,
                           val_result, seconds, images, model)
    finally:
        if hasattr(cache, "close"):
            cache.close()


def _warn_saturated(name: str, wstats: WStats, step: int, config: TrainConfig) -> None:
    """One warning line per W per run: a W pinned at 0 or 1 for a whole logging window."""
    from dfake_cli.console import err_console

    key = name[-1].lower()
    low, high = wstats.mins[key], wstats.maxs[key]
    err_console.print(
        f"[yellow]warning:[/] {name} stayed saturated (between {low:.3g} and {high:.3g}) for the {config.log_every} "
        f"steps up to step {step}: its sigmoid gets almost no gradient (docs/training.md: Weight modules)"
    )


def _check_replicas(info: DistInfo, params, run_dir: Path, step: int) -> None:
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


def _plain(value: Any) -> Any:
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

