"""One CARS search over several processes with ``torch.distributed`` (``torchrun``; gloo on CPU, nccl on GPU).

    torchrun --nproc-per-node 2 -m cars_deploy.cli.search --out runs/ddp ...
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m cars_deploy.cli.search ...

``init_distributed`` reads the variables torchrun sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``) and joins the process group: ``nccl`` when the search runs on CUDA
(each process on GPU ``LOCAL_RANK``), ``gloo`` on the CPU. A world of one process is no process group
at all: the plain single-process search runs, unchanged.

How Algorithm 1 is spread over ``W`` processes:

- Parameter optimisation (eq. 3). Every rank holds the same population and draws the *same*
  ``W x B`` architectures per step from the same seeded ``numpy`` generator (so all generators stay in
  step), and trains its own ``B`` of them (``share``). Data: each rank takes *its own batches* of the
  epoch (global batch ``k`` of the seeded shuffle goes to rank ``k mod W``; ``rank_batches``), as a
  ``DistributedSampler`` would, rather than a slice of one batch, so that every architecture still
  sees a whole batch of ``batch_size`` images (the SuperNet's batch norms have no affine parameters
  and normalise by the batch statistics; halving the batch would change what the path learns). An
  epoch covers the same images as a single-process epoch in ``1/W`` of the steps; one step consumes
  ``W x batch_size`` images and ``W x B`` architectures, so B scales with the processes.
- Gradients: each rank back-propagates its ``B`` architectures (losses scaled by ``1/B``), then
  ``GradientSync`` all-reduces them and divides by ``W``: ``1/W Σ_r 1/B Σ_j dL_rj/dW`` is exactly
  eq. 3's average over the ``W x B`` architectures, a weight off an architecture's path contributing
  zero for it. DDP is not used because it assumes the same graph on every rank: different paths per
  rank need ``find_unused_parameters=True`` (a walk of the autograd graph every step), DDP then still
  all-reduces *every* parameter bucket, zeros included, and it broadcasts rank 0's batch-norm
  buffers at each forward, discarding the other ranks' statistics. Instead, two collectives per
  step: (1) a small integer all-reduce of "which parameter tensors got a gradient / which batch norms
  ran, and how often" (one int64 per parameter tensor and two per batch norm); (2) one all-reduce of
  a flat buffer holding only the gradients of parameters some rank used (zeros from ranks that did
  not) and the running statistics of batch norms some rank ran. A parameter no rank used keeps
  ``grad=None``, so SGD leaves it, momentum and weight decay included, untouched - the single-process
  semantics (eq. 1's mask ``⊙ C_i`` over the whole global mini-batch). Cost: the bytes of the union
  of the ``W x B`` sampled paths plus one small integer vector per step, against DDP's whole SuperNet
  (``GradientSync.stats`` counts both; ``benchmarks/bench_distributed.py`` prints them). Batch-norm
  running statistics become the mean of the updates of the ranks whose path ran them (counters add
  up), so every rank ends each step with identical weights *and* buffers.
- Architecture optimisation: every rank holds the same population and computes the same offspring;
  ``ShardedEvaluator`` measures individual ``i`` on rank ``i mod W`` (on the full validation set, with
  the same fixed batch-norm re-estimation batches) and all-gathers the accuracies, so every rank gets
  bit-for-bit the accuracies a single process would, and selection runs on identical data everywhere.
- Files: rank 0 alone writes the run folder (config, tables, plots, atomic checkpoint) and reads it
  on ``--resume``; the config and checkpoint bytes are broadcast and every rank parses them with
  ``torch.load(weights_only=True)``, so other nodes need no shared file system. The checkpoint holds
  nothing per process, so a run resumes with any number of processes (the data order depends only on
  the seed and the epoch; augmentation draws from torch's generator, reseeded per epoch and rank).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from .. import errors as _errors
from ..errors import CarsError, DeviceError, UserInputError
from ..space import Genotype
from ..space.supernet import SuperNet
from .config import SearchConfig
from .data import Batch, SearchData, epoch_generator
from .evaluation import EvaluationStats, Evaluator
from .trainer import ArchitectureSampler, EpochStats, SuperNetTrainer

__all__ = [
    "DistributedContext",
    "GradientSync",
    "SyncStats",
    "DistributedTrainer",
    "ShardedEvaluator",
    "init_distributed",
    "single_process",
    "epoch_batch_indices",
    "rank_batches",
    "rank_steps",
]

T = TypeVar("T")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the search: its rank, the number of processes, its device."""

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
        """This rank's training batches of ``epoch`` (all of them for a single process)."""
        if not self.enabled:
            return data.train_batches(epoch)
        return rank_batches(data, epoch, self)

    def steps_per_epoch(self, data: SearchData) -> int:
        """SGD steps per epoch on each rank."""
        return rank_steps(data.steps_per_epoch(), self.world_size)

    # ----- factories ------------------------------------------------------------------------------
    def trainer(self, network: SuperNet, config: SearchConfig) -> SuperNetTrainer:
        """The eq. 3 trainer: plain for one process, gradient-averaging across processes otherwise."""
        if not self.enabled:
            return SuperNetTrainer(network, config)
        return DistributedTrainer(network, config, self)

    def evaluator(self, network: SuperNet, **options: Any) -> Evaluator:
        """The population evaluator: plain for one process, sharded over processes otherwise."""
        if not self.enabled:
            return Evaluator(network, **options)
        return ShardedEvaluator(network, context=self, **options)

    # ----- collectives (no-ops for a single process) --------------------------------------------------
    def barrier(self) -> None:
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

    def read_on_main(self, path: os.PathLike[str] | str) -> bytes | None:
        """The bytes of the file at ``path`` as rank 0 sees it (``None`` if absent), on every rank."""
        data = None
        if self.is_main or not self.enabled:
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except FileNotFoundError:
                data = None
        return self.broadcast_bytes(data)

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


