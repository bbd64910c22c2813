"""The blocks a latency table is made of: every distinct piece any genotype's network can contain.

A child network (``space/networks.py``) is a chain of stems, cells and a classifier head; a cell is
two preprocessing blocks, eight edges (one op each) summed in pairs into four nodes, and a concat of
the nodes. The latency of a network on a device is modelled, as in CARS-Lat (paper section 4.2: the
"device-aware variable, i.e., mobile device latency"), as the sum of the latencies of these pieces,
each timed alone on the device. A piece is identified by its ``BlockKey``: what it computes
(``kind``) and the shape it sees (channels in/out, input height/width, stride), so that equal pieces
in different cells share one table row.

The layout comes from ``cell_plan``, the same plan the networks and the SuperNet are built from, so
the enumerator and the real networks cannot disagree. Three views are offered:

- ``network_blocks(config)``: every distinct block any genotype of the space can contain (the rows a
  table must hold: about 60 for the ImageNet mobile network);
- ``genotype_blocks(genotype, config)``: the multiset of blocks one genotype's network consists of;
- ``block_index(config)``: the same multiset in vectorised form, so that a predictor sums a table
  over thousands of genotypes per second with numpy (one fancy-indexing gather per population).

The ``none`` op is included although a derived genotype never uses it: the search samples it (paper
section 3.4 draws each of the 8 ops with probability 1/8) and the network then really computes its
zero tensor and the extra addition.
"""
from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..errors import UserInputError
from ..space.edge_costs import EdgeCostTable, EdgeShape, edge_shape
from ..space.genotype import NUM_NODES, Genotype
from ..space.networks import CellPlan, NetworkConfig, cell_plan
from ..space.primitives import OPS, PRIMITIVES, FactorizedReduce, ReLUConvBN
from ..space.stems import cifar_stem, imagenet_stem0, imagenet_stem1

__all__ = [
    "BlockKey",
    "BlockIndex",
    "BLOCK_KINDS",
    "EMPTY_KEY",
    "network_blocks",
    "genotype_blocks",
    "block_index",
    "build_block",
    "block_input_shapes",
]

#: Block kinds that are not cell ops: preprocessing, stems, head, node sum and cell concat.
STRUCTURE_KINDS: tuple[str, ...] = (
    "relu_conv_bn",  # preprocess1 (and preprocess0 after a normal cell): ReLU, 1x1 conv, BN
    "factorized_reduce",  # preprocess0 after a reduction cell: two offset 1x1 stride-2 convs, concat, BN
    "stem",  # CIFAR stem: 3x3 conv + BN
    "stem0",  # ImageNet stem0: two 3x3 stride-2 convs (1/4 of the input side)
    "stem1",  # ImageNet stem1: ReLU, 3x3 stride-2 conv, BN (1/8)
    "head",  # global average pool, flatten, linear classifier
    "add",  # the sum of a node's two edges
    "concat",  # the concat of a cell's four nodes
)
#: Every block kind: the eight DARTS ops (``none`` included, see the module docstring) and the rest.
BLOCK_KINDS: tuple[str, ...] = tuple(PRIMITIVES) + STRUCTURE_KINDS

_ID = re.compile(r"^(?P<kind>[a-z0-9_]+)-(?P<C_in>\d+)-(?P<C_out>\d+)-(?P<H>\d+)x(?P<W>\d+)-s(?P<stride>\d+)$")


@dataclass(frozen=True, order=True)
class BlockKey:
    """What a block computes and the shape it sees: the primary key of a latency-table row."""

    kind: str  # one of BLOCK_KINDS (or "empty" for the overhead probe)
    C_in: int  # input channels (per input for "add" and "concat")
    C_out: int  # output channels
    H: int  # input height
    W: int  # input width
    stride: int  # spatial stride of the whole block (4 for stem0)

    @property
    def id(self) -> str:
        """A file-name-safe text form, e.g. ``sep_conv_3x3-48-48-28x28-s1``; ``BlockKey.parse`` reads it."""
        return f"{self.kind}-{self.C_in}-{self.C_out}-{self.H}x{self.W}-s{self.stride}"

    @classmethod
    def parse(cls, text: str) -> "BlockKey":
        """Inverse of ``id``; ``UserInputError`` for anything else."""
        match = _ID.match(text)
        if not match:
            raise UserInputError(f"{text!r} is not a block id such as 'sep_conv_3x3-48-48-28x28-s1'")
        return cls(match["kind"], *(int(match[k]) for k in ("C_in", "C_out", "H", "W", "stride")))

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "C_in": self.C_in, "C_out": self.C_out, "H": self.H, "W": self.W, "stride": self.stride}

    def __str__(self) -> str:
        return self.id


