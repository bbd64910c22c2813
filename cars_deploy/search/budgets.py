"""Budgets of a search: upper limits on costs (latency, parameters, mult-adds) that a deployed model must meet.

A mobile engineer comes with a budget ("under 5 ms on this phone", "under 3 M parameters"). The search
handles it by constraint domination (Deb's rules, as pymoo's constrained survival does): a feasible
individual beats an infeasible one, infeasible ones rank by their total normalised violation
``sum_b max(0, cost_b / limit_b - 1)``, feasible ones by the usual sorts (``selection.select``). So the
population spends itself under the budget instead of over the whole front.

``cost_minimum`` gives the smallest value a cost can take over the search space, so that a budget no
genotype can meet is refused before any training. Every cost of the project is additive per edge
(``space.edge_costs``: a genotype-independent base plus one term per edge that depends on the cell, the op
and whether the edge reads a cell input or a node), so the minimum is reached by the genotype whose every
node takes its two cheapest allowed (input, op) pairs. Those per-edge terms are read off the cost
function itself with 32 probe genotypes (one vectorised call), so the same code serves the count costs
and a calibrated latency predictor without knowing their tables.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..errors import UserInputError
from ..space import NUM_NODES, PRIMITIVES, Genotype
from .objectives import CostFunction

__all__ = ["Budget", "BUDGET_FIELDS", "budgets_of", "violation", "cost_minimum", "check_budgets"]

#: Config field, cost name, unit multiplier (flag value x multiplier = cost units), flag and display unit.
BUDGET_FIELDS: tuple[tuple[str, str, float, str, str], ...] = (
    ("max_latency_ms", "latency", 1.0, "--max-latency", "ms"),
    ("max_params_m", "params", 1e6, "--max-params", "M"),
    ("max_mult_adds_m", "mult_adds", 1e6, "--max-mult-adds", "M"),
)


@dataclass(frozen=True)
class Budget:
    """An upper limit on one cost."""

    cost: str  # cost name (latency, params, mult_adds)
    limit: float  # the limit in the cost's own units (ms, parameters, mult-adds)
    flag: str  # the cars-search flag that set it
    shown: float  # the limit as the user gave it (ms or millions)
    unit: str  # its unit as shown ("ms" or "M")

    def describe(self) -> str:
        return f"{self.cost} <= {self.shown:g} {self.unit}"


def budgets_of(config: object) -> list[Budget]:
    """The budgets set in a ``SearchConfig`` (fields ``max_latency_ms``, ``max_params_m``, ``max_mult_adds_m``)."""
    budgets = []
    for field, cost, multiplier, flag, unit in BUDGET_FIELDS:
        value = getattr(config, field, None)
        if value is not None:
            budgets.append(Budget(cost=cost, limit=float(value) * multiplier, flag=flag, shown=float(value), unit=unit))
    return budgets


def violation(costs: Mapping[str, np.ndarray], budgets: Sequence[Budget]) -> np.ndarray:
    """(N,) total normalised violation ``sum_b max(0, cost_b / limit_b - 1)``; 0 means feasible.
    Normalising by the limit makes a millisecond and a million parameters over budget comparable."""
    total: np.ndarray | None = None
    for budget in budgets:
        over = np.maximum(0.0, np.asarray(costs[budget.cost], dtype=np.float64) / budget.limit - 1.0)
        total = over if total is None else total + over
    if total is None:
        raise ValueError("violation needs at least one budget")
    return total


def cost_minimum(cost: CostFunction, *, ops: Sequence[str] = PRIMITIVES) -> tuple[float, Genotype]:
    """The smallest value of ``cost`` over the genotypes whose ops are drawn from ``ops``, and a genotype
    reaching it. Exact for every cost additive per edge (``space.edge_costs``)."""
    ops = tuple(ops)
    if not ops:
        raise ValueError("cost_minimum needs at least one op")
    reference = _genotype({c: [(ops[0], 0, ops[0], 1)] + [(ops[0], 0, ops[0], 2)] * (NUM_NODES - 1) for c in (0, 1)})
    probes = []
    for cell in (0, 1):
        for op in ops:
            # slot 0: the first edge of node 2 (reads input 0); slot 1: the second edge of node 3 (reads node 2)
            probes.append(_with_edge(reference, cell, 0, op, 0))
            probes.append(_with_edge(reference, cell, 3, op, 2))
    # and per cell the reference with node 3's second edge moved from node 2 to input 1 (slot 1 -> slot 0)
    probes += [reference, _with_edge(reference, 0, 3, ops[0], 1), _with_edge(reference, 1, 3, ops[0], 1)]
    raw = np.asarray(cost(probes), dtype=np.float64)
    base, moved = raw[-3], raw[-2:]
    # every edge term relative to one constant per cell: e(op, slot) - e(ops[0], slot 1)
    values = raw[:-3].reshape(2, len(ops), 2) - base
    values[:, :, 0] += (moved - base)[:, None]
    best_op = values.argmin(axis=1)  # (cell, slot)
    best = values.min(axis=1)
    cells = {}
    for cell in (0, 1):
        nodes = []
        for node in range(2, 2 + NUM_NODES):
            inputs = sorted(range(node), key=lambda i: (best[cell, int(i >= 2)], i))[:2]
            op_a, op_b = (ops[int(best_op[cell, int(i >= 2)])] for i in inputs)
            nodes.append((op_a, inputs[0], op_b, inputs[1]))
        cells[cell] = nodes
    genotype = _genotype(cells)
    return float(np.asarray(cost([genotype]), dtype=np.float64)[0]), genotype


def check_budgets(budgets: Sequence[Budget], costs: Mapping[str, CostFunction], *, ops: Sequence[str] = PRIMITIVES) -> None:
    """``UserInputError`` (exit 2) naming the space's minimum when no genotype can meet a budget."""
    for budget in budgets:
        minimum, _ = cost_minimum(costs[budget.cost], ops=ops)
        if minimum > budget.limit:
            shown = minimum / (budget.limit / budget.shown)
            raise UserInputError(
                f"{budget.flag} {budget.shown:g}: no genotype of the search space meets it; the smallest "
                f"{budget.cost} of the space on this deployment network is {shown:.4g} {budget.unit}"
            )


def _genotype(cells: Mapping[int, Sequence[tuple[str, int, str, int]]]) -> Genotype:
    edges = {c: [e for op_a, a, op_b, b in cells[c] for e in ((op_a, a), (op_b, b))] for c in (0, 1)}
    return Genotype.of(normal=edges[0], reduce=edges[1])


def _with_edge(genotype: Genotype, cell: int, edge: int, op: str, index: int) -> Genotype:
    normal, reduce = list(genotype.normal), list(genotype.reduce)
    (normal if cell == 0 else reduce)[edge] = (op, index)
    return Genotype.of(normal=normal, reduce=reduce)
