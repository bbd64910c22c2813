"""Experiment 2, CARS against random search at equal cost (paper Table 1: random search 3.29% error
against CARS 2.62-3.00% on CIFAR-10).

``K`` models are taken from the final population of a pNSGA-III ``cars-search`` run (objective
``params``): its first non-dominated front on (SuperNet validation accuracy up, parameters down), and
the next fronts when the first holds fewer than ``K``, spread over model size (``choose.pareto_picks``).
Each is paired with a uniformly random genotype of the DARTS space - the distribution the search starts
from - whose retrained network has the nearest parameter count (matched greedily from a pool of
random genotypes, ``choose.match_by_params``). All ``2K`` models are retrained from scratch by
``cars-train`` with the same short budget and seed, and compared pair by pair on test accuracy.

"Equal cost" here means the comparison the issue asks for: the same number of retrained models, the
same training budget for each, and matched size - so any difference comes from *which* cells were
picked. The search itself is extra cost for CARS (its wall time is in ``timing.json``; the random arm
has none). The pNSGA-III search is the one experiment 1 runs (same flags, same run folder), so after
experiment 1 only the retraining is left.

    python -m experiments.cars_vs_random --threads 2            # the CPU scale of EXPERIMENTS.md

Writes ``experiments/results/cars_vs_random/``: ``plan.csv`` (the 2K genotypes), ``models.jsonl`` (one
line per retrained model, appended as each finishes), ``pairs.csv``, ``summary.json``, ``commands.txt``,
``timing.json`` and ``cars_vs_random.png``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a file: make ``experiments`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cars_deploy.errors import UserInputError  # noqa: E402
from cars_deploy.search.objectives import CountCost  # noqa: E402
from cars_deploy.search.rundir import RunDir  # noqa: E402
from cars_deploy.space import parse_genotype  # noqa: E402
from experiments.choose import match_by_params, pareto_picks, random_pool  # noqa: E402
from experiments.common import experiment_parser, main_wrapper, prepare, run_info  # noqa: E402
from experiments.figures import new_figure, save_figure  # noqa: E402
from experiments.records import ResultsDir  # noqa: E402
from experiments.runs import run_search, search_folder, train_command, train_each  # noqa: E402
from experiments.scale import add_search_flags, add_train_flags, search_scale, train_scale  # noqa: E402
from experiments.stats import paired_comparison  # noqa: E402

__all__ = ["NAME", "analyse", "main", "make_plan", "plot"]

NAME = "cars_vs_random"
ROLES: tuple[str, ...] = ("cars", "random")
log = logging.getLogger("experiments")


def make_plan(
    population: pd.DataFrame, *, k: int, count: CountCost, rng: np.random.Generator, pool_size: int
) -> pd.DataFrame:
    """The ``2K`` genotypes to retrain, pair by pair: a CARS pick and its size-matched random genotype.

    ``population`` is a search's ``population.csv`` (``genotype``, ``accuracy``, ``params`` on the
    deploy network); ``count`` counts parameters on the retrained network, on which sizes are matched.
    """
    if pool_size < k:
        raise UserInputError(f"--pool must be at least K={k}, got {pool_size}")
    picks = pareto_picks(population["accuracy"].to_numpy(), population["params"].to_numpy(), k)
    cars = [parse_genotype(population["genotype"].iloc[i]) for i, _ in picks]
    cars_params = count(cars)
    pool = random_pool(rng, pool_size, exclude=cars)
    pool_params = count(pool)
    matches = match_by_params(cars_params, pool_params)
    rows = []
    for pair, ((index, front), genotype, params, match) in enumerate(zip(picks, cars, cars_params, matches)):
        common = {"pair": pair}
        rows.append({**common, "role": "cars", "genotype": str(genotype), "params": int(params),
                     "search_params": int(population["params"].iloc[index]), "front": front,
                     "supernet_accuracy": float(population["accuracy"].iloc[index]), "size_gap": 0.0})  # fmt: skip
        rows.append({**common, "role": "random", "genotype": str(pool[match]), "params": int(pool_params[match]),
                     "search_params": None, "front": None, "supernet_accuracy": None,
                     "size_gap": float(pool_params[match] / params - 1.0)})  # fmt: skip
    plan = pd.DataFrame(rows)
    plan.insert(0, "model", [f"{r.pair:02d}-{r.role}" for r in plan.itertuples()])
    return plan


def analyse(records: Sequence[Mapping[str, Any]]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Pairs with both models trained, side by side, and the paired comparison of their test accuracy."""
    table = pd.DataFrame(list(records))
    if table.empty:
        return pd.DataFrame(), {"pairs": 0}
    columns = ["pair", "genotype", "params_trained", "test_accuracy"]
    cars = table[table.role == "cars"][columns + ["front", "supernet_accuracy"]]
    rand = table[table.role == "random"][columns]
    pairs = cars.merge(rand, on="pair", suffixes=("_cars", "_random")).sort_values("params_trained_cars")
    pairs["difference"] = pairs["test_accuracy_cars"] - pairs["test_accuracy_random"]
    pairs["size_gap"] = pairs["params_trained_random"] / pairs["params_trained_cars"] - 1.0
    summary: dict[str, Any] = {"models_trained": int(len(table))}
    summary.update(paired_comparison(pairs["test_accuracy_cars"], pairs["test_accuracy_random"], names=ROLES))
    summary["mean_abs_size_gap"] = float(pairs["size_gap"].abs().mean()) if len(pairs) else None
    summary["note"] = "test accuracies are fractions; difference = CARS minus its size-matched random genotype"
    return pairs.reset_index(drop=True), summary


