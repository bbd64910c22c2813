"""Architecture evaluation: validation accuracy of individuals on a SuperNet's weights (section 3.4).

Evaluation runs on a private copy of the SuperNet (``Evaluator.load`` copies a state dict into it), so
that neither per-individual batch-norm re-estimation nor measuring on the *previous* generation's
weights touches the network being trained.

Batch-norm re-estimation (on by default): the running statistics in the SuperNet were accumulated
over many different paths, which misstates the statistics of any one path (single-path one-shot NAS,
Guo et al. 2019, ref. [17]). Before measuring an individual, the statistics of the batch norms on its
path are reset and re-estimated as a cumulative average (``momentum=None``) over a few fixed training
batches in train mode; then the validation batches run in eval mode under ``torch.no_grad``. The time
spent re-estimating is measured separately (``EvaluationStats``) so its cost can be reported.

Accuracy increasing speed (the pNSGA-III term of section 3.3). The paper's motivation is that large
models learn slower, so their accuracy at a given epoch understates what they reach; the quantity that
protects them is how fast their accuracy is still rising. It is measured here as

    speed_i = (acc_i(W_e) - acc_i(W_{e-1})) / E_param      [accuracy per epoch]

where ``W_e`` are the SuperNet weights at generation ``e``, ``W_{e-1}`` the weights at the previous
generation (a CPU copy kept by the loop), and ``E_param`` the epochs of training between them. Parents
were measured on ``W_{e-1}`` when they were selected (evaluation is deterministic: fixed batches,
fixed re-estimation batches), so only offspring are measured on both weights. Measuring on the same
validation images with the same procedure makes the difference a property of the architecture under
the shared-weight training, not of the evaluation noise; vega's pNSGA-III had no such term.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .._progress import progress
from ..space import Genotype
from ..space.supernet import SuperNet
from .data import Batch

__all__ = ["Evaluator", "EvaluationStats", "accuracy_speed"]


def accuracy_speed(current: np.ndarray, previous: np.ndarray, epochs: int) -> np.ndarray:
    """``(current - previous) / epochs``: the change of validation accuracy per epoch of training."""
    if epochs <= 0:
        raise ValueError("the accuracy speed needs at least one epoch between the two measurements")
    return (np.asarray(current, dtype=np.float64) - np.asarray(previous, dtype=np.float64)) / epochs


@dataclass
class EvaluationStats:
    """Cumulative cost of evaluation since the last ``reset``."""

    individuals: int = 0  # individual evaluations done
    images: int = 0  # validation images classified
    seconds: float = 0.0  # total wall time, re-estimation included
    recalibration_seconds: float = 0.0  # wall time spent re-estimating batch-norm statistics

    def as_dict(self) -> dict[str, float]:
        return {
            "evaluations": self.individuals,
            "eval_images": self.images,
            "eval_seconds": round(self.seconds, 4),
            "bn_recalibration_seconds": round(self.recalibration_seconds, 4),
        }


class Evaluator:
    """Validation accuracy of genotypes on a private SuperNet copy."""

    def __init__(
        self,
        network: SuperNet,
        *,
        val_batches: Sequence[Batch],
        recalibration_batches: Sequence[Batch],
        bn_recalibration: bool,
        show_progress: bool = True,
    ):
        self.network = network.eval()
        self.val_batches = list(val_batches)
        self.recalibration_batches = list(recalibration_batches)
        self.bn_recalibration = bn_recalibration
        self.show_progress = show_progress
        self.stats = EvaluationStats()
        if bn_recalibration:
            for module in self.network.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.momentum = None  # cumulative average over the re-estimation batches
        if not self.val_batches:
            raise ValueError("no validation batches to evaluate on")
        if bn_recalibration and not self.recalibration_batches:
            raise ValueError("batch-norm re-estimation needs at least one training batch")

    def load(self, state: Mapping[str, torch.Tensor]) -> None:
        """Copies SuperNet weights (e.g. the trained network's ``state_dict()``) into the private copy."""
        self.network.load_state_dict(state, strict=True)

    @torch.no_grad()
    def accuracy(self, genotypes: Sequence[Genotype], *, desc: str = "evaluate") -> np.ndarray:
        """Validation accuracy (fraction correct) of each genotype on the loaded weights."""
        out = np.zeros(len(genotypes), dtype=np.float64)
        total = sum(int(y.numel()) for _, y in self.val_batches)
        device = self.val_batches[0][0].device
        quiet = {} if self.show_progress else {"disable": True}
        for i, genotype in enumerate(progress(genotypes, desc=desc, unit="arch", **quiet)):
            start = time.perf_counter()
            if self.bn_recalibration:
                self._recalibrate(genotype)
                _sync(device)
                self.stats.recalibration_seconds += time.perf_counter() - start
            correct = torch.zeros((), dtype=torch.int64, device=device)
            for x, y in self.val_batches:
                correct += (self.network(x, genotype).argmax(dim=1) == y).sum()
            out[i] = int(correct.item()) / total
            self.stats.seconds += time.perf_counter() - start
            self.stats.individuals += 1
            self.stats.images += total
        return out

    def _recalibrate(self, genotype: Genotype) -> None:
        # Only the path's batch norms switch to train mode (the network has no other train-mode
        # behaviour); toggling the whole SuperNet would walk thousands of modules per individual.
        norms = [
            m
            for module in self.network.path_modules(genotype)
            for m in module.modules()
            if isinstance(m, nn.BatchNorm2d)
        ]
        for norm in norms:
            norm.reset_running_stats()
            norm.train()
        try:
            for x, _ in self.recalibration_batches:
                self.network(x, genotype)
        finally:
            for norm in norms:
                norm.eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
