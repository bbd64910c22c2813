"""Child networks built from a genotype: the CIFAR evaluation network and the ImageNet mobile network.

Both follow quark0/darts ``cnn/model.py`` (``NetworkCIFAR`` / ``NetworkImageNet``) so that the
published parameter counts and mult-adds reproduce: reduction cells at ``layers // 3`` and
``2 * layers // 3`` double the channels, the auxiliary head sits after the second reduction cell,
and drop path applies to every edge but identities. The one deliberate difference: the ImageNet
network pools with ``AdaptiveAvgPool2d(1)`` instead of ``AvgPool2d(7)``, which is the same at 224x224
and lets the input size be configured.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from ..errors import UserInputError
from .cells import Cell
from .genotype import Genotype
from .stems import cifar_stem, imagenet_stem0, imagenet_stem1

__all__ = [
    "NETWORK_KINDS",
    "NetworkConfig",
    "NetworkCIFAR",
    "NetworkImageNet",
    "build_network",
    "cell_plan",
    "CellPlan",
    "MAX_C",
    "MAX_LAYERS",
    "MAX_INPUT_SIZE",
    "MAX_CLASSES",
]

NetworkKind = Literal["cifar", "imagenet"]
#: The network families, for command-line choices.
NETWORK_KINDS: tuple[NetworkKind, ...] = ("cifar", "imagenet")

# Upper bounds on network sizes, chosen as what a model meant for a phone could have, with a wide margin:
# the papers' networks use C=36..48 and 14..20 cells at 32..224 pixels; DARTS-style networks of C=1024
# have billions of parameters, 100 cells is five times the deepest DARTS network, 1024 pixels is beyond
# any mobile vision input, and 100,000 classes covers ImageNet-21k. Larger values only make building a
# network run for minutes or exhaust memory before failing, so they are refused at once.
MAX_C = 1024  # initial channels
MAX_LAYERS = 100  # cells
MAX_INPUT_SIZE = 1024  # input side in pixels
MAX_CLASSES = 100_000  # classifier outputs


@dataclass(frozen=True)
class NetworkConfig:
    """Size of a child network; ``cifar()`` and ``imagenet()`` give the papers' evaluation settings."""

    kind: NetworkKind = "cifar"  # which stem and head: "cifar" (one 3x3 stem) or "imagenet" (two-stage stem)
    C: int = 36  # channels of the first cells; doubled at each reduction
    layers: int = 20  # number of cells
    num_classes: int = 10  # classifier outputs
    input_size: int = 32  # square input side in pixels
    in_channels: int = 3  # image channels
    auxiliary: bool = False  # build the auxiliary head (training only; never counted nor exported)
    affine: bool = True  # batch-norm affine parameters in the cells (False in the search SuperNet)

    @classmethod
    def cifar(cls, **changes: object) -> "NetworkConfig":
        """DARTS/CARS CIFAR-10 evaluation network: C=36, 20 cells, 32x32 input."""
        return replace(cls(kind="cifar", C=36, layers=20, num_classes=10, input_size=32), **changes)

    @classmethod
    def imagenet(cls, **changes: object) -> "NetworkConfig":
        """DARTS/CARS ImageNet mobile network: C=48, 14 cells, 224x224 input, 1000 classes."""
        return replace(cls(kind="imagenet", C=48, layers=14, num_classes=1000, input_size=224), **changes)

    def validate(self) -> None:
        """Raises ``UserInputError`` (a ``ValueError``) for sizes no network can be built with."""
        if self.kind not in ("cifar", "imagenet"):
            raise UserInputError(f"unknown network kind {self.kind!r}; expected 'cifar' or 'imagenet'")
        bounds = (("C", self.C, 2, MAX_C), ("layers", self.layers, 3, MAX_LAYERS),
                  ("input_size", self.input_size, 1, MAX_INPUT_SIZE), ("num_classes", self.num_classes, 1, MAX_CLASSES),
                  ("in_channels", self.in_channels, 1, 64))
        for name, value, low, high in bounds:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise UserInputError(f"{name} must be an integer, got {value!r}")
            if not low <= value <= high:
                raise UserInputError(f"{name} must be in {low}..{high}, got {value}")
        if self.C < 2 or self.C % 2 and self.kind == "imagenet":
            raise UserInputError(f"C must be at least 2 (and even for the ImageNet stem), got {self.C}")
        if self.layers < 3:
            raise UserInputError(f"layers must be at least 3 (two of them reduction cells), got {self.layers}")
        smallest = 4 * (8 if self.kind == "imagenet" else 1)
        if self.input_size < smallest or self.input_size % smallest:
            raise UserInputError(f"input_size must be a positive multiple of {smallest} for the {self.kind} network")
        # The auxiliary head pools 5x5 with stride 3 (CIFAR) or 2 (ImageNet), then needs a 2x2 map.
        aux_side, needed = self.input_size // smallest, 8 if self.kind == "cifar" else 7
        if self.auxiliary and aux_side < needed:
            raise UserInputError(
                f"the auxiliary head needs a {needed}x{needed} map but sees {aux_side}x{aux_side} at input_size "
                f"{self.input_size}; use an input of at least {needed * smallest} or no auxiliary head"
            )


