"""Model file formats: one record per format, read wherever a format, a suffix, a runtime or a runner is named.

A format ties together names that different parts of the package use for the same thing: the format
name (``cars-export --format``, the profilers' block cache), the file suffixes its files may have, the
runtime that runs it (``cars-profile --runtime``), the vendor benchmark binary that times it
(``profilers.runners``), the cache sub-folder of models exported for timing, and the ONNX opset.
The profilers (timing) and the exporters (shipping) both read these records, so they live at the base.
"""
from __future__ import annotations

from dataclasses import dataclass

from ._registry import Registry
from .errors import UserInputError

__all__ = [
    "ModelFormat",
    "FORMATS",
    "ONNX",
    "PTL",
    "PTE",
    "all_formats",
    "format_for_runtime",
    "format_for_suffix",
    "timing_export_format",
    "timing_export_formats",
    "suffix_choices",
]


@dataclass(frozen=True)
class ModelFormat:
    """One model file format and everything the package knows about it."""

    name: str  # "onnx", "ptl", "pte": the format's name on the command line and in the registry
    suffixes: tuple[str, ...]  # file suffixes read as this format, lower case; the first is the one written
    runtime: str  # the runtime that runs it, as ``cars-profile --runtime`` and the table settings name it
    runner: str  # the vendor benchmark binary that times it (a name in ``profilers.runners.RUNNERS``)
    cache_folder: str | None  # sub-folder for models exported for timing; None: never exported for timing
    opset: int | None = None  # ONNX operator set written (ONNX only)

    @property
    def suffix(self) -> str:
        """The suffix of files written in this format."""
        return self.suffixes[0]


#: Every model format by name, in registration order.
FORMATS: Registry[ModelFormat] = Registry("model format")

#: ONNX for ONNX Runtime; opset 17 is what older Android runtimes read. ``.ort`` is ORT's own format.
ONNX = ModelFormat("onnx", (".onnx", ".ort"), runtime="onnxruntime", runner="onnxruntime_perf_test",
                   cache_folder="onnx17", opset=17)
#: TorchScript for PyTorch Mobile: ``.ptl`` for the lite interpreter; ``.pt`` is a TorchScript file that
#: ``speed_benchmark_torch`` also times.
PTL = ModelFormat("ptl", (".ptl", ".pt"), runtime="pytorch-lite", runner="speed_benchmark_torch", cache_folder="ptl")
#: ExecuTorch programs with XNNPACK delegation: shipped by ``cars-export --format pte``, and exported for
#: timing (blocks, whole networks) so that ``cars-profile --runtime executorch`` builds a table for that runtime.
PTE = ModelFormat("pte", (".pte",), runtime="executorch", runner="executor_runner", cache_folder="pte")

for _format in (ONNX, PTL, PTE):
    FORMATS.add(_format.name, _format)


def all_formats() -> list[ModelFormat]:
    """Every format, in registration order (ONNX, TorchScript Lite, ExecuTorch)."""
    return [FORMATS.get(name) for name in FORMATS]


def format_for_runtime(runtime: str) -> ModelFormat:
    """The format ``runtime`` runs; ``UserInputError`` listing the known runtimes otherwise."""
    for fmt in all_formats():
        if fmt.runtime == runtime:
            return fmt
    raise UserInputError(f"unknown runtime {runtime!r}; known: {', '.join(f.runtime for f in all_formats())}")


def format_for_suffix(suffix: str) -> ModelFormat | None:
    """The format of files ending in ``suffix`` (any case, with the dot), or None if no format has it."""
    suffix = suffix.lower()
    return next((fmt for fmt in all_formats() if suffix in fmt.suffixes), None)


def timing_export_formats() -> list[ModelFormat]:
    """The formats blocks and whole networks are exported to for timing (ONNX, TorchScript Lite, ExecuTorch)."""
    return [fmt for fmt in all_formats() if fmt.cache_folder is not None]


def timing_export_format(name: str) -> ModelFormat:
    """The format ``name`` if models are exported to it for timing; ``UserInputError`` otherwise."""
    for fmt in timing_export_formats():
        if fmt.name == name:
            return fmt
    known = ", ".join(fmt.name for fmt in timing_export_formats())
    raise UserInputError(f"unknown model format {name!r} for timing; known: {known}")


def suffix_choices() -> str:
    """The written suffixes for messages: ``.onnx, .ptl or .pte``."""
    suffixes = [fmt.suffix for fmt in all_formats()]
    return f"{', '.join(suffixes[:-1])} or {suffixes[-1]}"
