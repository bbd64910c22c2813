"""Whole networks to time: random genotypes, the published ones, and their exported model files.

The calibration and its validation time whole networks end to end, exported exactly as the table's
blocks are (``profilers.export_blocks.export_module``: the format's record in ``cars_deploy.formats``,
static batch-1 shapes, batch norm folded in eval mode), so that the only difference between a network
and the sum of its blocks is the one the calibration models: running them as one graph.

Random networks: a uniformly random genotype (``space.random_genotype``) draws each of its 16 ops
independently, so by the central limit theorem nearly all of them land in a narrow latency band,
where ranks are decided by measurement noise and a calibration is fitted on one point. A search's
population, and its Pareto front, spans light networks (pools, skips) to heavy ones (separable
convolutions), so the default ``"dirichlet"`` sampler first draws, per cell, op probabilities from a
flat Dirichlet distribution and then the ops from them (inputs as in the space: two distinct
predecessors per node, uniformly). Every op, ``none`` included, stays possible; ``"uniform"`` is the
plain space sampler. Genotypes are de-duplicated by their canonical form.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from ..errors import UserInputError
from ..formats import timing_export_format
from ..profilers.export_blocks import export_module, seeded
from ..space.genotype import NUM_NODES, Genotype, random_genotype
from ..space.genotypes import GENOTYPES
from ..space.networks import NetworkConfig, build_network
from ..space.primitives import PRIMITIVES
from .predictor import network_id

__all__ = ["Sampler", "SAMPLERS", "sample_genotypes", "published_genotypes", "genotype_hash", "NetworkExporter"]

Sampler = Literal["dirichlet", "uniform"]
SAMPLERS: tuple[str, ...] = ("dirichlet", "uniform")


def _dirichlet_genotype(rng: np.random.Generator) -> Genotype:
    cells = []
    for _ in range(2):
        weights = rng.dirichlet(np.ones(len(PRIMITIVES)))
        edges = []
        for node in range(2, 2 + NUM_NODES):
            inputs = rng.choice(node, size=2, replace=False)
            ops = rng.choice(len(PRIMITIVES), size=2, p=weights)
            edges.extend((PRIMITIVES[int(o)], int(i)) for o, i in zip(ops, inputs))
        cells.append(edges)
    return Genotype.of(normal=cells[0], reduce=cells[1])


def sample_genotypes(
    n: int, rng: np.random.Generator, *, sampler: Sampler = "dirichlet", exclude: Sequence[Genotype] = ()
) -> list[Genotype]:
    """``n`` distinct random genotypes (none equal, canonically, to one in ``exclude``)."""
    if sampler not in SAMPLERS:
        raise UserInputError(f"unknown genotype sampler {sampler!r}; known: {', '.join(SAMPLERS)}")
    if n < 0:
        raise UserInputError(f"the number of random networks must not be negative, got {n}")
    seen = {g.canonical() for g in exclude}
    out: list[Genotype] = []
    while len(out) < n:
        genotype = _dirichlet_genotype(rng) if sampler == "dirichlet" else random_genotype(rng)
        canonical = genotype.canonical()
        if canonical not in seen:
            seen.add(canonical)
            out.append(genotype)
    return out


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

    def export(self, genotype: Genotype, fmt: str) -> Path:
        """The cached model file of ``genotype``'s network, exporting it first if missing (weights drawn
        from a generator seeded by the genotype, so the file is reproducible)."""
        path = self.path(genotype, fmt)
        if not path.exists():
            with seeded(int(genotype_hash(genotype), 16) & 0x7FFF_FFFF_FFFF_FFFF):
                model = build_network(genotype, self.network).eval()
            export_module(model, (self.input_shape(),), path, fmt)
        return path