@dataclass(frozen=True)
class CellPlan:
    """Where one cell sits in a network: its channel sizes, spatial input size and kind."""

    index: int
    C_prev_prev: int
    C_prev: int
    C: int
    reduction: bool
    reduction_prev: bool
    H_prev_prev: int  # spatial side of the cell's first input
    H_prev: int  # spatial side of the cell's second input


def cell_plan(config: NetworkConfig) -> list[CellPlan]:
    """The cells of a network in order, with their sizes; shared by the networks, the SuperNet and the
    block enumerator of the profilers so that all three agree on the same layout."""
    if config.kind == "cifar":
        stem_C, stem_H = 3 * config.C, config.input_size
        C_prev_prev, C_prev, H_prev_prev, H_prev, reduction_prev = stem_C, stem_C, stem_H, stem_H, False
    else:
        stem0_H = config.input_size // 4
        C_prev_prev, C_prev, H_prev_prev, H_prev, reduction_prev = config.C, config.C, stem0_H, stem0_H // 2, True
    plans = []
    C_curr = config.C
    for i in range(config.layers):
        reduction = i in reduction_indices(config.layers)
        if reduction:
            C_curr *= 2
        plans.append(CellPlan(i, C_prev_prev, C_prev, C_curr, reduction, reduction_prev, H_prev_prev, H_prev))
        H_out = H_prev // 2 if reduction else H_prev
        C_prev_prev, C_prev = C_prev, 4 * C_curr
        H_prev_prev, H_prev = H_prev, H_out
        reduction_prev = reduction
    return plans


def reduction_indices(layers: int) -> tuple[int, int]:
    """Indices of the two reduction cells: at one and two thirds of the depth."""
    return layers // 3, 2 * layers // 3


class _Network(nn.Module):
    """Cells and classifier shared by both networks; subclasses add the stem and the auxiliary head."""

    def __init__(self, genotype: Genotype, config: NetworkConfig):
        super().__init__()
        config.validate()
        self.genotype = genotype
        self.config = config
        self.drop_path_prob = 0.0
        plans = cell_plan(config)
        self.cells = nn.ModuleList(
            Cell(
                genotype.cell(reduction=p.reduction),
                C_prev_prev=p.C_prev_prev,
                C_prev=p.C_prev,
                C=p.C,
                reduction=p.reduction,
                reduction_prev=p.reduction_prev,
                affine=config.affine,
            )
            for p in plans
        )
        self._aux_index = reduction_indices(config.layers)[1]
        self.aux_channels = 4 * plans[self._aux_index].C
        C_out = 4 * plans[-1].C
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_out, config.num_classes)
        self.auxiliary_head: nn.Module | None = None

    def _stems(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits and, in training mode with an auxiliary head, the auxiliary logits."""
        s0, s1 = self._stems(x)
        logits_aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self._aux_index and self.auxiliary_head is not None and self.training:
                logits_aux = self.auxiliary_head(s1)
        out = self.global_pooling(s1)
        return self.classifier(out.flatten(1)), logits_aux

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits only: the form that is exported and deployed."""
        return self.forward_train(x)[0]


class AuxiliaryHead(nn.Sequential):
    """DARTS auxiliary classifier on the 8x8 (CIFAR) or 14x14 (ImageNet) feature map."""

    def __init__(self, C: int, num_classes: int, *, imagenet: bool):
        layers: list[nn.Module] = [
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=2 if imagenet else 3, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
        ]
        # DARTS omitted this batch norm in its ImageNet head ("due to a typo", kept for consistency).
        if not imagenet:
            layers.append(nn.BatchNorm2d(768))
        layers += [nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(768, num_classes)]
        super().__init__(*layers)


class NetworkCIFAR(_Network):
    """CIFAR evaluation network: a 3x3 stem of 3C channels, then the cells."""

    def __init__(self, genotype: Genotype, config: NetworkConfig):
        super().__init__(genotype, config)
        self.stem = cifar_stem(config.in_channels, 3 * config.C)
        if config.auxiliary:
            self.auxiliary_head = AuxiliaryHead(self.aux_channels, config.num_classes, imagenet=False)

    def _stems(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.stem(x)
        return s, s


class NetworkImageNet(_Network):
    """ImageNet mobile network: two stride-2 stems (1/4 then 1/8 of the input side), then the cells."""

    def __init__(self, genotype: Genotype, config: NetworkConfig):
        super().__init__(genotype, config)
        self.stem0 = imagenet_stem0(config.in_channels, config.C)
        self.stem1 = imagenet_stem1(config.C, config.C)
        if config.auxiliary:
            self.auxiliary_head = AuxiliaryHead(self.aux_channels, config.num_classes, imagenet=True)

    def _stems(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        return s0, self.stem1(s0)


def build_network(genotype: Genotype, config: NetworkConfig) -> _Network:
    """The child network of ``genotype`` with the sizes of ``config``."""
    network_class = NetworkCIFAR if config.kind == "cifar" else NetworkImageNet
    return network_class(genotype, config)
