"""Training checkpoints and final weights: what they hold, how they are written and read back safely.

Two kinds share one layout so that ``cars-export --checkpoint`` takes either:

- ``checkpoint.pt`` (kind ``train``), written atomically after every epoch: the model (auxiliary head
  included), the optimizer, the scheduler, the number of finished epochs, every random-number state
  that the next epoch draws from, and the history so far, so that a killed run resumes to exactly the
  result of an uninterrupted one;
- ``model.pt`` (kind ``model``): the final weights without the auxiliary head, for export.

Both hold the genotype (DARTS notation), the network size, the dataset facts (classes, input size,
normalisation) and the training settings. Only tensors, dicts, lists, tuples, strings and numbers are
stored, so files are read with ``torch.load(weights_only=True)``: a checkpoint can never run code.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import torch

from .._fields import require
from .._io import atomic_torch_save, safe_torch_load
from ..errors import CheckpointError, GenotypeError, UserInputError
from ..space import GENOTYPES, Genotype, NetworkConfig, parse_genotype
from .config import TrainConfig
from .records import EpochRecord

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "CheckpointKind",
    "describe_genotype",
    "load_checkpoint",
    "require_same_run",
    "save_checkpoint",
    "strip_auxiliary",
]

#: Marker and version written into every file, checked on reading.
CHECKPOINT_FORMAT = "cars-deploy/checkpoint"
_VERSION = 1
CheckpointKind = Literal["train", "model"]
_AUX_PREFIX = "auxiliary_head."


@dataclass
class Checkpoint:
    """Everything a resumable training checkpoint (``kind="train"``) or final weights (``"model"``) hold."""

    kind: CheckpointKind  # "train": resumable state after ``epoch`` epochs; "model": final weights only
    genotype: str  # the genotype in DARTS notation
    network: dict[str, Any]  # NetworkConfig fields of the network ``model_state`` belongs to
    dataset: dict[str, Any]  # DatasetInfo fields: name, num_classes, input_size, mean, std, class_names
    model_state: dict[str, torch.Tensor]  # the network's state_dict
    train_config: dict[str, Any] | None = None  # TrainConfig fields of the run that produced the weights
    epoch: int = 0  # finished epochs
    optimizer_state: dict[str, Any] | None = None  # torch.optim.SGD.state_dict() ("train" only)
    scheduler_state: dict[str, Any] | None = None  # learning-rate scheduler state_dict() ("train" only)
    rng_state: dict[str, Any] = field(default_factory=dict)  # torch / CUDA / data-loader generator states
    history: list[dict[str, float]] = field(default_factory=list)  # one record per finished epoch
    test_accuracy: float | None = None  # top-1 on the test split after the last epoch, when measured

    # ----- typed views -------------------------------------------------------------------------------
    def genotype_obj(self) -> Genotype:
        """The stored genotype, parsed (``CheckpointError`` if the file holds an invalid one)."""
        try:
            return parse_genotype(self.genotype)
        except GenotypeError as exc:
            raise CheckpointError(f"checkpoint holds an invalid genotype: {exc}") from None

    def network_config(self) -> NetworkConfig:
        """The stored network size as a ``NetworkConfig`` (``CheckpointError`` if it is not one)."""
        known = {f.name for f in fields(NetworkConfig)}
        if not isinstance(self.network, dict) or set(self.network) - known:
            raise CheckpointError(f"checkpoint network settings are not a NetworkConfig: {self.network!r}"[:200])
        try:
            config = NetworkConfig(**self.network)
            config.validate()
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint network settings are invalid: {exc}") from None
        return config

    def to_dict(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "version": _VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Any, *, source: str) -> "Checkpoint":
        """Validates a loaded object; ``CheckpointError`` naming ``source`` if it is not a checkpoint."""
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{source} is not a cars-deploy checkpoint (no {CHECKPOINT_FORMAT!r} marker)")
        if data.get("version") != _VERSION:
            raise CheckpointError(f"{source} has checkpoint version {data.get('version')!r}; this version reads {_VERSION}")
        body = {k: v for k, v in data.items() if k not in ("format", "version")}
        known = {f.name for f in fields(cls)}
        missing = [name for name in ("kind", "genotype", "network", "dataset", "model_state") if name not in body]
        if missing or set(body) - known:
            problem = f"lacks {', '.join(missing)}" if missing else f"has unknown keys {sorted(set(body) - known)}"
            raise CheckpointError(f"{source} {problem}")
        _check_fields(body, source)
        checkpoint = cls(**body)
        if checkpoint.kind not in ("train", "model"):
            raise CheckpointError(f"{source} has unknown kind {checkpoint.kind!r}")
        # Parse what later steps parse, so that a malformed field is refused here, naming the file.
        try:
            checkpoint.genotype_obj()
            checkpoint.network_config()
        except CheckpointError as exc:
            raise CheckpointError(f"{source}: {exc}") from None
        if checkpoint.train_config is not None:
            try:
                TrainConfig.from_dict(checkpoint.train_config, where=f"{source} train_config")
            except UserInputError as exc:
                raise CheckpointError(str(exc)) from None
        if not isinstance(checkpoint.model_state, dict) or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.model_state.values()
        ):
            raise CheckpointError(f"{source} holds no model weights")
        if checkpoint.kind == "train" and (checkpoint.optimizer_state is None or checkpoint.scheduler_state is None):
            raise CheckpointError(f"{source} is a training checkpoint without optimizer or scheduler state")
        return checkpoint


#: Expected type of each checkpoint field (``None`` allowed where the dataclass default is ``None``).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,),
    "genotype": (str,),
    "network": (dict,),
    "dataset": (dict,),
    "model_state": (dict,),
    "train_config": (dict, type(None)),
    "epoch": (int,),
    "optimizer_state": (dict, type(None)),
    "scheduler_state": (dict, type(None)),
    "rng_state": (dict,),
    "history": (list,),
    "test_accuracy": (float, int, type(None)),
}


_EPOCH_FIELDS = tuple(f.name for f in fields(EpochRecord))


def _check_fields(body: dict[str, Any], source: str) -> None:
    """``CheckpointError`` naming ``source`` and the field for a value of the wrong type."""
    try:
        for name, value in body.items():
            require(value, _FIELD_TYPES[name], source, name)
        if body.get("epoch", 0) < 0:
            raise UserInputError(f"{source}: field 'epoch' must not be negative, got {body['epoch']}")
        for index, record in enumerate(body.get("history", [])):
            require(record, dict, source, f"history[{index}]")
            lacking = [name for name in _EPOCH_FIELDS if name not in record]
            if lacking:
                raise UserInputError(f"{source}: field 'history[{index}]' lacks {', '.join(lacking)}")
            for key, value in record.items():
                require(value, (float, int, type(None)), source, f"history[{index}].{key}")
        dataset = body["dataset"]
        for name, kind in (("name", str), ("num_classes", int), ("input_size", int)):
            require(dataset.get(name), kind, source, f"dataset.{name}")
        for name in ("mean", "std"):
            values = require(dataset.get(name), (list, tuple), source, f"dataset.{name}")
            for value in values:
                require(value, (float, int), source, f"dataset.{name}")
        for value in require(dataset.get("class_names", ()), (list, tuple), source, "dataset.class_names"):
            require(value, str, source, "dataset.class_names")
    except UserInputError as exc:
        raise CheckpointError(str(exc)) from None


def save_checkpoint(path: str | os.PathLike[str], checkpoint: Checkpoint) -> None:
    """Writes ``checkpoint`` atomically (temporary file in the same folder, then ``os.replace``)."""
    atomic_torch_save(path, checkpoint.to_dict())


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Reads a checkpoint with ``weights_only=True``; a missing, truncated, corrupt or foreign file is a
    ``CheckpointError`` with one line that says which and why."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    data = safe_torch_load(path, name=f"checkpoint {path}", map_location=map_location)
    return Checkpoint.from_dict(data, source=str(path))


def strip_auxiliary(checkpoint: Checkpoint) -> Checkpoint:
    """The same weights as a ``model`` checkpoint without the auxiliary head (which is never deployed)."""
    state = {k: v for k, v in checkpoint.model_state.items() if not k.startswith(_AUX_PREFIX)}
    network = {**checkpoint.network, "auxiliary": False}
    return replace(
        checkpoint,
        kind="model",
        network=network,
        model_state=state,
        optimizer_state=None,
        scheduler_state=None,
        rng_state={},
    )


def describe_genotype(checkpoint: Checkpoint) -> str:
    """The published name of the stored genotype when it is one, else its DARTS notation, shortened."""
    stored = checkpoint.genotype_obj()
    for name in GENOTYPES.names():
        if GENOTYPES.get(name) == stored:
            return name
    text = checkpoint.genotype
    return text if len(text) <= 90 else text[:87] + "..."


def require_same_run(checkpoint: Checkpoint, *, genotype: Genotype, network: NetworkConfig, source: str) -> None:
    """``CheckpointError`` unless ``checkpoint`` was made for ``genotype`` and ``network``."""
    if checkpoint.genotype_obj() != genotype:
        raise CheckpointError(f"{source} belongs to another genotype ({describe_genotype(checkpoint)})")
    stored = checkpoint.network_config()
    if stored != network:
        changed = [
            f"{f.name} {getattr(stored, f.name)} != {getattr(network, f.name)}"
            for f in fields(NetworkConfig)
            if getattr(stored, f.name) != getattr(network, f.name)
        ]
        raise CheckpointError(f"{source} was made for another network size ({', '.join(changed)})")
