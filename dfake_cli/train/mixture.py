"""Training on several caches at once (`--data ffpp,sbi`): which caches, and a sampler balanced per cache.

`MixtureSampler` extends the real/fake balance to every (cache, label) group: an epoch takes the same
number of faces, `per_group` = the size of the smallest group, from each of the 2 x C groups, drawn afresh
(and shuffled together) each epoch from (seed, epoch) alone, so resume stays exact. With one cache it
visits exactly the order of `BalancedSampler`, so a single-cache run is unchanged by it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dfake_cli.errors import InputError


def data_names(data: str) -> list[str]:
    """`"ffpp, sbi"` -> ["ffpp", "sbi"] (order kept, duplicates refused)."""
    names = [n.strip() for n in str(data).split(",") if n.strip()]
    if not names:
        raise InputError(f"--data {data!r}: name a prepared cache, or several separated by commas (ffpp,sbi)")
    if len(set(names)) != len(names):
        raise InputError(f"--data {data!r}: a cache is named twice")
    return names


def data_paths(workspace, data: str) -> list[Path]:
    """The cache files `--data` names, each checked to exist (one-line error naming the missing one)."""
    paths = []
    for name in data_names(data):
        path = workspace.cache_path(name)
        if not path.is_file():
            raise InputError(f"cache not found: {path}; run 'dfake prepare ... --name {name}' first "
                             "or pass --data NAME of a prepared cache")
        paths.append(path)
    return paths


class MixtureSampler:
    """Equal shares of every (group, label) per epoch; `groups[i]` is the cache of position i."""

    def __init__(self, labels: np.ndarray, groups: np.ndarray, seed: int, names: list[str] | None = None):
        labels, groups = np.asarray(labels), np.asarray(groups)
        self.seed = int(seed)
        self.cells: list[tuple[np.ndarray, np.ndarray]] = []
        for g in np.unique(groups):
            real = np.flatnonzero((groups == g) & (labels == 0))
            fake = np.flatnonzero((groups == g) & (labels == 1))
            if len(real) == 0 or len(fake) == 0:
                name = names[int(g)] if names else f"#{int(g)}"
                raise InputError(f"cache {name}: its training split has {len(real)} real and {len(fake)} fake "
                                 "faces; every cache of a mixture needs both")
            self.cells.append((real, fake))
        self.per_group = min(min(len(r), len(f)) for r, f in self.cells)
        self._cache: tuple[int, np.ndarray] | None = None

    @property
    def per_class(self) -> int:
        return self.per_group * len(self.cells)

    @property
    def epoch_length(self) -> int:
        return 2 * self.per_group * len(self.cells)

    def epoch_order(self, epoch: int) -> np.ndarray:
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, int(epoch), 0x5A3])  # BalancedSampler's stream
        picked = []
        for real, fake in self.cells:
            picked.append(rng.permutation(real)[: self.per_group])
            picked.append(rng.permutation(fake)[: self.per_group])
        order = rng.permutation(np.concatenate(picked))
        self._cache = (epoch, order)
        return order
