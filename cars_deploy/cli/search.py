"""``cars-search``: a CARS search (continuous evolution of a population on one SuperNet) into a run folder."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any, Sequence

import pandas as pd
import torch

from ..data import DATASETS
from ..errors import CarsError, UserInputError
from ..latency.objective import LOCAL_TABLE
from ..latency.search_run import open_search, verify_search
from ..profilers.device import parse_device_spec
from ..search.budgets import budgets_of
from ..search.config import DEPLOY_NETWORKS, PRESETS, SELECTIONS, SearchConfig, preset
from ..search.context import ProcessContext
from ..search.distributed import init_distributed
from ..search.loop import CarsSearch, SearchResult
from ..search.path_sampling import PATH_SAMPLINGS
from ..space.op_sets import OP_SETS
from . import _numbers as N
from ._common import CliParser, out_folder, run_command

__all__ = ["main", "config_from_args", "outside_legend"]

# Flags that define the search; with --resume the run's saved config is used and these are refused.
_CONFIG_FLAGS: dict[str, str] = {
    "objective": "objectives",
    "selection": "selection",
    "deploy_network": "deploy_network",
    "latency_table": "latency_table",
    "max_latency": "max_latency_ms",
    "max_params": "max_params_m",
    "max_mult_adds": "max_mult_adds_m",
    "population": "population",
    "epochs": "epochs",
    "warmup": "warmup_epochs",
    "evolve_every": "evolve_every",
    "arch_batch": "arch_batch",
    "expand": "expand",
    "seed": "seed",
    "dataset": "dataset",
    "data_dir": "data_dir",
    "input_size": "input_size",
    "C": "C",
    "layers": "layers",
    "batch_size": "batch_size",
    "max_train_batches": "max_train_batches",
    "max_val_batches": "max_val_batches",
    "workers": "num_workers",
    "bn_recalibration": "bn_recalibration",
    "bn_recalibration_batches": "bn_recalibration_batches",
    "op_set": "op_set",
    "path_sampling": "path_sampling",
}


def _parser() -> CliParser:
    d = PRESETS["default"]
    parser = CliParser(
        prog="cars-search",
        description="Search the DARTS cell space with CARS: one weight-sharing SuperNet and a population evolved "
        "by pNSGA-III on accuracy and cost. Writes config.json, history.jsonl, population.csv, pareto.csv, "
        "checkpoint.pt and plots/ into the run folder. Flags left out take the preset's values (default: "
        f"{d.dataset}, C={d.C}, {d.layers} cells, P={d.population}, {d.epochs} epochs with {d.warmup_epochs} of "
        f"warmup, a generation every {d.evolve_every}, B={d.arch_batch}, t={d.expand:g}).",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=out_folder, metavar="RUN", help="new run folder")
    where.add_argument("--resume", metavar="RUN", help="continue the run in RUN from its checkpoint (its saved settings)")
    parser.add_argument("--overwrite", action="store_true", help="with --out: replace a run already in RUN")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default",
                        help="default: minutes on 2 CPU cores on the embedded digits; paper: section 4.2 CIFAR-10 search")
    objectives = parser.add_argument_group("objectives")
    objectives.add_argument("--objective", help="cost(s) minimised next to accuracy, comma-separated: params, "
                            "mult_adds, latency (default: params)")
    objectives.add_argument("--selection", choices=SELECTIONS, help="survivor selection (section 3.3):\n"
                            "pnsga3: pNSGA-III as in the paper (default)\n"
                            "pnsga3-shuffled: pnsga3, speeds permuted at random\n"
                            "vega: vega's sort (accuracy, size up), random cut\n"
                            "nsga3: NSGA-III on accuracy and cost")
    objectives.add_argument("--deploy-network", choices=DEPLOY_NETWORKS,
                            help="network the costs are counted on (default: imagenet, the mobile setting)")
    objectives.add_argument("--latency-table", metavar="TABLE",
                            help="latency table for --objective latency: a path, a shipped table's name "
                            "(host-cpu-imagenet-ort1), or 'local' for this computer's CPU (profiled and calibrated "
                            "on first use, then cached)")
    objectives.add_argument("--verify-on", metavar="DEVICE",
                            help="at the end, time every Pareto model end to end on DEVICE (local, adb:SERIAL, "
                            "adb:HOST:PORT); pareto.csv then carries latency_measured_ms beside latency_ms")
    budgets = parser.add_argument_group(
        "budgets", "limits every Pareto model must meet (any combination): the selection keeps models within "
        "budget first (constraint domination); a limit no genotype of the space meets is refused")
    budgets.add_argument("--max-latency", type=N.LIMIT, metavar="MS",
                         help="predicted latency limit in ms (needs --latency-table)")
    budgets.add_argument("--max-params", type=N.LIMIT, metavar="M", help="parameter limit in millions")
    budgets.add_argument("--max-mult-adds", type=N.LIMIT, metavar="M", help="mult-add limit in millions")
    evolution = parser.add_argument_group("evolution (Algorithm 1)")
    evolution.add_argument("--population", type=N.POPULATION, metavar="P", help="population size")
    evolution.add_argument("--epochs", type=N.EPOCHS, help="total epochs, warmup included")
    evolution.add_argument("--warmup", type=N.EPOCHS0, metavar="E_WARM", help="warmup epochs on single random paths")
    evolution.add_argument("--evolve-every", type=N.EPOCHS, metavar="E_PARAM", help="epochs between generations")
    evolution.add_argument("--arch-batch", type=N.POPULATION, metavar="B", help="architectures per SGD step (eq. 3)")
    evolution.add_argument("--expand", type=N.RATE, metavar="T", help="offspring per generation, as a multiple of P")
    evolution.add_argument("--path-sampling", choices=PATH_SAMPLINGS,
                           help="warmup paths: fair (default; FairNAS: within each group of steps every op of every "
                           "edge is trained exactly once) or uniform (section 3.4's independent draws)")
    evolution.add_argument("--op-set", choices=tuple(OP_SETS),
                           help="ops that sampling and mutation draw: published (the 7 ops of every published "
                           "genotype, default) or darts (all 8, 'none' included, as section 3.4 samples)")
    evolution.add_argument("--seed", type=N.SEED, help="random seed (default 0)")
    evolution.add_argument("--max-generations", type=N.COUNT0, metavar="K",
                           help="stop after generation K (resume later with --resume)")
    data = parser.add_argument_group("data and SuperNet")
    data.add_argument("--dataset", choices=DATASETS,
                      help="digits (embedded, default), cifar10 (torchvision layout) or imagefolder (train/<class>/)")
    data.add_argument("--data-dir", help="dataset folder for cifar10 / imagefolder")
    data.add_argument("--input-size", type=N.INPUT_SIZE, help="image side for cifar10 / imagefolder (default 32)")
    data.add_argument("--C", type=N.CHANNELS, help="SuperNet initial channels")
    data.add_argument("--layers", type=N.LAYERS, help="SuperNet cells")
    data.add_argument("--batch-size", type=N.BATCH, help="images per SGD step")
    data.add_argument("--max-train-batches", type=N.COUNT, metavar="N", help="cap on SGD steps per epoch (quick runs)")
    data.add_argument("--max-val-batches", type=N.COUNT, metavar="N", help="cap on validation batches per individual")
    data.add_argument("--workers", type=N.WORKERS, help="data-loading worker processes (default 0)")
    data.add_argument("--no-bn-recalibration", dest="bn_recalibration", action="store_const", const=False,
                      help="measure individuals with the SuperNet's shared BN statistics")
    data.add_argument("--bn-recalibration-batches", type=N.COUNT, metavar="N",
                      help="training batches that re-estimate BN statistics per individual (default 2)")
    parser.add_argument("--device", default="auto", help="torch device of the search: auto (CUDA if available), cpu "
                        "or cuda; under torchrun each process takes GPU LOCAL_RANK (nccl), or the CPU (gloo). "
                        "(Deprecated: 'local' for --latency-table local on the auto device.)")
    parser.add_argument("--threads", type=N.THREADS, help="CPU threads for PyTorch (default: 1 for the digits dataset on "
                        "the CPU, where more threads only cost; PyTorch's default otherwise)")
    parser.add_argument("--quiet", action="store_true", help="no per-generation log lines")
    return parser


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    """The SearchConfig of a new run: the preset with the given flags applied."""
    changes: dict[str, Any] = {field: getattr(args, flag) for flag, field in _CONFIG_FLAGS.items()}
    if args.objective is not None:
        names = tuple(name.strip() for name in args.objective.split(",") if name.strip() and name.strip() != "accuracy")
        changes["objectives"] = names
    config = preset(args.preset, **changes)
    config.validate()
    return config


def config_from_argv(argv: Sequence[str]) -> SearchConfig:
    """The SearchConfig that ``cars-search argv`` would start a new run with, this version's defaults
    included: what a caller that keys runs by their command line compares a saved run against."""
    return config_from_args(_parser().parse_args(list(argv)))


def _run(args: argparse.Namespace) -> int:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1) every process joins one search (``search.distributed``);
    rank 0 writes the run folder and prints; the others report errors only through their exit code."""
    notice = _apply_local_device(args)
    context = init_distributed(args.device)
    if notice and context.is_main:
        print(f"cars-search: {notice}", file=sys.stderr)
    try:
        return _search(args, context)
    except CarsError as exc:
        if context.is_main or args.debug:
            raise
        return exc.exit_code  # rank 0 prints the one-line message
    finally:
        context.close()


