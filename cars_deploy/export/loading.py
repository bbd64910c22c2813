"""The network to export: trained weights from a checkpoint, or random weights at a requested size.

With a checkpoint (``model.pt`` or ``checkpoint.pt`` of ``cars-train``) every size comes from the file,
and a size the user also gave must agree with it: a checkpoint of another genotype, another number of
classes or another network size is a ``CheckpointError`` naming the difference, as is a file that is
truncated, corrupt or not a checkpoint. Without one the weights are seeded random (the card says
``"weights": "random"``), which is what latency measurement on a phone needs.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from torch import nn

from ..data import DatasetInfo, dataset_info
from ..errors import CheckpointError
from ..profilers.export_blocks import seeded
from ..space import Genotype, NetworkConfig, build_network
from ..train.checkpoint import Checkpoint, describe_genotype, load_checkpoint, strip_auxiliary

__all__ = ["ExportSource", "NetworkRequest", "load_export_source"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NetworkRequest:
    """Sizes the user asked for; ``None`` means "not given" (from the checkpoint, or the defaults)."""

    kind: Literal["cifar", "imagenet"] | None = None  # network family; default cifar
    C: int | None = None  # initial channels; default 36 (cifar) / 48 (imagenet)
    layers: int | None = None  # cells; default 20 (cifar) / 14 (imagenet)
    num_classes: int | None = None  # classifier outputs; default: the dataset's
    input_size: int | None = None  # input side; default: the dataset's
    dataset: str | None = None  # dataset whose normalisation and classes the card describes; default cifar10
    data_dir: Path | None = None  # needed for imagefolder (its classes are read from the folder)


@dataclass(frozen=True)
class ExportSource:
    """A network in eval mode, ready to export, with what its model card says about it."""

    genotype: Genotype
    network: NetworkConfig  # the deployed network's size (never with the auxiliary head)
    dataset: DatasetInfo  # input normalisation and class names
    model: nn.Module  # eval mode, CPU, no gradients
    weights: Literal["trained", "random"]
    test_accuracy: float | None = None  # from the checkpoint, when it recorded one
    training: dict[str, Any] | None = None  # training settings from the checkpoint
    checkpoint: Path | None = None  # where the weights came from
    checkpoint_sha256: str | None = None  # digest of that file


def load_export_source(
    genotype: Genotype, *, checkpoint: Path | None = None, request: NetworkRequest = NetworkRequest(), seed: int = 0
) -> ExportSource:
    """The network of ``genotype`` to export: the weights of ``checkpoint``, or seeded random ones."""
    if checkpoint is not None:
        return _from_checkpoint(genotype, Path(checkpoint), request)
    return _random(genotype, request, seed)


def _random(genotype: Genotype, request: NetworkRequest, seed: int) -> ExportSource:
    info = dataset_info(request.dataset or "cifar10", request.data_dir, input_size=request.input_size)
    base = NetworkConfig.imagenet() if request.kind == "imagenet" else NetworkConfig.cifar()
    sizes = {
        "C": request.C,
        "layers": request.layers,
        "num_classes": request.num_classes or info.num_classes,
        "input_size": request.input_size or info.input_size,
    }
    network = replace(base, **{k: v for k, v in sizes.items() if v is not None})
    network.validate()
    if network.num_classes != info.num_classes:
        info = replace(info, num_classes=network.num_classes, class_names=tuple(f"class_{i}" for i in range(network.num_classes)))
    with seeded(seed):  # seeded weights without touching the caller's generator
        model = build_network(genotype, network)
    return ExportSource(genotype=genotype, network=network, dataset=info, model=_frozen(model), weights="random")


def _from_checkpoint(genotype: Genotype, path: Path, request: NetworkRequest) -> ExportSource:
    stored = strip_auxiliary(load_checkpoint(path))
    genotype = _check_genotype(stored, genotype, path)
    network = stored.network_config()
    dataset = _dataset(stored, path)
    _check_request(request, network, dataset, path)
    model = build_network(genotype, network)
    try:
        model.load_state_dict(stored.model_state)
    except RuntimeError as exc:
        first = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))
        raise CheckpointError(f"the weights in {path} do not fit this genotype's network: {first[:200]}") from None
    return ExportSource(
        genotype=genotype,
        network=network,
        dataset=dataset,
        model=_frozen(model),
        weights="trained",
        test_accuracy=stored.test_accuracy,
        training=stored.train_config,
        checkpoint=path,
        checkpoint_sha256=_sha256(path),
    )


def _check_genotype(stored: Checkpoint, genotype: Genotype, path: Path) -> Genotype:
    saved = stored.genotype_obj()
    if saved == genotype:
        return genotype
    if saved.canonical() == genotype.canonical():
        # Same network up to the order of a node's two edges; the weights are laid out in the saved order.
        log.info("note: %s stores the same genotype with another edge order; using the stored order", path)
        return saved
    raise CheckpointError(f"{path} belongs to another genotype ({describe_genotype(stored)})")


def _dataset(stored: Checkpoint, path: Path) -> DatasetInfo:
    known = {f.name for f in fields(DatasetInfo)}
    data = stored.dataset
    if not isinstance(data, dict) or set(data) != known:
        raise CheckpointError(f"{path} does not describe its dataset (expected {', '.join(sorted(known))})")
    try:
        return DatasetInfo(
            name=str(data["name"]),
            num_classes=int(data["num_classes"]),
            input_size=int(data["input_size"]),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
            class_names=tuple(str(v) for v in data["class_names"]),
        )
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} has malformed dataset facts: {exc}") from None


def _check_request(request: NetworkRequest, network: NetworkConfig, dataset: DatasetInfo, path: Path) -> None:
    """A size given by the user must match the checkpoint's: the weights fix the network."""
    pairs = (
        ("--num-classes", request.num_classes, network.num_classes, "classes"),
        ("--input-size", request.input_size, network.input_size, "pixels of input"),
        ("--C", request.C, network.C, "initial channels"),
        ("--layers", request.layers, network.layers, "cells"),
        ("--network", request.kind, network.kind, "network"),
        ("--dataset", request.dataset, dataset.name, "dataset"),
    )
    for flag, asked, stored, what in pairs:
        if asked is not None and asked != stored:
            raise CheckpointError(f"{path} was trained with {stored} {what}, but {flag} asks for {asked}")


def _frozen(model: nn.Module) -> nn.Module:
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
