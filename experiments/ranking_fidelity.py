"""Experiment 3, SuperNet ranking fidelity: does the SuperNet's validation accuracy rank architectures as
training them alone does?

CARS selects architectures by their accuracy *inside* the shared-weight SuperNet (section 3.2); that is
only useful if the ranking carries over to the same architectures trained stand-alone. For ``N``
genotypes (20 by default) this measures

- the SuperNet's validation accuracy of each genotype, on the final weights of a pNSGA-III
  ``cars-search`` run (the run experiment 1 makes), both with per-individual batch-norm re-estimation
  (what the search uses, ``search.evaluation.Evaluator``) and with the SuperNet's shared batch-norm
  statistics;
- the test accuracy of the same genotype retrained alone by ``cars-train`` with the short budget of
  experiment 2;

and reports Kendall's tau-b between the two (with a bootstrap 95% interval and Spearman's rho), for
both batch-norm modes. The genotypes are, by default, half from the search's final population and half
uniformly random, each half spread over model size (``--source``), so that the ranking is tested both
where the search looks and across the space. Rank correlations with model size are reported too,
since a SuperNet that merely prefers small (fast-converging) models would show up there.

    python -m experiments.ranking_fidelity --threads 2          # the CPU scale of EXPERIMENTS.md

Writes ``experiments/results/ranking_fidelity/``: ``genotypes.csv``, ``supernet.csv`` (SuperNet
accuracies), ``models.jsonl`` (one line per retrained genotype), ``fidelity.csv``, ``summary.json``,
``commands.txt``, ``timing.json`` and ``fidelity.png``.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a file: make ``experiments`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cars_deploy.errors import UserInputError  # noqa: E402
from cars_deploy.search.checkpoint import load_checkpoint  # noqa: E402
from cars_deploy.search.data import load_search_data  # noqa: E402
from cars_deploy.search.evaluation import Evaluator  # noqa: E402
from cars_deploy.search.objectives import CountCost  # noqa: E402
from cars_deploy.search.rundir import RunDir  # noqa: E402
from cars_deploy.space import Genotype, NetworkConfig, SuperNet, parse_genotype  # noqa: E402
from cars_deploy.torch_device import module_to, resolve_torch_device  # noqa: E402
from experiments.choose import random_pool, spread  # noqa: E402
from experiments.common import experiment_parser, main_wrapper, prepare, run_info  # noqa: E402
from experiments.figures import new_figure, save_figure  # noqa: E402
from experiments.records import ResultsDir  # noqa: E402
from experiments.runs import run_search, search_folder, train_command, train_each  # noqa: E402
from experiments.scale import add_search_flags, add_train_flags, search_scale, train_scale  # noqa: E402
from experiments.stats import rank_correlation  # noqa: E402
from experiments.yardstick import flattery_gap, flattery_gap_ci  # noqa: E402

__all__ = ["NAME", "SOURCES", "analyse", "choose_genotypes", "main", "plot", "supernet_accuracy"]

NAME = "ranking_fidelity"
SOURCES: tuple[str, ...] = ("mixed", "population", "random")
#: The two ways the SuperNet is measured: per-genotype BN re-estimation (the search's) and shared BN statistics.
MODES: dict[str, bool] = {"supernet_bn_recalibrated": True, "supernet_shared_bn": False}
log = logging.getLogger("experiments")


def choose_genotypes(
    population: pd.DataFrame, *, n: int, source: str, count: CountCost, rng: np.random.Generator, pool_size: int
) -> pd.DataFrame:
    """``n`` genotypes: from the final ``population`` (``population.csv`` of the search), uniformly random
    ones, or half and half (``mixed``); each group spread over parameter count."""
    if source not in SOURCES:
        raise UserInputError(f"unknown --source {source!r}; expected one of {', '.join(SOURCES)}")
    n_population = {"mixed": n // 2, "population": n, "random": 0}[source]
    if n_population > len(population):
        raise UserInputError(f"the search population has {len(population)} members, fewer than the {n_population} asked for")
    rows = []
    for i in spread(population["params"].to_numpy(), n_population) if n_population else []:
        rows.append({"source": "population", "genotype": population["genotype"].iloc[i],
                     "search_accuracy": float(population["accuracy"].iloc[i])})  # fmt: skip
    chosen = [parse_genotype(r["genotype"]) for r in rows]
    if n - n_population:
        pool = random_pool(rng, max(pool_size, n - n_population), exclude=chosen)
        for i in spread(count(pool), n - n_population):
            rows.append({"source": "random", "genotype": str(pool[i]), "search_accuracy": None})
    table = pd.DataFrame(rows, columns=["source", "genotype", "search_accuracy"])
    table["params"] = count([parse_genotype(g) for g in table["genotype"]]).astype(np.int64)
    table.insert(0, "item", [f"{i:02d}-{s}" for i, s in enumerate(table["source"])])
    return table


def supernet_accuracy(
    run: Path, genotypes: Sequence[Genotype], *, val_batches: int | None, recalibration_batches: int | None,
    device: str, show_progress: bool = True, modes: Mapping[str, bool] = MODES,
) -> dict[str, np.ndarray]:
    """Validation accuracy of each genotype on the final SuperNet of the search in ``run``, in each of
    ``modes`` (name -> with BN re-estimation; both ``MODES`` by default). Same validation split as the
    search (same seed); ``val_batches`` batches of 256 images
    (None: the whole split) and ``recalibration_batches`` training batches for BN re-estimation (None:
    the search's setting)."""
    _, config = RunDir.open(run)
    state = load_checkpoint(RunDir(run).checkpoint_path, config=config)["supernet"]
    changes: dict[str, Any] = {"eval_batch_size": 256, "max_val_batches": val_batches}
    if recalibration_batches is not None:
        changes["bn_recalibration_batches"] = recalibration_batches
    eval_config = config.replace(**changes)
    torch_device = resolve_torch_device(device)
    data = load_search_data(eval_config, torch_device)
    network = NetworkConfig(kind="cifar", C=config.C, layers=config.layers, num_classes=data.info.num_classes,
                            input_size=data.info.input_size, affine=False)
    out: dict[str, np.ndarray] = {}
    for mode, recalibrate in modes.items():
        evaluator = Evaluator(
            module_to(SuperNet(network), torch_device),
            val_batches=data.val_batches(),
            recalibration_batches=data.recalibration_batches() if recalibrate else [],
            bn_recalibration=recalibrate,
            show_progress=show_progress,
        )
        evaluator.load(state)
        began = time.perf_counter()
        out[mode] = evaluator.accuracy(list(genotypes), desc=mode)
        log.info("%s: %d genotypes on %d validation images in %.0f s", mode, len(genotypes),
                 sum(int(y.numel()) for _, y in data.val_batches()), time.perf_counter() - began)
    return out


def analyse(table: pd.DataFrame, *, seed: int) -> dict[str, Any]:
    """Rank correlations of the trained rows of ``table`` (columns: the ``MODES``, ``test_accuracy``,
    ``params``, ``source``): each SuperNet mode against stand-alone accuracy (overall and per source),
    model size against both, and per mode the points by which the SuperNet flatters the population it
    trained on (``experiments.yardstick.flattery_gap``, the measure bench_ranking reports)."""
    trained = table.dropna(subset=["test_accuracy"])

    def corr(x: str, y: str, rows: pd.DataFrame = trained) -> dict[str, Any]:
        rng = np.random.default_rng([seed, 0xB007])  # the same resamples for every pair of columns
        return rank_correlation(rows[x].to_numpy(), rows[y].to_numpy(), rng=rng)

    summary: dict[str, Any] = {"genotypes": int(len(table)), "trained": int(len(trained))}
    for mode in MODES:
        summary[f"{mode}_vs_standalone"] = corr(mode, "test_accuracy")
        summary[f"{mode}_vs_standalone_by_source"] = {
            source: corr(mode, "test_accuracy", rows) for source, rows in trained.groupby("source")
        }
        summary[f"{mode}_flattery_gap_points"] = flattery_gap(trained, mode)
        summary[f"{mode}_flattery_gap_ci95"] = flattery_gap_ci(trained, mode, rng=np.random.default_rng([seed, 0xF1A7]))
    summary["params_vs_standalone"] = corr("params", "test_accuracy")
    for mode in MODES:
        summary[f"params_vs_{mode}"] = corr("params", mode, table)
    return summary


def plot(table: pd.DataFrame, summary: Mapping[str, Any], path: Path) -> Path:
    """SuperNet accuracy against stand-alone accuracy, one panel per BN mode, coloured by model size."""
    trained = table.dropna(subset=["test_accuracy"])
    figure = new_figure(11, 4.6)
    markers = {"population": "o", "random": "s"}
    for panel, mode in enumerate(MODES, start=1):
        ax = figure.add_subplot(1, 2, panel)
        scatter = None
        for source, rows in trained.groupby("source"):
            scatter = ax.scatter(rows[mode] * 100, rows["test_accuracy"] * 100, c=rows["params"] / 1e3,
                                 cmap="viridis", marker=markers.get(source, "o"),
                                 vmin=table["params"].min() / 1e3, vmax=table["params"].max() / 1e3)
        stats = summary[f"{mode}_vs_standalone"]
        tau, (low, high) = stats["kendall_tau"], stats["tau_ci95"]
        text = "n/a" if tau is None else f"{tau:.2f}" + ("" if low is None else f" [{low:.2f}, {high:.2f}]")
        ax.set_title(f"{'with' if MODES[mode] else 'without'} BN re-estimation: Kendall tau {text}", fontsize=10)
        ax.set_xlabel("SuperNet validation accuracy (%)")
        ax.set_ylabel("stand-alone test accuracy (%)")
        ax.grid(alpha=0.3)
        for source in trained["source"].unique():  # grey stand-ins: the points' colours encode size, not source
            ax.scatter([], [], color="0.5", marker=markers.get(source, "o"), label=source)
        ax.legend(fontsize=8, loc="best")
        if scatter is not None:
            figure.colorbar(scatter, ax=ax, label="parameters (thousands)")
    figure.tight_layout()
    return save_figure(figure, path)


def _print_summary(table: pd.DataFrame, summary: Mapping[str, Any], results: ResultsDir) -> None:
    print(f"SuperNet ranking fidelity: {summary['trained']} of {summary['genotypes']} genotypes retrained")
    view = pd.DataFrame({
        "item": table["item"],
        "params (k)": (table["params"] / 1e3).round(1),
        "SuperNet+BN (%)": (table["supernet_bn_recalibrated"] * 100).round(2),
        "SuperNet shared BN (%)": (table["supernet_shared_bn"] * 100).round(2),
        "stand-alone (%)": (table["test_accuracy"] * 100).round(2),
    })  # fmt: skip
    print(view.to_string(index=False))

    def line(name: str, stats: Mapping[str, Any]) -> str:
        if stats["kendall_tau"] is None:
            return f"{name}: too few pairs ({stats['n']})"
        low, high = stats["tau_ci95"]
        ci = "" if low is None else f" (95% bootstrap [{low:.2f}, {high:.2f}])"
        return (f"{name}: Kendall tau {stats['kendall_tau']:.3f}{ci}, p = {stats['kendall_p']:.3f}, "
                f"Spearman rho {stats['spearman_rho']:.3f}, n = {stats['n']}")

    print(line("SuperNet with BN re-estimation vs stand-alone", summary["supernet_bn_recalibrated_vs_standalone"]))
    print(line("SuperNet with shared BN vs stand-alone", summary["supernet_shared_bn_vs_standalone"]))
    print(line("parameters vs stand-alone", summary["params_vs_standalone"]))
    print(line("parameters vs SuperNet with BN re-estimation", summary["params_vs_supernet_bn_recalibrated"]))
    for mode in MODES:
        gap, (low, high) = summary[f"{mode}_flattery_gap_points"], summary[f"{mode}_flattery_gap_ci95"]
        if gap is not None:
            bn = "with BN re-estimation" if MODES[mode] else "with shared BN"
            print(f"flattery of the population, SuperNet {bn}: {gap:+.1f} points "
                  f"(95% bootstrap [{low:+.1f}, {high:+.1f}])")
    print(f"results: {results.path}")


def _run(args: argparse.Namespace) -> int:
    if args.n < 3:
        raise UserInputError(f"--n must be at least 3 for a rank correlation, got {args.n}")
    for flag in ("val_batches", "recalibration_batches"):
        if getattr(args, flag) < 0:
            raise UserInputError(f"--{flag.replace('_', '-')} must not be negative")
    scale, budget = search_scale(args), train_scale(args)
    settings = {"experiment": NAME, "search": asdict(scale), "train": asdict(budget), "n": args.n,
                "source": args.source, "pool": args.pool, "val_batches": args.val_batches,
                "recalibration_batches": args.recalibration_batches}  # fmt: skip
    experiment = prepare(NAME, args, settings)
    results = experiment.results
    argv = scale.argv(data_dir=experiment.data_dir, selection="pnsga3", input_size=experiment.input_size)
    saved, supernet_path = results.file("genotypes.csv"), results.file("supernet.csv")
    if saved.is_file() and supernet_path.is_file():  # read back: the retraining resumes without the search folder
        search = search_folder(argv, work_dir=experiment.work_dir, name="pnsga3")
        chosen, supernet = pd.read_csv(saved), pd.read_csv(supernet_path)
    else:
        search = run_search(argv, work_dir=experiment.work_dir, name="pnsga3", threads=experiment.threads,
                            device=experiment.device)
        results.add_seconds("search_pnsga3", search.seconds)
        population = pd.read_csv(RunDir(search.path).population_path)
        count = budget.params_count(data_dir=experiment.data_dir, input_size=experiment.input_size)
        rng = np.random.default_rng([args.seed, 0xF1DE])
        chosen = choose_genotypes(population, n=args.n, source=args.source, count=count, rng=rng,
                                  pool_size=args.pool)
        if saved.is_file() and list(pd.read_csv(saved)["genotype"]) != list(chosen["genotype"]):
            raise UserInputError(f"{saved} lists other genotypes than these settings pick; choose another --out")
        # Read back as saved (rounded), so a record is the same whether its genotypes were picked or resumed.
        chosen = pd.read_csv(results.write_csv("genotypes.csv", chosen))
        began = time.perf_counter()
        accuracy = supernet_accuracy(search.path, [parse_genotype(g) for g in chosen["genotype"]],
                                     val_batches=args.val_batches or None,
                                     recalibration_batches=args.recalibration_batches or None, device=experiment.device)
        supernet = pd.read_csv(results.write_csv("supernet.csv", pd.DataFrame({"item": chosen["item"], **accuracy})))
        results.add_seconds("supernet_evaluation", time.perf_counter() - began)
    base = chosen.merge(supernet, on="item")

    def table_of(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        trained = pd.DataFrame(list(records), columns=["item", "test_accuracy", "params_trained", "train_seconds"])
        return base.merge(trained, on="item", how="left")

    def update(records: list[dict[str, Any]]) -> None:
        table = table_of(records)
        summary = analyse(table, seed=args.seed)
        summary.update(search_run=str(search.path), run_info=run_info(experiment))
        results.write_csv("fidelity.csv", table)
        results.write_json("summary.json", summary)
        if table["test_accuracy"].notna().any():
            plot(table, summary, results.file("fidelity.png"))

    def argv_of(item: Mapping[str, Any]) -> list[str]:
        return budget.argv(item["genotype"], data_dir=experiment.data_dir, input_size=experiment.input_size)

    items = chosen[["item", "source", "genotype", "params"]].to_dict("records")
    commands = [search.command, *(train_command(argv_of(item), work_dir=experiment.work_dir) for item in items)]
    results.write_text("commands.txt", "\n".join(commands) + "\n")
    update(results.read_jsonl("models.jsonl"))
    records = train_each(items, key="item", argv_of=argv_of, results=results, name="models.jsonl",
                         work_dir=experiment.work_dir, threads=experiment.threads, device=experiment.device,
                         after_each=update)
    update(records)
    table = table_of(records)
    _print_summary(table, analyse(table, seed=args.seed), results)
    return 0


def _parser() -> Any:
    parser = experiment_parser(NAME, __doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="genotypes (default %(default)s)")
    parser.add_argument("--source", choices=SOURCES, default="mixed",
                        help="where the genotypes come from: half population, half random (default), or one of them")
    parser.add_argument("--pool", type=int, default=5000, help="random genotypes the random ones are spread from")
    parser.add_argument("--val-batches", type=int, default=0,
                        help="validation batches of 256 images for the SuperNet accuracies (default 0: the whole "
                        "validation half of the training images)")
    parser.add_argument("--recalibration-batches", type=int, default=0,
                        help="training batches for BN re-estimation (default 0: the search's own setting)")
    add_search_flags(parser)
    add_train_flags(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper(NAME, _run, _parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
