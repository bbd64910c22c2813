"""Exports one block alone as a model file a phone runtime can time: ONNX (opset 17) or TorchScript Lite.

Files are cached by block key under a cache folder (``<cache>/onnx17/<id>.onnx``, ``<cache>/ptl/<id>.ptl``)
so that a resumed or repeated profiling run never exports a block twice; each file is written to a
temporary name and renamed, so a killed export leaves no half-written model behind.

ONNX goes through PyTorch's TorchScript-based exporter (``dynamo=False``): in torch 2.14 the default
dynamo exporter has no opset-17 implementations (it exports opset 18 and converts down) and takes
about 2 s per block against 0.05 s, which alone would blow the one-minute budget of a table. The
TorchScript exporter is deprecated but present; if a future torch removes it, the dynamo exporter
with ``opset_version=17`` is used instead. The ``.ptl`` file is ``torch.jit.trace`` followed by
``_save_for_lite_interpreter`` (also deprecated in favour of ExecuTorch, still working in 2.14).
Weights are drawn from a generator seeded by the block id, so a block's file is reproducible.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import Iterator, Literal

import torch

from ..errors import DeviceError, UserInputError
from .blocks import BlockKey, block_input_shapes, build_block

__all__ = ["ModelFormat", "FORMATS", "BlockExporter", "export_module", "default_cache_dir"]

ModelFormat = Literal["onnx", "ptl"]
#: Format -> (cache sub-folder, file suffix).
FORMATS: dict[str, tuple[str, str]] = {"onnx": ("onnx17", ".onnx"), "ptl": ("ptl", ".ptl")}
ONNX_OPSET = 17


def default_cache_dir() -> Path:
    """``<user cache dir>/cars-deploy/blocks`` (``~/.cache/cars-deploy/blocks`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("cars-deploy")) / "blocks"


class BlockExporter:
    """Exports blocks by key into ``cache_dir``, once per key and format."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)

    def path(self, key: BlockKey, fmt: ModelFormat) -> Path:
        """Where the cached file of ``key`` in ``fmt`` lives (whether or not it exists yet)."""
        folder, suffix = _format(fmt)
        return self.cache_dir / folder / f"{key.id}{suffix}"

    def export(self, key: BlockKey, fmt: ModelFormat) -> Path:
        """The cached file of ``key``, exporting it first if missing."""
        path = self.path(key, fmt)
        if not path.exists():
            with _seeded(key.id):
                module = build_block(key)
            shapes = block_input_shapes(key)
            export_module(module, shapes, path, fmt)
        return path


def export_module(module: torch.nn.Module, input_shapes: tuple[tuple[int, ...], ...], path: Path, fmt: ModelFormat) -> None:
    """Writes ``module`` (called with float inputs of ``input_shapes``) to ``path`` atomically."""
    _format(fmt)
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
            if fmt == "onnx":
                _export_onnx(module, inputs, tmp)
            else:
                traced = torch.jit.trace(module, inputs if len(inputs) > 1 else inputs[0])
                traced._save_for_lite_interpreter(str(tmp))
        os.replace(tmp, path)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise DeviceError(f"exporting {path.name} as {fmt} failed: {type(exc).__name__}: {exc}") from exc


def _export_onnx(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> None:
    names = [f"x{i}" for i in range(len(inputs))]
    try:
        torch.onnx.export(
            module, inputs, str(path), opset_version=ONNX_OPSET, dynamo=False, input_names=names, output_names=["y"]
        )
    except (TypeError, RuntimeError, NotImplementedError) as legacy_error:
        # The TorchScript exporter was removed or refused the module: use the dynamo exporter.
        with contextlib.redirect_stdout(io.StringIO()):
            program = torch.onnx.export(
                module, inputs, dynamo=True, opset_version=ONNX_OPSET, input_names=names, output_names=["y"]
            )
        if program is None:
            raise legacy_error
        program.save(str(path))


@contextlib.contextmanager
def _seeded(text: str) -> Iterator[None]:
    """Runs the body with torch's global generator seeded from ``text`` (module init draws from it),
    restoring the caller's generator state afterwards."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _format(fmt: str) -> tuple[str, str]:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise UserInputError(f"unknown model format {fmt!r}; known: {', '.join(FORMATS)}") from None