#: The overhead probe: an identity on a single float, timed like every block (see ``protocol.py``).
EMPTY_KEY = BlockKey("empty", 1, 1, 1, 1, 1)


# ----- where blocks sit in a network ------------------------------------------------------------
def _op_key(op: str, edge: EdgeShape) -> BlockKey:
    """Key of an edge with ``op`` that sees ``edge`` (``space.edge_costs.edge_shape``)."""
    return BlockKey(op, edge.C, edge.C, edge.side, edge.side, edge.stride)


def _cell_constant_keys(plan: CellPlan) -> list[BlockKey]:
    """The genotype-independent blocks of one cell: two preprocessing blocks, four adds, one concat."""
    if plan.reduction_prev:
        pre0 = BlockKey("factorized_reduce", plan.C_prev_prev, plan.C, plan.H_prev_prev, plan.H_prev_prev, 2)
    else:
        pre0 = BlockKey("relu_conv_bn", plan.C_prev_prev, plan.C, plan.H_prev_prev, plan.H_prev_prev, 1)
    pre1 = BlockKey("relu_conv_bn", plan.C_prev, plan.C, plan.H_prev, plan.H_prev, 1)
    side = plan.H_prev // 2 if plan.reduction else plan.H_prev
    add = BlockKey("add", plan.C, plan.C, side, side, 1)
    concat = BlockKey("concat", plan.C, NUM_NODES * plan.C, side, side, 1)
    return [pre0, pre1] + [add] * NUM_NODES + [concat]


