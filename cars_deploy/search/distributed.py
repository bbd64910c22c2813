"""One CARS search over several processes with ``torch.distributed`` (``torchrun``; gloo on CPU, nccl on GPU).

    torchrun --nproc-per-node 2 -m cars_deploy.cli.search --out runs/ddp ...
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m cars_deploy.cli.search ...

``init_distributed`` reads the variables torchrun sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``) and joins the process group: ``nccl`` when the search runs on CUDA
(each process on GPU ``LOCAL_RANK``), ``gloo`` on the CPU. A world of one process is no process group
at all: the plain single-process search runs (``search.context.ProcessContext``), unchanged.
``DistributedContext`` is that context for several processes: its collectives talk to the other ranks,
it shards the data, and it builds the trainer and evaluator of ``search.distributed_steps``.

How Algorithm 1 is spread over ``W`` processes:

- Parameter optimisation (eq. 3). Every rank holds the same population and draws the *same*
  ``W x B`` architectures per step from the same seeded ``numpy`` generator (so all generators stay in
  step), and trains its own ``B`` of them (``share``). Data: each rank takes *its own batches* of the
  epoch (global batch ``k`` of the seeded shuffle goes to rank ``k mod W``; ``rank_batches``), as a
  ``DistributedSampler`` would, rather than a slice of one batch, so that every architecture still
  sees a whole batch of ``batch_size`` images (the SuperNet's batch norms have no affine parameters
  and normalise by the batch statistics; halving the batch would change what the path learns). An
  epoch covers the same images as a single-process epoch in ``1/W`` of the steps; one step consumes
  ``W x batch_size`` images and ``W x B`` architectures, so B scales with the processes. Gradients are
  averaged across ranks by ``distributed_steps.GradientSync``.
- Architecture optimisation: every rank computes the same offspring; ``distributed_steps.ShardedEvaluator``
  measures each individual on one rank and shares the accuracies.
- Files: rank 0 alone writes the run folder (config, tables, plots, atomic checkpoint) and reads it
  on ``--resume``; the config and checkpoint bytes are broadcast and every rank parses them with
  ``torch.load(weights_only=True)``, so other nodes need no shared file system. The checkpoint holds
  nothing per process, so a run resumes with any number of processes (the data order depends only on
  the seed and the epoch; augmentation draws from torch's generator, reseeded per epoch and rank).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from .. import errors as _errors
from ..errors import CarsError, DeviceError, UserInputError
from ..space.supernet import SuperNet
from ..torch_device import resolve_torch_device
from .config import SearchConfig
from .context import ProcessContext, single_process
from .data import Batch, SearchData, epoch_generator
from .distributed_steps import DistributedTrainer, ShardedEvaluator
from .evaluation import Evaluator
from .trainer import SuperNetTrainer

__all__ = [
    "DistributedContext",
    "init_distributed",
    "epoch_batch_indices",
    "rank_batches",
    "rank_steps",
]

T = TypeVar("T")


@dataclass(frozen=True)
class DistributedContext(ProcessContext):
    """This process's place in a search spread over ``world_size`` processes: collectives go to the
    process group, each rank trains on its own batches and evaluates its share of the population."""

    # ----- data sharding -----------------------------------------------------------------------------
    def train_batches(self, data: SearchData, epoch: int) -> Iterator[Batch]:
        """This rank's training batches of ``epoch`` (``rank_batches``)."""
        if not self.enabled:
            return super().train_batches(data, epoch)
        return rank_batches(data, epoch, self)

    def steps_per_epoch(self, data: SearchData) -> int:
        """SGD steps per epoch on each rank."""
        return rank_steps(data.steps_per_epoch(), self.world_size)

    # ----- factories ------------------------------------------------------------------------------
    def trainer(self, network: SuperNet, config: SearchConfig) -> SuperNetTrainer:
        """The eq. 3 trainer averaging gradients across processes (plain for a world of one)."""
        if not self.enabled:
            return super().trainer(network, config)
        return DistributedTrainer(network, config, self)

    def evaluator(
        self,
        network: SuperNet,
        *,
        val_batches: Sequence[Batch],
        recalibration_batches: Sequence[Batch],
        bn_recalibration: bool,
        show_progress: bool = True,
    ) -> Evaluator:
        """The population evaluator sharded over processes (plain for a world of one)."""
        if not self.enabled:
            return super().evaluator(network, val_batches=val_batches, recalibration_batches=recalibration_batches,
                                     bn_recalibration=bn_recalibration, show_progress=show_progress)
        return ShardedEvaluator(network, context=self, val_batches=val_batches,
                                recalibration_batches=recalibration_batches, bn_recalibration=bn_recalibration,
                                show_progress=show_progress)

    # ----- collectives --------------------------------------------------------------------------------
    def barrier(self) -> None:
        """Waits for every rank."""
        if self.enabled:
            dist.barrier()

    def broadcast_module(self, module: nn.Module) -> None:
        """Copies rank 0's parameters and buffers to every rank (as DDP does when it wraps a module)."""
        if not self.enabled:
            return
        tensors = [*module.parameters(), *module.buffers()]
        with torch.no_grad():
            for dtype in sorted({t.dtype for t in tensors}, key=str):  # one broadcast per dtype, not per tensor
                group = [t for t in tensors if t.dtype == dtype]
                flat = torch.cat([t.detach().reshape(-1) for t in group]).to(self.comm_device)
                dist.broadcast(flat, src=0)
                flat = flat.to(self.device)
                offset = 0
                for t in group:
                    t.copy_(flat[offset : offset + t.numel()].view_as(t))
                    offset += t.numel()

    def broadcast_bytes(self, data: bytes | None) -> bytes | None:
        """Rank 0's ``data`` (``None`` included) on every rank; other ranks' arguments are ignored."""
        if not self.enabled:
            return data
        size = torch.tensor([-1 if data is None else len(data)], dtype=torch.int64, device=self.comm_device)
        dist.broadcast(size, src=0)
        n = int(size.item())
        if n <= 0:
            return None if n < 0 else b""
        if self.is_main:
            payload = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(self.comm_device)  # type: ignore[arg-type]
        else:
            payload = torch.empty(n, dtype=torch.uint8, device=self.comm_device)
        dist.broadcast(payload, src=0)
        return payload.cpu().numpy().tobytes()

    def on_main(self, fn: Callable[[], T]) -> T:
        """Runs ``fn`` on rank 0 only and returns its JSON-able result on every rank; an error raised
        by ``fn`` is raised on every rank (the same ``cars_deploy.errors`` class where possible), so
        that no rank is left waiting in a collective for a rank that gave up."""
        if not self.enabled:
            return fn()
        message: dict[str, Any] = {}
        failure: BaseException | None = None
        if self.is_main:
            try:
                message = {"result": fn()}
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the other ranks are told
                failure = exc
                message = {"error": type(exc).__name__, "message": str(exc),
                           "exit_code": getattr(exc, "exit_code", 1)}
        shared = self.broadcast_bytes(json.dumps(message).encode() if self.is_main else None)
        if failure is not None:
            raise failure
        reply = json.loads(shared or b"{}")
        if "error" in reply:
            raise _rebuild_error(reply)
        return reply.get("result")  # type: ignore[no-any-return]

    def close(self) -> None:
        """Leaves the process group (at the end of a run)."""
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


