"""Which torch device a command runs on: ``--device auto|cpu|cuda|cuda:N``, shared by search and training."""
from __future__ import annotations

import torch

from .errors import DeviceError, UserInputError

__all__ = ["resolve_torch_device"]


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
