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


def plot_generations(history: Sequence[Mapping[str, Any]], path: Path, *, cost: str, label: str, scale: float) -> None:
    """The selected population of each generation on (``cost`` x ``scale``, accuracy), coloured by generation."""
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
        axes.scatter(xs, ys, s=12, color=cmap(norm(record["generation"])), alpha=0.8, linewidths=0)
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
) -> None:
    """The population (grey) and its Pareto set (line) on (``cost``, accuracy)."""
    figure = new_figure()
    axes = figure.add_subplot()
    axes.scatter(
        np.asarray(population[cost], dtype=float) * scale,
        np.asarray(population["accuracy"], dtype=float) * 100,
        s=14, color="0.6", label="population",
    )
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
