"""The cell of a child network: two preprocessed inputs, four nodes of two edges each, all nodes concatenated.

Follows quark0/darts ``cnn/model.py`` ``Cell``: the first input is reduced by ``FactorizedReduce`` when
the previous cell was a reduction cell; in a reduction cell the edges that read the cell inputs
(0 and 1) stride by 2.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .genotype import NUM_NODES, Edge
from .primitives import OPS, FactorizedReduce, Identity, ReLUConvBN

__all__ = ["Cell", "drop_path", "edge_stride", "preprocess0"]


def edge_stride(*, reduction: bool, index: int) -> int:
    """Stride of an edge: 2 when a reduction cell's edge reads one of the two cell inputs."""
    return 2 if reduction and index < 2 else 1


def preprocess0(C_prev_prev: int, C: int, *, reduction_prev: bool, affine: bool) -> nn.Module:
    """The first input's preprocessing: halves H and W when the previous cell reduced them."""
    if reduction_prev:
        return FactorizedReduce(C_prev_prev, C, affine=affine)
    return ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=affine)


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zeroes whole samples with probability ``drop_prob`` and rescales the rest (DARTS drop path)."""
    keep_prob = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep_prob)
    return x / keep_prob * mask


class Cell(nn.Module):
    """One cell of a child network for a fixed list of edges (the genotype's normal or reduction cell)."""

    def __init__(
        self,
        edges: Sequence[Edge],
        *,
        C_prev_prev: int,
        C_prev: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
        affine: bool = True,
    ):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = preprocess0(C_prev_prev, C, reduction_prev=reduction_prev, affine=affine)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=affine)
        self.ops = nn.ModuleList(
            OPS.get(op)(C, edge_stride(reduction=reduction, index=index), affine) for op, index in edges
        )
        self.indices = [index for _, index in edges]
        self.multiplier = NUM_NODES

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(NUM_NODES):
            total = None
            for position in (2 * node, 2 * node + 1):
                op = self.ops[position]
                h = op(states[self.indices[position]])
                if self.training and drop_prob > 0.0 and not isinstance(op, Identity):
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat(states[2:], dim=1)
