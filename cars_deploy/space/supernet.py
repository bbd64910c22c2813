"""The CARS SuperNet (paper section 3.1): one set of shared weights for every op on every edge of every
cell, of which a genotype selects a single path.

``SuperNet.forward(x, genotype)`` runs only the genotype's two ops per node, i.e. the network
``N_i = (W ⊙ C_i)`` of section 3.1 with the binary connections ``C_i`` applied by *not computing* the
masked edges, never by multiplying a weighted sum of all ops by a one-hot vector (what vega's CARS
does, at 8x the compute and memory). Consequences:

- a ``none`` edge contributes zeros without computing anything; a node whose two edges are both
  ``none`` is a zero tensor of the node's shape;
- a cell input that no edge reads is not even preprocessed;
- backward reaches exactly the path's weights, so eq. 1 (``dW_i = dL_i/dW ⊙ C_i``) holds by
  construction.

The layout is the DARTS search network (quark0/darts ``cnn/model_search.py``): C=16, 8 cells,
reductions at 1/3 and 2/3 of the depth, stem of 3C channels, batch norm without affine parameters in
the cells, one op instance per (node, input, op) - 14 edges x 8 ops per cell. Sizes come from
``NetworkConfig`` (kind ``"cifar"``, ``affine=False``) through ``cell_plan``, the function the child
networks use, so the SuperNet's path for a genotype has exactly the modules of the stand-alone child
network ``build_network(genotype, supernet.config)``: ``child_network(genotype)`` builds that network
and copies the path's weights into it, and its output equals the SuperNet's for the same genotype
(tested for normal *and* reduction cells - vega swapped the two in its forward).
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from .cells import edge_stride, preprocess0
from .genotype import NUM_NODES, Edge, Genotype
from .networks import CellPlan, NetworkConfig, build_network, cell_plan
from .primitives import OPS, PRIMITIVES, ReLUConvBN
from .stems import cifar_stem

__all__ = ["SuperNet", "SuperCell", "search_config", "edge_key"]


def search_config(**changes: object) -> NetworkConfig:
    """The DARTS/CARS search network: C=16, 8 cells, 32x32 input, 10 classes, no BN affine parameters."""
    return replace(NetworkConfig(kind="cifar", C=16, layers=8, num_classes=10, input_size=32, affine=False), **changes)


def edge_key(node: int, index: int) -> str:
    """Name of the shared edge from state ``index`` to intermediate node ``node`` (numbered from 2)."""
    return f"{index}_{node}"


class SuperCell(nn.Module):
    """A cell holding every op on every edge ``(input j -> node k)``, ``j < k``; runs one genotype's path."""

    def __init__(self, plan: CellPlan, *, affine: bool):
        super().__init__()
        self.reduction = plan.reduction
        self.preprocess0 = preprocess0(plan.C_prev_prev, plan.C, reduction_prev=plan.reduction_prev, affine=affine)
        self.preprocess1 = ReLUConvBN(plan.C_prev, plan.C, 1, 1, 0, affine=affine)
        # One ModuleDict of all ops per edge; the op modules are built by the same factories, with the
        # same strides, as in a child network's Cell, so their state-dict keys line up one to one.
        self.edges = nn.ModuleDict()
        for node in range(2, 2 + NUM_NODES):
            for index in range(node):
                stride = edge_stride(reduction=plan.reduction, index=index)
                self.edges[edge_key(node, index)] = nn.ModuleDict(
                    {op: OPS.get(op)(plan.C, stride, affine) for op in PRIMITIVES}
                )
        self.C = plan.C

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, edges: tuple[Edge, ...]) -> torch.Tensor:
        """The cell output for one cell of a genotype (``genotype.normal`` or ``genotype.reduce``)."""
        raw = (s0, s1)
        states: list[torch.Tensor | None] = [None, None]

        def state(index: int) -> torch.Tensor:
            if index < 2 and states[index] is None:
                states[index] = (self.preprocess0 if index == 0 else self.preprocess1)(raw[index])
            return states[index]  # type: ignore[return-value]

        for node in range(2, 2 + NUM_NODES):
            total: torch.Tensor | None = None
            for op, index in edges[2 * (node - 2) : 2 * (node - 2) + 2]:
                if op == "none":
                    continue
                h = self.edges[edge_key(node, index)][op](state(index))
                total = h if total is None else total + h
            if total is None:
                total = self._zeros(s1)
            states.append(total)
        return torch.cat(states[2:], dim=1)  # type: ignore[arg-type]

    def _zeros(self, s1: torch.Tensor) -> torch.Tensor:
        """A node whose edges are all ``none``: zeros of the node's shape (both inputs share s1's side)."""
        side_h, side_w = s1.shape[-2:]
        if self.reduction:
            side_h, side_w = (side_h + 1) // 2, (side_w + 1) // 2
        return s1.new_zeros(s1.shape[0], self.C, side_h, side_w)


