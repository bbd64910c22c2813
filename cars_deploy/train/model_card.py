"""Model cards: the JSON file shipped beside trained weights and every exported model.

A card tells an app developer what the file computes and how to feed it: the genotype and network
size, parameters and mult-adds (counted as in the papers, auxiliary head excluded), the input shape,
layout and normalisation, the class names, whether the weights are trained or random, the accuracy
and the training settings. Exporters add what they measured (runtime, maximum difference to PyTorch).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from typing import Any, Literal

import torch
from torch import nn

from .. import __version__
from .._fields import require
from .._io import atomic_write_text
from ..data import DatasetInfo
from ..errors import UserInputError
from ..space import Genotype, NetworkConfig, count_mult_adds, count_parameters

__all__ = ["CARD_VERSION", "WeightsKind", "build_model_card", "write_model_card", "read_model_card"]

CARD_VERSION = 1
WeightsKind = Literal["trained", "random"]

_PREPROCESSING = {
    "digits": "grey levels 0..16 divided by 16, repeated over 3 channels, then (x - mean) / std",
}
_DEFAULT_PREPROCESSING = "RGB pixels divided by 255, resized to input_size, then (x - mean) / std per channel"


#: Type of each field that readers of a card use.
_CARD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "genotype": str,
    "network": dict,
    "input": dict,
    "class_names": list,
    "weights": str,
}


def build_model_card(
    *,
    genotype: Genotype,
    network: NetworkConfig,
    model: nn.Module,
    dataset: DatasetInfo,
    weights: WeightsKind,
    name: str | None = None,
    test_accuracy: float | None = None,
    test_images: int | None = None,
    training: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A JSON-ready card for ``model`` (the network of ``genotype`` at size ``network``).

    Parameters and mult-adds are measured on ``model`` itself (``count_parameters`` excludes the
    auxiliary head; ``count_mult_adds`` runs fvcore at batch 1 in eval mode).
    """
    card: dict[str, Any] = {
        "card_version": CARD_VERSION,
        "name": name or "custom",
        "genotype": str(genotype),
        "network": {
            "kind": network.kind,
            "C": network.C,
            "layers": network.layers,
            "num_classes": network.num_classes,
            "input_size": network.input_size,
            "in_channels": network.in_channels,
        },
        "params": count_parameters(model),
        "mult_adds": count_mult_adds(model, input_size=network.input_size, in_channels=network.in_channels),
        "dataset": dataset.name,
        "input": {
            "shape": [1, network.in_channels, network.input_size, network.input_size],
            "layout": "NCHW",
            "dtype": "float32",
            "mean": list(dataset.mean),
            "std": list(dataset.std),
            "preprocessing": _PREPROCESSING.get(dataset.name, _DEFAULT_PREPROCESSING),
        },
        "output": {"kind": "logits", "shape": [1, network.num_classes]},
        "class_names": list(dataset.class_names),
        "weights": weights,
        "accuracy": None if test_accuracy is None else _accuracy(test_accuracy, test_images),
        "training": training,
        "torch_version": torch.__version__,
        "cars_deploy_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if extra:
        card.update(extra)
    return card


def _accuracy(top1: float, images: int | None) -> dict[str, Any]:
    accuracy: dict[str, Any] = {"top1": top1, "split": "test"}
    if images is not None:
        accuracy["images"] = images
    return accuracy


def write_model_card(path: str | os.PathLike[str], card: dict[str, Any]) -> None:
    """Writes ``card`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(card, indent=2) + "\n")


def read_model_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads a card written by ``write_model_card``; an unreadable file, or a card whose fields have the
    wrong type, is a ``UserInputError`` naming the file and the field."""
    try:
        with open(path, encoding="utf-8") as handle:
            card = json.load(handle)
    except (OSError, ValueError, RecursionError) as exc:
        raise UserInputError(f"cannot read model card {path}: {exc}") from None
    where = f"model card {path}"
    require(card, dict, where, "(top level)")
    for name, kind in _CARD_FIELDS.items():
        require(card.get(name), kind, where, name)
    for name in ("C", "layers", "num_classes", "input_size", "in_channels"):
        require(card["network"].get(name), int, where, f"network.{name}")
    return card
