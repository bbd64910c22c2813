"""Additive per-edge costs of a genotype's network: one table, one index convention, one gather.

Any quantity that adds up over a network's modules - parameters, mult-adds, a latency table's block
sum, the count of each block - splits into a genotype-independent part (stems, every cell's
preprocessing, node sums, concats, head) and one term per edge of each cell. The term of an edge
depends only on the cell kind, the op and what the op sees (``EdgeShape``: channels, input side,
stride), and what it sees depends only on whether the edge reads a cell input or an intermediate node
(``edge_shape``, the one place that rule is written). So a network size and a per-edge cost give

    ``edges[cell, op, slot]``: the cost one edge adds, summed over every cell of that kind,

with ``cell`` 0 for normal and 1 for reduction cells, ``op`` the index in ``PRIMITIVES`` and ``slot``
``SLOT_CELL_INPUT`` (0) when the edge reads input 0 or 1 of its cell, ``SLOT_NODE`` (1) when it reads an
intermediate node. A genotype's cost is ``base`` plus the entries of its 16 edges, a gather and a sum
over its integer encoding (``Genotype.encode()``), vectorised over a whole population: microseconds
per genotype instead of building and tracing its network (the search scores tens of thousands, paper
section 3.3).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ..errors import UserInputError
from .cells import edge_stride
from .genotype import EDGES_PER_CELL, ENCODING_LENGTH
from .networks import CellPlan, NetworkConfig, cell_plan
from .primitives import PRIMITIVES

__all__ = ["EdgeCostTable", "EdgeShape", "SLOT_CELL_INPUT", "SLOT_NODE", "edge_shape"]

#: Slot of an edge reading input 0 or 1 of its cell (it strides in a reduction cell).
SLOT_CELL_INPUT = 0
#: Slot of an edge reading an intermediate node.
SLOT_NODE = 1


@dataclass(frozen=True)
class EdgeShape:
    """What the op on an edge sees: its channels, the side of its square input and its stride."""

    C: int  # input and output channels (the cell's C)
    side: int  # input height and width
    stride: int  # 2 on a reduction cell's edges that read a cell input, else 1


def edge_shape(plan: CellPlan, *, reads_cell_input: bool) -> EdgeShape:
    """The shape an edge of the cell ``plan`` sees. Both preprocessed cell inputs have side ``H_prev``;
    in a reduction cell the edges reading them stride by 2, so the intermediate nodes have half that side."""
    stride = edge_stride(reduction=plan.reduction, index=0 if reads_cell_input else 2)
    side = plan.H_prev if reads_cell_input or not plan.reduction else plan.H_prev // 2
    return EdgeShape(plan.C, side, stride)


@dataclass(frozen=True)
class EdgeCostTable:
    """A cost additive over a network's edges: ``base`` plus ``edges[cell, op, slot]`` per edge.

    The cost may be a scalar or an array per network (e.g. one count per latency-table row, one block
    sum per group of block kinds): ``base`` has that shape and ``edges`` has it after the three index axes.
    """

    base: np.ndarray  # the genotype-independent part, shape S (() for a scalar cost)
    edges: np.ndarray  # (2 cells, len(PRIMITIVES), 2 slots) + S: what one edge adds, over all cells of that kind

    @classmethod
    def build(
        cls,
        network: NetworkConfig,
        cost: Callable[[str, EdgeShape], ArrayLike],
        *,
        base: ArrayLike,
        dtype: DTypeLike = np.float64,
    ) -> "EdgeCostTable":
        """The table of ``cost(op, shape)`` summed over the cells of ``network``; ``base`` is the rest."""
        base = np.asarray(base, dtype=dtype)
        edges = np.zeros((2, len(PRIMITIVES), 2) + base.shape, dtype=dtype)
        for plan in cell_plan(network):
            for slot, reads_cell_input in ((SLOT_CELL_INPUT, True), (SLOT_NODE, False)):
                shape = edge_shape(plan, reads_cell_input=reads_cell_input)
                for o, op in enumerate(PRIMITIVES):
                    edges[int(plan.reduction), o, slot] += cost(op, shape)
        base.setflags(write=False)
        edges.setflags(write=False)
        return cls(base, edges)

    def weighted(self, weights: np.ndarray) -> "EdgeCostTable":
        """Tables of weighted sums over this table's last axis, one per row of ``weights`` (G, S[-1]):
        e.g. block counts per table row times a latency per row (masked per group) give block sums."""
        weights = np.asarray(weights, dtype=np.float64)
        return EdgeCostTable(weights @ self.base.astype(np.float64), self.edges.astype(np.float64) @ weights.T)

    def gather(self, codes: np.ndarray) -> np.ndarray:
        """(N, 16) + S: the entry of each edge of N encoded genotypes ((N, 32) ``Genotype.encode()`` rows)."""
        codes = np.atleast_2d(np.asarray(codes, dtype=np.int64))
        if codes.shape[-1] != ENCODING_LENGTH:
            raise UserInputError(f"encoded genotypes must have {ENCODING_LENGTH} integers, got {codes.shape[-1]}")
        inputs, ops = codes[:, 0::2], codes[:, 1::2]
        return self.edges[_CELL_OF_EDGE[None, :], ops, (inputs >= 2).astype(np.int64)]

    def total(self, codes: np.ndarray) -> np.ndarray:
        """(N,) + S: the cost of N encoded genotypes' networks, ``base`` plus their edges' entries."""
        return self.base + self.gather(codes).sum(axis=1)


#: Cell of each of the 16 edges of an encoding: 8 normal, then 8 reduction.
_CELL_OF_EDGE = np.repeat(np.arange(2), EDGES_PER_CELL)
