"""Whole networks to time: random genotypes, the published ones, and their exported model files.

The calibration and its validation time whole networks end to end, exported exactly as the table's
blocks are (``profilers.export_blocks.export_module``: the format's record in ``cars_deploy.formats``,
static batch-1 shapes, batch norm folded in eval mode), so that the only difference between a network
and the sum of its blocks is the one the calibration models: running them as one graph.

Random networks: a uniformly random genotype (``space.random_genotype``) draws each of its 16 ops
independently, so by the central limit theorem nearly all of them land in a narrow latency band,
where ranks are decided by measurement noise and a calibration is fitted on one point. A search's
population, and its Pareto front, spans light networks (pools, skips) to heavy ones (separable
convolutions), so the ``"dirichlet"`` sampler first draws, per cell, op probabilities from a
flat Dirichlet distribution and then the ops from them (inputs as in the space: two distinct
predecessors per node, uniformly); ``"uniform"`` is the plain space sampler. Even the Dirichlet draws
thin out at the ends of the latency range, which is exactly where a latency search's Pareto models
sit (the fastest networks of the space), so a calibration fitted on them extrapolates there. The
default ``"spread"`` sampler therefore draws a large Dirichlet pool and keeps the networks whose
uncalibrated block sum lies nearest ``n`` evenly spaced points from the pool's fastest to its slowest:
the calibration sees the whole range a search explores, ends included. Ops are drawn from the op set of
the published models (``space.op_sets``; a search's default), ``none`` excluded unless ``ops`` says
otherwise. Genotypes are de-duplicated by their canonical form.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np

from ..errors import UserInputError
from ..formats import timing_export_format
from ..profilers.export_blocks import export_module, seeded
from ..space.genotype import NUM_NODES, Genotype, random_genotype
from ..space.genotypes import GENOTYPES
from ..space.networks import NetworkConfig, build_network
from ..space.op_sets import PUBLISHED_OPS, primitive_indices
from ..space.primitives import PRIMITIVES
from .predictor import network_id

__all__ = ["REFERENCE_GENOTYPE", "Sampler", "SAMPLERS", "sample_genotypes", "spread_over_range", "published_genotypes", "genotype_hash", "NetworkExporter"]

Sampler = Literal["spread", "dirichlet", "uniform"]
SAMPLERS: tuple[str, ...] = ("spread", "dirichlet", "uniform")
#: The published genotype whose whole network is the drift reference of whole-network timings: a network
#: sits in the caches and memory traffic of the networks it stands for, which a small block does not.
REFERENCE_GENOTYPE = "DARTS_V2"
#: Dirichlet genotypes drawn per network the ``"spread"`` sampler keeps (the pool it spreads over).
SPREAD_POOL_PER_NETWORK = 40


def _dirichlet_genotype(rng: np.random.Generator, ops: Sequence[str]) -> Genotype:
    indices = np.asarray(primitive_indices(ops))
    cells = []
    for _ in range(2):
        weights = rng.dirichlet(np.ones(len(indices)))
        edges = []
        for node in range(2, 2 + NUM_NODES):
            inputs = rng.choice(node, size=2, replace=False)
            chosen = indices[rng.choice(len(indices), size=2, p=weights)]
            edges.extend((PRIMITIVES[int(o)], int(i)) for o, i in zip(chosen, inputs))
        cells.append(edges)
    return Genotype.of(normal=cells[0], reduce=cells[1])


def sample_genotypes(
    n: int,
    rng: np.random.Generator,
    *,
    sampler: Sampler = "dirichlet",
    exclude: Sequence[Genotype] = (),
    ops: Sequence[str] = PUBLISHED_OPS,
    cost: Callable[[list[Genotype]], np.ndarray] | None = None,
) -> list[Genotype]:
    """``n`` distinct random genotypes of the op set ``ops`` (none equal, canonically, to one in
    ``exclude``). ``"spread"`` needs ``cost``, the block sum of a list of genotypes (the order it returns
    them in is by increasing cost)."""
    if sampler not in SAMPLERS:
        raise UserInputError(f"unknown genotype sampler {sampler!r}; known: {', '.join(SAMPLERS)}")
    if n < 0:
        raise UserInputError(f"the number of random networks must not be negative, got {n}")
    if sampler == "spread":
        if cost is None:
            raise ValueError("the spread sampler needs the cost (block sum) of the genotypes it draws")
        pool = sample_genotypes(SPREAD_POOL_PER_NETWORK * n, rng, sampler="dirichlet", exclude=exclude, ops=ops)
        return [pool[i] for i in spread_over_range(cost(pool), n)]
    seen = {g.canonical() for g in exclude}
    out: list[Genotype] = []
    while len(out) < n:
        genotype = _dirichlet_genotype(rng, ops) if sampler == "dirichlet" else random_genotype(rng, ops=ops)
        canonical = genotype.canonical()
        if canonical not in seen:
            seen.add(canonical)
            out.append(genotype)
    return out


def spread_over_range(values: Sequence[float] | np.ndarray, n: int) -> list[int]:
    """Indices of ``n`` distinct entries of ``values``, each the one nearest to one of ``n`` evenly spaced
    points from the minimum to the maximum (both ends kept), in increasing order of value. Unlike
    quantiles, even spacing gives the sparse ends of a distribution as many picks as its crowded middle."""
    values = np.asarray(values, dtype=np.float64)
    if n > len(values):
        raise ValueError(f"cannot keep {n} of {len(values)} values")
    order = np.argsort(values, kind="stable")
    free = np.ones(len(values), dtype=bool)
    chosen = []
    for target in np.linspace(values[order[0]], values[order[-1]], n) if n else []:
        candidates = order[free[order]]
        pick = int(candidates[np.argmin(np.abs(values[candidates] - target))])
        free[pick] = False
        chosen.append(pick)
    return sorted(chosen, key=lambda i: (values[i], i))


def published_genotypes(names: Sequence[str] | None = None) -> dict[str, Genotype]:
    """The published genotypes by name (all of ``GENOTYPES`` by default: DARTS_V1/V2, CARS_A..I, CARS_Lat_A..G)."""
    chosen = list(GENOTYPES.names()) if names is None else list(names)
    unknown = [n for n in chosen if n not in GENOTYPES]
    if unknown:
        raise UserInputError(f"unknown genotype name(s) {', '.join(unknown)}; known: {', '.join(GENOTYPES.names())}")
    return {name: GENOTYPES.get(name) for name in chosen}


def genotype_hash(genotype: Genotype) -> str:
    """16 hex digits identifying the network a genotype builds (its canonical form)."""
    return hashlib.sha256(str(genotype.canonical()).encode()).hexdigest()[:16]


class NetworkExporter:
    """Exports genotypes' whole networks into ``<cache_dir>/networks/<format>/<network>/<hash>.<ext>``, once."""

    def __init__(self, cache_dir: Path, network: NetworkConfig) -> None:
        self.cache_dir = Path(cache_dir)
        self.network = network

    def path(self, genotype: Genotype, fmt: str) -> Path:
        model_format = timing_export_format(fmt)
        return (self.cache_dir / "networks" / str(model_format.cache_folder) / network_id(self.network)
                / f"{genotype_hash(genotype)}{model_format.suffix}")

    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, self.network.in_channels, self.network.input_size, self.network.input_size)

    def reference(self, fmt: str) -> tuple[Path, list[tuple[int, int, int, int]]]:
        """The drift reference of whole-network timings at this size: the ``REFERENCE_GENOTYPE`` network's
        model file and input shapes (see ``latency.validation``)."""
        return self.export(GENOTYPES.get(REFERENCE_GENOTYPE), fmt), [self.input_shape()]

    def export(self, genotype: Genotype, fmt: str) -> Path:
        """The cached model file of ``genotype``'s network, exporting it first if missing (weights drawn
        from a generator seeded by the genotype, so the file is reproducible)."""
        path = self.path(genotype, fmt)
        if not path.exists():
            with seeded(int(genotype_hash(genotype), 16) & 0x7FFF_FFFF_FFFF_FFFF):
                model = build_network(genotype, self.network).eval()
            export_module(model, (self.input_shape(),), path, fmt)
        return path
