"""Cost objectives: functions of a genotype, minimised next to accuracy (section 3.3, ``F_1..F_M``).

A cost is made for the deployment network it is counted on (the ImageNet mobile network by default, as
in the paper's Table 2): ``params`` and ``mult_adds`` by a factory registered in ``COSTS``, called as
``factory(network=NetworkConfig)``; a cost that needs more than the genotype and the network is built
by its caller and handed to ``build_costs`` (and ``CarsSearch``) in ``provided`` - the latency
predictor's ``latency`` cost, built from a latency table by ``cars_deploy.latency``, comes in that way,
so that the search never imports the latency layer. A cost function is vectorised:
``cost(genotypes) -> np.ndarray`` of shape ``(n,)``.

``params`` and ``mult_adds`` are exact and fast. Both totals are additive over the network's modules:
a genotype-independent part (stems, every cell's preprocessing, pooling, classifier) plus one term
per op of each cell, which depends only on the op, the cell (its C and input side) and whether the op
strides (in a reduction cell, the edges reading inputs 0 and 1). So a table of those terms is built
once - parameters by counting an op module, mult-adds by fvcore on the op module alone at its input
size, exactly what ``count_mult_adds`` counts inside the whole network - and a population's costs
are a gather and a sum over its integer encodings (microseconds per genotype instead of a second of
tracing). A test checks the sums against ``count_parameters`` / ``count_mult_adds`` of built networks.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, Protocol, Sequence

import numpy as np

from .._registry import Registry
from ..errors import UserInputError
from ..space import NUM_NODES, OPS, Genotype, NetworkConfig, build_network, count_mult_adds, count_parameters
from ..space.edge_costs import EdgeCostTable, EdgeShape

__all__ = [
    "COSTS",
    "CostFactory",
    "CostFunction",
    "CountCost",
    "build_costs",
    "deploy_network",
]


class CostFunction(Protocol):
    """A vectorised cost of genotypes (smaller is better)."""

    name: str  # registry name, also the CSV column
    label: str  # axis label for plots, e.g. "params (M)"
    scale: float  # multiply by this for display in the label's unit

    def __call__(self, genotypes: Sequence[Genotype]) -> np.ndarray: ...


class CostFactory(Protocol):
    """Makes a cost counted on a deployment network."""

    def __call__(self, *, network: NetworkConfig) -> CostFunction: ...


#: Cost factories by name (``params``, ``mult_adds``). ``latency`` is not here: it needs a latency table,
#: so its caller builds it (``cars_deploy.latency.latency_cost``) and passes it to ``build_costs``.
COSTS: Registry[CostFactory] = Registry("cost objective")


def deploy_network(name: str) -> NetworkConfig:
    """The network costs are counted on: ``imagenet`` (mobile setting, C=48, 14 cells, 224x224) or ``cifar``
    (C=36, 20 cells, 32x32)."""
    if name == "imagenet":
        return NetworkConfig.imagenet()
    if name == "cifar":
        return NetworkConfig.cifar()
    raise UserInputError(f"unknown deploy network {name!r}; expected imagenet or cifar")


@dataclass(frozen=True)
class _CountKey:
    op: str
    C: int
    side: int
    stride: int
    affine: bool


class CountCost:
    """An exact additive count (parameters or mult-adds) of a genotype's deployment network.

    ``table`` is the network's ``EdgeCostTable`` (``space/edge_costs.py``): ``table.edges[cell, op, slot]``
    the summed count of ``op`` over all normal (``cell=0``) or reduction (``cell=1``) cells on an edge
    reading a cell input (``slot=0``) or a node (``slot=1``), ``table.base`` the genotype-independent
    rest. A genotype's count is ``base`` plus the table entries of its 16 edges.
    """

    def __init__(self, name: str, *, network: NetworkConfig, label: str, scale: float):
        if name not in ("params", "mult_adds"):
            raise ValueError(f"CountCost counts params or mult_adds, not {name!r}")
        network.validate()
        self.name, self.label, self.scale, self.network = name, label, scale, network

        def count(op: str, edge: EdgeShape) -> int:
            return _op_count(name, _CountKey(op, edge.C, edge.side, edge.stride, network.affine))

        # Everything but the ops: the network of a genotype whose every edge is 'none' (0 of both).
        self.table = EdgeCostTable.build(network, count, base=_network_count(name, network))

    def __call__(self, genotypes: Sequence[Genotype]) -> np.ndarray:
        if len(genotypes) == 0:
            return np.zeros(0, dtype=np.float64)
        return self.table.total(np.stack([g.encode() for g in genotypes]))


def _all_none() -> Genotype:
    edges = [("none", 0), ("none", 1)] * NUM_NODES
    return Genotype.of(normal=edges, reduce=edges)


@lru_cache(maxsize=None)
def _network_count(name: str, network: NetworkConfig) -> int:
    model = build_network(_all_none(), network)
    if name == "params":
        return count_parameters(model)
    return count_mult_adds(model, input_size=network.input_size, in_channels=network.in_channels)


@lru_cache(maxsize=None)
def _op_count(name: str, key: _CountKey) -> int:
    module = OPS.get(key.op)(key.C, key.stride, key.affine)
    if name == "params":
        return count_parameters(module)
    return count_mult_adds(module, input_size=key.side, in_channels=key.C)


def _params(*, network: NetworkConfig) -> CostFunction:
    return CountCost("params", network=network, label="params (M)", scale=1e-6)


def _mult_adds(*, network: NetworkConfig) -> CostFunction:
    return CountCost("mult_adds", network=network, label="mult-adds (M)", scale=1e-6)


COSTS.add("params", _params)
COSTS.add("mult_adds", _mult_adds)


def build_costs(
    names: Sequence[str], *, network: NetworkConfig, provided: Mapping[str, CostFunction] | None = None
) -> list[CostFunction]:
    """The cost functions ``names`` for ``network``: a name in ``provided`` as given there, any other made
    by its ``COSTS`` factory; ``UserInputError`` with one line for an unknown one or for ``latency`` when
    no latency cost is provided (it needs a latency table)."""
    provided = provided or {}
    costs: list[CostFunction] = []
    for name in names:
        if name in provided:
            costs.append(provided[name])
        elif name == "latency":
            raise UserInputError(
                "the latency objective needs a latency table: pass --latency-table TABLE (made by cars-profile; "
                "shipped: host-cpu-imagenet-ort1), or --latency-table local to time this computer's CPU on first use"
            )
        elif name in COSTS:
            costs.append(COSTS.get(name)(network=network))
        else:
            known = ", ".join(sorted({*COSTS.names(), *provided, "latency"}))
            raise UserInputError(f"unknown objective {name!r}; known: accuracy plus {known}")
    return costs
