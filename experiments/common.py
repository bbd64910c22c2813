"""What the three experiment scripts share on the command line: data, folders, threads, and the summary.

``experiment_parser`` adds the common flags (data location and subset, work and results folders,
threads, device) and ``prepare`` turns them into an ``Experiment``: the image-subset ImageFolder tree
ready to read, the work folder for run folders, the results folder bound to the experiment's settings,
and PyTorch's thread count set. ``main_wrapper`` runs a script body with the project's one-line errors
and exit codes (``cars_deploy.cli._common.run_command``).
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from cars_deploy.cli._common import CliParser, run_command
from cars_deploy.errors import UserInputError

from .data import DEFAULT_ARCHIVE, Subset, default_cache_dir, image_subset, locate_dataset
from .records import ResultsDir

__all__ = ["Experiment", "REPO_ROOT", "experiment_parser", "main_wrapper", "prepare", "run_info"]

#: The repository root (results default to ``experiments/results/<name>``, run folders to ``runs/experiments``).
REPO_ROOT = Path(__file__).resolve().parents[1]


def experiment_parser(name: str, description: str, *, results: str | None = None) -> CliParser:
    """A parser with the flags every experiment takes; ``name`` is the experiment's name and, unless
    ``results`` names another, its results folder's (``experiments/results/<name>``)."""
    prog = name.replace("_", "-")
    parser = CliParser(prog=prog, description=description)
    data = parser.add_argument_group("data (CIFAR-10 JPEG, ImageFolder layout)")
    data.add_argument("--data-root", type=Path, help="an ImageFolder root holding train/<class>/ and test/<class>/ "
                      "(default: the archive, extracted once into --cache-dir)")
    data.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE, help=f"default {DEFAULT_ARCHIVE}")
    data.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                      help="where the archive is extracted and image subsets are built (default: %(default)s)")
    data.add_argument("--train-per-class", type=int, default=1000,
                      help="training images per class, 0 = all 5,000 (default %(default)s; the search splits them 50/50)")
    data.add_argument("--test-per-class", type=int, default=0,
                      help="test images per class for retrained models, 0 = all 1,000 (default)")
    data.add_argument("--subset-seed", type=int, default=0, help="seed that picks the subset's images")
    data.add_argument("--input-size", type=int, default=32, help="image side the networks read (default 32)")
    where = parser.add_argument_group("folders and machine")
    where.add_argument("--out", type=Path, default=REPO_ROOT / "experiments" / "results" / results if results else None,
                       help=f"results folder (default experiments/results/{results or name})")
    where.add_argument("--work-dir", type=Path, default=REPO_ROOT / "runs" / "experiments",
                       help="search and training run folders, shared by the experiments (default: %(default)s)")
    where.add_argument("--threads", type=int, default=2, help="PyTorch CPU threads (default 2: both cores of a free "
                       "machine; use 1 while other jobs run)")
    where.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    return parser


@dataclass(frozen=True)
class Experiment:
    """Where an experiment reads and writes."""

    name: str  # experiment name (the results subfolder)
    data_dir: Path  # the ImageFolder tree searches and retraining read (an image subset)
    subset: Subset  # what that tree holds
    input_size: int  # image side the networks read
    work_dir: Path  # run folders of cars-search and cars-train
    results: ResultsDir  # the results folder
    threads: int  # PyTorch CPU threads
    device: str  # cpu, cuda or auto


def prepare(name: str, args: argparse.Namespace, settings: Mapping[str, Any]) -> Experiment:
    """Checks the common flags, readies the data and folders, sets PyTorch's threads. ``settings`` are
    the experiment's own result-defining settings; the subset is added to them."""
    if args.threads < 1:
        raise UserInputError(f"--threads must be at least 1, got {args.threads}")
    if args.input_size < 8 or args.input_size % 4:
        raise UserInputError(f"--input-size must be a multiple of 4 of at least 8, got {args.input_size}")
    for flag in ("train_per_class", "test_per_class"):
        if getattr(args, flag) < 0:
            raise UserInputError(f"--{flag.replace('_', '-')} must not be negative")
    subset = Subset(args.train_per_class or None, args.test_per_class or None, args.subset_seed)
    root = locate_dataset(args.data_root, archive=args.archive, cache_dir=args.cache_dir)
    data_dir = image_subset(root, subset, cache_dir=args.cache_dir)
    all_settings = {**settings, "subset": asdict(subset), "input_size": args.input_size}
    results = ResultsDir(args.out or REPO_ROOT / "experiments" / "results" / name, all_settings)
    torch.set_num_threads(args.threads)
    return Experiment(
        name=name,
        data_dir=data_dir,
        subset=subset,
        input_size=args.input_size,
        work_dir=args.work_dir.resolve(),
        results=results,
        threads=args.threads,
        device=args.device,
    )


def run_info(experiment: Experiment) -> dict[str, Any]:
    """Where and how a run happened (written beside the results; timings depend on it)."""
    return {
        "data_dir": str(experiment.data_dir),
        "threads": experiment.threads,
        "device": experiment.device,
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def main_wrapper(name: str, body: Callable[[argparse.Namespace], int | None], parser: CliParser,
                 argv: Sequence[str] | None) -> int:
    """Runs experiment ``name``'s ``body`` with one-line errors and exit codes, and logs its wall time; log
    lines carry the time and the logger's name (``cars_deploy.search`` for a search's per-generation
    lines, ``experiments`` for this package's)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
    began = time.perf_counter()
    status = run_command(name.replace("_", "-"), body, parser, argv)
    logging.getLogger("experiments").info("%s finished in %.0f s (exit %d)", name, time.perf_counter() - began, status)
    return status
