"""`dfake bench loader`: training batches per second, delivered ready for the step, old reader beside it.

"Ready" means what the step consumes: faces augmented (the training default) and normalised on the
device, source/target latent moments (flipped with their face), weight targets and labels, all on the
device. Both rows run over the same cache of real-looking portrait crops (bench/portraits.py), one in the
old storage (gzip) for the old reader, one in the current storage (raw chunks) for the loader:

- *old reader*: what `dfake train` did before: sorted-unique h5py fancy indexing of faces and latents,
  per-face numpy augmentation, numpy latent sampling, in one thread (its rate is what the old prefetch
  thread could deliver at best).
- *loader*: `train.loader` (StepBatches in DataLoader worker processes, pinned memory on CUDA,
  `device_batches` augmenting on the device), timed after the first batch (worker start-up excluded).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from dfake_cli.bench.common import BenchOptions, BenchRow, synchronize


@dataclass
class LoaderSetup:
    size: int = 256
    batch_size: int = 32
    videos: int = 6
    frames: int = 16
    steps: int = 24
    workers: int | None = None  # None: the trainer's default for the device, at least 2 on the CPU

    @classmethod
    def for_options(cls, options: BenchOptions) -> "LoaderSetup":
        setup = cls(videos=4, frames=8, batch_size=16, steps=8) if options.quick else cls()
        if options.batch_size is not None:
            setup.batch_size = options.batch_size
        if options.steps is not None:
            setup.steps = options.steps
        return setup


def _augment_config():
    from dfake_cli.train.augment import AugmentConfig
    from dfake_cli.train.config import TrainConfig

    return AugmentConfig.from_train(TrainConfig())


def _plan(cache, batch_size: int):
    from dfake_cli.train.sampler import BalancedSampler, StepPlan

    rows = np.asarray(cache.input_rows("train"), dtype=np.int64)
    labels = cache.index["label"].to_numpy()[rows]
    return rows, StepPlan(BalancedSampler(labels, 0), batch_size, 1)


def run_loader(path: Path, setup: LoaderSetup, device: torch.device, workers: int) -> dict:
    """images/s of the loader over `setup.steps` steps (after one warm-up batch)."""
    from dfake_cli.data.cache import FaceCache
    from dfake_cli.train.loader import StepBatches, ToDevice, batches

    with FaceCache(path) as cache:
        rows, plan = _plan(cache, setup.batch_size)
        ds = StepBatches(cache, rows, plan, 0, 0, _augment_config(), True, 0, setup.steps + 1)
        to_dev = ToDevice(device, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), setup.size, seed=0)
        it = batches(ds, to_dev, workers=workers, prefetch=4)
        n = 0
        next(it)
        synchronize(device)
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        for batch in it:
            n += len(batch)
        synchronize(device)
        sec = time.perf_counter() - t0
    return {"images_per_s": n / sec, "images": n, "seconds": sec, "workers": workers,
            "main_cpu_ms_per_image": 1000 * (time.process_time() - cpu0) / max(1, n)}


def run_old_reader(path: Path, setup: LoaderSetup, device: torch.device) -> dict:
    """The previous path (numpy, one thread), reproduced here as the baseline."""
    from dfake_cli.data.cache import FaceCache, _read_rows

    aug = _augment_config()
    with FaceCache(path) as cache:
        rows, plan = _plan(cache, setup.batch_size)
        h = cache._file
        index = cache.index
        src_all, tgt_all = index["source_row"].to_numpy(), index["target_row"].to_numpy()
        n = 0
        t0 = time.perf_counter()
        for step in range(setup.steps):
            r = rows[plan.positions(step, 0)]
            faces = _read_rows(h["faces"], r)
            both = np.concatenate([src_all[r], tgt_all[r]])
            mean, logvar = _read_rows(h["latents/mean"], both), _read_rows(h["latents/logvar"], both)
            rng = np.random.default_rng([0, step, 0, 1])
            faces, mean, logvar = _old_augment(faces, mean, logvar, len(r), rng, aug)
            eps = np.random.default_rng([0, step, 0, 2]).standard_normal(mean.shape, dtype=np.float32)
            z = (mean + np.exp(0.5 * logvar) * eps) * np.float32(0.18215)
            x = torch.from_numpy(faces).to(device).permute(0, 3, 1, 2).float().div_(255.0)
            torch.from_numpy(z).to(device)
            n += len(x)
        synchronize(device)
        sec = time.perf_counter() - t0
    return {"images_per_s": n / sec, "images": n, "seconds": sec, "workers": 0}


def _old_augment(faces, mean, logvar, n, rng, aug):
    """The per-face numpy augmentation of the previous loader (flip moves the latents along)."""
    faces = faces.astype(np.float32)
    gray_w = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    for i in range(n):
        if rng.random() < aug.flip:
            faces[i] = faces[i, :, ::-1]
            for m in (mean, logvar):
                m[i], m[n + i] = m[i][..., ::-1], m[n + i][..., ::-1]
        if aug.color_jitter > 0:
            b, c, s = rng.uniform(1 - aug.color_jitter, 1 + aug.color_jitter, size=3)
            img = faces[i] * b
            img = (img - img.mean()) * c + img.mean()
            g = img @ gray_w
            faces[i] = (img - g[..., None]) * s + g[..., None]
        if rng.random() < aug.gray:
            faces[i] = (faces[i] @ gray_w)[..., None]
        if rng.random() < aug.noise:
            faces[i] = faces[i] + rng.normal(0.0, rng.uniform(3.0, 12.0), size=faces[i].shape).astype(np.float32)
        if rng.random() < aug.cutout:
            h, w = faces.shape[1:3]
            ch, cw = max(1, h // 4), max(1, w // 4)
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            faces[i, y : y + ch, x : x + cw] = 0.0
    return np.clip(np.rint(faces), 0, 255).astype(np.uint8), mean, logvar


def bench_loader(options: BenchOptions) -> list[BenchRow]:
    from dfake_cli.bench.portraits import portrait_training_cache
    from dfake_cli.train.loader import default_workers

    device = options.torch_device
    setup = LoaderSetup.for_options(options)
    workers = setup.workers if setup.workers is not None else max(2, default_workers(device))
    aug = _augment_config()
    common = {"setup": asdict(setup), "augment": asdict(aug), "batch_size": setup.batch_size}
    with tempfile.TemporaryDirectory(prefix="dfake-bench-loader-") as tmp:
        raw = portrait_training_cache(Path(tmp) / "raw.h5", setup.videos, setup.frames, setup.size, gzip=False)
        gz = portrait_training_cache(Path(tmp) / "gzip.h5", setup.videos, setup.frames, setup.size, gzip=True)
        old = run_old_reader(gz, setup, device)
        new = run_loader(raw, setup, device, workers)
        new_gz = run_loader(gz, setup, device, workers)
    note = (f"{setup.size} px portrait crops, batch {setup.batch_size}, augmentation flip {aug.flip} / jitter "
            f"{aug.color_jitter} / gray {aug.gray} / noise {aug.noise} / cutout {aug.cutout}")
    return [
        BenchRow("loader", "old reader (h5py fancy indexing + numpy, gzip faces)", {**old, **common}, [note]),
        BenchRow("loader", f"loader, raw faces ({workers} workers)", {**new, **common}, []),
        BenchRow("loader", f"loader, gzip faces of older caches ({workers} workers)", {**new_gz, **common}, []),
        BenchRow("loader", "ratio loader/old reader", {"speedup": new["images_per_s"] / old["images_per_s"]}, []),
    ]
