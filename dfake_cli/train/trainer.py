"""The training loop: resumable to the exact step, DDP-ready, validated and checkpointed per epoch.

`train(config, workspace)` is what `dfake train` (and `torchrun -m dfake_cli train`) calls. The pieces:
train/run.py (the run folder, checks, the result), train/loader.py (batches), train/step.py (the step that
`dfake bench train-step` also times), train/metrics.py (logs and on-device accumulators),
train/validation.py, train/checkpoint.py (snapshots written in a background thread).

The hot loop never waits for the device: loss terms, W statistics and the NaN check accumulate on the
device and are read once per --log-every steps (and before any checkpoint, so a non-finite model is never
saved); the data loader works ahead in worker processes.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfake_cli.data.cache import FaceCache
from dfake_cli.errors import InputError, RunError
from dfake_cli.train.augment import AugmentConfig
from dfake_cli.train.checkpoint import BackgroundWriter, optimizer_from_flat, read_state, rng_from_flat, snapshot
from dfake_cli.train.config import TrainConfig
from dfake_cli.train.distributed import DistInfo, any_true, barrier, init_distributed, shutdown
from dfake_cli.train.loader import StepBatches, ToDevice, batches, item_seed
from dfake_cli.train.mixture import MixtureSampler, data_names, data_paths
from dfake_cli.train.metrics import RunLogs, WindowStats, saturated, warn_saturated
from dfake_cli.train.run import (
    TrainResult, check_cache, check_replicas, open_cache, plain, resolve_run, summarise,  # noqa: F401
)
from dfake_cli.train.sampler import BalancedSampler, StepPlan
from dfake_cli.train.step import LossModule, TrainStep, make_optimizer, prepare_model
from dfake_cli.train.validation import val_rows, validate
from dfake_cli.runtime import DEFAULT_SIZE, default_precision
from dfake_cli.workspace import Workspace, hold_lock

logger = logging.getLogger(__name__)

DDP_BUCKET_MB = 100  # fewer, larger all-reduces for ~0.7 G trainable parameters (the default is 25 MB)


def _seed_of(*parts: int) -> int:
    """A 63-bit seed derived from integers (numpy's SeedSequence mixes them well)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


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


def _selection_score(val: dict[str, Any], select: str = "auc") -> float | None:
    """Higher is better; ties go to the later validation. `select`: auc = val frame AUC (the default, model
    selection on the FF++ val split), loss = the val total loss (lower wins), last = the latest validation."""
    if select == "auc":
        return val.get("auc")
    if select == "loss":
        loss = val.get("total", val.get("bce"))
        return -float(loss) if loss is not None and np.isfinite(loss) else None
    return 0.0


def _wrap_ddp(engine: torch.nn.Module, model, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel over the trainable parts: gradients written straight into the all-reduce
    buckets (no copy), larger buckets, and a static graph (every step uses the same parameters; this is
    also what lets DDP work with activation checkpointing). The frozen SD is identical on every rank by
    construction, so DDP neither broadcasts nor watches it."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    frozen = [f"model.{n}" for n, _ in model.named_parameters() if n.startswith("frozen.")]
    frozen += [f"model.{n}" for n, _ in model.named_buffers() if n.startswith("frozen.")]
    DDP._set_params_and_buffers_to_ignore_for_model(engine, frozen)
    return DDP(engine, device_ids=[device.index] if device.type == "cuda" else None,
               gradient_as_bucket_view=True, static_graph=True, bucket_cap_mb=DDP_BUCKET_MB)


def train(config: TrainConfig, workspace: Workspace) -> TrainResult:
    """Train (or resume) one run; returns where it went and how it ended. Raises InputError / RunError."""
    config.validated()
    info = init_distributed(config.device)
    try:
        return _Trainer(config, workspace, info).run()
    finally:
        shutdown(info)


class _Trainer:
    """One invocation of `dfake train`: set-up in __init__-like `run`, then the loop."""

    def __init__(self, config: TrainConfig, workspace: Workspace, info: DistInfo):
        self.config, self.workspace, self.info = config, workspace, info
        self.device = info.device
        self.precision = default_precision(self.device.type, config.precision)
        self.writer = BackgroundWriter()
        self.best_auc = self.best_step = self.best_score = None
        self.val_result: dict[str, Any] = {}
        self.pending_validation: int | None = None  # a validation under way (Ctrl-C: --resume redoes it)

    # -- set-up ----------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        config, device = self.config, self.device
        if device.type == "cuda":  # fp32 parts (optimizer, frozen-UNet skips) use TF32; convs pick fast kernels
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        else:
            # After the first steps the zero-initialised guide outputs are tiny: denormal floats then make CPU
            # kernels 10-20x slower (measured: 18 s vs 1.1 s per step). Flushing them changes nothing visible.
            torch.set_flush_denormal(True)
        paths = data_paths(self.workspace, config.data)  # --data a,b: several caches read as one
        self.shown = ", ".join(str(p) for p in paths)  # for messages
        self.run_dir = resolve_run(config, self.workspace, self.info)
        self.last_dir, self.best_dir = self.run_dir / "last", self.run_dir / "best"
        with contextlib.ExitStack() as held:
            if self.info.is_main:  # one training process per run (rank 0 holds the run's lock)
                self.workspace.ensure()
                held.enter_context(hold_lock(self.workspace.run_lock(config.run), f"training run {config.run!r}"))
            self.cache = open_cache(paths[0] if len(paths) == 1 else tuple(paths))
            try:
                self._setup()
                return self._loop()
            finally:
                self.cache.close()

    def _setup(self) -> None:
        config, info, cache = self.config, self.info, self.cache
        check_cache(config, cache, self.shown)
        self.train_rows = np.asarray(cache.input_rows("train"), dtype=np.int64)
        self.val_rows = val_rows(np.asarray(cache.input_rows("val"), dtype=np.int64), config.val_max_faces)
        if len(self.train_rows) == 0:
            raise InputError(f"cache {self.shown} has no training faces (split 'train'); prepare a training set")
        attrs = dict(cache.attrs)
        self.scaling = float(attrs.get("latent_scaling", 0.18215))
        image_size = int(attrs.get("size", DEFAULT_SIZE))
        face_align = {k: plain(attrs[k]) for k in ("size", "margin") if k in attrs}
        labels = cache.index["label"].to_numpy()[self.train_rows]
        if isinstance(self.cache, FaceCache):
            sampler = BalancedSampler(labels, config.seed)
        else:  # balanced per cache too; the same order as BalancedSampler for one cache
            sampler = MixtureSampler(labels, cache.cache_of(self.train_rows), config.seed, data_names(config.data))
        self.plan = StepPlan(sampler, config.batch_size, info.world_size)
        self.plan.check()
        self.total_steps = config.steps if config.steps is not None else config.epochs * self.plan.steps_per_epoch

        state_tensors, state = (read_state(self.last_dir) if config.resume else ({}, {}))
        self.start_step = int(state.get("step", 0))
        self.resume_validation = config.resume and self.start_step > 0 and \
            state.get("pending_validation") == self.start_step
        if config.resume and int(state.get("world_size", info.world_size)) != info.world_size:
            raise InputError(f"--resume: run {config.run} was trained with {state['world_size']} process(es), "
                             f"now {info.world_size}; resume with the same --nproc_per_node")
        self.best_auc, self.best_step = state.get("best_auc"), state.get("best_step")
        self.best_score = state.get("best_score", self.best_auc if config.select == "auc" else None)

        torch.manual_seed(_seed_of(config.seed, 0xB01D))  # model init: identical on every rank
        model = _build_model(config, image_size, face_align, self.device, self.last_dir if config.resume else None)
        self.model = prepare_model(model, self.precision, self.device)
        self.model.train()
        self.params = list(self.model.trainable_parameters())
        groups = _param_groups(self.model, config)
        self.optimizer = make_optimizer(groups, config.lr, config.weight_decay, self.device)
        if config.resume:
            optimizer_from_flat(self.optimizer, state_tensors, state["optimizer"])
            for group, fresh in zip(self.optimizer.param_groups, groups):  # a resumed run may change learning rates
                group["lr"] = fresh["lr"]
                group["weight_decay"] = config.weight_decay
            rng_from_flat(state_tensors, state["rng"])
        engine: torch.nn.Module = LossModule(self.model)
        if info.distributed:
            engine = _wrap_ddp(engine, self.model, self.device)
        self.step_fn = TrainStep(engine, self.optimizer, self.precision, self.scaling, compile=config.compile)
        if info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            mc = self.model.config
            config.save(self.run_dir / "config.json", recorded={
                "backbone_pretrained": mc.backbone_pretrained, "context_source": mc.context_source or None,
                "sd_identity": mc.sd_identity or None,
            })
            if not config.resume and not mc.backbone_pretrained:
                logger.warning("backbone %s starts from random weights (no --backbone-weights): the paper's recipe "
                               "uses ImageNet-pretrained weights", config.backbone)
        barrier(info)

    def trainer_state(self, step: int) -> dict[str, Any]:
        plan = self.plan
        return {
            "step": step, "epoch": step // plan.steps_per_epoch, "position": step % plan.steps_per_epoch,
            "steps_per_epoch": plan.steps_per_epoch, "world_size": self.info.world_size,
            "global_batch": plan.global_batch, "best_auc": self.best_auc, "best_step": self.best_step,
            "best_score": self.best_score, "select": self.config.select,
            "run": self.config.run, "precision": self.precision, "written_by_rank": self.info.rank,
            # A validation that Ctrl-C cut short: --resume runs it first, so best/ cannot miss it.
            "pending_validation": self.pending_validation,
        }

    # -- checkpoints and validation -------------------------------------------------------------------
    def save_last(self, step: int) -> None:
        if self.info.is_main:
            self.writer.submit(snapshot(self.model, self.optimizer, self.trainer_state(step)), self.last_dir)
        barrier(self.info)

    def run_validation(self, step: int) -> None:
        config, info = self.config, self.info
        self.pending_validation = step
        if info.is_main:
            with_losses = config.val_losses and config.use_guide and self._val_pairs()
            self.val_result = (validate(
                self.model, self.cache, self.val_rows, batch_size=config.val_batch_size or config.batch_size,
                device=self.device, precision=self.precision, scaling=self.scaling, with_losses=with_losses,
                seed=config.seed, workers=config.workers,
            ) if len(self.val_rows) else {"faces": 0, "auc": None})
            score = _selection_score(self.val_result, config.select)
            improved = score is not None and (self.best_score is None or score >= self.best_score)  # ties: later
            follow = score is None and self.best_score is None  # no usable val split: best/ follows the latest
            if improved:
                self.best_score, self.best_auc, self.best_step = score, self.val_result.get("auc"), step
            elif follow:
                self.best_step = step
            if improved or follow:
                self.writer.submit(snapshot(self.model), self.best_dir)
            row = {"step": step, "epoch": step / self.plan.steps_per_epoch, "phase": "val", **self.val_result,
                   "lr": self.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - self.t_start}
            self.logs.metric(row, "val", step)
            auc = self.val_result.get("auc")
            logger.info("val step %d: frame AUC %s on %d faces%s", step, f"{auc:.4f}" if auc is not None else "n/a",
                        self.val_result["faces"], " (best)" if improved else "")
        barrier(info)
        self.pending_validation = None

    def _val_pairs(self) -> bool:
        from dfake_cli.train.loader import CacheRows

        return CacheRows(self.cache).has_pairs(self.val_rows)

    # -- the loop --------------------------------------------------------------------------------------
    def _check_finite(self, stats: WindowStats) -> None:
        """Stop at the first non-finite loss of the window (one read back; all ranks agree)."""
        bad = stats.first_bad()
        if not any_true(self.info, bad is not None):
            return
        good = self.last_dir if self.last_dir.is_dir() else "none (no checkpoint was written yet)"
        if bad is None:
            raise RunError(f"another process saw a non-finite loss; last good checkpoint: {good}; try a lower --lr")
        step, terms = bad
        detail = ", ".join(f"{k} {v:.4g}" for k, v in terms.items() if k != "total")
        raise RunError(f"loss became {terms['total']:.4g} at step {step} ({detail}); last good checkpoint: "
                       f"{good}; try a lower --lr")

    def _log(self, stats: WindowStats, step: int, rate: float, warned: set[str]) -> None:
        row = stats.row()
        row.update(step=step, epoch=step / self.plan.steps_per_epoch, phase="train",
                   lr=self.optimizer.param_groups[0]["lr"], images_per_s=rate,
                   seconds=time.perf_counter() - self.t_start)
        self.logs.metric(row, "train", step)
        for name in saturated(row):
            if name not in warned:
                warned.add(name)
                warn_saturated(name, row, step, self.config.log_every)
        if self.bar is not None:
            self.bar.update(self.task, rate=f"{rate:.1f} img/s",
                            info=" ".join(f"{k} {row[k]:.3f}" for k in ("total", "bce", "source", "target")))

    def _loop(self) -> TrainResult:
        from dfake_cli.console import progress

        config, info, plan = self.config, self.info, self.plan
        start, total = self.start_step, self.total_steps
        if self.resume_validation:  # the validation an interruption cut short: best/ must not miss it
            self.logs = RunLogs(self.run_dir, start, info.is_main)
            self.t_start = time.perf_counter()
            try:
                self.run_validation(start)
                self.save_last(start)
                self.writer.wait()
            finally:
                self.logs.close()
        if start >= total:
            if info.is_main:
                logger.info("run %s is already at step %d (of %d); nothing to do", config.run, start, total)
            return TrainResult(self.run_dir, start, start // plan.steps_per_epoch, self.best_dir, self.last_dir,
                               self.best_auc, self.best_step, {}, 0.0, 0, self.model)
        self.logs = RunLogs(self.run_dir, start if config.resume else None, info.is_main)
        self.t_start = time.perf_counter()
        data = StepBatches(self.cache, self.train_rows, plan, info.rank, config.seed,
                           AugmentConfig.from_train(config), config.use_guide, start, total)
        mc = self.model.config
        to_device = ToDevice(self.device, mc.mean, mc.std, mc.image_size, config.seed, info.rank)
        stats = WindowStats(self.device, track_w=config.use_guide and config.use_weight)
        self.bar = progress("img") if info.is_main else None
        step, images, warned = start, 0, set()
        window_t0 = time.perf_counter()
        try:
            if self.bar is not None:
                self.bar.start()
                self.task = self.bar.add_task("train", total=total, completed=start, rate="", info="")
            for batch in batches(data, to_device, workers=config.workers, prefetch=config.prefetch):
                s = batch.step
                torch.manual_seed(_seed_of(config.seed, s, info.rank, 3))  # dropout etc.: a function of the step
                gen = torch.Generator(device=self.device)
                gen.manual_seed(item_seed(config.seed, s, info.rank, 4))
                out = self.step_fn(batch, gen)
                step = s + 1
                images += plan.global_batch
                stats.update(out, step)
                self.logs.sample(step, s // plan.steps_per_epoch, batch.global_rows)
                if self.bar is not None:
                    self.bar.update(self.task, completed=step)
                epoch_end = step % plan.steps_per_epoch == 0
                saving = epoch_end or step == total or step % config.save_every == 0
                if step % config.log_every == 0 or step == total or saving:
                    self._check_finite(stats)  # before anything is saved: never checkpoint a broken model
                if step % config.log_every == 0 or step == total:
                    rate = plan.global_batch * stats.steps / max(1e-9, time.perf_counter() - window_t0)
                    if info.is_main:
                        self._log(stats, step, rate, warned)
                    stats.reset()
                    window_t0 = time.perf_counter()
                if epoch_end or step == total:
                    self.run_validation(step)
                if saving:
                    self.save_last(step)
        except KeyboardInterrupt:
            # keep the work: last/ at the last completed step, so `--resume` continues exactly from here
            self.writer.wait()
            if info.is_main and step > start and stats.first_bad() is None:
                self.writer.submit(snapshot(self.model, self.optimizer, self.trainer_state(step)), self.last_dir)
            raise
        finally:
            try:
                self.writer.wait()  # a failing run still leaves its last good checkpoint complete
            finally:
                if self.bar is not None:
                    self.bar.stop()
                self.logs.close()
        if info.distributed:
            check_replicas(info, self.params, self.run_dir, step)
        seconds = time.perf_counter() - self.t_start
        if info.is_main:
            best = f"{self.best_auc:.4f} at step {self.best_step}" if self.best_auc is not None else "n/a"
            logger.info("run %s: %d steps in %.0f s; best val frame AUC %s; best model: %s", config.run, step,
                        seconds, best, self.best_dir)
        return TrainResult(self.run_dir, step, step // plan.steps_per_epoch, self.best_dir, self.last_dir,
                           self.best_auc, self.best_step, self.val_result, seconds, images, self.model)
