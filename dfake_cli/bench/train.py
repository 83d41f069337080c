"""`dfake bench train`: `dfake train` end to end against its own step timed alone, same run, same sizes.

End to end = the trainer (`train.trainer.train`) on a cache of real-looking portrait crops
(bench/portraits.py): loader workers, augmentation, the step, metrics/samples logs. Its images/s is the
trainer's own steady-state figure: the second --log-every window of the run (the first pays for worker
start-up and warm-up), read from metrics.csv. No validation or checkpoint falls inside that window.

Step alone = `train.step.TrainStep`, the object the trainer calls, on the trained model with one batch
from the same loader reused, timed with synchronisation (median). If the loader never makes the step
wait, the two figures agree (the issue's target: end to end >= 90% of the step alone).
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from dfake_cli.bench.common import BenchOptions, BenchRow, time_steps


@dataclass
class TrainSetup:
    """The tiny configuration: tiny SD, a tiny timm backbone, small faces (what a CPU trains in seconds)."""

    backbone: str = "test_efficientnet"
    image_size: int = 128
    batch_size: int = 8
    window: int = 8         # steps per measured window (--log-every); the run is two windows
    videos: int = 8
    frames: int = 16
    workers: int | None = None  # the trainer's default

    @classmethod
    def for_options(cls, options: BenchOptions) -> "TrainSetup":
        setup = cls(image_size=64, batch_size=4, window=4, videos=4, frames=8) if options.quick else cls()
        if options.batch_size is not None:
            setup.batch_size = options.batch_size
        if options.steps is not None:
            setup.window = options.steps
        return setup


def bench_train(options: BenchOptions) -> list[BenchRow]:
    from dfake_cli.bench.portraits import portrait_training_cache
    from dfake_cli.data.cache import FaceCache
    from dfake_cli.models.sd import TINY_IDENTITY
    from dfake_cli.train.augment import AugmentConfig
    from dfake_cli.train.config import TrainConfig
    from dfake_cli.train.loader import StepBatches, ToDevice, batches
    from dfake_cli.train.sampler import BalancedSampler, StepPlan
    from dfake_cli.train.step import LossModule, TrainStep, make_optimizer
    from dfake_cli.train.trainer import train
    from dfake_cli.workspace import Workspace

    device = options.torch_device
    setup = TrainSetup.for_options(options)
    precision = options.resolved_precision()
    with tempfile.TemporaryDirectory(prefix="dfake-bench-train-") as tmp:
        ws = Workspace(Path(tmp) / "ws").ensure()
        portrait_training_cache(ws.cache_path("bench"), setup.videos, setup.frames, setup.image_size,
                                sd_identity=TINY_IDENTITY)
        config = TrainConfig(
            data="bench", run="bench", backbone=setup.backbone, sd="tiny", batch_size=setup.batch_size, lr=1e-4,
            steps=2 * setup.window, log_every=setup.window, save_every=10**9, device=str(device),
            precision=precision, workers=setup.workers, compile=options.compile, low_memory=options.low_memory,
            val_max_faces=8, val_losses=False,
        ).validated()
        result = train(config, ws)
        with open(result.run_dir / "metrics.csv", newline="") as f:
            windows = [r for r in csv.DictReader(f) if r["phase"] == "train"]
        end_to_end = float(windows[-1]["images_per_s"])

        model = result.model
        step_fn = TrainStep(LossModule(model), make_optimizer(model.trainable_parameters(), 1e-4, 0.01, device),
                            precision, model.sd.scaling_factor, compile=options.compile)
        with FaceCache(ws.cache_path("bench")) as cache:
            rows = cache.input_rows("train")
            plan = StepPlan(BalancedSampler(cache.index["label"].to_numpy()[rows], config.seed), setup.batch_size)
            data = StepBatches(cache, rows, plan, 0, config.seed, AugmentConfig.from_train(config), True, 0, 1)
            mc = model.config
            batch = next(iter(batches(data, ToDevice(device, mc.mean, mc.std, mc.image_size), workers=0)))
        gen = torch.Generator(device=device).manual_seed(0)
        timing = time_steps(lambda: step_fn(batch, gen), device, steps=setup.window, warmup=2)
        alone = setup.batch_size / timing.median
    common = {"setup": asdict(setup), "precision": precision, "batch_size": setup.batch_size}
    return [
        BenchRow("train", "dfake train end to end", {"images_per_s": end_to_end, **common},
                 [f"steady-state window of {setup.window} steps from metrics.csv (steps {setup.window + 1}-"
                  f"{2 * setup.window}); {setup.image_size} px portrait crops, tiny SD, {setup.backbone}"]),
        BenchRow("train", "its step alone (TrainStep)", {"images_per_s": alone,
                                                         "ms_per_step": 1000 * timing.median, **common}, []),
        BenchRow("train", "ratio end to end / step alone", {"speedup": end_to_end / alone}, []),
    ]