def _network_constant_keys(config: NetworkConfig) -> list[BlockKey]:
    """Stems, every cell's constant blocks and the head, in network order."""
    config.validate()
    plans = cell_plan(config)
    side, C = config.input_size, config.C
    if config.kind == "cifar":
        stems = [BlockKey("stem", config.in_channels, 3 * C, side, side, 1)]
    else:
        stems = [BlockKey("stem0", config.in_channels, C, side, side, 4), BlockKey("stem1", C, C, side // 4, side // 4, 2)]
    keys = list(stems)
    for plan in plans:
        keys.extend(_cell_constant_keys(plan))
    last = plans[-1]
    final_side = last.H_prev // 2 if last.reduction else last.H_prev
    keys.append(BlockKey("head", NUM_NODES * last.C, config.num_classes, final_side, final_side, 1))
    return keys


def network_blocks(config: NetworkConfig) -> list[BlockKey]:
    """Every distinct block any genotype's network of size ``config`` can contain, in network order
    (stems, then per cell its preprocessing and the ops at both strides, then the head)."""
    seen: dict[BlockKey, None] = {}
    constant = _network_constant_keys(config)
    stems = [k for k in constant if k.kind.startswith("stem")]
    for key in stems:
        seen.setdefault(key)
    for plan in cell_plan(config):
        for key in _cell_constant_keys(plan):
            seen.setdefault(key)
        for reads_cell_input in (True, False):
            for op in PRIMITIVES:
                seen.setdefault(_op_key(op, edge_shape(plan, reads_cell_input=reads_cell_input)))
    seen.setdefault(constant[-1])
    return list(seen)


def genotype_blocks(genotype: Genotype, config: NetworkConfig) -> Counter[BlockKey]:
    """The multiset of blocks the network of ``genotype`` at size ``config`` consists of: summing a
    table over it (with multiplicity) is the raw block-sum latency of that network."""
    counts: Counter[BlockKey] = Counter(_network_constant_keys(config))
    for plan in cell_plan(config):
        for op, index in genotype.cell(reduction=plan.reduction):
            counts[_op_key(op, edge_shape(plan, reads_cell_input=index < 2))] += 1
    return counts


# ----- vectorised form --------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockIndex:
    """``genotype_blocks`` as arrays over the rows ``keys``, for scoring whole populations at once.

    ``counts_table`` is an ``EdgeCostTable`` (``space/edge_costs.py``) whose cost is the vector of block
    counts: ``base`` the counts of the genotype-independent blocks, ``edges[cell, op, slot]`` the counts
    one edge adds. With a latency per key, ``counts_table.weighted(latencies[None])`` is the table of
    block-sum latencies, computed once per table.
    """

    config: NetworkConfig  # the network these rows belong to
    keys: tuple[BlockKey, ...]  # row order (``network_blocks(config)``)
    counts_table: EdgeCostTable  # int counts: base (n_keys,), edges (2, n_ops, 2, n_keys)

    def row(self, key: BlockKey) -> int:
        return self.keys.index(key)

    def counts(self, encodings: np.ndarray) -> np.ndarray:
        """(N, n_keys) block counts of N encoded genotypes (an (N, 32) array or one (32,) encoding)."""
        return self.counts_table.total(encodings)

    def block_sum(self, encodings: np.ndarray, latencies: np.ndarray) -> np.ndarray:
        """(N,) raw block-sum latency of N encoded genotypes for a latency per row of ``keys``."""
        weights = np.asarray(latencies, dtype=np.float64)[None, :]
        return self.counts_table.weighted(weights).total(encodings)[:, 0]


@functools.lru_cache(maxsize=16)
def block_index(config: NetworkConfig) -> BlockIndex:
    """The vectorised block layout of networks of size ``config`` (cached per config)."""
    keys = tuple(network_blocks(config))
    row = {key: i for i, key in enumerate(keys)}

    def count_vector(*blocks: BlockKey) -> np.ndarray:
        counts = np.zeros(len(keys), dtype=np.int64)
        for key in blocks:
            counts[row[key]] += 1
        return counts

    table = EdgeCostTable.build(
        config, lambda op, edge: count_vector(_op_key(op, edge)), base=count_vector(*_network_constant_keys(config)),
        dtype=np.int64,
    )
    return BlockIndex(config, keys, table)


# ----- the blocks as modules --------------------------------------------------------------------
class _Add(nn.Module):
    """A node's sum of its two edges."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class _Concat(nn.Module):
    """A cell's concat of its four nodes along channels."""

    def forward(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return torch.cat([a, b, c, d], dim=1)


class _Empty(nn.Module):
    """The overhead probe: returns its input (a single float) unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _head(key: BlockKey) -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(key.C_in, key.C_out))


_STRUCTURE_BUILDERS: dict[str, Callable[[BlockKey], nn.Module]] = {
    "relu_conv_bn": lambda k: ReLUConvBN(k.C_in, k.C_out, 1, 1, 0),
    "factorized_reduce": lambda k: FactorizedReduce(k.C_in, k.C_out),
    "stem": lambda k: cifar_stem(k.C_in, k.C_out),
    "stem0": lambda k: imagenet_stem0(k.C_in, k.C_out),
    "stem1": lambda k: imagenet_stem1(k.C_in, k.C_out),
    "head": _head,
    "add": lambda k: _Add(),
    "concat": lambda k: _Concat(),
    "empty": lambda k: _Empty(),
}


def build_block(key: BlockKey) -> nn.Module:
    """The module of ``key`` in eval mode (batch norm folded by exporters), built as the networks build it."""
    if key.kind in PRIMITIVES:
        module = OPS.get(key.kind)(key.C_in, key.stride, True)
    elif key.kind in _STRUCTURE_BUILDERS:
        module = _STRUCTURE_BUILDERS[key.kind](key)
    else:
        raise UserInputError(f"unknown block kind {key.kind!r}; known: {', '.join(BLOCK_KINDS)}")
    return module.eval()


def block_input_shapes(key: BlockKey, *, batch: int = 1) -> tuple[tuple[int, ...], ...]:
    """The input tensor shapes of ``key``'s module (two for ``add``, four for ``concat``)."""
    shape = (batch, key.C_in, key.H, key.W)
    if key.kind == "add":
        return (shape, shape)
    if key.kind == "concat":
        return (shape,) * NUM_NODES
    return (shape,)

