"""Model size and compute: parameters (auxiliary head excluded) and mult-adds counted by fvcore.

Parameters follow the DARTS/CARS papers: every trainable tensor except those of the auxiliary head,
which is dropped after training. Mult-adds are counted by ``fvcore.nn.FlopCountAnalysis`` at batch 1
in eval mode with fvcore's default handles: one per multiply-accumulate of convolutions and linear
layers, one per element for batch norm and adaptive average pooling; max/avg pooling, ReLU, additions
and concatenations count zero. That lands 3-7% under the papers' figures, which count more.
"""
from __future__ import annotations

import functools
import logging

import torch
from torch import nn

__all__ = ["count_parameters", "count_mult_adds"]


def count_parameters(model: nn.Module) -> int:
    """Number of parameters, excluding any under a module named ``auxiliary_head``."""
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith("auxiliary_head."))


def count_mult_adds(model: nn.Module, *, input_size: int, in_channels: int = 3) -> int:
    """Mult-adds of one forward pass of a ``1 x in_channels x input_size x input_size`` image (eval mode)."""
    FlopCountAnalysis = _flop_count_analysis()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            analysis = FlopCountAnalysis(model, torch.zeros(1, in_channels, input_size, input_size))
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            return int(analysis.total())
    finally:
        model.train(was_training)


@functools.cache
def _flop_count_analysis() -> type:
    """fvcore's ``FlopCountAnalysis``, imported on first use (fvcore is slow to import) with fvcore's
    logger quietened once: it warns about every op it does not count, which are the zero-cost ones above."""
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    return FlopCountAnalysis
