"""Parameter optimisation of the SuperNet (section 3.2, eq. 3) and its warmup (section 3.4).

Each SGD step draws ``B`` architectures - from the population, or uniformly at random during the
``E_warm`` warmup epochs so that every op is trained with the same probability - runs each on the
*same* data batch and descends the *average* of their losses (eq. 3: ``dW ≈ 1/B Σ_j dL_nj/dW``).
Each architecture's loss is back-propagated on its own, scaled by ``1/B``, as soon as it is computed:
the gradients add up to the gradient of the average while only one path's activations are alive at a
time, and no graph is ever kept (vega summed the losses and called ``backward(retain_graph=True)``).
Weights outside every sampled path get no gradient (``zero_grad(set_to_none=True)``), so SGD leaves
them - momentum and weight decay included - untouched, which is eq. 1's mask ``⊙ C_i``.

Defaults are the DARTS search setting: SGD momentum 0.9, lr 0.025 annealed by a cosine to 0.001 over
all epochs, weight decay 3e-4, gradient-norm clip 5.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from .._progress import progress
from ..space import Genotype
from ..space.supernet import SuperNet
from .config import SearchConfig
from .data import Batch

__all__ = ["SuperNetTrainer", "EpochStats"]

ArchitectureSampler = Callable[[], Sequence[Genotype]]


@dataclass
class EpochStats:
    """What one training epoch did."""

    epoch: int  # 0-based epoch index
    phase: str  # "warmup" or "evolution"
    steps: int  # SGD steps
    loss: float  # mean training loss (average over the B architectures and the steps)
    accuracy: float  # training accuracy of the sampled architectures
    lr: float  # learning rate used during the epoch
    seconds: float  # wall time

    def as_dict(self) -> dict[str, float | int | str]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


class SuperNetTrainer:
    """SGD on the shared weights with the mini-batch-of-architectures rule of eq. 3."""

    def __init__(self, network: SuperNet, config: SearchConfig):
        self.network = network
        self.config = config
        self.criterion = nn.CrossEntropyLoss()
        self.optimizer = torch.optim.SGD(
            network.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=config.epochs, eta_min=config.lr_min
        )

    def step(self, x: torch.Tensor, y: torch.Tensor, genotypes: Sequence[Genotype]) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step on the average loss of ``genotypes`` on batch ``(x, y)``; returns the (detached)
        average loss and the number of correct predictions summed over the architectures."""
        if not genotypes:
            raise ValueError("a training step needs at least one architecture")
        if not self.network.training:
            self.network.train()
        self.optimizer.zero_grad(set_to_none=True)
        scale = 1.0 / len(genotypes)
        total_loss = torch.zeros((), device=x.device)
        correct = torch.zeros((), dtype=torch.int64, device=x.device)
        for genotype in genotypes:
            logits = self.network(x, genotype)
            loss = self.criterion(logits, y) * scale
            loss.backward()
            total_loss += loss.detach()
            correct += (logits.detach().argmax(dim=1) == y).sum()
        self.sync_gradients()
        nn.utils.clip_grad_norm_([p for p in self.network.parameters() if p.grad is not None], self.config.grad_clip)
        self.optimizer.step()
        return total_loss, correct

    def sync_gradients(self) -> None:
        """Hook between the backward passes and the clip + optimizer step; nothing to do in one process
        (``search.distributed_steps.DistributedTrainer`` averages the gradients across processes here)."""

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
        """One epoch over ``batches``, each step on the architectures ``sample()`` returns; then the
        learning-rate schedule advances."""
        start = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]
        loss_sum, correct, seen, steps = None, None, 0, 0
        quiet = {} if show_progress else {"disable": True}
        for x, y in progress(batches, desc=f"epoch {epoch + 1} ({phase})", total=total, unit="step", **quiet):
            genotypes = sample()
            loss, right = self.step(x, y, genotypes)
            loss_sum = loss if loss_sum is None else loss_sum + loss
            correct = right if correct is None else correct + right
            seen += int(y.numel()) * len(genotypes)
            steps += 1
        self.scheduler.step()
        return EpochStats(
            epoch=epoch,
            phase=phase,
            steps=steps,
            loss=float(loss_sum.item()) / steps if steps else float("nan"),
            accuracy=float(correct.item()) / seen if seen else float("nan"),
            lr=float(lr),
            seconds=time.perf_counter() - start,
        )
