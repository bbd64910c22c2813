"""What a search writes into its run folder (``search.rundir``): population.csv, pareto.csv, history.jsonl
and the plots, rendered from the population and the per-generation history that ``CarsSearch`` keeps.

Every table has the columns ``rundir.REPORT_COLUMNS``, in that order, then one column per objective
that has none of its own there. ``params`` and ``mult_adds`` are always reported, counted on the
deployment network even when they are not objectives, so that tables of searches with different
objectives compare; ``latency_ms`` is filled by the ``latency`` objective and empty otherwise.
"""
from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .objectives import CostFunction
from .plots import plot_generations, plot_pareto
from .population import Population
from .rundir import PLOTS, REPORT_COLUMNS, RunDir
from .selection import non_dominated_fronts

__all__ = ["RunWriter", "cost_column"]


def cost_column(name: str) -> str:
    """The table column of the cost ``name``: ``latency_ms`` for ``latency``, else the name itself."""
    return "latency_ms" if name == "latency" else name


class RunWriter:
    """Renders and writes one run folder's tables, history and plots.

    ``costs`` are the search's objectives in config order (the population's ``costs`` columns);
    ``report_costs`` count ``params`` and ``mult_adds``. Plots are redrawn at most every ``plot_seconds``
    (and always by ``write(final=True)``): they change nothing in the search, and drawing costs time.
    """

    def __init__(
        self,
        run: RunDir,
        *,
        costs: Sequence[CostFunction],
        report_costs: Mapping[str, CostFunction],
        plot_seconds: float = 30.0,
    ) -> None:
        self.run = run
        self.costs = list(costs)
        self.report_costs = dict(report_costs)
        self.plot_seconds = plot_seconds
        self._last_plot = time.monotonic()

    @property
    def objective(self) -> str:
        """The ``objective`` column: the cost names, comma-separated."""
        return ",".join(cost.name for cost in self.costs)

    def individual_records(self, candidates: Population, selected: np.ndarray) -> list[dict[str, Any]]:
        """The ``individuals`` of a history.jsonl line: each candidate of a generation, its objectives
        and whether selection kept it."""
        report = {name: cost(candidates.genotypes) for name, cost in self.report_costs.items()}
        records = []
        for i, ind in enumerate(candidates):
            entry: dict[str, Any] = {
                "genotype": str(ind.genotype),
                "accuracy": ind.accuracy,
                "previous_accuracy": ind.previous_accuracy,
                "accuracy_speed": ind.speed,
                "params": int(report["params"][i]),
                "mult_adds": int(report["mult_adds"][i]),
            }
            for cost, value in zip(self.costs, ind.costs):
                entry[cost.name] = int(value) if cost.name in ("params", "mult_adds") else float(value)
            entry.update(origin=ind.origin, born=ind.born, selected=bool(selected[i]))
            records.append(entry)
        return records

    def population_table(self, population: Population) -> pd.DataFrame:
        """The rows of population.csv: ``REPORT_COLUMNS``, then any objective without a column there."""
        genotypes, n = population.genotypes, len(population)
        report = {name: cost(genotypes) for name, cost in self.report_costs.items()}
        values: dict[str, Any] = {
            "genotype": [str(g) for g in genotypes],
            "accuracy": population.accuracies(),
            "params": report["params"].astype(np.int64),
            "mult_adds": report["mult_adds"].astype(np.int64),
            "latency_ms": [None] * n,
            "objective": [self.objective] * n,
            "accuracy_speed": population.speeds(),
            "previous_accuracy": [ind.previous_accuracy for ind in population],
            "origin": [ind.origin for ind in population],
            "born": [ind.born for ind in population],
        }
        columns = {name: values[name] for name in REPORT_COLUMNS}
        costs = population.costs()
        for m, cost in enumerate(self.costs):
            if cost.name == "latency" or cost.name not in columns:
                columns[cost_column(cost.name)] = costs[:, m]
        return pd.DataFrame(columns)

    def pareto_table(self, population: Population) -> pd.DataFrame:
        """The rows of pareto.csv: the non-dominated individuals on (accuracy, objective costs), by
        ascending first cost, then descending accuracy."""
        table = self.population_table(population)
        if table.empty:
            return table
        F = np.column_stack([-population.accuracies(), population.costs()])
        front = non_dominated_fronts(F)[0]
        key = cost_column(self.costs[0].name)
        pareto = table.iloc[front]
        pareto = pareto.sort_values([key, "accuracy"], ascending=[True, False], kind="stable").reset_index(drop=True)
        return self._with_uncertainty(pareto)

    def _with_uncertainty(self, pareto: pd.DataFrame) -> pd.DataFrame:
        """``latency_pm90_ms`` beside ``latency_ms`` when the latency cost knows its uncertainty (a
        calibrated predictor: +-ms holding 90% of its cross-validated residuals)."""
        cost = next((c for c in self.costs if c.name == "latency"), None)
        spread = getattr(cost, "uncertainty", None)
        if spread is None or pareto.empty:
            return pareto
        values = spread(pareto["latency_ms"].to_numpy(dtype=np.float64))
        if values is not None:
            pareto.insert(pareto.columns.get_loc("latency_ms") + 1, "latency_pm90_ms", values)
        return pareto

    def write(
        self, population: Population, history: Sequence[Mapping[str, Any]], *, generation: int, final: bool = False
    ) -> None:
        """Rewrites history.jsonl, population.csv and pareto.csv (atomically), and the plots when
        ``final`` or when the last ones are ``plot_seconds`` old."""
        self.run.write_history(history)
        population_table = self.population_table(population)
        pareto_table = self.pareto_table(population)
        self.run.write_table("population", population_table)
        self.run.write_table("pareto", pareto_table)
        if not final and time.monotonic() - self._last_plot < self.plot_seconds:
            return
        self._last_plot = time.monotonic()
        first = self.costs[0]
        plot_generations(history, self.run.plots_path / PLOTS[0], cost=first.name, label=first.label, scale=first.scale)
        plot_pareto(
            population_table, pareto_table, self.run.plots_path / PLOTS[1], cost=cost_column(first.name),
            label=first.label, scale=first.scale, title=f"generation {generation}: population and Pareto front",
        )