def _apply_local_device(args: argparse.Namespace) -> str | None:
    """``--device local`` (the profilers' spelling of this computer) is deprecated: it still means
    ``--latency-table local`` for a new latency search without a table, on the ``auto`` device. Returns
    the deprecation notice when it was given."""
    if args.device != "local":
        return None
    args.device = "auto"
    wants_latency = args.objective is not None and "latency" in args.objective.split(",")
    if wants_latency and args.latency_table is None and not args.resume:
        args.latency_table = LOCAL_TABLE
    return f"--device local is deprecated; use --latency-table {LOCAL_TABLE} (--device is the torch device of the search)"


def _search(args: argparse.Namespace, context: ProcessContext) -> int:
    quiet = args.quiet or not context.is_main
    logging.getLogger("cars_deploy.search").setLevel(logging.WARNING if quiet else logging.INFO)
    start = time.perf_counter()
    if args.threads is not None and args.threads < 1:
        raise UserInputError("--threads must be at least 1")
    if args.resume:
        given = [f"--{flag.replace('_', '-')}" for flag in _CONFIG_FLAGS if getattr(args, flag) is not None]
        if args.preset != "default":
            given.append("--preset")
        if given:
            raise UserInputError(
                f"--resume continues a run with its saved settings; drop {', '.join(given)} (or start a new run with --out)"
            )
        config = CarsSearch.saved_config(args.resume, distributed=context)
    else:
        config = config_from_args(args)
    if args.verify_on:
        parse_device_spec(args.verify_on)  # a malformed device fails now, not after the search
    _set_threads(args.threads, config, context.device)
    if args.overwrite and args.resume:
        raise UserInputError("--overwrite replaces a run given with --out; it does not go with --resume")
    search = open_search(args.resume or args.out, config, resume=bool(args.resume), overwrite=args.overwrite,
                         distributed=context)
    try:  # the run folder stays locked until its last file (a verified pareto.csv) is written
        result = search.run(max_generations=args.max_generations)
        if not context.is_main:
            return 0
        if args.verify_on:
            result = verify_search(result, config, device=args.verify_on)
    finally:
        search.close()
    _print_summary(result, search.config, time.perf_counter() - start)
    return 0


