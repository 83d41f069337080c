"""The training (and validation) data path: cache rows -> worker processes -> pinned memory -> device.

`StepBatches` is a map-style dataset whose item i is this rank's whole batch of global step start + i: the
sampler says which rows, `augment.draw` which augmentations, the cache gives faces (chunk by chunk),
source/target latent moments and weight targets. An item is a pure function of (seed, step, rank), so the
torch `DataLoader` may build items in any worker, in any order, ahead of time, and `--resume` still sees
exactly the batches of an uninterrupted run. `RowBatches` is the same for fixed chunks of rows
(validation, evaluation). `device_batches` then copies each item to the device (non-blocking from pinned
memory, one batch ahead on a side CUDA stream) and runs the augmentation there as batched tensor ops.

The dataset only needs the FaceCache interface (`faces(rows)`, `latent_moments(rows)`, `index`, picklable):
a view over several caches can stand in for one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from dfake_cli.errors import InputError
from dfake_cli.train import augment
from dfake_cli.train.augment import AugmentConfig, NO_AUGMENT
from dfake_cli.train.sampler import StepPlan

MOMENT_KEYS = ("mean_s", "logvar_s", "mean_t", "logvar_t")


class CacheRows:
    """The per-row columns a batch needs (labels, pairs, weight targets) held as numpy, plus the readers."""

    def __init__(self, cache):
        self.cache = cache
        index = cache.index
        n = len(index)
        self.label = index["label"].to_numpy().astype(np.float32)
        self.source = index["source_row"].to_numpy().astype(np.int64) if "source_row" in index else np.full(n, -1)
        self.target = index["target_row"].to_numpy().astype(np.int64) if "target_row" in index else np.full(n, -1)
        nan = np.full(n, np.nan, np.float32)
        self.score_s = index["score_s"].to_numpy().astype(np.float32) if "score_s" in index else nan
        self.score_t = index["score_t"].to_numpy().astype(np.float32) if "score_t" in index else nan
        self.flipped_moments = bool(getattr(cache, "has_flipped_latents", False))

    def has_pairs(self, rows: np.ndarray) -> bool:
        """Whether every row names its source and target (test caches do not)."""
        return bool(len(rows)) and bool((self.source[rows] >= 0).all() and (self.target[rows] >= 0).all())

    def read(self, rows: np.ndarray, latents: bool, flip: np.ndarray | None = None) -> dict[str, Any]:
        """Host arrays for cache `rows` (in order): face uint8 NHWC, label, score_s/t and, with `latents`,
        the source/target moments. Where `flip` is set and the cache stores moments of the flipped faces,
        those are read (`flip_latents` then says no further flip is needed); otherwise the device flips."""
        rows = np.asarray(rows, dtype=np.int64)
        out: dict[str, Any] = {
            "rows": rows, "face": self.cache.faces(rows), "label": self.label[rows],
            "score_s": self.score_s[rows], "score_t": self.score_t[rows],
        }
        flip = np.zeros(len(rows), bool) if flip is None else np.asarray(flip, bool)
        if latents:
            src, tgt = self.source[rows], self.target[rows]
            if (src < 0).any() or (tgt < 0).any():
                raise InputError("the cache has inputs without a source/target face; prepare it as a training cache")
            both = np.concatenate([src, tgt])
            both_flip = np.concatenate([flip, flip])
            mean, logvar = _moments(self.cache, both, both_flip if self.flipped_moments else None)
            n = len(rows)
            out.update(mean_s=mean[:n], logvar_s=logvar[:n], mean_t=mean[n:], logvar_t=logvar[n:])
        out["flip_latents"] = flip & (not self.flipped_moments)
        return out


def _moments(cache, rows: np.ndarray, flipped: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Latent moments of `rows` (repeats allowed, request order); `flipped` picks the flipped-face moments."""
    uniq, inverse = np.unique(rows, return_inverse=True)
    m, lv = cache.latent_moments(uniq)
    mean, logvar = np.asarray(m, np.float32)[inverse], np.asarray(lv, np.float32)[inverse]
    if flipped is not None and flipped.any():
        sel = np.flatnonzero(flipped)
        fu, finv = np.unique(rows[sel], return_inverse=True)
        fm, flv = cache.latent_moments(fu, flipped=True)
        mean[sel], logvar[sel] = np.asarray(fm, np.float32)[finv], np.asarray(flv, np.float32)[finv]
    return mean, logvar


