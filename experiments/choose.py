"""Picking genotypes for the experiments: spread over model size, matched in size, and the space's bounds.

- ``spread``: ``k`` members of a set at evenly spaced quantiles of a value (e.g. parameters), so that
  a handful of retrained models covers small, middle and large ones rather than a random clump.
- ``pareto_picks``: ``k`` models of a final population, from its first non-dominated front on
  (accuracy up, parameters down) and, when that front is smaller than ``k``, the next fronts in order.
- ``random_pool`` / ``match_by_params``: the random-search baseline of experiment 2 - uniformly random
  genotypes (``random_genotype``, the distribution the search starts from), each matched to a CARS
  model by the nearest parameter count.
- ``space_bounds``: the smallest and largest parameter count of any genotype of a space (an op set) on a
  network. A count is a fixed part plus one term per edge, and a node's two edges choose their inputs
  and ops independently of the other nodes, so the extremes are found node by node: every choice of
  one node (inputs and ops) is counted with the rest of the genotype fixed, and each node keeps its
  smallest (largest) choice. The extremes are then checked by counting the two genotypes built.
"""
from __future__ import annotations

import itertools
from typing import Callable, Sequence

import numpy as np

from cars_deploy.search.selection import non_dominated_fronts
from cars_deploy.space import NUM_NODES, PUBLISHED_OPS, Genotype, random_genotype
from cars_deploy.space.op_sets import primitive_indices

__all__ = ["CostFn", "match_by_params", "pareto_picks", "random_pool", "space_bounds", "spread"]

CostFn = Callable[[Sequence[Genotype]], np.ndarray]


def spread(values: Sequence[float], k: int) -> list[int]:
    """Indices of ``k`` distinct entries of ``values`` nearest the quantiles ``(i + 0.5) / k`` (all of them,
    sorted by value, when there are at most ``k``); ties go to the lower index."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    if len(values) <= k:
        return [int(i) for i in order]
    ranks = (np.arange(k) + 0.5) / k * len(values) - 0.5  # positions in the sorted order
    chosen: list[int] = []
    taken = np.zeros(len(values), dtype=bool)
    for rank in ranks:
        free = np.flatnonzero(~taken)
        position = free[np.argmin(np.abs(free - rank))]
        taken[position] = True
        chosen.append(int(order[position]))
    return chosen


def pareto_picks(accuracy: Sequence[float], params: Sequence[float], k: int) -> list[tuple[int, int]]:
    """``(index, front)`` of ``k`` individuals: whole non-dominated fronts on (accuracy up, params down)
    in order while they fit, then a ``spread`` over parameters of the first front that does not."""
    F = np.column_stack([-np.asarray(accuracy, dtype=np.float64), np.asarray(params, dtype=np.float64)])
    picks: list[tuple[int, int]] = []
    for rank, front in enumerate(non_dominated_fronts(F), start=1):
        room = k - len(picks)
        if room <= 0:
            break
        chosen = front if len(front) <= room else front[spread(F[front, 1], room)]
        picks += [(int(i), rank) for i in chosen]
    return picks


def random_pool(
    rng: np.random.Generator, n: int, *, exclude: Sequence[Genotype] = (), ops: Sequence[str] = PUBLISHED_OPS
) -> list[Genotype]:
    """``n`` distinct uniformly random genotypes over ``ops`` (by canonical form), none equal to one of ``exclude``."""
    seen = {g.canonical() for g in exclude}
    pool: list[Genotype] = []
    while len(pool) < n:
        genotype = random_genotype(rng, ops=ops)
        canonical = genotype.canonical()
        if canonical not in seen:
            seen.add(canonical)
            pool.append(genotype)
    return pool


def match_by_params(targets: Sequence[float], pool_params: Sequence[float]) -> list[int]:
    """For each target count, in order, the index of the unused pool entry with the nearest count."""
    pool_params = np.asarray(pool_params, dtype=np.float64)
    if len(pool_params) < len(targets):
        raise ValueError("the pool is smaller than the number of targets")
    used = np.zeros(len(pool_params), dtype=bool)
    matches: list[int] = []
    for target in targets:
        gap = np.where(used, np.inf, np.abs(pool_params - float(target)))
        best = int(np.argmin(gap))
        used[best] = True
        matches.append(best)
    return matches


def _node_choices(node: int, ops: Sequence[str]) -> list[np.ndarray]:
    """Every ``(2, 2)`` array of (input, op index) a node can hold: two distinct inputs, any two of ``ops``."""
    choices = []
    for a, b in itertools.combinations(range(node), 2):
        for op_a, op_b in itertools.product(primitive_indices(ops), repeat=2):
            choices.append(np.array([[a, op_a], [b, op_b]]))
    return choices


def space_bounds(
    cost: CostFn, *, ops: Sequence[str] = PUBLISHED_OPS
) -> tuple[tuple[float, Genotype], tuple[float, Genotype]]:
    """``((smallest count, its genotype), (largest count, its genotype))`` of an additive count over the
    space of ``ops`` (see the module docstring)."""
    base = np.zeros((2, NUM_NODES, 2, 2), dtype=np.int64)  # (cell, node, edge, (input, op))
    base[..., 0, 0], base[..., 1, 0] = 0, 1  # every node reads inputs 0 and 1
    base[..., 1] = primitive_indices(ops)[0]  # with an op of the space
    extremes: list[tuple[float, Genotype]] = []
    for pick in (np.argmin, np.argmax):
        code = base.copy()
        for cell in range(2):
            for node in range(NUM_NODES):
                choices = _node_choices(node + 2, ops)
                trials = []
                for choice in choices:
                    trial = code.copy()
                    trial[cell, node] = choice
                    trials.append(Genotype.decode(trial.reshape(-1)))
                code[cell, node] = choices[int(pick(cost(trials)))]
        genotype = Genotype.decode(code.reshape(-1))
        extremes.append((float(cost([genotype])[0]), genotype))
    return extremes[0], extremes[1]