def plot(pairs: pd.DataFrame, summary: Mapping[str, Any], path: Path) -> Path:
    """Test accuracy against parameters: CARS picks, random genotypes, and a line joining each pair."""
    figure = new_figure(7, 4.8)
    ax = figure.add_subplot()
    for row in pairs.itertuples():
        ax.plot([row.params_trained_cars / 1e3, row.params_trained_random / 1e3],
                [row.test_accuracy_cars * 100, row.test_accuracy_random * 100], color="0.7", lw=1, zorder=1)
    ax.scatter(pairs.params_trained_cars / 1e3, pairs.test_accuracy_cars * 100, color="tab:red", zorder=2,
               label="CARS (pNSGA-III Pareto set)")
    ax.scatter(pairs.params_trained_random / 1e3, pairs.test_accuracy_random * 100, color="tab:gray", marker="s",
               zorder=2, label="random genotype, matched size")
    diff = summary.get("mean_difference")
    title = "CARS vs random search, same retraining budget"
    if diff is not None:
        title += f"\nmean difference {100 * diff:+.2f} points over {summary['pairs']} pairs"
    ax.set_title(title)
    ax.set_xlabel("parameters of the retrained network (thousands)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(figure, path)


def _print_summary(pairs: pd.DataFrame, summary: Mapping[str, Any], planned: int, results: ResultsDir) -> None:
    print(f"CARS vs random search: {summary.get('models_trained', 0)} of {planned} models retrained, "
          f"{summary.get('pairs', 0)} complete pairs")
    if len(pairs):
        view = pd.DataFrame({
            "pair": pairs.pair,
            "params CARS (k)": (pairs.params_trained_cars / 1e3).round(1),
            "params random (k)": (pairs.params_trained_random / 1e3).round(1),
            "acc CARS (%)": (pairs.test_accuracy_cars * 100).round(2),
            "acc random (%)": (pairs.test_accuracy_random * 100).round(2),
            "diff (points)": (pairs.difference * 100).round(2),
        })  # fmt: skip
        print(view.to_string(index=False))
        se = summary.get("difference_se")
        p = summary.get("wilcoxon_p")
        print(f"mean test accuracy: CARS {100 * summary['mean_cars']:.2f}%, random {100 * summary['mean_random']:.2f}%; "
              f"difference {100 * summary['mean_difference']:+.2f} points"
              + (f" (s.e. {100 * se:.2f})" if se is not None else "")
              + f"; CARS better in {summary['wins']}, worse in {summary['losses']}, tied in {summary['ties']}"
              + (f"; Wilcoxon p = {p:.3f}" if p is not None else ""))
    print(f"results: {results.path}")


def _run(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise UserInputError(f"--k must be at least 1, got {args.k}")
    scale, budget = search_scale(args), train_scale(args)
    settings = {"experiment": NAME, "search": asdict(scale), "train": asdict(budget), "k": args.k, "pool": args.pool}
    experiment = prepare(NAME, args, settings)
    results = experiment.results
    argv = scale.argv(data_dir=experiment.data_dir, selection="pnsga3", input_size=experiment.input_size)
    saved = results.file("plan.csv")
    if saved.is_file():  # picked once and read back: the retraining resumes without the search folder
        search = search_folder(argv, work_dir=experiment.work_dir, name="pnsga3")
        plan = pd.read_csv(saved)
    else:
        search = run_search(argv, work_dir=experiment.work_dir, name="pnsga3", threads=experiment.threads,
                            device=experiment.device)
        results.add_seconds("search_pnsga3", search.seconds)
        population = pd.read_csv(RunDir(search.path).population_path)
        count = budget.params_count(data_dir=experiment.data_dir, input_size=experiment.input_size)
        rng = np.random.default_rng([args.seed, 0x2A2D])  # the random arm's own stream
        plan = make_plan(population, k=args.k, count=count, rng=rng, pool_size=args.pool)
        # Read back as saved (rounded), so a record is the same whether its plan was made or resumed.
        plan = pd.read_csv(results.write_csv("plan.csv", plan))

    def update(records: list[dict[str, Any]]) -> None:
        pairs, summary = analyse(records)
        summary.update(search_run=str(search.path), planned_models=len(plan), run_info=run_info(experiment))
        results.write_csv("pairs.csv", pairs)
        results.write_json("summary.json", summary)
        if len(pairs):
            plot(pairs, summary, results.file("cars_vs_random.png"))

    def argv_of(item: Mapping[str, Any]) -> list[str]:
        return budget.argv(item["genotype"], data_dir=experiment.data_dir, input_size=experiment.input_size)

    items = plan.to_dict("records")
    commands = [search.command, *(train_command(argv_of(item), work_dir=experiment.work_dir) for item in items)]
    results.write_text("commands.txt", "\n".join(commands) + "\n")
    records = train_each(items, key="model", argv_of=argv_of, results=results, name="models.jsonl",
                         work_dir=experiment.work_dir, threads=experiment.threads, device=experiment.device,
                         after_each=update)
    update(records)
    pairs, summary = analyse(records)
    _print_summary(pairs, summary, len(plan), results)
    return 0


def _parser() -> Any:
    parser = experiment_parser(NAME, __doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=8, help="models per arm (default %(default)s)")
    parser.add_argument("--pool", type=int, default=20000,
                        help="random genotypes the size-matched ones are drawn from (default %(default)s)")
    add_search_flags(parser)
    add_train_flags(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper(NAME, _run, _parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