def _tensors(item: dict[str, Any]) -> dict[str, Any]:
    """numpy -> torch (zero-copy) so the DataLoader can pin the arrays; ints and lists pass through."""
    return {k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
            for k, v in item.items()}


class StepBatches(torch.utils.data.Dataset):
    """Item i = this rank's batch of global step `start + i`, augmentation parameters included."""

    def __init__(self, cache, rows: np.ndarray, plan: StepPlan, rank: int, seed: int, aug: AugmentConfig,
                 latents: bool, start: int, end: int):
        self.data = CacheRows(cache)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.plan, self.rank, self.seed, self.aug, self.latents = plan, rank, seed, aug, latents
        self.start, self.end = int(start), int(end)
        self.size = int(cache.attrs.get("size", 256))

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def __getitem__(self, i: int) -> dict[str, Any]:
        step = self.start + int(i)
        global_rows = self.rows[self.plan.global_positions(step)]
        rows = self.rows[self.plan.positions(step, self.rank)]
        params = augment.draw(self.aug, len(rows), self.size, self.seed, step, self.rank)
        item = self.data.read(rows, self.latents, flip=params["flip"])
        item.update(step=step, global_rows=global_rows, **{f"aug_{k}": v for k, v in params.items()})
        return _tensors(item)


class RowBatches(torch.utils.data.Dataset):
    """Item i = rows[i*batch_size : (i+1)*batch_size], unaugmented (validation and evaluation)."""

    def __init__(self, cache, rows: np.ndarray, batch_size: int, latents: bool = False):
        self.data = CacheRows(cache)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.batch_size, self.latents = int(batch_size), latents
        self.size = int(cache.attrs.get("size", 256))

    def __len__(self) -> int:
        return (len(self.rows) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, i: int) -> dict[str, Any]:
        rows = self.rows[int(i) * self.batch_size : (int(i) + 1) * self.batch_size]
        item = self.data.read(rows, self.latents)
        params = augment.draw(NO_AUGMENT, len(rows), self.size, 0, int(i), 0)
        item.update(step=int(i), **{f"aug_{k}": v for k, v in params.items()})
        return _tensors(item)


@dataclass
class DeviceBatch:
    """One batch on the training device, augmented and normalised: what the step function consumes."""

    step: int
    rows: np.ndarray          # this rank's cache rows
    global_rows: np.ndarray   # all ranks' rows of this step (samples.csv)
    x: torch.Tensor           # float NCHW, normalised
    labels: torch.Tensor      # float (B,)
    score_s: torch.Tensor
    score_t: torch.Tensor
    mean_s: torch.Tensor | None = None
    logvar_s: torch.Tensor | None = None
    mean_t: torch.Tensor | None = None
    logvar_t: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])


def item_seed(seed: int, step: int, rank: int, stream: int) -> int:
    """A 63-bit seed from integers (numpy's SeedSequence mixes them well)."""
    return int(np.random.SeedSequence([int(seed), int(step), int(rank), int(stream)]).generate_state(
        1, dtype=np.uint64)[0] >> 1)


