"""Preparation over many processes and machines with torchrun: videos split by rank, rank 0 assembles.

    torchrun --nnodes N --nproc_per_node G -m dfake_cli prepare ff++ ROOT ...

Every rank plans the same units (planning is deterministic), takes every WORLD_SIZE-th one starting at
its RANK, and writes those shards into the shared `<name>.parts/` (the workspace must be on a filesystem
all nodes see; nothing else is needed). A barrier waits for every rank; rank 0 assembles the cache while
the others wait at a second barrier, then all return its summary. A rank that dies stops the job
(torchrun's doing); rerunning the same command resumes from the shards already written.

The process group is gloo even on GPU nodes: it only carries barriers, never tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Sequence, TypeVar

from dfake_cli.runtime import RankInfo, torchrun_ranks

T = TypeVar("T")
# Ranks that finish early wait at the barrier for the slowest one (and for the assembly): allow for a day.
BARRIER_TIMEOUT = timedelta(hours=24)


@dataclass(frozen=True)
class Ranks(RankInfo):
    created_group: bool = False  # whether we initialised the process group (and must destroy it)

    def share(self, items: Sequence[T]) -> list[T]:
        """This rank's part of `items`: every world_size-th item from index `rank` (same order on all ranks)."""
        return list(items[self.rank :: self.world_size])

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.created_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def join_ranks() -> Ranks:
    """Ranks from torchrun's RANK / WORLD_SIZE / LOCAL_RANK; a single process without them."""
    env = torchrun_ranks()
    if not env.distributed:
        return Ranks()
    rank, world, local = env.rank, env.world_size, env.local_rank
    import torch.distributed as dist

    created = False
    if not dist.is_initialized():
        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=BARRIER_TIMEOUT)
        created = True
    return Ranks(rank, world, local, created)


def rank_device(device: str, ranks: Ranks) -> str:
    """Under torchrun, `cuda` means this node's GPU number LOCAL_RANK."""
    if ranks.distributed and device == "cuda":
        import torch

        return f"cuda:{ranks.local_rank % max(1, torch.cuda.device_count())}"
    return device
