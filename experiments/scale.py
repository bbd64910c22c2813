"""The size of an experiment: the search and the short retraining budget, as dataclasses and command lines.

A ``SearchScale`` becomes the argument list of one ``cars-search`` run and a ``TrainScale`` that of one
``cars-train`` run, so every search and retraining in the experiments is a command a user can retype
(each run's exact command is written to the results folder). The defaults are the CPU scale of
EXPERIMENTS.md, chosen from timings on this project's 2-core machine: a search of 20 generations is
about 50 minutes and one retraining about 4 minutes on one loaded core (less on two free ones).

The flags are shared by the three experiment scripts (``add_search_flags`` / ``add_train_flags``), so
that the same flags give the same search run - and experiments 2 and 3 reuse the pNSGA-III search of
experiment 1 instead of running it again (``runs.run_search`` keys run folders by command line).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Sequence

from cars_deploy.data import dataset_info
from cars_deploy.errors import UserInputError
from cars_deploy.search.objectives import CountCost
from cars_deploy.space import NetworkConfig

__all__ = ["SearchScale", "TrainScale", "add_search_flags", "add_train_flags", "search_scale", "train_scale"]


@dataclass(frozen=True)
class SearchScale:
    """One CARS search of the experiments (paper section 4.2 shrunk to CPU size)."""

    C: int = 8  # SuperNet channels of the first cells (paper: 16)
    layers: int = 5  # SuperNet cells (paper: 8)
    population: int = 16  # P (paper: 128)
    generations: int = 20  # generations after warmup (paper Figure 2: 20)
    evolve_every: int = 2  # E_param: epochs between generations (paper: 10)
    warmup: int = 10  # E_warm: epochs on random single paths (paper: 50)
    batch_size: int = 64  # images per SGD step (paper: 64)
    val_batches: int = 2  # validation batches of 256 images that rank each individual (paper: all 25,000 images)
    max_train_batches: int | None = None  # cap on SGD steps per epoch; None = the whole training half
    deploy_network: str = "cifar"  # network the params objective is counted on (the CIFAR evaluation network)
    seed: int = 0  # seeds the SuperNet, data order, variation and the train/validation split

    @property
    def epochs(self) -> int:
        """Total epochs, warmup included: ``warmup + generations * evolve_every``."""
        return self.warmup + self.generations * self.evolve_every

    def argv(self, *, data_dir: Path, selection: str, input_size: int) -> list[str]:
        """The ``cars-search`` arguments of this search (without ``--out``, ``--threads``, ``--device``)."""
        argv = [
            "--dataset", "imagefolder", "--data-dir", str(data_dir), "--input-size", str(input_size),
            "--objective", "params", "--selection", selection, "--deploy-network", self.deploy_network,
            "--C", str(self.C), "--layers", str(self.layers), "--population", str(self.population),
            "--epochs", str(self.epochs), "--warmup", str(self.warmup), "--evolve-every", str(self.evolve_every),
            "--batch-size", str(self.batch_size), "--max-val-batches", str(self.val_batches), "--seed", str(self.seed),
        ]  # fmt: skip
        if self.max_train_batches is not None:
            argv += ["--max-train-batches", str(self.max_train_batches)]
        return argv


@dataclass(frozen=True)
class TrainScale:
    """The short retraining budget every stand-alone model gets (the DARTS protocol of section 4.2, cut down).

    Same optimiser and schedule as DARTS (SGD 0.025, momentum 0.9, weight decay 3e-4, cosine over the
    run, crop + flip), on the search network's size; the regularisers meant for 600 epochs (Cutout,
    drop path, the auxiliary head) are off by default because they only slow a run this short down.
    """

    C: int = 8  # initial channels of the retrained network (the SuperNet's, so the two rank the same networks)
    layers: int = 5  # cells of the retrained network
    epochs: int = 5  # epochs of the cosine schedule
    steps_per_epoch: int | None = 80  # SGD steps per epoch (cars-train --max-train-batches); None = whole epochs
    batch_size: int = 96  # images per step (DARTS: 96)
    lr: float = 0.025  # initial learning rate (DARTS: 0.025)
    cutout: int = 0  # Cutout side (DARTS: 16)
    drop_path: float = 0.0  # final drop-path probability (DARTS: 0.2)
    auxiliary_weight: float = 0.0  # auxiliary-head loss weight (DARTS: 0.4)
    eval_every: int | None = None  # test every N epochs for learning curves; None = after the last epoch only
    seed: int = 0  # seeds the weights, data order and augmentation

    def network(self, *, num_classes: int, input_size: int) -> NetworkConfig:
        """The retrained network (without its auxiliary head, which is never counted)."""
        return NetworkConfig.cifar(C=self.C, layers=self.layers, num_classes=num_classes, input_size=input_size)

    def params_count(self, *, data_dir: Path, input_size: int) -> CountCost:
        """Counts parameters on the network retrained on the ImageFolder tree ``data_dir``: the size the
        experiments match genotypes on and report."""
        classes = dataset_info("imagefolder", data_dir).num_classes
        network = self.network(num_classes=classes, input_size=input_size)
        return CountCost("params", network=network, label="params", scale=1.0)

    def argv(self, genotype: str, *, data_dir: Path, input_size: int) -> list[str]:
        """The ``cars-train`` arguments for ``genotype`` (without ``--out``, ``--device``)."""
        argv = [
            genotype, "--dataset", "imagefolder", "--data-dir", str(data_dir), "--input-size", str(input_size),
            "--network", "cifar", "--C", str(self.C), "--layers", str(self.layers), "--epochs", str(self.epochs),
            "--batch-size", str(self.batch_size), "--lr", repr(self.lr), "--cutout", str(self.cutout),
            "--drop-path", repr(self.drop_path), "--auxiliary-weight", repr(self.auxiliary_weight),
            "--seed", str(self.seed), "--eval-every", str(self.eval_every or self.epochs), "--workers", "0",
        ]  # fmt: skip
        if self.steps_per_epoch is not None:
            argv += ["--max-train-batches", str(self.steps_per_epoch)]
        return argv


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


#: Help text of the ``--search-*`` and ``--train-*`` flags (the dataclass fields' meaning, shortly).
_HELP: dict[str, str] = {
    "search_C": "SuperNet initial channels",
    "search_layers": "SuperNet cells",
    "search_population": "population size P",
    "search_generations": "generations after warmup",
    "search_evolve_every": "epochs between generations (E_param)",
    "search_warmup": "warmup epochs on random single paths (E_warm)",
    "search_batch_size": "images per SGD step",
    "search_val_batches": "validation batches of 256 images per individual",
    "search_max_train_batches": "cap on SGD steps per epoch, 0 = the whole training half",
    "search_deploy_network": "network the params objective is counted on",
    "train_C": "initial channels of the retrained networks",
    "train_layers": "cells of the retrained networks",
    "train_epochs": "epochs of the cosine schedule",
    "train_steps_per_epoch": "SGD steps per epoch, 0 = whole epochs",
    "train_batch_size": "images per step",
    "train_lr": "initial learning rate",
    "train_cutout": "Cutout side, 0 = off",
    "train_drop_path": "final drop-path probability",
    "train_auxiliary_weight": "auxiliary-head loss weight, 0 = no head",
    "train_eval_every": "test every N epochs (learning curves), 0 = after the last epoch only",
}


def _add_flags(parser: argparse.ArgumentParser, cls: Any, prefix: str, title: str, default: Any) -> None:
    group = parser.add_argument_group(title)
    for field in fields(cls):
        if field.name == "seed":
            continue
        name, value = f"{prefix}_{field.name}", getattr(default, field.name)
        options: dict[str, Any] = {"default": value, "help": f"{_HELP[name]} (default {value})"}
        if field.name == "deploy_network":
            options["choices"] = ("cifar", "imagenet")
        else:
            options["type"] = float if isinstance(value, float) else int
            options["metavar"] = "X" if isinstance(value, float) else "N"
        group.add_argument(_flag(name), **options)


def add_search_flags(
    parser: argparse.ArgumentParser, *, defaults: SearchScale | None = None, seeds: Sequence[int] | None = None
) -> None:
    """``--search-*`` flags for every ``SearchScale`` field (their defaults from ``defaults``, the CPU scale
    when None), and ``--seed``; or, with ``seeds``, ``--seeds`` (one search per seed, these by default)."""
    _add_flags(parser, SearchScale, "search", "search scale (cars-search)", defaults or SearchScale())
    if seeds is None:
        parser.add_argument("--seed", type=int, default=0, help="seed of the searches, retraining and genotype picks")
    else:
        parser.add_argument("--seeds", type=int, nargs="+", default=list(seeds), metavar="SEED",
                            help=f"seeds of the searches and of their retraining, one search each (default "
                            f"{' '.join(map(str, seeds))})")


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """``--train-*`` flags for every ``TrainScale`` field but the seed (``--seed`` sets it)."""
    _add_flags(parser, TrainScale, "train", "retraining budget (cars-train)", TrainScale())


def _collect(cls: Any, prefix: str, args: argparse.Namespace, seed: int | None) -> Any:
    values = {f.name: getattr(args, f"{prefix}_{f.name}") for f in fields(cls) if f.name != "seed"}
    for name, value in values.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise UserInputError(f"{_flag(prefix + '_' + name)} must not be negative, got {value}")
    return cls(seed=args.seed if seed is None else seed, **values)


def search_scale(args: argparse.Namespace, *, seed: int | None = None) -> SearchScale:
    """The ``SearchScale`` the flags describe (``0`` max train batches means None) with ``seed`` (``--seed``
    when None); ``UserInputError`` for a size no search can run."""
    scale: SearchScale = _collect(SearchScale, "search", args, seed)
    if scale.max_train_batches == 0:
        scale = replace(scale, max_train_batches=None)
    if scale.generations < 1 or scale.evolve_every < 1 or scale.population < 2 or scale.val_batches < 1:
        raise UserInputError("--search-generations, --search-evolve-every and --search-val-batches must be >= 1 "
                             "and --search-population >= 2")
    return scale


def train_scale(args: argparse.Namespace, *, seed: int | None = None) -> TrainScale:
    """The ``TrainScale`` the flags describe (``0`` for steps or eval-every means None) with ``seed``
    (``--seed`` when None)."""
    scale: TrainScale = _collect(TrainScale, "train", args, seed)
    changes: dict[str, Any] = {}
    if scale.steps_per_epoch == 0:
        changes["steps_per_epoch"] = None
    if scale.eval_every == 0:
        changes["eval_every"] = None
    if scale.epochs < 1:
        raise UserInputError(f"--train-epochs must be at least 1, got {scale.epochs}")
    return replace(scale, **changes)
