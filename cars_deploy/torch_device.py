"""Which torch device a command runs on (``--device auto|cpu|cuda|cuda:N``) and the memory layout its
networks and image batches use there; shared by search and training."""
from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn

from .errors import DeviceError, UserInputError

__all__ = ["resolve_torch_device", "memory_format_for", "images_to", "module_to"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def resolve_torch_device(name: str | None = "auto") -> torch.device:
    """``auto`` (or None: CUDA when available, else the CPU), ``cpu``, or ``cuda[:N]``.

    ``DeviceError`` (exit 1) when CUDA is asked for and PyTorch sees none; ``UserInputError`` (exit 2)
    for any other name."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name} was asked for, but this PyTorch sees no CUDA GPU; use --device cpu")
        return torch.device(name)
    raise UserInputError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N")


def memory_format_for(device: torch.device) -> torch.memory_format:
    """The layout networks of this space train and run fastest in on ``device``.

    On the CPU, when PyTorch has oneDNN, ``channels_last``: its convolutions and pools (max pooling
    most of all) run this space's small cells 1.3-1.5x faster in training and 2-2.7x faster in
    evaluation than in the default NCHW layout (``benchmarks/bench_memory_format.py``, BENCHMARKS.md).
    Elsewhere the default layout: on an H200 the SuperNet's training step was slower in channels_last
    (39.7 against 27.9 ms, BENCHMARKS.md "SuperNet"). The layout changes floating-point rounding
    only, never what a network computes."""
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        return torch.channels_last
    return torch.contiguous_format


def images_to(images: torch.Tensor, device: torch.device, *, non_blocking: bool = False) -> torch.Tensor:
    """A batch of images (N, C, H, W) on ``device`` in ``memory_format_for(device)``; a tensor of any
    other rank moves as it is."""
    if images.dim() != 4:
        return images.to(device, non_blocking=non_blocking)
    return images.to(device, non_blocking=non_blocking, memory_format=memory_format_for(device))


def module_to(module: ModuleT, device: torch.device) -> ModuleT:
    """``module`` moved to ``device`` with its 4-D weights in ``memory_format_for(device)``."""
    return module.to(device=device, memory_format=memory_format_for(device))
