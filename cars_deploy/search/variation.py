"""Offspring for one generation (section 3.4 and 4.1): crossover, mutation and new random architectures.

Each of the ``t x P`` offspring is made by crossover with probability 0.25, by mutation with
probability 0.25, or is a new uniformly random architecture (probability 0.5). Operators act on
nodes, the unit of the DARTS cell: a node is its two ``(input, op)`` pairs.

- crossover: two distinct parents; each node of both cells takes its two pairs from the second parent
  with probability 0.5, else from the first;
- mutation: each node of both cells is re-drawn with probability 0.5 (two distinct inputs among its
  predecessors, an op for each edge, uniformly: ``space.genotype.random_node``, which ``random_genotype``
  draws with too).

Mutation and random offspring draw ops from ``VariationConfig.ops``: the 7 ops of the published genotypes
by default (``space.op_sets``), so a search that starts without ``none`` edges never gains one;
crossover only recombines its parents' nodes.

No duplicates: an offspring whose canonical form (``Genotype.canonical``: same network, same form)
equals that of a parent or of an earlier offspring is rejected and its operator is applied again (so the
operator frequencies stay 0.25/0.25/0.5); after ``max_tries`` rejections in a row the slot falls back to
a new random architecture. vega compared raw arrays only, so the same network could enter twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..space import NUM_NODES, Genotype
from ..space.genotype import random_genotype, random_node
from ..space.op_sets import PUBLISHED_OPS

__all__ = ["VariationConfig", "crossover", "mutate", "make_offspring"]


@dataclass(frozen=True)
class VariationConfig:
    """Probabilities of the variation operators (paper section 4.1 defaults)."""

    crossover_prob: float = 0.25  # share of offspring made by crossover
    mutation_prob: float = 0.25  # share made by mutation; the rest are new random architectures
    crossover_node_prob: float = 0.5  # chance a node comes from the second parent
    mutation_node_prob: float = 0.5  # chance a node is re-drawn
    max_tries: int = 100  # duplicate rejections of one operator before falling back to a random architecture
    ops: tuple[str, ...] = PUBLISHED_OPS  # ops that mutation and random offspring draw (space.op_sets)


def _nodes(genotype: Genotype) -> np.ndarray:
    """``(2 cells, NUM_NODES, 2 edges, 2)`` array of ``(input, op index)``."""
    return genotype.encode().reshape(2, NUM_NODES, 2, 2)


def _from_nodes(nodes: np.ndarray) -> Genotype:
    return Genotype.decode(nodes.reshape(-1))


def crossover(first: Genotype, second: Genotype, rng: np.random.Generator, *, node_prob: float = 0.5) -> Genotype:
    """Each node of both cells from ``second`` with probability ``node_prob``, else from ``first``."""
    a, b = _nodes(first), _nodes(second)
    take = rng.random((2, NUM_NODES)) < node_prob
    child = np.where(take[:, :, None, None], b, a)
    return _from_nodes(child)


def mutate(
    parent: Genotype, rng: np.random.Generator, *, node_prob: float = 0.5, ops: Sequence[str] = PUBLISHED_OPS
) -> Genotype:
    """Each node of both cells re-drawn uniformly (its ops from ``ops``) with probability ``node_prob``."""
    child = _nodes(parent).copy()
    redraw = rng.random((2, NUM_NODES)) < node_prob
    for cell in range(2):
        for k in range(NUM_NODES):
            if redraw[cell, k]:
                child[cell, k] = np.stack(random_node(2 + k, rng, ops=ops), axis=1)
    return _from_nodes(child)


def make_offspring(
    parents: Sequence[Genotype],
    n: int,
    rng: np.random.Generator,
    config: VariationConfig = VariationConfig(),
    *,
    exclude: Iterable[Genotype] = (),
) -> list[tuple[Genotype, str]]:
    """``n`` new ``(genotype, origin)`` pairs, distinct from each other, from ``parents`` and from ``exclude``
    (compared in canonical form); ``origin`` is ``crossover``, ``mutation`` or ``random``."""
    if not parents:
        raise ValueError("variation needs at least one parent")
    seen = {g.canonical() for g in parents} | {g.canonical() for g in exclude}
    out: list[tuple[Genotype, str]] = []
    while len(out) < n:
        u = rng.random()
        if u < config.crossover_prob and len(parents) >= 2:
            origin = "crossover"
        elif u < config.crossover_prob + config.mutation_prob:
            origin = "mutation"
        else:
            origin = "random"
        for _ in range(config.max_tries):
            child = _apply(origin, parents, rng, config)
            if child.canonical() not in seen:
                break
        else:
            origin = "random"
            child = random_genotype(rng, ops=config.ops)
            while child.canonical() in seen:
                child = random_genotype(rng, ops=config.ops)
        seen.add(child.canonical())
        out.append((child, origin))
    return out


def _apply(origin: str, parents: Sequence[Genotype], rng: np.random.Generator, config: VariationConfig) -> Genotype:
    if origin == "crossover":
        i, j = rng.choice(len(parents), size=2, replace=False)
        return crossover(parents[int(i)], parents[int(j)], rng, node_prob=config.crossover_node_prob)
    if origin == "mutation":
        return mutate(parents[int(rng.integers(len(parents)))], rng, node_prob=config.mutation_node_prob, ops=config.ops)
    return random_genotype(rng, ops=config.ops)