def _set_threads(threads: int | None, config: SearchConfig, device: torch.device) -> None:
    """``--threads``, or by default one thread for a CPU search on the embedded 8x8 digits: its ops are
    so small that PyTorch's intra-op threads cost more than they give, and on a busy machine far more
    (a default search measured 94 s on one thread against 448 s on two, with other jobs running)."""
    if threads is None and device.type == "cpu" and config.dataset == "digits":
        threads = 1
    if threads is not None:
        torch.set_num_threads(threads)


def outside_legend(outside: pd.Series) -> str:
    """The line under the Pareto table that explains its ``outside`` column: ``!`` marks a model whose
    measured latency fell outside its prediction's 90% interval, which about 1 model in 10 does by chance
    alone, so a single mark is no sign that the latency table is wrong."""
    marked, total = int(outside.astype(bool).sum()), len(outside)
    expected = 0.1 * total
    return (f"outside: '!' = measured outside the prediction's 90% interval (+-90%); {marked} of {total} here, "
            f"about {expected:.1f} expected by chance")


def _print_summary(result: SearchResult, config: SearchConfig, seconds: float) -> None:
    state = "finished" if result.finished else f"stopped (resume with --resume {result.run_dir})"
    print(
        f"CARS search {state}: generation {result.generation}/{config.n_generations}, epoch {result.epoch}/{config.epochs}, "
        f"{seconds:.0f} s; objectives accuracy, {', '.join(config.objectives)}; selection {config.selection}"
    )
    pareto = result.pareto
    table = pd.DataFrame(
        {
            "row": range(len(pareto)),
            "accuracy (%)": (pareto["accuracy"] * 100).round(2),
            "params (M)": (pareto["params"] / 1e6).round(3),
            "mult-adds (M)": (pareto["mult_adds"] / 1e6).round(1),
            "origin": pareto["origin"],
            "born": pareto["born"],
        }
    )
    if pareto["latency_ms"].notna().any():
        table.insert(4, "latency (ms)", pareto["latency_ms"].astype(float).round(2))
        if "latency_pm90_ms" in pareto.columns:  # the calibration's 90% uncertainty beside the prediction
            table.insert(5, "+-90% (ms)", pareto["latency_pm90_ms"].astype(float).round(2))
    if "latency_measured_ms" in pareto.columns:
        table.insert(len(table.columns) - 2, "measured (ms)", pareto["latency_measured_ms"].astype(float).round(2))
        if "latency_outside_pm90" in pareto.columns:  # "!" marks a measurement outside the uncertainty
            table.insert(len(table.columns) - 2, "outside", pareto["latency_outside_pm90"].map({True: "!", False: ""}))
    budgets = budgets_of(config)
    if budgets:
        table["within budget"] = pareto["feasible"].map({True: "yes", False: "NO"})
        print(f"budget: {', '.join(b.describe() for b in budgets)}")
    print(f"Pareto set ({len(pareto)} of {len(result.population)}; costs on the {config.deploy_network} network):")
    print(table.to_string(index=False))
    if "latency_outside_pm90" in pareto.columns:
        print(outside_legend(pareto["latency_outside_pm90"]))
    print(f"run folder: {result.run_dir} (report.md, pareto.csv, population.csv, history.jsonl, plots/)")
    print(f"inspect a row: cars-inspect --genotype {result.run_dir}/pareto.csv:0")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cars-search", _run, _parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