class ToDevice:
    """Host item -> DeviceBatch: non-blocking copies, augmentation on the device, normalisation."""

    def __init__(self, device: torch.device, mean, std, image_size: int, seed: int = 0, rank: int = 0):
        self.device, self.image_size, self.seed, self.rank = device, int(image_size), int(seed), int(rank)
        m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.scale = (1.0 / (255.0 * s)).view(3).to(device)  # (x / 255 - mean) / std = x * scale + bias
        self.bias = (-m / s).view(3).to(device)

    def __call__(self, item: dict[str, Any]) -> DeviceBatch:
        dev, nb = self.device, self.device.type == "cuda"
        step = int(item["step"])
        face = item["face"].to(dev, non_blocking=nb)
        params = {k[4:]: v for k, v in item.items() if k.startswith("aug_")}
        gen = None
        if bool((params["noise"] > 0).any()):
            gen = torch.Generator(device=dev)
            gen.manual_seed(item_seed(self.seed, step, self.rank, 5))
        x = augment.apply(face, params, self.scale, self.bias, gen)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size,) * 2, mode="bilinear", antialias=True, align_corners=False)
        out = DeviceBatch(
            step=step, rows=item["rows"].numpy(),
            global_rows=item["global_rows"].numpy() if "global_rows" in item else item["rows"].numpy(),
            x=x, labels=item["label"].to(dev, non_blocking=nb),
            score_s=item["score_s"].to(dev, non_blocking=nb), score_t=item["score_t"].to(dev, non_blocking=nb),
        )
        if "mean_s" in item:
            flip = item["flip_latents"]
            any_flip = bool(flip.any())
            flip_dev = flip.to(dev, non_blocking=nb) if any_flip else None
            for key in MOMENT_KEYS:
                t = item[key].to(dev, non_blocking=nb)
                setattr(out, key, augment.flip_where(t, flip_dev) if any_flip else t)
        return out


def default_workers(device: torch.device) -> int:
    """Loader processes: enough to feed a GPU; on a CPU one fewer than the cores (the step needs one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cores - 1))


class _Finished(torch.utils.data.Dataset):
    """On a CPU device the "device" work (augmentation, normalisation) runs in the loader workers too:
    the same ops, but off the process that runs the step."""

    def __init__(self, base: torch.utils.data.Dataset, to_device: ToDevice):
        self.base, self.to_device = base, to_device

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> DeviceBatch:
        return self.to_device(self.base[i])


def batches(dataset: torch.utils.data.Dataset, to_device: ToDevice, workers: int | None = None,
            prefetch: int = 4) -> Iterator[DeviceBatch]:
    """DeviceBatches of `dataset` in order, built by a DataLoader.

    Worker processes (forked: the cache reopens itself in each) read `prefetch` batches ahead each. On
    CUDA they hand pinned host tensors to `device_batches` (non-blocking copies and augmentation on a side
    stream); on the CPU they also augment and normalise, so the training process only runs the step.
    """
    device = to_device.device
    workers = default_workers(device) if workers is None else int(workers)
    cpu = device.type != "cuda"
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs.update(prefetch_factor=max(1, prefetch), multiprocessing_context="fork")
        if cpu:
            kwargs.update(worker_init_fn=_yield_to_step)
    loader = torch.utils.data.DataLoader(
        _Finished(dataset, to_device) if cpu else dataset, batch_size=None, shuffle=False,
        num_workers=workers, pin_memory=not cpu, collate_fn=_keep if cpu else None, **kwargs)
    if cpu:
        yield from loader
        return
    yield from device_batches(loader, to_device)


def _yield_to_step(_worker_id: int) -> None:
    """CPU training: loader workers run at the lowest priority. The step's intra-op threads occupy every
    core; a worker preempting one of them stalls the others at their next barrier, so it costs the step more
    than its own few ms per batch. At low priority it runs in the gaps, still far ahead of a CPU step."""
    try:
        os.nice(19)
    except OSError:  # not permitted (some containers): keep the default priority
        pass


def _keep(item):
    return item


def device_batches(loader: Iterable[dict[str, Any]], to_device: ToDevice) -> Iterator[DeviceBatch]:
    """Yield DeviceBatches in order; on CUDA the next batch is copied and augmented on a side stream while
    the current one trains (the main stream waits for it only when it is used)."""
    device = to_device.device
    it = iter(loader)
    if device.type != "cuda":
        for item in it:
            yield to_device(item)
        return
    stream = torch.cuda.Stream(device=device)

    def stage(item):
        with torch.cuda.stream(stream):
            return to_device(item)

    try:
        nxt = stage(next(it))
    except StopIteration:
        return
    while nxt is not None:
        current = torch.cuda.current_stream(device)
        current.wait_stream(stream)
        cur = nxt
        for t in (cur.x, cur.labels, cur.score_s, cur.score_t, cur.mean_s, cur.logvar_s, cur.mean_t, cur.logvar_t):
            if t is not None:
                t.record_stream(current)
        try:
            nxt = stage(next(it))
        except StopIteration:
            nxt = None
        yield cur
