"""Multi-process training through torchrun: DistributedDataParallel, nccl on CUDA, gloo on CPU.

One node: ``torchrun --nproc_per_node G -m atomlens.cli train cfg.yaml``. Several nodes:
``torchrun --nnodes N --node_rank R --nproc_per_node G --rdzv_backend c10d
--rdzv_endpoint HOST:PORT -m atomlens.cli train cfg.yaml`` on every node.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Rank, world size and device of this process (1 process: rank 0 of 1).

    Attributes:
        rank: Global rank.
        world_size: Number of processes.
        local_rank: Rank on this node (selects the CUDA device).
        device: Where this process trains.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """True on the process that writes files."""
        return self.rank == 0


def backend_for(device: torch.device) -> str:
    """The process-group backend for a device: nccl for CUDA, gloo otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_distributed(device: torch.device | None = None) -> DistInfo:
    """Join the process group when started by torchrun; no-op otherwise.

    On CUDA every process takes the GPU its ``LOCAL_RANK`` names.
    """
    device = device or torch.device("cpu")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(device=device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend_for(device))
    return DistInfo(
        rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, device=device
    )


def wrap_model(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when several processes train (else itself)."""
    if info.world_size == 1:
        return model
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def barrier(info: DistInfo) -> None:
    """Wait for all ranks."""
    if info.world_size > 1:
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def max_parameter_difference(model: torch.nn.Module, info: DistInfo) -> float:
    """Largest absolute difference of any parameter between this rank and rank 0."""
    if info.world_size == 1:
        return 0.0
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    difference = (flat - reference).abs().max()
    dist.all_reduce(difference, op=dist.ReduceOp.MAX)
    return float(difference)


def shutdown(info: DistInfo) -> None:
    """Leave the process group."""
    if info.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()
