"""The search checkpoint: everything a killed search needs to continue as if it had never stopped.

Written atomically (``atomic_torch_save``) after every generation and after any epoch that ends a
minute or more after the last checkpoint (so a kill loses little training), and read with
``torch.load(weights_only=True)``, so it holds only tensors and plain containers: the SuperNet, the
previous generation's SuperNet (for the accuracy increasing speed), optimizer and scheduler states,
the population (genotypes as int lists) with its objectives, the per-generation history, the epoch
and generation counters, and every random state the search draws from (the numpy ``Generator`` of
architecture sampling and variation, torch's CPU and CUDA generators). Data order needs no state: it
is a function of the seed and the epoch (``search.data.epoch_generator``).

A checkpoint names its format and carries the search config; loading one that is truncated, not a
search checkpoint, or made by a different config raises ``CheckpointError`` with one line.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._fields import require
from .._io import atomic_torch_save, safe_torch_load
from ..errors import CheckpointError, UserInputError
from .config import SearchConfig

__all__ = ["FORMAT", "VERSION", "cpu_copy", "save_checkpoint", "load_checkpoint", "rng_state", "restore_rng_state"]

FORMAT = "cars-deploy/search-checkpoint"
VERSION = 1
_KEYS = ("format", "version", "config", "epoch", "generation", "supernet", "optimizer", "scheduler",
         "previous_supernet", "population", "history", "train_log", "rng")


def cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a state dict (the previous generation's SuperNet weights, kept in checkpoints)."""
    return {key: value.detach().to("cpu", copy=True) for key, value in state.items()}


#: Expected type of each field; the one place a loaded search checkpoint's fields are type-checked.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "config": (dict,),
    "epoch": (int,),
    "generation": (int,),
    "supernet": (dict,),
    "optimizer": (dict,),
    "scheduler": (dict,),
    "previous_supernet": (dict, type(None)),
    "population": (dict,),
    "history": (list,),
    "train_log": (list,),
    "rng": (dict,),
}


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """Every random state the search uses, in plain containers."""
    return {
        "numpy": rng.bit_generator.state,
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
    }


def restore_rng_state(state: dict[str, Any], rng: np.random.Generator) -> None:
    """Inverse of ``rng_state``: sets ``rng`` and torch's generators."""
    rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Writes ``payload`` (the keys of ``_KEYS`` except format/version) atomically to ``path``."""
    missing = [key for key in _KEYS[2:] if key not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {', '.join(missing)}")
    atomic_torch_save(path, {"format": FORMAT, "version": VERSION, **payload})


def load_checkpoint(
    path: Path, *, config: SearchConfig, map_location: str | torch.device = "cpu", raw: bytes | None = None
) -> dict[str, Any]:
    """Reads and checks a search checkpoint written for ``config``; ``CheckpointError`` otherwise.
    ``raw``: the file's bytes, already read (a distributed search reads them on rank 0 and broadcasts
    them; every rank parses them here the same way); ``path`` then only names it in messages."""
    path = Path(path)
    if raw is None and not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    source = io.BytesIO(raw) if raw is not None else path
    data = safe_torch_load(source, name=str(path), map_location=map_location)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a cars-search checkpoint")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {data.get('version')}; this cars-search reads {VERSION}")
    missing = [key for key in _KEYS if key not in data]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}; it is damaged")
    try:
        for key, kinds in _FIELD_TYPES.items():
            require(data[key], kinds, str(path), key)
        for key in ("epoch", "generation"):
            if data[key] < 0:
                raise UserInputError(f"{path}: field {key!r} must not be negative, got {data[key]}")
        for index, record in enumerate(data["history"]):
            require(record, dict, str(path), f"history[{index}]")
    except UserInputError as exc:
        raise CheckpointError(f"{exc}; it is damaged") from None
    saved = data["config"]
    expected = config.to_dict()
    # a setting added after the checkpoint was written takes the value that means the old behaviour
    # (a budget: none; the op set: DARTS' 8), as SearchConfig.from_dict reads an old config.json
    try:
        saved = SearchConfig.from_dict(saved, str(path)).to_dict()
    except UserInputError as exc:
        raise CheckpointError(f"{exc}; it is damaged") from None
    if saved != expected:
        diff = sorted(k for k in set(saved) | set(expected) if saved.get(k) != expected.get(k))
        shown = ", ".join(f"{k}={saved.get(k)!r} (run config: {expected.get(k)!r})" for k in diff[:3])
        raise CheckpointError(f"{path} belongs to another search: {shown}")
    return data
