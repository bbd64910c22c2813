"""PNG plots of a search (paper Figure 2 style): the population of every generation, coloured by
generation, on (cost, accuracy), and the final Pareto front.

Drawn and written as every figure of the package is (``cars_deploy._figures``: matplotlib's object API on
an Agg canvas, no pyplot, no display needed, PNG written atomically).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .._figures import new_figure, save_figure

__all__ = ["plot_generations", "plot_pareto"]


def plot_generations(
    history: Sequence[Mapping[str, Any]], path: Path, *, cost: str, label: str, scale: float, budget: float | None = None
) -> None:
    """The selected population of each generation on (``cost`` x ``scale``, accuracy), coloured by generation;
    individuals over a budget are crosses, and ``budget`` (in ``cost`` units) is a dashed line."""
    figure = new_figure()
    axes = figure.add_subplot()
    generations = [record["generation"] for record in history]
    last = max(generations) if generations else 0
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    norm = Normalize(vmin=0, vmax=max(last, 1))
    cmap = colormaps["viridis"]
    for record in history:
        chosen = [ind for ind in record["individuals"] if ind.get("selected", True)]
        xs = np.array([ind[cost] for ind in chosen], dtype=float) * scale
        ys = np.array([ind["accuracy"] for ind in chosen], dtype=float) * 100
        over = np.array([ind.get("violation", 0.0) > 0 for ind in chosen], dtype=bool)
        color = cmap(norm(record["generation"]))
        axes.scatter(xs[~over], ys[~over], s=12, color=color, alpha=0.8, linewidths=0)
        if over.any():
            axes.scatter(xs[over], ys[over], s=14, color=color, alpha=0.8, marker="x")
    _budget_line(axes, budget, scale)
    from matplotlib.cm import ScalarMappable

    figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, label="generation")
    axes.set_xlabel(label)
    axes.set_ylabel("validation accuracy (%)")
    axes.set_title("population per generation")
    axes.grid(alpha=0.3)
    save_figure(figure, path)


def plot_pareto(
    population: Mapping[str, Sequence[float]],
    pareto: Mapping[str, Sequence[float]],
    path: Path,
    *,
    cost: str,
    label: str,
    scale: float,
    title: str = "final population and Pareto front",
    budget: float | None = None,
) -> None:
    """The population (grey; crosses over budget) and its Pareto set (line) on (``cost``, accuracy), and
    ``budget`` (in ``cost`` units) as a dashed line."""
    figure = new_figure()
    axes = figure.add_subplot()
    px = np.asarray(population[cost], dtype=float) * scale
    py = np.asarray(population["accuracy"], dtype=float) * 100
    feasible = np.asarray(population["feasible"], dtype=bool) if "feasible" in population else np.ones(len(px), bool)
    axes.scatter(px[feasible], py[feasible], s=14, color="0.6", label="population")
    if not feasible.all():
        axes.scatter(px[~feasible], py[~feasible], s=16, color="0.6", marker="x", label="over budget")
    _budget_line(axes, budget, scale)
    xs = np.asarray(pareto[cost], dtype=float) * scale
    ys = np.asarray(pareto["accuracy"], dtype=float) * 100
    order = np.argsort(xs, kind="stable")
    axes.plot(xs[order], ys[order], "o-", color="tab:red", markersize=5, label="Pareto set", drawstyle="steps-post")
    axes.set_xlabel(label)
    axes.set_ylabel("validation accuracy (%)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    save_figure(figure, path)


def _budget_line(axes: Any, budget: float | None, scale: float) -> None:
    if budget is not None:
        axes.axvline(budget * scale, color="tab:orange", linestyle="--", linewidth=1, label="budget")