def single_process(device: torch.device | str = "cpu") -> DistributedContext:
    """The context of an ordinary one-process search on ``device``."""
    return DistributedContext(device=torch.device(device))


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


def init_distributed(device: str = "auto", *, timeout_s: float = 1800.0) -> DistributedContext:
    """Joins the process group torchrun describes in the environment, or returns a single-process
    context when ``WORLD_SIZE`` is absent or 1.

    ``device`` is ``auto``, ``cpu`` or ``cuda``: on CUDA each process takes GPU ``LOCAL_RANK`` and the
    backend is nccl; on the CPU it is gloo. ``DeviceError`` when the GPUs are fewer than the processes
    on a node or the group cannot be formed."""
    from .loop import resolve_device

    world = _env_int("WORLD_SIZE", 1)
    base = resolve_device(device)
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


def rank_batches(data: SearchData, epoch: int, context: DistributedContext) -> Iterator[Batch]:
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


# ----- gradients ----------------------------------------------------------------------------------------
@dataclass
class SyncStats:
    """What gradient averaging cost so far."""

    steps: int = 0  # synchronised steps
    seconds: float = 0.0  # wall time inside the two collectives and the packing around them
    elements: int = 0  # floats all-reduced (gradients of used parameters + batch-norm statistics)
    mask_elements: int = 0  # int64 entries of the usage all-reduce
    ddp_elements: int = 0  # floats DDP would have all-reduced in the same steps (every parameter)

    def as_dict(self) -> dict[str, float]:
        steps = max(self.steps, 1)
        return {
            "sync_steps": self.steps,
            "sync_seconds": round(self.seconds, 4),
            "sync_ms_per_step": round(1000 * self.seconds / steps, 3),
            "sync_floats_per_step": round(self.elements / steps, 1),
            "sync_ints_per_step": round(self.mask_elements / steps, 1),
            "ddp_floats_per_step": round(self.ddp_elements / steps, 1),
        }


