"""Single paths for the SuperNet's warmup: uniform, or strictly fair (FairNAS).

During warmup (Algorithm 1, before the population exists) each SGD step trains paths drawn at random.
Uniform draws (section 3.4) train every op of every edge equally often only on average: over a short
warmup some ops of some edges get many more updates than others, and the SuperNet's ranking then
favours the architectures made of the luckier ops. Strict fairness (Chu et al., "FairNAS", ICCV 2021)
removes that variance: paths come in groups of ``len(ops)``, and within a group every edge slot takes
every op exactly once (one random permutation of the ops per slot), so after each group all ops of all
edges have had the same number of updates. Inputs are not part of the fairness constraint (a node's
two inputs are drawn as ``random_genotype`` draws them), since they select which features an op reads,
not which weights it trains.

A group is cut at the end of an epoch (the sampler is made anew for each epoch), so that a search
resumed from an epoch checkpoint draws exactly what an uninterrupted one does.
"""
from __future__ import annotations

from typing import Callable, Literal, Sequence

import numpy as np

from ..space.genotype import NUM_NODES, Genotype, random_genotype
from ..space.op_sets import primitive_indices

__all__ = ["PATH_SAMPLINGS", "PathSampling", "FairPathSampler", "warmup_paths"]

PathSampling = Literal["uniform", "fair"]
#: The warmup path samplers ``SearchConfig.path_sampling`` names.
PATH_SAMPLINGS: tuple[str, ...] = ("uniform", "fair")


class FairPathSampler:
    """Hands out paths in strictly fair groups of ``len(ops)``: in each group every (cell, node, edge)
    slot holds every op once."""

    def __init__(self, ops: Sequence[str], rng: np.random.Generator) -> None:
        self.ops = np.asarray(primitive_indices(ops), dtype=np.int64)
        self.rng = rng
        self._queue: list[Genotype] = []

    def group(self) -> list[Genotype]:
        """One fair group: ``len(ops)`` genotypes whose op at each edge slot is a permutation of ``ops``."""
        k = len(self.ops)
        # codes[path, cell, node, edge, (input, op)], the layout of Genotype.encode()
        codes = np.zeros((k, 2, NUM_NODES, 2, 2), dtype=np.int64)
        for cell in range(2):
            for node in range(NUM_NODES):
                for path in range(k):
                    codes[path, cell, node, :, 0] = self.rng.choice(node + 2, size=2, replace=False)
                for edge in range(2):
                    codes[:, cell, node, edge, 1] = self.ops[self.rng.permutation(k)]
        return [Genotype.decode(code.reshape(-1)) for code in codes]

    def sample(self, n: int) -> list[Genotype]:
        """The next ``n`` paths, continuing the current group and starting new ones as needed."""
        while len(self._queue) < n:
            self._queue.extend(self.group())
        taken, self._queue = self._queue[:n], self._queue[n:]
        return taken


def warmup_paths(kind: PathSampling, ops: Sequence[str], rng: np.random.Generator) -> Callable[[int], list[Genotype]]:
    """A function ``n -> n paths`` for one warmup epoch: uniform draws from ``ops``, or a fresh
    ``FairPathSampler``."""
    if kind == "fair":
        return FairPathSampler(ops, rng).sample
    return lambda n: [random_genotype(rng, ops=ops) for _ in range(n)]
