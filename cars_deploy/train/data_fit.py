"""Fitting training settings to the data at hand: what a dataset or input size cannot use is turned off
with a note (logged when training starts) instead of failing the run."""
from __future__ import annotations

from dataclasses import replace

from ..data import DatasetInfo
from ..errors import UserInputError
from ..space import NetworkConfig
from .config import TrainConfig

__all__ = ["usable_config", "training_network"]


def usable_config(config: TrainConfig, info: DatasetInfo, notes: list[str]) -> TrainConfig:
    """Turns off, with a note, what the embedded 8x8 digits cannot use (it is served without augmentation)."""
    if info.name == "digits" and (config.augment or config.cutout):
        notes.append("the embedded digits (8x8) are trained without crop/flip augmentation and Cutout")
        return replace(config, augment=False, cutout=0)
    return config


def training_network(network: NetworkConfig, config: TrainConfig, notes: list[str]) -> NetworkConfig:
    """``network`` with the auxiliary head on when its loss has weight and the input is big enough for it."""
    wanted = replace(network, auxiliary=config.auxiliary_weight > 0)
    try:
        wanted.validate()
    except UserInputError as exc:
        if not wanted.auxiliary:
            raise
        plain = replace(wanted, auxiliary=False)
        plain.validate()
        notes.append(f"training without the auxiliary head ({exc})")
        return plain
    return wanted