class SuperNet(nn.Module):
    """Weight-sharing network over the whole DARTS cell space; ``forward(x, genotype)`` runs one path.

    ``config`` must be a ``"cifar"``-kind ``NetworkConfig`` (the search network; ``search_config()``
    gives the paper's) without auxiliary head; ``affine=False`` is the DARTS search setting.
    """

    def __init__(self, config: NetworkConfig):
        super().__init__()
        config.validate()
        if config.kind != "cifar":
            raise ValueError("the SuperNet is the CIFAR-style search network; use a NetworkConfig of kind 'cifar'")
        if config.auxiliary:
            raise ValueError("the SuperNet has no auxiliary head; use a NetworkConfig with auxiliary=False")
        self.config = config
        # NetworkCIFAR's stem (same builder), so child networks load its weights directly.
        self.stem = cifar_stem(config.in_channels, 3 * config.C)
        plans = cell_plan(config)
        self.cells = nn.ModuleList(SuperCell(plan, affine=config.affine) for plan in plans)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * plans[-1].C, config.num_classes)

    def forward(self, x: torch.Tensor, genotype: Genotype) -> torch.Tensor:
        """Logits of the network ``genotype`` selects: reduction cells read ``genotype.reduce``, the others
        ``genotype.normal``."""
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, genotype.cell(reduction=cell.reduction))
        return self.classifier(self.global_pooling(s1).flatten(1))

    def path_modules(self, genotype: Genotype) -> list[nn.Module]:
        """The modules ``forward(x, genotype)`` may run: stem, preprocessing, the path's ops, classifier
        (e.g. to re-estimate only their batch-norm statistics)."""
        modules: list[nn.Module] = [self.stem]
        for cell in self.cells:
            modules += [cell.preprocess0, cell.preprocess1]
            for position, (op, index) in enumerate(genotype.cell(reduction=cell.reduction)):
                if op != "none":
                    modules.append(cell.edges[edge_key(2 + position // 2, index)][op])
        modules.append(self.classifier)
        return modules

    def path_state_dict(self, genotype: Genotype) -> dict[str, torch.Tensor]:
        """The weights of ``genotype``'s path under the state-dict keys of its child network
        (``build_network(genotype, self.config)``): stem, every cell's preprocessing, the ops at each
        genotype position (``cells.i.ops.p``), classifier. Tensors are shared, not copied."""
        full = self.state_dict()
        out: dict[str, torch.Tensor] = {}
        edge_prefixes = tuple(f"cells.{i}.edges." for i in range(len(self.cells)))
        for key, value in full.items():
            if not key.startswith(edge_prefixes):
                out[key] = value
        for i, cell in enumerate(self.cells):
            for position, (op, index) in enumerate(genotype.cell(reduction=cell.reduction)):
                source = f"cells.{i}.edges.{edge_key(2 + position // 2, index)}.{op}."
                target = f"cells.{i}.ops.{position}."
                out.update({target + key[len(source) :]: value for key, value in full.items() if key.startswith(source)})
        return out

    def child_network(self, genotype: Genotype) -> nn.Module:
        """A stand-alone child network of the same size holding a copy of ``genotype``'s path weights."""
        child = build_network(genotype, self.config)
        reference = next(self.parameters())
        child.to(device=reference.device, dtype=reference.dtype)
        child.load_state_dict(self.path_state_dict(genotype), strict=True)
        return child