class _PeerError(CarsError):
    """An error rank 0 raised whose class cannot be rebuilt here; carries its exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _rebuild_error(reply: dict[str, Any]) -> Exception:
    cls = getattr(_errors, str(reply["error"]), None)
    if isinstance(cls, type) and issubclass(cls, CarsError):
        try:
            return cls(reply["message"])
        except TypeError:
            pass
    return _PeerError(f"rank 0 failed: {reply['message']}", int(reply.get("exit_code", 1)))


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise UserInputError(f"environment variable {name}={text!r} is not an integer") from None


def init_distributed(device: str = "auto", *, timeout_s: float = 1800.0) -> ProcessContext:
    """Joins the process group torchrun describes in the environment, or returns a single-process
    context when ``WORLD_SIZE`` is absent or 1.

    ``device`` is ``auto``, ``cpu`` or ``cuda``: on CUDA each process takes GPU ``LOCAL_RANK`` and the
    backend is nccl; on the CPU it is gloo. ``DeviceError`` when the GPUs are fewer than the processes
    on a node or the group cannot be formed."""
    world = _env_int("WORLD_SIZE", 1)
    base = resolve_torch_device(device)
    if world <= 1:
        return single_process(base)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    if not dist.is_available():
        raise DeviceError("this PyTorch build has no torch.distributed; run the search in one process")
    if base.type == "cuda":
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise DeviceError(
                f"process {rank} is number {local_rank} on its node but the node has {count} GPU(s); "
                f"start at most {count} processes per node (--nproc-per-node) or use --device cpu"
            )
        base = torch.device("cuda", local_rank)
        torch.cuda.set_device(base)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
        except (RuntimeError, ValueError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise DeviceError(f"cannot join the {backend} process group of {world} processes: {reason}") from None
    return DistributedContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                              backend=backend, device=base)


# ----- data -------------------------------------------------------------------------------------------
def rank_steps(global_batches: int, world_size: int) -> int:
    """Steps per epoch on each rank: the epoch's batches over the ranks, the remainder dropped (every
    rank must take the same number of steps); at least one (ranks then reuse batches)."""
    return max(1, global_batches // world_size)


def epoch_batch_indices(n: int, batch_size: int, seed: int, epoch: int, steps: int) -> list[list[int]]:
    """Sample indices of the first ``steps`` batches of ``epoch``, in the order ``SearchData.train_batches``
    draws them, so that each rank loads only its own batches: the same ``DataLoader`` (shuffle, drop
    the last partial batch, ``epoch_generator``) run over the indices ``0..n-1`` instead of the images."""
    loader = DataLoader(range(n), batch_size=batch_size, shuffle=True, drop_last=n >= batch_size,  # type: ignore[arg-type]
                        generator=epoch_generator(seed, epoch))
    batches: list[list[int]] = []
    for batch in loader:
        if len(batches) >= steps:
            break
        batches.append(batch.tolist())
    return batches


def rank_batches(data: SearchData, epoch: int, context: ProcessContext) -> Iterator[Batch]:
    """Rank ``r``'s training batches of ``epoch``: global batches ``r, r + W, r + 2W, ...`` of the
    seeded shuffle. Torch's generator (used by augmentation) is first reseeded from (seed, epoch,
    rank), so that the augmentation of a resumed run does not depend on saved per-process states."""
    config = data.config
    global_steps = data.steps_per_epoch()
    batches = epoch_batch_indices(len(data.train), config.batch_size, config.seed, epoch, global_steps)  # type: ignore[arg-type]
    steps = rank_steps(len(batches), context.world_size)
    mine = [batches[(k * context.world_size + context.rank) % len(batches)] for k in range(steps)]
    state = np.random.SeedSequence([config.seed, 0xA06, epoch, context.rank]).generate_state(1, dtype=np.uint64)[0]
    torch.manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)
    loader = DataLoader(data.train, batch_sampler=mine, num_workers=config.num_workers,
                        pin_memory=data.device.type == "cuda")
    for x, y in loader:
        yield x.to(data.device, non_blocking=True), y.to(data.device, non_blocking=True)

