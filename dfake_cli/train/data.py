"""Training data from the prepared cache: balanced sampling, augmentation, latent sampling, prefetching.

Every batch is a pure function of (seed, global step, rank): the sampler's order comes from (seed, epoch),
the augmentation and latent noise from (seed, step, rank). That is what makes `--resume` exact (a resumed
run sees the same data as an uninterrupted one) and lets a background thread prepare batches ahead
without changing the result.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from dfake_cli.errors import InputError


class BalancedSampler:
    """Per epoch: an equal number of real and fake input positions, shuffled, drawn afresh each epoch.

    The epoch holds 2 * min(#real, #fake) samples: all of the smaller class and an equal random subset
    of the larger one (FF++ has four fakes per real video), as the official code balances fakes down.
    """

    def __init__(self, labels: np.ndarray, seed: int):
        labels = np.asarray(labels)
        self.seed = int(seed)
        self.real = np.flatnonzero(labels == 0)
        self.fake = np.flatnonzero(labels == 1)
        self.per_class = min(len(self.real), len(self.fake))
        self._cache: tuple[int, np.ndarray] | None = None
        if self.per_class == 0:
            raise InputError(
                f"the training split has {len(self.real)} real and {len(self.fake)} fake faces; "
                "training needs both: prepare the cache from a dataset with real and fake videos"
            )

    @property
    def epoch_length(self) -> int:
        return 2 * self.per_class

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Positions (into `labels`) in the order epoch `epoch` visits them; deterministic in (seed, epoch)."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, int(epoch), 0x5A3])
        real = rng.permutation(self.real)[: self.per_class]
        fake = rng.permutation(self.fake)[: self.per_class]
        order = rng.permutation(np.concatenate([real, fake]))
        self._cache = (epoch, order)
        return order


@dataclass(frozen=True)
class StepPlan:
    """Maps a global step to the samples each rank trains on (DistributedSampler-like sharding).

    A step consumes batch_size * world_size consecutive positions of the epoch order; rank r takes
    the r-th slice. Incomplete global batches at an epoch's end are dropped, so every step is full.
    """

    sampler: BalancedSampler
    batch_size: int
    world_size: int = 1

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.epoch_length // self.global_batch

    def check(self) -> None:
        if self.steps_per_epoch < 1:
            raise InputError(
                f"--batch-size {self.batch_size} x {self.world_size} process(es) is larger than one balanced "
                f"epoch ({self.sampler.epoch_length} faces); pass --batch-size "
                f"{max(1, self.sampler.epoch_length // self.world_size)} or less"
            )

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def global_positions(self, step: int) -> np.ndarray:
        epoch, k = divmod(step, self.steps_per_epoch)
        order = self.sampler.epoch_order(epoch)
        return order[k * self.global_batch : (k + 1) * self.global_batch]

    def positions(self, step: int, rank: int) -> np.ndarray:
        g = self.global_positions(step)
        return g[rank * self.batch_size : (rank + 1) * self.batch_size]


class CacheInputs:
    """The input rows of one split of a cache: faces, labels, source/target latent moments, scores.

    Works in batches (`load(rows)`) because HDF5 reads are far cheaper in bulk; `__getitem__` is the
    single-sample view of the same thing.
    """

    def __init__(self, cache, rows: np.ndarray):
        self.cache = cache
        self.rows = np.asarray(rows, dtype=np.int64)
        index = cache.index
        self.labels_all = index["label"].to_numpy().astype(np.int64)
        self.source_all = index["source_row"].to_numpy().astype(np.int64)
        self.target_all = index["target_row"].to_numpy().astype(np.int64)
        self.score_s_all = index["score_s"].to_numpy().astype(np.float32)
        self.score_t_all = index["score_t"].to_numpy().astype(np.float32)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def labels(self) -> np.ndarray:
        return self.labels_all[self.rows]

    @property
    def has_pairs(self) -> bool:
        """Whether every row names its source and target (test caches do not)."""
        return bool(len(self.rows)) and bool(
            (self.source_all[self.rows] >= 0).all() and (self.target_all[self.rows] >= 0).all()
        )

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in self.load(self.rows[i : i + 1], latents=self.has_pairs).items()}

    def faces(self, rows: np.ndarray) -> np.ndarray:
        return _read_unique(self.cache.faces, rows)

    def load(self, rows: np.ndarray, latents: bool = True, flipped: bool = False) -> dict[str, np.ndarray]:
        """Arrays for cache `rows` (in that order): face uint8 NHWC, label, score_s/t, and if `latents`,
        mean/logvar of the source and target latents (float32 N,4,h,w, unscaled); with `flipped` also the
        moments of the flipped source/target faces (flip_mean_s, ...), which `augment` uses for flipped inputs."""
        rows = np.asarray(rows, dtype=np.int64)
        out = {
            "row": rows,
            "face": self.faces(rows),
            "label": self.labels_all[rows],
            "score_s": self.score_s_all[rows],
            "score_t": self.score_t_all[rows],
        }
        if latents:
            src, tgt = self.source_all[rows], self.target_all[rows]
            if (src < 0).any() or (tgt < 0).any():
                raise InputError("the cache has inputs without a source/target face; prepare it as a training cache")
            both = np.concatenate([src, tgt])
            mean, logvar = _read_unique_pair(self.cache.latent_moments, both)
            n = len(rows)
            out.update(mean_s=mean[:n], logvar_s=logvar[:n], mean_t=mean[n:], logvar_t=logvar[n:])
            if flipped:
                read = lambda r: self.cache.latent_moments(r, flipped=True)  # noqa: E731
                mean, logvar = _read_unique_pair(read, both)
                out.update(flip_mean_s=mean[:n], flip_logvar_s=logvar[:n], flip_mean_t=mean[n:],
                           flip_logvar_t=logvar[n:])
        return out


def _read_unique(read, rows: np.ndarray) -> np.ndarray:
    """Call an HDF5 reader with sorted unique rows (what h5py fancy indexing wants), return in `rows` order."""
    uniq, inverse = np.unique(rows, return_inverse=True)
    return np.asarray(read(uniq))[inverse]


def _read_unique_pair(read, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, inverse = np.unique(rows, return_inverse=True)
    a, b = read(uniq)
    return np.asarray(a, dtype=np.float32)[inverse], np.asarray(b, dtype=np.float32)[inverse]


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities (and jitter strength) of the input-face augmentations."""

    flip: float = 0.5
    color_jitter: float = 0.2
    gray: float = 0.1
    noise: float = 0.1
    cutout: float = 0.0

    @classmethod
    def from_train(cls, cfg) -> "AugmentConfig":
        return cls(cfg.flip, cfg.color_jitter, cfg.gray, cfg.noise, cfg.cutout)


def augment(batch: dict[str, np.ndarray], rng: np.random.Generator, aug: AugmentConfig) -> dict[str, np.ndarray]:
    """Augment the input faces of a batch. A horizontal flip also replaces that sample's source and target
    latent moments by those of the flipped source and target faces (`flip_mean_s`, ... from
    `CacheInputs.load(flipped=True)`), so the reconstruction targets stay aligned with the input: the latent of
    a flipped face is not the flipped latent (the official code leaves the targets unflipped).
    Photometric changes touch the input only."""
    faces = batch["face"].astype(np.float32)
    n = len(faces)
    lat_keys = [k for k in ("mean_s", "logvar_s", "mean_t", "logvar_t") if k in batch]
    for i in range(n):
        if rng.random() < aug.flip:
            faces[i] = faces[i, :, ::-1]
            for k in lat_keys:
                if f"flip_{k}" not in batch:
                    raise InputError("flipping an input needs the flipped faces' latents: load the batch with "
                                     "flipped=True from a cache that has them")
                batch[k][i] = batch[f"flip_{k}"][i]
        if aug.color_jitter > 0:
            j = aug.color_jitter
            b, c, s = rng.uniform(1 - j, 1 + j, size=3)
            img = faces[i] * b
            img = (img - img.mean()) * c + img.mean()
            gray = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            faces[i] = (img - gray[..., None]) * s + gray[..., None]
        if rng.random() < aug.gray:
            gray = faces[i] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            faces[i] = gray[..., None]
        if rng.random() < aug.noise:
            sigma = rng.uniform(3.0, 12.0)
            faces[i] = faces[i] + rng.normal(0.0, sigma, size=faces[i].shape).astype(np.float32)
        if rng.random() < aug.cutout:
            h, w = faces.shape[1:3]
            ch, cw = max(1, h // 4), max(1, w // 4)
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            faces[i, y : y + ch, x : x + cw] = 0.0
    batch["face"] = np.clip(np.rint(faces), 0, 255).astype(np.uint8)
    return batch


def sample_latents(mean: np.ndarray, logvar: np.ndarray, rng: np.random.Generator, scaling: float) -> np.ndarray:
    """z = (mean + exp(0.5 * logvar) * eps) * scaling_factor: a fresh SD-VAE posterior sample each step,
    from moments computed once at prepare time instead of running the VAE encoder every step."""
    eps = rng.standard_normal(mean.shape, dtype=np.float32)
    return ((mean + np.exp(0.5 * logvar) * eps) * np.float32(scaling)).astype(np.float32)


@dataclass
class TrainBatch:
    """One rank's batch for one step (numpy; the trainer moves it to the device)."""

    step: int
    rows: np.ndarray         # this rank's cache rows
    global_rows: np.ndarray  # all ranks' cache rows of this step (for samples.csv)
    face: np.ndarray         # uint8 N,H,W,3 (augmented)
    label: np.ndarray        # float32 N
    z_source: np.ndarray | None
    z_target: np.ndarray | None
    score_s: np.ndarray
    score_t: np.ndarray


def step_rng(seed: int, step: int, rank: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(step), int(rank), int(stream)])


def build_batch(
    inputs: CacheInputs, plan: StepPlan, step: int, rank: int, seed: int, aug: AugmentConfig,
    scaling: float, latents: bool,
) -> TrainBatch:
    """The batch of `rank` at global `step`: a pure function of its arguments (and the cache)."""
    global_rows = inputs.rows[plan.global_positions(step)]
    rows = inputs.rows[plan.positions(step, rank)]
    data = inputs.load(rows, latents=latents, flipped=latents and aug.flip > 0)
    augment(data, step_rng(seed, step, rank, 1), aug)
    z_s = z_t = None
    if latents:
        rng = step_rng(seed, step, rank, 2)
        z_s = sample_latents(data["mean_s"], data["logvar_s"], rng, scaling)
        z_t = sample_latents(data["mean_t"], data["logvar_t"], rng, scaling)
    return TrainBatch(
        step=step, rows=rows, global_rows=global_rows, face=data["face"],
        label=data["label"].astype(np.float32), z_source=z_s, z_target=z_t,
        score_s=data["score_s"], score_t=data["score_t"],
    )


class Prefetcher:
    """Builds batches for steps [start, end) in a background thread, `depth` ahead of the trainer.

    The thread opens its own FaceCache (HDF5 handles are not shared across threads) and h5py/numpy
    release the GIL for the heavy parts, so reading overlaps the model's forward/backward. Because a
    batch depends only on its step, the order of work in the thread cannot change the result.
    """

    _DONE = object()

    def __init__(self, cache_path: Path, open_cache, rows: np.ndarray, plan: StepPlan, rank: int, seed: int,
                 aug: AugmentConfig, scaling: float, latents: bool, start: int, end: int, depth: int = 4):
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._args = (cache_path, open_cache, rows, plan, rank, seed, aug, scaling, latents, start, end)
        self._thread = threading.Thread(target=self._work, name="dfake-prefetch", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        cache_path, open_cache, rows, plan, rank, seed, aug, scaling, latents, start, end = self._args
        cache = None
        try:
            cache = open_cache(cache_path)
            inputs = CacheInputs(cache, rows)
            for step in range(start, end):
                if self._stop.is_set():
                    return
                item = build_batch(inputs, plan, step, rank, seed, aug, scaling, latents)
                while not self._stop.is_set():
                    try:
                        self._q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # handed to the consumer, raised there
            self._put_final(exc)
            return
        finally:
            if cache is not None and hasattr(cache, "close"):
                cache.close()
        self._put_final(self._DONE)

    def _put_final(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[TrainBatch]:
        while True:
            item = self._q.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
