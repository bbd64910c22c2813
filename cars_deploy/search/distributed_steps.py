"""The two steps of Algorithm 1 across the processes of one search (``search.distributed``).

- Parameter optimisation (eq. 3). Each rank back-propagates its ``B`` architectures (losses scaled by
  ``1/B``), then ``GradientSync`` all-reduces the gradients and divides by ``W``:
  ``1/W Σ_r 1/B Σ_j dL_rj/dW`` is exactly eq. 3's average over the ``W x B`` architectures, a weight
  off an architecture's path contributing zero for it. DDP is not used because it assumes the same
  graph on every rank: different paths per rank need ``find_unused_parameters=True`` (a walk of the
  autograd graph every step), DDP then still all-reduces *every* parameter bucket, zeros included, and
  it broadcasts rank 0's batch-norm buffers at each forward, discarding the other ranks' statistics.
  Instead, two collectives per step: (1) a small integer all-reduce of "which parameter tensors got a
  gradient / which batch norms ran, and how often" (one int64 per parameter tensor and two per batch
  norm); (2) one all-reduce of a flat buffer holding only the gradients of parameters some rank used
  (zeros from ranks that did not) and the running statistics of batch norms some rank ran. A parameter
  no rank used keeps ``grad=None``, so SGD leaves it, momentum and weight decay included, untouched -
  the single-process semantics (eq. 1's mask ``⊙ C_i`` over the whole global mini-batch). Cost: the
  bytes of the union of the ``W x B`` sampled paths plus one small integer vector per step, against
  DDP's whole SuperNet (``GradientSync.stats`` counts both; ``benchmarks/bench_distributed.py`` prints
  them). Batch-norm running statistics become the mean of the updates of the ranks whose path ran them
  (counters add up), so every rank ends each step with identical weights *and* buffers.
  ``DistributedTrainer`` is the ``SuperNetTrainer`` that does this.
- Architecture optimisation: every rank holds the same population and computes the same offspring;
  ``ShardedEvaluator`` (an ``Evaluator``) measures individual ``i`` on rank ``i mod W`` (on the full
  validation set, with the same fixed batch-norm re-estimation batches) and all-gathers the accuracies,
  so every rank gets bit-for-bit the accuracies a single process would, and selection runs on identical
  data everywhere.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..space import Genotype
from ..space.supernet import SuperNet
from .config import SearchConfig
from .context import ProcessContext
from .data import Batch
from .evaluation import EvaluationStats, Evaluator
from .trainer import ArchitectureSampler, EpochStats, SuperNetTrainer

__all__ = ["DistributedTrainer", "GradientSync", "ShardedEvaluator", "SyncStats"]


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

    def __init__(self, network: nn.Module, context: ProcessContext):
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

    def __init__(self, network: SuperNet, config: SearchConfig, context: ProcessContext):
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



class ShardedEvaluator(Evaluator):
    """``Evaluator`` that measures individual ``i`` on rank ``i mod W`` and all-gathers the accuracies;
    its ``stats`` are those of all ranks together (seconds are process-seconds, summed over ranks)."""

    def __init__(
        self,
        network: SuperNet,
        *,
        context: ProcessContext,
        val_batches: Sequence[Batch],
        recalibration_batches: Sequence[Batch],
        bn_recalibration: bool,
        show_progress: bool = True,
    ):
        super().__init__(network, val_batches=val_batches, recalibration_batches=recalibration_batches,
                         bn_recalibration=bn_recalibration, show_progress=show_progress)
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
