"""The stems of the child networks, built in one place for the networks, the SuperNet and the profilers.

As in quark0/darts ``cnn/model.py``: the CIFAR network has one 3x3 convolution of 3C channels; the
ImageNet mobile network two stride-2 stages, ``stem0`` (two 3x3 stride-2 convolutions, 1/4 of the input
side) and ``stem1`` (ReLU, one 3x3 stride-2 convolution, 1/8). Module names inside each ``Sequential``
are the state-dict keys trained checkpoints hold, so they must not change.
"""
from __future__ import annotations

from torch import nn

__all__ = ["cifar_stem", "imagenet_stem0", "imagenet_stem1"]


def cifar_stem(in_channels: int, C_out: int) -> nn.Sequential:
    """3x3 convolution and batch norm, same side (``C_out`` is 3C in the DARTS network)."""
    return nn.Sequential(nn.Conv2d(in_channels, C_out, 3, padding=1, bias=False), nn.BatchNorm2d(C_out))


def imagenet_stem0(in_channels: int, C: int) -> nn.Sequential:
    """Two 3x3 stride-2 convolutions (``C // 2`` then ``C`` channels) with batch norm: 1/4 of the side."""
    return nn.Sequential(
        nn.Conv2d(in_channels, C // 2, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C // 2),
        nn.ReLU(inplace=True),
        nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C),
    )


def imagenet_stem1(C_in: int, C_out: int) -> nn.Sequential:
    """ReLU, a 3x3 stride-2 convolution and batch norm: half the side again (``C_in == C_out == C`` there)."""
    return nn.Sequential(
        nn.ReLU(inplace=True), nn.Conv2d(C_in, C_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C_out)
    )
