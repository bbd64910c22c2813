"""Experiment 1, the small model trap (paper section 3.3, Figure 2): NSGA-III against pNSGA-III.

Two ``cars-search`` runs that differ only in ``--selection`` (``nsga3``, ``pnsga3``): same seed, so the
same warmup and the same generation-0 population, objective ``params``, 20 generations. For every
generation the selected population's parameter counts are summarised - range, median, quartiles, the
share of members in the largest third of the space (parameters at least ``lo + 2/3 (hi - lo)``, with
``lo``/``hi`` the smallest and largest model of the DARTS space, ``choose.space_bounds``) and the share
above the 2/3 quantile of generation 0 - and plotted as in Figure 2 (a-d): the populations of five
generations on (parameters, validation accuracy) and the final parameter distribution, per selection.

The paper's claim is that NSGA-III drifts to small models (the early, still-training SuperNet favours
them) while pNSGA-III keeps a wide range. The analysis reports the measured numbers whichever way they
come out.

    python -m experiments.small_model_trap --threads 2          # the CPU scale of EXPERIMENTS.md

Writes ``experiments/results/small_model_trap/``: ``per_generation.csv``, ``populations.csv``,
``summary.json``, ``commands.txt``, ``timing.json``, ``fig2.png``, ``distribution.png``, ``trend.png``.
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

from cars_deploy.search.objectives import build_costs, deploy_network  # noqa: E402
from experiments.choose import space_bounds  # noqa: E402
from experiments.common import experiment_parser, main_wrapper, prepare, run_info  # noqa: E402
from experiments.figures import SELECTION_STYLE, new_figure, save_figure  # noqa: E402
from experiments.records import ResultsDir  # noqa: E402
from experiments.runs import run_search  # noqa: E402
from experiments.scale import add_search_flags, search_scale  # noqa: E402
from experiments.stats import size_summary  # noqa: E402

__all__ = ["NAME", "SELECTIONS", "analyse", "main", "plot", "populations_table"]

NAME = "small_model_trap"
SELECTIONS: tuple[str, ...] = ("nsga3", "pnsga3")
log = logging.getLogger("experiments")


def populations_table(histories: Mapping[str, Sequence[Mapping[str, Any]]]) -> pd.DataFrame:
    """The selected members of every generation of every search, one row each."""
    rows = []
    for selection, history in histories.items():
        for record in history:
            for ind in record["individuals"]:
                if ind.get("selected", True):
                    rows.append({
                        "selection": selection,
                        "generation": int(record["generation"]),
                        "params": int(ind["params"]),
                        "accuracy": ind["accuracy"],
                        "accuracy_speed": ind.get("accuracy_speed"),
                        "origin": ind.get("origin"),
                        "born": ind.get("born"),
                    })  # fmt: skip
    return pd.DataFrame(rows, columns=["selection", "generation", "params", "accuracy", "accuracy_speed", "origin", "born"])


def analyse(populations: pd.DataFrame, space: tuple[float, float]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-generation size summaries of each selection, and the comparison of their last generations.

    The generation-0 reference (its 2/3 quantile) is taken per selection; with the same seed both
    searches start from the same population, which the summary checks (``same_generation0``).
    """
    rows = []
    summary: dict[str, Any] = {"space_params": {"min": space[0], "max": space[1],
                                                "largest_third_from": space[0] + 2 / 3 * (space[1] - space[0])},
                               "selections": {}}  # fmt: skip
    for selection, table in populations.groupby("selection", sort=False):
        gen0 = table[table["generation"] == 0]["params"]
        q67 = float(np.percentile(gen0, 200 / 3)) if len(gen0) else float("nan")
        for generation, members in table.groupby("generation"):
            row = {"selection": selection, "generation": int(generation)}
            row.update(size_summary(members["params"], space=space, reference_q67=q67))
            row["accuracy_median"] = float(members["accuracy"].median())
            row["accuracy_max"] = float(members["accuracy"].max())
            rows.append(row)
        per_gen = pd.DataFrame([r for r in rows if r["selection"] == selection])
        first, last = per_gen.iloc[0], per_gen.iloc[-1]
        summary["selections"][selection] = {
            "generations": int(last["generation"]),
            "generation0_q67": q67,
            "first": {k: first[k] for k in first.index if k != "selection"},
            "last": {k: last[k] for k in last.index if k != "selection"},
            "median_change": float(last["params_median"] / first["params_median"] - 1.0),
            "range_kept": float(last["params_range"] / first["params_range"]) if first["params_range"] else None,
        }
    per_generation = pd.DataFrame(rows)
    chosen = summary["selections"]
    if all(s in chosen for s in SELECTIONS):
        a, b = chosen["pnsga3"]["last"], chosen["nsga3"]["last"]
        g0 = {s: sorted(populations[(populations.selection == s) & (populations.generation == 0)]["params"]) for s in SELECTIONS}
        summary["comparison_last_generation"] = {
            "same_generation0": g0["nsga3"] == g0["pnsga3"],
            "median_ratio_pnsga3_over_nsga3": a["params_median"] / b["params_median"],
            "range_ratio_pnsga3_over_nsga3": a["params_range"] / b["params_range"] if b["params_range"] else None,
            "share_top_third_gen0": {"nsga3": b["share_top_third_gen0"], "pnsga3": a["share_top_third_gen0"]},
            "share_top_third_space": {"nsga3": b["share_top_third_space"], "pnsga3": a["share_top_third_space"]},
        }
    return per_generation, summary


