"""Exports one block alone as a model file a phone runtime can time: ONNX (opset 17), TorchScript Lite or
ExecuTorch (XNNPACK).

Files are cached by block key under a cache folder (``<cache>/onnx17/<id>.onnx``, ``<cache>/ptl/<id>.ptl``,
``<cache>/pte/<id>.pte``;
folders, suffixes and opset from ``cars_deploy.formats``)
so that a resumed or repeated profiling run never exports a block twice; each file is written to a
temporary name and renamed, so a killed export leaves no half-written model behind.

ONNX goes through PyTorch's TorchScript-based exporter (``dynamo=False``): in torch 2.14 the default
dynamo exporter has no opset-17 implementations (it exports opset 18 and converts down) and takes
about 2 s per block against 0.05 s, which alone would blow the one-minute budget of a table. The
TorchScript exporter is deprecated but present; if a future torch removes it, the dynamo exporter
with ``opset_version=17`` is used instead. The ``.ptl`` file is ``torch.jit.trace`` followed by
``_save_for_lite_interpreter`` (also deprecated in favour of ExecuTorch, still working in 2.14).
Weights are drawn from torch's generator seeded by the block id (``seeded``), so a block's file is
reproducible; whole networks and baselines (``latency``) and randomly initialised exports (``export``)
are seeded the same way.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import warnings
from copy import deepcopy
from pathlib import Path
from typing import Iterator

import torch

from ..errors import DeviceError, UserInputError
from ..formats import ONNX, PTE, timing_export_format
from .blocks import BlockKey, block_input_shapes, build_block

__all__ = ["BlockExporter", "export_module", "default_cache_dir", "seeded", "text_seed", "without_inplace_ops"]


def default_cache_dir() -> Path:
    """``<user cache dir>/cars-deploy/blocks`` (``~/.cache/cars-deploy/blocks`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("cars-deploy")) / "blocks"


class BlockExporter:
    """Exports blocks by key into ``cache_dir``, once per key and format."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)

    def path(self, key: BlockKey, fmt: str) -> Path:
        """Where the cached file of ``key`` in format ``fmt`` lives (whether or not it exists yet)."""
        model_format = timing_export_format(fmt)
        return self.cache_dir / str(model_format.cache_folder) / f"{key.id}{model_format.suffix}"

    def export(self, key: BlockKey, fmt: str) -> Path:
        """The cached file of ``key``, exporting it first if missing."""
        path = self.path(key, fmt)
        if not path.exists():
            with seeded(text_seed(key.id)):
                module = build_block(key)
            shapes = block_input_shapes(key)
            export_module(module, shapes, path, fmt)
        return path


def export_module(module: torch.nn.Module, input_shapes: tuple[tuple[int, ...], ...], path: Path, fmt: str) -> None:
    """Writes ``module`` (called with float inputs of ``input_shapes``) to ``path`` atomically, as ONNX
    TorchScript Lite or ExecuTorch (``fmt``: ``"onnx"``, ``"ptl"`` or ``"pte"``)."""
    model_format = timing_export_format(fmt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    inputs = tuple(torch.zeros(shape) for shape in input_shapes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            if model_format is ONNX:
                _export_onnx(module, inputs, tmp)
            elif model_format is PTE:
                _export_pte(module, inputs, tmp)
            else:
                traced = torch.jit.trace(module, inputs if len(inputs) > 1 else inputs[0])
                traced._save_for_lite_interpreter(str(tmp))
        os.replace(tmp, path)
    except UserInputError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise DeviceError(f"exporting {path.name} as {fmt} failed: {type(exc).__name__}: {exc}") from exc


def _export_pte(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> None:
    """``torch.export`` -> XNNPACK-delegated edge program -> ExecuTorch buffer, as ``cars-export --format pte``
    ships it (``export.pte``; written again here because the profilers sit below the export layer)."""
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except ImportError:
        raise UserInputError(
            "timing ExecuTorch (.pte) models needs the executorch package: pip install 'cars-deploy[executorch]'"
        ) from None
    exported = torch.export.export(without_inplace_ops(module), inputs)
    program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch()
    path.write_bytes(program.buffer)


def without_inplace_ops(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` whose in-place activations (``ReLU(inplace=True)``) write new tensors instead.

    ``torch.export`` records an in-place op on a graph input (the ImageNet ``stem1`` block starts with one)
    as a mutation of that input, which ExecuTorch's lowering rejects ("Could not find input in either
    buffer or input nodes"); the copy computes the same values and leaves the caller's module untouched.
    """
    copy = deepcopy(module)
    for child in copy.modules():
        if getattr(child, "inplace", False) is True:
            child.inplace = False
    return copy


def _export_onnx(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> None:
    names = [f"x{i}" for i in range(len(inputs))]
    try:
        torch.onnx.export(
            module, inputs, str(path), opset_version=ONNX.opset, dynamo=False, input_names=names, output_names=["y"]
        )
    except (TypeError, RuntimeError, NotImplementedError) as legacy_error:
        # The TorchScript exporter was removed or refused the module: use the dynamo exporter.
        with contextlib.redirect_stdout(io.StringIO()):
            program = torch.onnx.export(
                module, inputs, dynamo=True, opset_version=ONNX.opset, input_names=names, output_names=["y"]
            )
        if program is None:
            raise legacy_error
        program.save(str(path))


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Runs the body with torch's global generator seeded with ``seed``, restoring the caller's state
    afterwards. Module constructors draw their initial weights from the global generator (``nn.init``
    takes no generator), so a forked scope is how a built module gets reproducible weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def text_seed(text: str) -> int:
    """A non-negative 63-bit seed derived from ``text`` (SHA-256), stable across runs and machines."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF
