"""Distributed training set-up from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*).

One process per device: NCCL when the process owns a CUDA device, gloo on CPU. Without torchrun's
variables everything degrades to a single process and no process group is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import torch

from dfake_cli.runtime import RankInfo, torchrun_ranks


@dataclass(frozen=True)
class DistInfo(RankInfo):
    device: torch.device = torch.device("cpu")
    initialised: bool = False  # whether we created the process group (and must destroy it)


def pick_device(requested: str | None, local_rank: int = 0) -> torch.device:
    """`requested` (cpu / cuda / cuda:N) or CUDA when available; under torchrun, cuda:<LOCAL_RANK>."""
    from dfake_cli.runtime import check_device

    requested = check_device(requested)
    if requested == "cuda":
        return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return torch.device(requested)


def init_distributed(requested_device: str | None = None) -> DistInfo:
    """Read torchrun's variables; create the process group if WORLD_SIZE > 1 (and none exists yet)."""
    import torch.distributed as dist

    env = torchrun_ranks()
    rank, world, local = env.rank, env.world_size, env.local_rank
    device = pick_device(requested_device, local)
    if not env.distributed:
        return DistInfo(0, 1, 0, device, False)
    created = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # rank 0 validates while the others wait at a barrier: allow a long validation before timing out
        dist.init_process_group(backend=backend, rank=rank, world_size=world, timeout=timedelta(hours=2))
        created = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, device, created)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        import torch.distributed as dist

        dist.barrier()


def any_true(info: DistInfo, flag: bool) -> bool:
    """True on every rank if `flag` is true on any rank (e.g. a non-finite loss somewhere)."""
    if not info.distributed:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast_object(info: DistInfo, obj):
    """Rank 0's `obj` on every rank (small Python values: a run name, a decision)."""
    if not info.distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown(info: DistInfo) -> None:
    if info.initialised:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
