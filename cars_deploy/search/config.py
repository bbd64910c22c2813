"""``SearchConfig``: every setting of a CARS search, with two presets.

``default`` is sized so that ``cars-search`` finishes in a few minutes on two CPU cores on the embedded
digits dataset and still yields a meaningful Pareto set; ``paper`` is the paper's section 4.2 CIFAR-10
search (500 epochs, 50 of warmup, P=128, evolve every 10 epochs) in the DARTS search setting (C=16,
8 cells, SGD momentum 0.9, lr 0.025 cosine to 0.001, weight decay 3e-4, gradient clip 5).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from .._fields import check_finite, dataclass_from_dict
from ..errors import UserInputError
from ..space.networks import MAX_C, MAX_INPUT_SIZE, MAX_LAYERS
from ..space.op_sets import DEFAULT_OP_SET, OP_SETS
from .path_sampling import PATH_SAMPLINGS
from .selection import SELECTIONS, SelectionName

__all__ = ["SearchConfig", "PRESETS", "preset", "SELECTIONS", "DEPLOY_NETWORKS"]

DEPLOY_NETWORKS: tuple[str, ...] = ("imagenet", "cifar")


@dataclass(frozen=True)
class SearchConfig:
    """One CARS search; the CLI builds it, the library never reads argparse namespaces."""

    # --- objectives ---
    objectives: tuple[str, ...] = ("params",)  # costs minimised next to accuracy (names in search.objectives.COSTS)
    selection: SelectionName = "pnsga3"  # survivor selection (section 3.3; search.selection.SELECTIONS)
    deploy_network: Literal["imagenet", "cifar"] = "imagenet"  # network the costs are counted on (paper: ImageNet mobile)
    latency_table: str | None = None  # latency table for the 'latency' cost (plugged in by the latency predictor)
    # --- budgets (search.budgets: constraint domination in the selection) ---
    max_latency_ms: float | None = None  # upper limit on the predicted latency in ms (needs latency_table)
    max_params_m: float | None = None  # upper limit on parameters, in millions, on the deployment network
    max_mult_adds_m: float | None = None  # upper limit on mult-adds, in millions, on the deployment network
    # --- SuperNet (section 3.1; DARTS search setting in the paper preset) ---
    C: int = 8  # channels of the first cells
    layers: int = 5  # cells; reductions at 1/3 and 2/3
    # --- data ---
    dataset: str = "digits"  # digits (embedded), cifar10 or imagefolder
    data_dir: str | None = None  # dataset folder for cifar10 / imagefolder
    input_size: int | None = None  # image side; None = the dataset's own (8 digits, 32 otherwise)
    val_fraction: float = 0.5  # share of the training set held out to rank architectures (paper: 50/50)
    batch_size: int = 64  # images per SGD step and per evaluation batch unit
    eval_batch_size: int = 256  # images per forward pass when evaluating
    max_train_batches: int | None = None  # cap on SGD steps per epoch (quick runs); None = whole split
    max_val_batches: int | None = None  # cap on evaluation batches per individual; None = whole split
    num_workers: int = 0  # DataLoader workers (0 keeps the run bit-for-bit reproducible on CPU)
    augment: bool = True  # DARTS crop/flip augmentation of the training split (image datasets only)
    # --- schedule (Algorithm 1) ---
    epochs: int = 80  # total epochs, warmup included
    warmup_epochs: int = 10  # E_warm: epochs of random single paths (path_sampling) before the population exists
    evolve_every: int = 5  # E_param: epochs of parameter optimisation between two generations
    population: int = 20  # P
    expand: float = 1.0  # t: t*P offspring per generation
    arch_batch: int = 1  # B: architectures per SGD step (eq. 3); their losses are averaged
    # Warmup paths: "fair" (FairNAS strict fairness) or "uniform" (section 3.4). Fair is the default because
    # on benchmarks/bench_ranking.py it cut the SuperNet's flattery of its own population from 7.6 to 1.6
    # points and ranked better than uniform draws (tau +0.42 [0.09, 0.76] on the same 32 genotypes).
    path_sampling: str = "fair"
    # --- search space ---
    op_set: str = DEFAULT_OP_SET  # ops sampling and mutation draw: "published" (7, no 'none') or "darts" (all 8)
    # --- variation (section 4.1) ---
    crossover_prob: float = 0.25  # share of offspring made by crossover
    mutation_prob: float = 0.25  # share made by mutation (the rest, 0.5, are new random architectures)
    crossover_node_prob: float = 0.5  # chance that a node takes its two (input, op) pairs from the second parent
    mutation_node_prob: float = 0.5  # chance that a node is re-drawn by mutation
    # --- parameter optimisation (eq. 3, DARTS search setting) ---
    lr: float = 0.025  # SGD learning rate at epoch 0
    lr_min: float = 0.001  # cosine schedule floor at the last epoch
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 3e-4  # SGD weight decay
    grad_clip: float = 5.0  # gradient-norm clip
    # --- evaluation ---
    bn_recalibration: bool = True  # re-estimate BN statistics per individual before validating it
    bn_recalibration_batches: int = 2  # training batches used for that
    # --- reproducibility ---
    seed: int = 0  # seeds weights, data order, variation and architecture sampling
    preset: str = "default"  # name of the preset this config started from (informative)

    @property
    def n_generations(self) -> int:
        """E_evo: generations after warmup, one every ``evolve_every`` epochs."""
        return (self.epochs - self.warmup_epochs) // self.evolve_every

    @property
    def n_offspring(self) -> int:
        """t x P, rounded."""
        return max(1, int(round(self.expand * self.population)))

    def validate(self) -> None:
        """Raises ``UserInputError`` naming the first setting that cannot run."""
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise UserInputError(message)

        check_finite(self, "search settings")
        need(0 <= self.seed <= 2**32 - 1, f"--seed must be in 0..{2**32 - 1}, got {self.seed}")
        need(2 <= self.C <= MAX_C and 3 <= self.layers <= MAX_LAYERS,
             f"--C must be in 2..{MAX_C} and --layers in 3..{MAX_LAYERS}, got C={self.C}, layers={self.layers}")
        need(self.input_size is None or 1 <= self.input_size <= MAX_INPUT_SIZE,
             f"--input-size must be in 1..{MAX_INPUT_SIZE}, got {self.input_size}")
        need(len(self.objectives) >= 1, "give at least one cost objective (--objective params)")
        need(len(set(self.objectives)) == len(self.objectives), f"objective listed twice: {','.join(self.objectives)}")
        need(self.selection in SELECTIONS,
             f"unknown selection {self.selection!r}; expected one of {', '.join(SELECTIONS)}")
        need(self.path_sampling in PATH_SAMPLINGS,
             f"unknown path sampling {self.path_sampling!r}; expected one of {', '.join(PATH_SAMPLINGS)}")
        need(self.op_set in OP_SETS, f"unknown op set {self.op_set!r}; expected one of {', '.join(OP_SETS)}")
        need(self.deploy_network in DEPLOY_NETWORKS, f"unknown deploy network {self.deploy_network!r}; expected imagenet or cifar")
        need(
            self.input_size is None or self.dataset != "digits",
            "--input-size does not apply to the digits dataset (its images are 8x8)",
        )
        for flag, value in (("--max-latency", self.max_latency_ms), ("--max-params", self.max_params_m),
                            ("--max-mult-adds", self.max_mult_adds_m)):
            need(value is None or (math.isfinite(value) and value > 0), f"{flag} must be a positive number, got {value}")
        need(
            self.max_latency_ms is None or bool(self.latency_table),
            "--max-latency needs a latency table: pass --latency-table TABLE (or local for this computer's CPU)",
        )
        need(self.C >= 2 and self.C % 2 == 0, f"--C must be an even number >= 2, got {self.C}")
        need(self.layers >= 3, f"--layers must be at least 3, got {self.layers}")
        need(0.0 < self.val_fraction < 1.0, f"val_fraction must be in (0, 1), got {self.val_fraction}")
        need(self.batch_size >= 1 and self.eval_batch_size >= 1, "batch sizes must be positive")
        for name in ("max_train_batches", "max_val_batches"):
            value = getattr(self, name)
            need(value is None or value >= 1, f"--{name.replace('_', '-')} must be positive, got {value}")
        need(self.warmup_epochs >= 0, f"--warmup must be >= 0, got {self.warmup_epochs}")
        need(self.evolve_every >= 1, f"--evolve-every must be >= 1, got {self.evolve_every}")
        need(
            self.epochs > self.warmup_epochs and (self.epochs - self.warmup_epochs) % self.evolve_every == 0,
            f"--epochs minus --warmup must be a positive multiple of --evolve-every "
            f"({self.epochs} - {self.warmup_epochs} is not a multiple of {self.evolve_every})",
        )
        need(self.population >= 2, f"--population must be at least 2, got {self.population}")
        need(self.expand > 0, f"--expand must be positive, got {self.expand}")
        need(1 <= self.arch_batch <= self.population, f"--arch-batch must be in 1..population, got {self.arch_batch}")
        probs = (self.crossover_prob, self.mutation_prob, self.crossover_node_prob, self.mutation_node_prob)
        need(all(0.0 <= p <= 1.0 for p in probs), "variation probabilities must lie in [0, 1]")
        need(self.crossover_prob + self.mutation_prob <= 1.0, "crossover_prob + mutation_prob must not exceed 1")
        need(self.lr > 0 and self.lr_min >= 0 and self.grad_clip > 0, "lr and grad_clip must be positive")
        need(self.bn_recalibration_batches >= 1, "bn_recalibration_batches must be at least 1")
        need(self.num_workers >= 0, "num_workers must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists)."""
        data = dataclasses.asdict(self)
        data["objectives"] = list(self.objectives)
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "search settings") -> "SearchConfig":
        """Inverse of ``to_dict``; unknown keys (a config from another tool or version) and values of the
        wrong type are a ``UserInputError`` naming ``where`` (the file) and the field. Ranges are
        ``validate``'s job, called by the loaders."""
        if isinstance(data, dict) and "op_set" not in data:
            # Runs made before the op set was recorded sampled DARTS' 8 ops; they resume in that space.
            data = {**data, "op_set": "darts"}
        if isinstance(data, dict) and "path_sampling" not in data:
            # Runs made before path sampling was recorded warmed up on uniform paths; they resume so.
            data = {**data, "path_sampling": "uniform"}
        return dataclass_from_dict(cls, data, where)

    def replace(self, **changes: Any) -> "SearchConfig":
        return dataclasses.replace(self, **changes)


#: Presets by name: the demo-sized default and the paper's CIFAR-10 search (section 4.2).
PRESETS: dict[str, SearchConfig] = {
    "default": SearchConfig(),
    "paper": SearchConfig(
        C=16,
        layers=8,
        dataset="cifar10",
        batch_size=64,
        eval_batch_size=512,
        epochs=500,
        warmup_epochs=50,
        evolve_every=10,
        population=128,
        expand=1.0,
        arch_batch=1,
        preset="paper",
    ),
}


def preset(name: str, **changes: Any) -> SearchConfig:
    """The preset ``name`` with ``changes`` applied (None values ignored)."""
    if name not in PRESETS:
        raise UserInputError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return PRESETS[name].replace(**{k: v for k, v in changes.items() if v is not None})

