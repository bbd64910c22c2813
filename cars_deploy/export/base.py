"""What every export format provides, and the registry that finds a format by name.

An ``Exporter`` writes a network in eval mode to one file and can load that file back in the runtime
an app would use (ONNX Runtime, the PyTorch Mobile lite interpreter, the ExecuTorch runtime), so that
``export_model`` checks every file against PyTorch before it is put in place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import torch
from torch import nn

from .._registry import Registry
from ..errors import CarsError, UserInputError

__all__ = [
    "EXPORTERS",
    "ExportError",
    "Exporter",
    "ExporterUnavailableError",
    "ExportedFile",
    "Runner",
    "VerificationError",
    "get_exporter",
    "parse_formats",
]

#: Runs an exported file on one input batch and returns the logits.
Runner = Callable[[torch.Tensor], torch.Tensor]


class ExportError(CarsError):
    """The exporter or the runtime failed on a valid model (exit code 1)."""

    exit_code = 1


class VerificationError(ExportError):
    """The exported file's outputs differ from PyTorch's by more than the tolerance."""


class ExporterUnavailableError(UserInputError):
    """A format whose optional dependency is not installed; the message says how to install it."""


@dataclass
class ExportedFile:
    """What an exporter wrote, with facts for the model card."""

    notes: list[str] = field(default_factory=list)  # warnings a user should read (also logged)
    details: dict[str, Any] = field(default_factory=dict)  # format-specific facts (opset, graph counts...)


class Exporter(Protocol):
    """One deployable format: writes a file and runs it back for verification."""

    name: str  # format name used on the command line
    suffix: str  # file extension, with the dot
    batch_sizes: tuple[int, ...]  # input batch sizes the exported file accepts and is verified with

    def check_available(self) -> None:
        """Raises ``ExporterUnavailableError`` (with the install command) if a dependency is missing."""
        ...

    def runtime(self) -> str:
        """The runtime that verifies the file, with its version (written to the model card)."""
        ...

    def export(self, model: nn.Module, example: torch.Tensor, path: Path, *, metadata: dict[str, str]) -> ExportedFile:
        """Writes ``model`` (eval mode, batch-1 ``example`` input) to ``path``; ``metadata`` is embedded
        where the format allows (strings describing the model: genotype, normalisation, classes)."""
        ...

    def load(self, path: Path) -> Runner:
        """Loads ``path`` in the format's runtime."""
        ...


#: Export formats by name; each format module registers its exporter class.
EXPORTERS: Registry[Callable[[], Exporter]] = Registry("export format")


def get_exporter(name: str) -> Exporter:
    """A new exporter for format ``name``; ``UserInputError`` listing the known formats otherwise."""
    if name not in EXPORTERS:
        raise UserInputError(f"unknown export format {name!r}; known formats: {', '.join(EXPORTERS.names())}")
    return EXPORTERS.get(name)()


def parse_formats(text: str | Sequence[str]) -> list[str]:
    """``"onnx,ptl"`` or ``["onnx", "ptl"]`` -> ``["onnx", "ptl"]``: known names, duplicates removed, in order."""
    items = text.split(",") if isinstance(text, str) else [part for item in text for part in item.split(",")]
    names = list(dict.fromkeys(item.strip().lower() for item in items if item.strip()))
    if not names:
        raise UserInputError(f"no export format given; known formats: {', '.join(EXPORTERS.names())}")
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise UserInputError(
            f"unknown export format {', '.join(map(repr, unknown))}; known formats: {', '.join(EXPORTERS.names())}"
        )
    return names
