"""Experiment 1, the small model trap (paper section 3.3, Figure 2), with seeds: does pNSGA-III's
accuracy-speed term do anything?

Every selection of ``SELECTIONS`` runs one ``cars-search`` per seed (``--seeds``, default 0 1 2), the
runs differing only in ``--selection``; under one seed they share the warmup and generation 0. The
selections (``cars_deploy.search.selection``): ``pnsga3`` as the paper describes it;
``pnsga3-shuffled``, the same with the accuracy speeds permuted at random among the models (the speed
term's control); ``vega``, the authors' toolkit, whose second sort is (accuracy up, size up) with no
speed at all and a random cut; and ``nsga3``, no second sort.

The default scale is the reduced one of EXPERIMENTS.md (20 SGD steps per epoch, 10 warmup epochs + 20
generations x 2 epochs, P=16, objective ``params``) with 10 validation batches of 256 images (2,560)
ranking each individual. Per generation and seed: the size median and range, the shares in the largest
third of the space and above generation 0's 2/3 quantile, the best SuperNet accuracy. Then the top
``--top`` (3) models of each final front by SuperNet accuracy are retrained with the experiment's short
budget (``--train-*``, that seed), and each (selection, seed) front gets two hypervolumes in (accuracy
up, parameters down): on the final population's SuperNet accuracies and on the retrained models' test
accuracies. Selections are compared seed by seed (``selection_ablation``). And every recorded
generation's selection is replayed under every rule on the same candidates (``selection_replay``, ``replay.png``):
what pNSGA-III keeps beyond its shuffled copy there is the speed term's doing alone, paired search by search.

    python -m experiments.small_model_trap --threads 2          # 4 selections x 3 seeds, then 36 retrainings

Writes ``experiments/results/small_model_trap-seeds/``: ``populations.csv``, ``per_generation.csv``,
``across_seeds.csv``, ``plan.csv``, ``models.jsonl``, ``final.csv``, ``summary.json``, ``commands.txt``,
``timing.json``, ``replay.csv``, ``speed_pairs.csv``, ``replay.png``, ``fig2.png`` (Figure 2 with the seeds' spread), ``fronts.png`` and ``searches/`` (each
finished search's history, gzip-compressed, and final population: what a later session needs, since
the search folders under ``runs/`` are not kept). (The one-seed run of
the first version of this experiment stays in ``experiments/results/small_model_trap/``.)
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a file: make ``experiments`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cars_deploy.errors import UserInputError  # noqa: E402
from cars_deploy.search.objectives import build_costs, deploy_network  # noqa: E402
from cars_deploy.search.rundir import RunDir  # noqa: E402
from cars_deploy.search.selection import non_dominated_fronts  # noqa: E402
from experiments import selection_ablation as ablation  # noqa: E402
from experiments import selection_replay as replay  # noqa: E402
from experiments.choose import space_bounds  # noqa: E402
from experiments.common import Experiment, experiment_parser, main_wrapper, prepare, run_info  # noqa: E402
from experiments.figures import SELECTION_STYLE, new_figure, save_figure, seed_band  # noqa: E402
from experiments.records import ResultsDir  # noqa: E402
from experiments.runs import RunBusy, run_search, search_folder, train_command, train_each  # noqa: E402
from experiments.scale import SearchScale, add_search_flags, add_train_flags, search_scale, train_scale  # noqa: E402

__all__ = ["NAME", "SELECTIONS", "main", "plot_fig2", "plot_fronts", "plot_replay"]

NAME = "small_model_trap"
RESULTS = "small_model_trap-seeds"  # the results folder (small_model_trap/ holds the one-seed run)
SELECTIONS: tuple[str, ...] = ("pnsga3", "pnsga3-shuffled", "vega", "nsga3")
SEEDS: tuple[int, ...] = (0, 1, 2)
#: The reduced scale of EXPERIMENTS.md with 2,560 validation images per individual (10 batches of 256).
SCALE = SearchScale(max_train_batches=20, val_batches=10)
log = logging.getLogger("experiments")
_MARKERS = "osD^v<>px*"


def _band_panels(table: pd.DataFrame, *, by: str, rows: str | list[str], panels: Sequence[tuple[str, float, str]],
                 unit: tuple[str, str], title: str, path: Path) -> Path:
    """One panel per ``(column, scale, label)`` of ``panels``: per value of ``by`` (a selection name) and
    generation, the median over the ``rows`` of ``table`` (line) and their range (band)."""
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(15, 4.4)
    for index, (column, scale, label) in enumerate(panels, start=1):
        ax = figure.add_subplot(1, len(panels), index)
        for name in [s for s in SELECTIONS if s in set(table[by])]:
            wide = table[table[by] == name].pivot(index=rows, columns="generation", values=column)
            seed_band(ax, wide.columns.to_numpy(), wide.to_numpy(float) * scale, selection=name, unit=unit)
        if column.startswith("share"):
            ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("generation")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_fig2(generations: pd.DataFrame, space: tuple[float, float], path: Path) -> Path:
    """Figure 2 with the seeds' spread: per selection and generation, the median over seeds (line) and
    their range (band) of the population's median size, its share in the space's largest third and
    its best SuperNet accuracy."""
    lo, hi = space
    return _band_panels(
        generations, by="selection", rows="seed", unit=("seed", "seeds"), path=path,
        panels=(("params_median", 1e-6, "median parameters of the population (M)"),
                ("share_top_third_space", 1.0, "share in the largest third of the space"),
                ("accuracy_max", 100.0, "best SuperNet accuracy (%)")),
        title=f"median over seeds (line) and min-max (band); the space spans {lo / 1e6:.2f}-{hi / 1e6:.2f} M "
              f"parameters, its largest third from {(lo + 2 / 3 * (hi - lo)) / 1e6:.2f} M",
    )  # fmt: skip


def plot_fronts(populations: pd.DataFrame, final: pd.DataFrame, path: Path) -> Path:
    """The final population of every seed on (parameters, SuperNet accuracy), one panel per selection,
    each seed's first front joined by a line, with its hypervolume in the legend."""
    selections = [s for s in SELECTIONS if s in set(populations.selection)]
    figure = new_figure(5 * len(selections), 4.4)
    axes = figure.subplots(1, len(selections), sharex=True, sharey=True, squeeze=False)[0]
    for ax, selection in zip(axes, selections):
        color = SELECTION_STYLE[selection]["color"]
        table = populations[populations.selection == selection]
        for marker, (seed, runs) in zip(_MARKERS, table.groupby("seed")):
            members = runs[runs.generation == runs.generation.max()]
            x, y = members.params.to_numpy(float) / 1e6, members.accuracy.to_numpy(float) * 100
            front = non_dominated_fronts(np.column_stack([-y, x]))[0]
            front = front[np.argsort(x[front])]
            hv = final[(final.selection == selection) & (final.seed == seed)].hv_supernet
            ax.scatter(x, y, s=14, marker=marker, color=color, alpha=0.55, linewidths=0)
            ax.plot(x[front], y[front], marker=marker, color=color, lw=1,
                    label=f"seed {seed}" + (f": HV {float(hv.iloc[0]):.3f}" if len(hv) else ""))
        ax.set_title(f"{SELECTION_STYLE[selection]['label']}: final populations", fontsize=9)
        ax.set_xlabel("parameters (M)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("SuperNet validation accuracy (%)")
    figure.tight_layout()
    return save_figure(figure, path)


def plot_replay(replays: pd.DataFrame, path: Path) -> Path:
    """Every rule on the same candidates (``selection_replay``): per generation, the median over searches
    (line) and their range (band) of what each rule keeps: median size, share in the space's largest
    third, mean accuracy speed."""
    return _band_panels(
        replays, by="rule", rows=["selection", "seed"], unit=("search", "searches"), path=path,
        panels=(("kept_params_median", 1e-6, "median parameters kept (M)"),
                ("kept_share_top_third", 1.0, "share kept in the space's largest third"),
                ("kept_speed_mean", 100.0, "mean accuracy speed kept (points / epoch)")),
        title="each rule choosing among the same recorded candidates of every search: median over searches "
              "(line) and min-max (band)",
    )  # fmt: skip


Histories = Mapping[tuple[str, int], Sequence[Mapping[str, Any]]]
Finals = Mapping[tuple[str, int], pd.DataFrame]  # the final population of each (selection, seed) search


def _analyse(histories: Histories, plan: pd.DataFrame, records: Sequence[Mapping[str, Any]],
             space: tuple[float, float], selections: Sequence[str], results: ResultsDir,
             extra: Mapping[str, Any], *, plots: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Recomputes every table and the summary from what has run so far, and the figures with ``plots``
    (they depend on the searches only), and writes them; returns the final table and the summary."""
    populations = ablation.populations_table(histories)
    generations = ablation.per_generation(populations, space)
    final = ablation.final_table(populations, generations, plan, records, space)
    lo, hi = space
    summary: dict[str, Any] = {
        "space_params": {"min": lo, "max": hi, "largest_third_from": lo + 2 / 3 * (hi - lo)},
        "same_generation0": ablation.same_generation0(populations),
        "final_mean_over_seeds": final.groupby("selection", sort=False)[list(ablation.COMPARED)].mean().to_dict("index"),
        "comparisons": ablation.comparisons(final, [s for s in selections if s in set(final.selection)]),
        "note": "sizes in parameters of the deploy network; accuracies and shares are fractions; hypervolumes "
                "in (error, size) normalised over the space, reference point (1.1, 1.1)",
        **extra,
    }
    results.write_csv("populations.csv", populations)
    results.write_csv("per_generation.csv", generations)
    results.write_csv("across_seeds.csv", ablation.across_seeds(generations))
    results.write_csv("final.csv", final)
    results.write_json("summary.json", summary)
    if plots:
        plot_fig2(generations, space, results.file("fig2.png"))
        plot_fronts(populations, final, results.file("fronts.png"))
    return final, summary


def _replay(histories: Histories, space: tuple[float, float], results: ResultsDir) -> dict[str, Any]:
    """Replays every search's selections under every rule and pairs each member's successive speeds
    (``selection_replay``); writes ``replay.csv``, ``speed_pairs.csv`` and ``replay.png``, returns the summary."""
    replays = [replay.replay_search(history, selection=selection, seed=seed, space=space)
               for (selection, seed), history in histories.items()]  # fmt: skip
    pairs = [replay.speed_pairs(history, selection=selection, seed=seed) for (selection, seed), history in histories.items()]
    table = pd.concat(replays, ignore_index=True) if replays else pd.DataFrame()
    speed_pairs = pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame()
    results.write_csv("replay.csv", table)
    results.write_csv("speed_pairs.csv", speed_pairs)
    if not table.empty:
        plot_replay(table, results.file("replay.png"))
    return replay.replay_summary(table, speed_pairs)


def _print_summary(final: pd.DataFrame, summary: Mapping[str, Any], reference: str, results: ResultsDir) -> None:
    """The last generation per selection, then ``reference`` against each other selection, seed by seed."""
    space = summary["space_params"]
    print(f"small model trap with seeds: last generation per selection, mean over seeds [min-max] (space "
          f"{space['min'] / 1e6:.3f}-{space['max'] / 1e6:.3f} M, largest third from {space['largest_third_from'] / 1e6:.3f} M)")
    shown = {"params_median": ("median (M)", 1e-6, 3), "share_top_third_space": ("top third", 1, 2),
             "share_top_third_gen0": ("> gen-0 q67", 1, 2), "accuracy_max": ("best acc (%)", 100, 1),
             "hv_supernet": ("HV SuperNet", 1, 3), "hv_retrained": ("HV retrained", 1, 3)}  # fmt: skip
    rows = []
    for selection, table in final.groupby("selection", sort=False):
        row = {"selection": selection, "seeds": len(table)}
        for column, (label, scale, digits) in shown.items():
            values = table[column].dropna() * scale
            row[label] = "-" if values.empty else \
                f"{values.mean():.{digits}f} [{values.min():.{digits}f}-{values.max():.{digits}f}]"
        rows.append(row)
    print(pd.DataFrame(rows).to_string(index=False))
    for pair, numbers in summary["comparisons"].items():
        if pair.split(" vs ")[0] != reference:
            continue
        parts = []
        for column, (label, scale, digits) in shown.items():
            c = numbers[column]
            if c["pairs"]:
                p = c["ttest_p"]
                parts.append(f"{label} {c['mean_difference'] * scale:+.{digits}f} ({c['wins']}-{c['losses']}"
                             + (f", t-test p {p:.2f}" if p is not None else "") + ")")
        print(f"{pair}, paired over seeds: {'; '.join(parts)}")
    _print_replay(summary.get("replay", {}))
    print(f"results: {results.path}")


def _print_replay(summary: Mapping[str, Any]) -> None:
    """The replay's answer: whom each rule keeps of the same candidates, and what the speed measures."""
    if not summary.get("searches"):
        return
    print(f"every rule on the same candidates ({summary['generations']} generations of {summary['searches']} "
          f"searches; {summary['reproduced_generations']} of {summary['replayed_generations']} replays keep exactly "
          f"what the search kept): mean over searches")
    rows = [{"rule": rule, "kept median (M)": f"{m['kept_params_median'] / 1e6:.3f}",
             "top third": f"{m['kept_share_top_third']:.3f}", "kept acc (%)": f"{100 * m['kept_accuracy_mean']:.2f}",
             "kept unlike pnsga3": f"{m['changed_vs_pnsga3']:.2f}"}
            for rule, m in summary["mean_over_searches"].items()]  # fmt: skip
    print(pd.DataFrame(rows).to_string(index=False))
    compared = {"kept_params_median": ("kept median size", 1e-6, ".3f", " M"),
                "kept_accuracy_mean": ("kept accuracy", 100, ".2f", " points")}  # fmt: skip
    for pair, numbers in summary["comparisons"].items():
        parts = []
        for column, (label, scale, digits, unit) in compared.items():
            c = numbers[column]
            parts.append(f"{label} {c['mean_difference'] * scale:+{digits}}{unit} ({c['wins']}-{c['losses']} searches, "
                         f"t-test p {_p_value(c['ttest_p'])}, Wilcoxon p {_p_value(c['wilcoxon_p'])})")
        print(f"  {pair}: {'; '.join(parts)}")
    tau, persistence = summary["tau_speed_params_median"], summary["speed_persistence"]
    if tau is not None:
        print(f"  speed vs size: median tau {tau:+.2f} per generation, p < 0.05 in "
              f"{100 * summary['tau_speed_params_share_significant']:.0f}% of generations")
    if persistence:
        print(f"  a member's speed vs its next (centred per generation, {persistence['pairs']} pairs): r "
              f"{persistence['pearson_r']:+.2f} (p {_p_value(persistence['pearson_p'])}); pure measurement noise gives -0.5")


def _p_value(p: float | None) -> str:
    """A p-value as printed: three decimals, "< 0.001" below that, "-" where there is none."""
    if p is None:
        return "-"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _check_choices(args: argparse.Namespace) -> tuple[tuple[str, ...], tuple[int, ...]]:
    selections, seeds = tuple(args.selections), tuple(args.seeds)
    if len(set(selections)) != len(selections) or len(set(seeds)) != len(seeds):
        raise UserInputError("--selections and --seeds must not list a value twice")
    if any(not 0 <= seed <= 2**32 - 1 for seed in seeds):
        raise UserInputError(f"--seeds must lie in 0..{2**32 - 1}")
    if args.top < 1:
        raise UserInputError(f"--top must be at least 1, got {args.top}")
    return selections, seeds


def _searches(experiment: Experiment, args: argparse.Namespace, selections: Sequence[str], seeds: Sequence[int],
              update: Callable[[Histories], Any]) -> tuple[Histories, Finals, dict[tuple[str, int], Path], list[str]]:
    """Runs (or resumes, or reuses) every search, seed by seed, updating ``commands.txt`` after each and the
    analysis after each one run now. What the analysis reads of a finished search (its history and final
    population) is kept in the results folder (``searches/``), so a later session on another machine,
    where the search folders under ``runs/`` are gone, goes on from there instead of searching again.
    A search another process of this experiment is running is put off and waited for at the end, so two
    processes with the same command share the searches instead of queueing behind one another."""
    results = experiment.results
    histories: dict[tuple[str, int], list[dict[str, Any]]] = {}
    finals: dict[tuple[str, int], pd.DataFrame] = {}
    paths: dict[tuple[str, int], Path] = {}
    commands: dict[tuple[str, int], str] = {}
    todo = [(selection, seed) for seed in seeds for selection in selections]
    put_off: list[tuple[str, int]] = []
    for wait, batch in ((False, todo), (True, put_off)):
        for selection, seed in batch:
            argv = search_scale(args, seed=seed).argv(data_dir=experiment.data_dir, selection=selection,
                                                      input_size=experiment.input_size)
            kept = f"searches/{selection}-seed{seed}"
            history = results.read_jsonl_gz(f"{kept}.history.jsonl.gz")
            if history is not None and results.file(f"{kept}.population.csv").is_file():
                run = search_folder(argv, work_dir=experiment.work_dir, name=selection)
                population = pd.read_csv(results.file(f"{kept}.population.csv"))
                log.info("search %s, seed %d: kept in %s", selection, seed, results.file(kept))
            else:
                try:
                    run = run_search(argv, work_dir=experiment.work_dir, name=selection,
                                     threads=experiment.threads, device=experiment.device, wait=wait)
                except RunBusy:
                    log.info("search %s, seed %d: another process is running it; coming back to it later",
                             selection, seed)
                    put_off.append((selection, seed))
                    continue
                if run.seconds:
                    results.add_seconds(f"search_{selection}_seed{seed}", run.seconds)
                log.info("search %s, seed %d %s: %s", selection, seed,
                         f"finished in {run.seconds:.0f} s" if run.seconds else "was already finished", run.path)
                history = run.history()
                results.write_jsonl_gz(f"{kept}.history.jsonl.gz", history)
                # Read back as kept (rounded), so the picks are the same whether the search ran now or before.
                population = pd.read_csv(results.write_csv(f"{kept}.population.csv",
                                                           pd.read_csv(RunDir(run.path).population_path)))
            key = (selection, seed)
            commands[key] = run.command
            results.write_text("commands.txt", "\n".join(commands[k] for k in todo if k in commands) + "\n")
            histories[key], finals[key], paths[key] = history, population, run.path
            if run.seconds:
                update(histories)
    # In the order of the command line, whichever process ran which search.
    return ({k: histories[k] for k in todo}, {k: finals[k] for k in todo}, {k: paths[k] for k in todo},
            [commands[k] for k in todo])


def _run(args: argparse.Namespace) -> int:
    selections, seeds = _check_choices(args)
    scale, budget = search_scale(args, seed=seeds[0]), train_scale(args, seed=seeds[0])
    unseeded = {"search": asdict(scale), "train": asdict(budget)}
    for part in unseeded.values():
        del part["seed"]
    settings = {"experiment": NAME, **unseeded, "selections": list(selections), "seeds": list(seeds), "top": args.top}
    experiment = prepare(NAME, args, settings)
    results = experiment.results
    cost = build_costs(["params"], network=deploy_network(scale.deploy_network))[0]
    (lo, _), (hi, _) = space_bounds(cost)
    space = (lo, hi)
    extra: dict[str, Any] = {"run_info": run_info(experiment)}

    def update_searches(histories: Histories) -> None:
        extra["replay"] = _replay(histories, space, results)
        _analyse(histories, ablation.top_picks({}, args.top), [], space, selections, results, extra, plots=True)

    histories, finals, paths, commands = _searches(experiment, args, selections, seeds, update_searches)
    extra["runs"] = {f"{selection} seed {seed}": str(path) for (selection, seed), path in paths.items()}
    update_searches(histories)
    plan = ablation.top_picks(finals, args.top)
    saved = results.file("plan.csv")
    if saved.is_file() and list(pd.read_csv(saved)["genotype"]) != list(plan["genotype"]):
        raise UserInputError(f"{saved} lists other genotypes than these searches pick; choose another --out")
    results.write_csv("plan.csv", plan)

    def argv_of(item: Mapping[str, Any]) -> list[str]:
        seeded = train_scale(args, seed=int(item["seed"]))
        return seeded.argv(item["genotype"], data_dir=experiment.data_dir, input_size=experiment.input_size)

    items = plan.to_dict("records")
    commands += [train_command(argv_of(item), work_dir=experiment.work_dir) for item in items]
    results.write_text("commands.txt", "\n".join(commands) + "\n")

    def update_models(records: list[dict[str, Any]]) -> None:
        _analyse(histories, plan, records, space, selections, results, extra, plots=False)

    records = train_each(items, key="model", argv_of=argv_of, results=results, name="models.jsonl",
                         work_dir=experiment.work_dir, threads=experiment.threads, device=experiment.device,
                         after_each=update_models)
    final, summary = _analyse(histories, plan, records, space, selections, results, extra, plots=False)
    _print_summary(final, summary, selections[0], results)
    return 0


def _parser() -> Any:
    parser = experiment_parser(NAME, __doc__.split("\n\n")[0], results=RESULTS)
    parser.add_argument("--selections", nargs="+", choices=SELECTIONS, default=list(SELECTIONS), metavar="NAME",
                        help=f"selections to compare (default: {' '.join(SELECTIONS)})")
    parser.add_argument("--top", type=int, default=3, help="models of each final front retrained (default %(default)s)")
    add_search_flags(parser, defaults=SCALE, seeds=SEEDS)
    add_train_flags(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper(NAME, _run, _parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
