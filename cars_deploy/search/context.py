"""Where a search runs: the torch device, and this process's place among the processes of one search.

``ProcessContext`` is a world of one process - the plain search: rank 0, which writes the run folder;
its "collectives" return their argument, and it builds the plain ``SuperNetTrainer`` and
``Evaluator``. ``search.distributed.DistributedContext`` extends it for a search spread over several
processes with ``torch.distributed`` (it overrides the collectives, the data sharding and the two
factories), so ``CarsSearch`` runs the same code either way and needs the distributed modules only
when it is given a distributed context.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence, TypeVar

import torch
from torch import nn

from ..space.supernet import SuperNet
from .config import SearchConfig
from .data import Batch, SearchData
from .evaluation import Evaluator
from .trainer import SuperNetTrainer

__all__ = ["ProcessContext", "single_process"]

T = TypeVar("T")


@dataclass(frozen=True)
class ProcessContext:
    """Where this process stands in the search: its rank, the number of processes, its device. This
    class is the single process (``world_size`` 1); ``DistributedContext`` is the several-process one."""

    rank: int = 0  # this process's rank (0 writes the run folder)
    world_size: int = 1  # processes taking part in the search
    local_rank: int = 0  # rank on this node (selects the GPU)
    backend: str | None = None  # "gloo" or "nccl"; None for a single process
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where the SuperNet and data live

    @property
    def enabled(self) -> bool:
        """True when several processes take part (and collectives are used)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files, logs and shows progress."""
        return self.rank == 0

    @property
    def comm_device(self) -> torch.device:
        """Where collective tensors live: the GPU for nccl, the CPU for gloo."""
        return self.device if self.backend == "nccl" else torch.device("cpu")

    # ----- architecture and data sharding ------------------------------------------------------------
    def share(self, items: Sequence[T]) -> list[T]:
        """This rank's contiguous share of a global draw of ``W x B`` architectures (eq. 3's mini-batch)."""
        if len(items) % self.world_size:
            raise ValueError(f"{len(items)} items do not split evenly over {self.world_size} processes")
        size = len(items) // self.world_size
        return list(items[self.rank * size : (self.rank + 1) * size])

    def shard(self, n: int) -> list[int]:
        """Indices of ``n`` individuals this rank evaluates: ``i`` with ``i mod W == rank``."""
        return list(range(self.rank, n, self.world_size))

    def train_batches(self, data: SearchData, epoch: int) -> Iterator[Batch]:
        """This rank's training batches of ``epoch``: all of them for a single process."""
        return data.train_batches(epoch)

    def steps_per_epoch(self, data: SearchData) -> int:
        """SGD steps per epoch on each rank."""
        return data.steps_per_epoch()

    # ----- factories ------------------------------------------------------------------------------
    def trainer(self, network: SuperNet, config: SearchConfig) -> SuperNetTrainer:
        """The eq. 3 trainer of ``network``."""
        return SuperNetTrainer(network, config)

    def evaluator(
        self,
        network: SuperNet,
        *,
        val_batches: Sequence[Batch],
        recalibration_batches: Sequence[Batch],
        bn_recalibration: bool,
        show_progress: bool = True,
    ) -> Evaluator:
        """The population evaluator on the private SuperNet copy ``network`` (see ``Evaluator``)."""
        return Evaluator(network, val_batches=val_batches, recalibration_batches=recalibration_batches,
                         bn_recalibration=bn_recalibration, show_progress=show_progress)

    # ----- collectives (a single process has nobody to talk to) ----------------------------------------
    def barrier(self) -> None:
        """Waits for every rank."""

    def broadcast_module(self, module: nn.Module) -> None:
        """Copies rank 0's parameters and buffers to every rank."""

    def broadcast_bytes(self, data: bytes | None) -> bytes | None:
        """Rank 0's ``data`` (``None`` included) on every rank."""
        return data

    def read_on_main(self, path: os.PathLike[str] | str) -> bytes | None:
        """The bytes of the file at ``path`` as rank 0 sees it (``None`` if absent), on every rank."""
        data = None
        if self.is_main:
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except FileNotFoundError:
                data = None
        return self.broadcast_bytes(data)

    def on_main(self, fn: Callable[[], T]) -> T:
        """Runs ``fn`` on rank 0 only and returns its (JSON-able) result on every rank."""
        return fn()

    def close(self) -> None:
        """Leaves the process group (at the end of a run)."""


def single_process(device: torch.device | str = "cpu") -> ProcessContext:
    """The context of an ordinary one-process search on ``device``."""
    return ProcessContext(device=torch.device(device))