class GradientSync:
    """Averages gradients (and batch-norm running statistics) of a single-path SuperNet across ranks;
    see the module docstring for the rule and its cost. Call ``begin()`` before the step's forwards
    and ``__call__()`` after its backwards, before the optimizer step."""

    def __init__(self, network: nn.Module, context: DistributedContext):
        self.context = context
        self.params = [p for p in network.parameters() if p.requires_grad]
        self.norms = [
            m for m in network.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.running_mean is not None
        ]
        dtypes = {p.dtype for p in self.params} | {m.running_mean.dtype for m in self.norms}  # type: ignore[union-attr]
        if len(dtypes) > 1:
            raise ValueError(f"gradient averaging needs one floating dtype, found {sorted(map(str, dtypes))}")
        self.dtype = dtypes.pop() if dtypes else torch.float32
        self.stats = SyncStats()
        self._before: torch.Tensor | None = None

    def _tracked(self) -> torch.Tensor:
        if not self.norms:
            return torch.zeros(0, dtype=torch.int64)
        return torch.stack([m.num_batches_tracked.detach() for m in self.norms]).to("cpu", torch.int64)  # type: ignore[union-attr]

    def begin(self) -> None:
        """Notes the batch-norm counters, to tell afterwards which batch norms this rank's paths ran."""
        self._before = self._tracked()

    @torch.no_grad()
    def __call__(self) -> None:
        if self._before is None:
            raise RuntimeError("GradientSync.begin() must be called before the step's forward passes")
        start = time.perf_counter()
        context, world = self.context, self.context.world_size
        uses = self._tracked() - self._before  # forwards through each batch norm on this rank
        self._before = None
        has_grad = torch.tensor([p.grad is not None for p in self.params], dtype=torch.int64)
        # (1) who used what: parameter users, batch-norm users, batch-norm forwards (summed over ranks)
        counts = torch.cat([has_grad, (uses > 0).to(torch.int64), uses]).to(context.comm_device)
        dist.all_reduce(counts)
        counts = counts.cpu()
        n_params, n_norms = len(self.params), len(self.norms)
        param_users = counts[:n_params]
        norm_users = counts[n_params : n_params + n_norms]
        norm_uses = counts[n_params + n_norms :]
        used_params = torch.nonzero(param_users).flatten().tolist()
        used_norms = torch.nonzero(norm_users).flatten().tolist()
        # (2) one flat all-reduce of the used parameters' gradients and the used batch norms' statistics
        pieces: list[torch.Tensor] = []
        for i in used_params:
            p = self.params[i]
            pieces.append(p.grad.reshape(-1) if p.grad is not None else p.new_zeros(p.numel()))
        for j in used_norms:
            norm = self.norms[j]
            ran_here = bool(uses[j] > 0)
            for buffer in (norm.running_mean, norm.running_var):
                pieces.append(buffer.reshape(-1) if ran_here else buffer.new_zeros(buffer.numel()))  # type: ignore[union-attr]
        flat = torch.cat(pieces).to(device=context.device, dtype=self.dtype) if pieces else None
        if flat is not None:
            if flat.device != context.comm_device:
                flat = flat.to(context.comm_device)
            dist.all_reduce(flat)
            flat = flat.to(context.device)
            offset = 0
            for i in used_params:
                p = self.params[i]
                value = flat[offset : offset + p.numel()].view_as(p).div_(world)
                offset += p.numel()
                if p.grad is None:
                    p.grad = value.clone()
                else:
                    p.grad.copy_(value)
            for j in used_norms:
                norm = self.norms[j]
                users = int(norm_users[j])
                for buffer in (norm.running_mean, norm.running_var):
                    n = buffer.numel()  # type: ignore[union-attr]
                    buffer.copy_(flat[offset : offset + n].view_as(buffer) / users)  # type: ignore[union-attr, arg-type]
                    offset += n
                # counters add up: the same count a single process running all W x B paths would reach
                before = int(norm.num_batches_tracked) - int(uses[j])  # type: ignore[arg-type]
                norm.num_batches_tracked.fill_(before + int(norm_uses[j]))  # type: ignore[union-attr]
        self.stats.steps += 1
        self.stats.elements += 0 if flat is None else flat.numel()
        self.stats.mask_elements += counts.numel()
        self.stats.ddp_elements += sum(p.numel() for p in self.params)
        self.stats.seconds += time.perf_counter() - start