def _shown_generations(last: int, count: int = 5) -> list[int]:
    return sorted({int(round(g)) for g in np.linspace(0, last, count)})


def plot(populations: pd.DataFrame, per_generation: pd.DataFrame, space: tuple[float, float], folder: Path) -> list[Path]:
    """``fig2.png`` (Figure 2 a-d), ``distribution.png`` (box plots per generation), ``trend.png``."""
    from matplotlib import colormaps
    from matplotlib.ticker import MaxNLocator

    paths = []
    selections = [s for s in SELECTIONS if s in set(populations["selection"])]
    scale = 1e-6
    cut = (space[0] + 2 / 3 * (space[1] - space[0])) * scale
    xs = populations["params"] * scale
    pad = 0.05 * max(float(xs.max() - xs.min()), 1e-9)
    xlim = (float(xs.min()) - pad, float(xs.max()) + pad)

    figure = new_figure(11, 4.2 * len(selections))
    letters = iter("abcd")
    for row, selection in enumerate(selections):
        table = populations[populations.selection == selection]
        last = int(table.generation.max())
        shown = _shown_generations(last)
        cmap = colormaps["viridis"]
        ax = figure.add_subplot(len(selections), 2, 2 * row + 1)
        for i, generation in enumerate(shown):
            members = table[table.generation == generation]
            ax.scatter(members.params * scale, members.accuracy * 100, s=16, alpha=0.85, linewidths=0,
                       color=cmap(i / max(len(shown) - 1, 1)), label=f"generation {generation}")
        ax.set_xlim(xlim)
        ax.set_xlabel("parameters (M)")
        ax.set_ylabel("SuperNet validation accuracy (%)")
        ax.set_title(f"({next(letters)}) {SELECTION_STYLE[selection]['label']}: populations")
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(alpha=0.3)
        ax = figure.add_subplot(len(selections), 2, 2 * row + 2)
        bins = np.linspace(xlim[0], xlim[1], 25)
        ax.hist(table[table.generation == 0].params * scale, bins=bins, histtype="step", color="0.4", label="generation 0")
        ax.hist(table[table.generation == last].params * scale, bins=bins, alpha=0.7,
                color=SELECTION_STYLE[selection]["color"], label=f"generation {last}")
        if cut <= xlim[1]:
            ax.axvline(cut, color="k", ls=":", lw=1, label="largest third of the space")
        ax.set_xlim(xlim)
        ax.set_xlabel("parameters (M)")
        ax.set_ylabel("individuals")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"({next(letters)}) {SELECTION_STYLE[selection]['label']}: distribution after {last} generations")
        ax.legend(fontsize=7)
    figure.tight_layout()
    paths.append(save_figure(figure, folder / "fig2.png"))

    figure = new_figure(11, 4.2)
    ax = figure.add_subplot()
    width = 0.8 / max(len(selections), 1)
    for i, selection in enumerate(selections):
        table = populations[populations.selection == selection]
        generations = sorted(table.generation.unique())
        data = [table[table.generation == g].params * scale for g in generations]
        positions = np.array(generations) + (i - (len(selections) - 1) / 2) * width
        parts = ax.boxplot(data, positions=positions, widths=width * 0.9, patch_artist=True, manage_ticks=False,
                           flierprops={"markersize": 2}, medianprops={"color": "black"})
        for box in parts["boxes"]:
            box.set_facecolor(SELECTION_STYLE[selection]["color"])
            box.set_alpha(0.6)
        ax.plot([], [], color=SELECTION_STYLE[selection]["color"], lw=6, alpha=0.6, label=SELECTION_STYLE[selection]["label"])
    ax.set_xlabel("generation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("parameters (M)")
    ax.set_title("population parameter distribution per generation")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    paths.append(save_figure(figure, folder / "distribution.png"))

    figure = new_figure(11, 4.2)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for selection in selections:
        rows = per_generation[per_generation.selection == selection]
        style = SELECTION_STYLE[selection]
        left.plot(rows.generation, rows.params_median * scale, color=style["color"], label=f"{style['label']} median")
        left.fill_between(rows.generation, rows.params_q25 * scale, rows.params_q75 * scale, color=style["color"], alpha=0.2)
        left.plot(rows.generation, rows.params_min * scale, color=style["color"], ls=":", lw=1)
        left.plot(rows.generation, rows.params_max * scale, color=style["color"], ls=":", lw=1)
        right.plot(rows.generation, rows.share_top_third_gen0, color=style["color"], label=f"{style['label']}: top third of gen. 0")
        right.plot(rows.generation, rows.share_top_third_space, color=style["color"], ls="--",
                   label=f"{style['label']}: top third of the space")
    left.set_xlabel("generation")
    for axis in (left, right):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_ylabel("parameters (M): median, quartiles (band), min/max (dotted)")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    right.set_xlabel("generation")
    right.set_ylabel("share of the population")
    right.set_ylim(-0.03, 1.03)
    right.legend(fontsize=7)
    right.grid(alpha=0.3)
    figure.tight_layout()
    paths.append(save_figure(figure, folder / "trend.png"))
    return paths


def _print_summary(per_generation: pd.DataFrame, summary: Mapping[str, Any], results: ResultsDir) -> None:
    last = int(per_generation.generation.max())
    shown = set(_shown_generations(last))
    table = per_generation[per_generation.generation.isin(shown)]
    view = pd.DataFrame({
        "selection": table.selection,
        "gen": table.generation,
        "median (M)": (table.params_median / 1e6).round(3),
        "min (M)": (table.params_min / 1e6).round(3),
        "max (M)": (table.params_max / 1e6).round(3),
        "range (M)": (table.params_range / 1e6).round(3),
        "top third gen0": table.share_top_third_gen0.round(2),
        "top third space": table.share_top_third_space.round(2),
        "best acc (%)": (table.accuracy_max * 100).round(1),
    })  # fmt: skip
    space = summary["space_params"]
    print(f"small model trap: parameters of the selected population per generation (space: "
          f"{space['min'] / 1e6:.3f}-{space['max'] / 1e6:.3f} M, largest third from {space['largest_third_from'] / 1e6:.3f} M)")
    print(view.to_string(index=False))
    for selection, s in summary["selections"].items():
        kept = "n/a" if s["range_kept"] is None else f"{100 * s['range_kept']:.0f}%"
        print(f"{SELECTION_STYLE[selection]['label']}: median {100 * s['median_change']:+.1f}% from generation 0 to "
              f"{s['generations']}, range kept {kept}, share above the generation-0 2/3 quantile "
              f"{s['first']['share_top_third_gen0']:.2f} -> {s['last']['share_top_third_gen0']:.2f}")
    comparison = summary.get("comparison_last_generation")
    if comparison:
        ratio = comparison["range_ratio_pnsga3_over_nsga3"]
        print(f"last generation, pNSGA-III / NSGA-III: median x{comparison['median_ratio_pnsga3_over_nsga3']:.2f}, "
              f"range x{'inf' if ratio is None else f'{ratio:.2f}'}; same generation 0: {comparison['same_generation0']}")
    print(f"results: {results.path}")


def _run(args: argparse.Namespace) -> int:
    scale = search_scale(args)
    experiment = prepare(NAME, args, {"experiment": NAME, "search": asdict(scale), "selections": list(SELECTIONS)})
    results = experiment.results
    cost = build_costs(["params"], network=deploy_network(scale.deploy_network))[0]
    (lo, _), (hi, _) = space_bounds(cost)
    histories: dict[str, list[dict[str, Any]]] = {}
    commands, run_paths = [], {}
    for selection in SELECTIONS:
        argv = scale.argv(data_dir=experiment.data_dir, selection=selection, input_size=experiment.input_size)
        run = run_search(argv, work_dir=experiment.work_dir, name=selection, threads=experiment.threads,
                         device=experiment.device)
        results.add_seconds(f"search_{selection}", run.seconds)
        commands.append(run.command)
        run_paths[selection] = str(run.path)
        histories[selection] = run.history()
        populations = populations_table(histories)
        per_generation, summary = analyse(populations, (lo, hi))
        summary["runs"] = dict(run_paths)
        summary["run_info"] = run_info(experiment)
        results.write_csv("populations.csv", populations)
        results.write_csv("per_generation.csv", per_generation)
        results.write_json("summary.json", summary)
        results.write_text("commands.txt", "\n".join(commands) + "\n")
        plot(populations, per_generation, (lo, hi), results.path)
        if run.seconds:
            log.info("search %s finished in %.0f s: %s", selection, run.seconds, run.path)
        else:
            log.info("search %s was already finished: %s", selection, run.path)
    _print_summary(per_generation, summary, results)
    return 0


def _parser() -> Any:
    parser = experiment_parser(NAME, __doc__.split("\n\n")[0])
    add_search_flags(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return main_wrapper(NAME, _run, _parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
