"""Processes and devices under ``torchrun``: one process per GPU (or one CPU process), the rank's
device, and the few collectives the application needs. Training and scoring both start here."""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

#: rank 0 may probe a whole dataset before the first barrier: longer than the default 10 minutes
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=6)


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over the ranks."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device if self.backend == "nccl" else "cpu")
        dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order (on every rank)."""
        if self.world == 1:
            return [obj]
        parts = [None] * self.world
        dist.all_gather_object(parts, obj)
        return parts

    @property
    def backend(self) -> str | None:
        return dist.get_backend() if self.world > 1 else None


def setup_distributed(collectives: str = "auto") -> Dist:
    """This process's rank and device; under torchrun, the process group (``collectives``: ``auto``
    is NCCL on GPUs, else gloo; ``gloo`` for CPU-side objects only, as scoring exchanges) and the
    rank's GPU made current, so that DALI, ONNX Runtime and TensorRT all land on it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    if world > 1 and not dist.is_initialized():
        backend = ("nccl" if cuda else "gloo") if collectives == "auto" else collectives
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    rank = dist.get_rank() if world > 1 else 0
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    return Dist(rank, world, local_rank, device)