class DistributedTrainer(SuperNetTrainer):
    """``SuperNetTrainer`` whose steps average gradients across ranks (``GradientSync``) and whose
    epoch statistics (loss, accuracy) are those of all ranks together."""

    def __init__(self, network: SuperNet, config: SearchConfig, context: DistributedContext):
        super().__init__(network, config)
        self.context = context
        self.sync = GradientSync(network, context)
        self._sums: torch.Tensor | None = None

    def step(self, x: torch.Tensor, y: torch.Tensor, genotypes: Sequence[Genotype]) -> tuple[torch.Tensor, torch.Tensor]:
        self.sync.begin()
        loss, correct = super().step(x, y, genotypes)
        if self._sums is not None:
            seen = float(y.numel() * len(genotypes))
            self._sums += torch.stack([loss.double(), correct.double(), loss.new_tensor(seen, dtype=torch.float64),
                                       loss.new_tensor(1.0, dtype=torch.float64)])
        return loss, correct

    def sync_gradients(self) -> None:
        self.sync()

    def train_epoch(
        self,
        epoch: int,
        batches: Iterable[Batch],
        sample: ArchitectureSampler,
        *,
        phase: str,
        total: int | None = None,
        show_progress: bool = True,
    ) -> EpochStats:
        self._sums = torch.zeros(4, dtype=torch.float64, device=self.context.device)
        try:
            stats = super().train_epoch(epoch, batches, sample, phase=phase, total=total, show_progress=show_progress)
            sums = self._sums.to(self.context.comm_device)
        finally:
            self._sums = None
        dist.all_reduce(sums)
        loss_sum, correct, seen, steps = (float(v) for v in sums.cpu())
        return replace(
            stats,
            loss=loss_sum / steps if steps else float("nan"),
            accuracy=correct / seen if seen else float("nan"),
        )


# ----- evaluation ---------------------------------------------------------------------------------------
class ShardedEvaluator(Evaluator):
    """``Evaluator`` that measures individual ``i`` on rank ``i mod W`` and all-gathers the accuracies;
    its ``stats`` are those of all ranks together (seconds are process-seconds, summed over ranks)."""

    def __init__(self, network: SuperNet, *, context: DistributedContext, **options: Any):
        super().__init__(network, **options)
        self.context = context

    def accuracy(self, genotypes: Sequence[Genotype], *, desc: str = "evaluate") -> np.ndarray:
        context, n = self.context, len(genotypes)
        world = context.world_size
        before = replace(self.stats)
        mine = context.shard(n)
        local = super().accuracy([genotypes[i] for i in mine], desc=f"{desc} ({len(mine)} of {n} here)")
        slots = max(1, math.ceil(n / world))
        buffer = torch.full((slots,), float("nan"), dtype=torch.float64)
        buffer[: len(local)] = torch.from_numpy(local)
        buffer = buffer.to(context.comm_device)
        gathered = [torch.empty_like(buffer) for _ in range(world)]
        dist.all_gather(gathered, buffer)
        columns = [g.cpu().numpy() for g in gathered]
        out = np.array([columns[i % world][i // world] for i in range(n)], dtype=np.float64)
        delta = torch.tensor(
            [self.stats.individuals - before.individuals, self.stats.images - before.images,
             self.stats.seconds - before.seconds, self.stats.recalibration_seconds - before.recalibration_seconds],
            dtype=torch.float64,
        ).to(context.comm_device)
        dist.all_reduce(delta)
        total = delta.cpu().tolist()
        self.stats = EvaluationStats(
            individuals=before.individuals + int(round(total[0])),
            images=before.images + int(round(total[1])),
            seconds=before.seconds + total[2],
            recalibration_seconds=before.recalibration_seconds + total[3],
        )
        return out
