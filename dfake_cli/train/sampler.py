"""Which samples each step trains on: a pure function of (seed, epoch, step, rank), nothing else.

`BalancedSampler` gives each epoch's order of input positions (balanced real/fake, fresh per epoch);
`StepPlan` maps a global step to the positions every rank takes. No I/O and no torch here: the loader,
resume and multi-cache training all rest on these being small, pure and deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

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
