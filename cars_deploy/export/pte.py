"""ExecuTorch (``.pte``) with the XNNPACK partitioner, verified with the ExecuTorch runtime.

The network is captured with ``torch.export`` at batch 1, lowered to the Edge dialect with every
supported subgraph delegated to XNNPACK (``to_edge_transform_and_lower``), and serialised. ExecuTorch
is an optional extra (it pins the PyTorch version it is built against); without it this format is a
one-line error that says how to install it.
"""
from __future__ import annotations

import importlib
import logging
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from ..formats import PTE
from ..profilers.export_blocks import without_inplace_ops
from .base import EXPORTERS, ExportedFile, ExporterUnavailableError, Runner

__all__ = ["PteExporter", "INSTALL_HINT"]

log = logging.getLogger(__name__)

#: How to get the optional dependency (ExecuTorch 1.5.1 is the version tested with torch 2.14.1).
INSTALL_HINT = "pip install 'cars-deploy[executorch]' -c constraints.txt (ExecuTorch 1.5.1 for torch 2.14)"

_MODULES = (
    "executorch.exir",
    "executorch.backends.xnnpack.partition.xnnpack_partitioner",
    "executorch.runtime",
)


def _import_quietly(name: str) -> object:
    # torchao, imported by ExecuTorch, logs a deprecation notice through torch's pytree logger.
    pytree_log = logging.getLogger("torch.utils._pytree")
    level = pytree_log.level
    pytree_log.setLevel(logging.ERROR)
    try:
        return importlib.import_module(name)
    finally:
        pytree_log.setLevel(level)


@EXPORTERS.register(PTE.name)
class PteExporter:
    """``.pte`` for the ExecuTorch runtime (Android/iOS), XNNPACK-delegated; fixed batch of 1.

    A ``.pte`` has no field for free-form metadata: the model card beside it carries the description.
    """

    name = PTE.name
    suffix = PTE.suffix
    batch_sizes = (1,)

    def check_available(self) -> None:
        for module in _MODULES:
            try:
                _import_quietly(module)
            except Exception as exc:  # noqa: BLE001 - ImportError, or a binary built for another torch
                reason = " ".join(str(exc).split())[:120]
                raise ExporterUnavailableError(
                    f"format pte needs ExecuTorch, which cannot be imported ({reason}); install it with: {INSTALL_HINT}"
                ) from None

    def runtime(self) -> str:
        from importlib.metadata import version

        return f"executorch {version('executorch')} runtime"

    def export(self, model: nn.Module, example: torch.Tensor, path: Path, *, metadata: dict[str, str]) -> ExportedFile:
        exir = _import_quietly("executorch.exir")
        partition = _import_quietly("executorch.backends.xnnpack.partition.xnnpack_partitioner")
        exported = torch.export.export(without_inplace_ops(model.eval()), (example,))
        edge = exir.to_edge_transform_and_lower(exported, partitioner=[partition.XnnpackPartitioner()])
        calls = Counter(
            str(node.target)
            for node in edge.exported_program().graph_module.graph.nodes
            if node.op == "call_function" and "getitem" not in str(node.target)
        )
        delegates = calls.pop("executorch_call_delegate", 0)
        program = edge.to_executorch()
        path.write_bytes(program.buffer)
        notes = []
        if calls:
            notes.append(f"ops left to the portable CPU kernels (not delegated to XNNPACK): {dict(calls)}")
            log.warning("warning: %s", notes[-1])
        return ExportedFile(
            notes=notes,
            details={
                "backend": "XnnpackPartitioner",
                "xnnpack_delegates": delegates,
                "undelegated_ops": dict(calls),
                "dynamic_batch": False,
            },
        )

    def load(self, path: Path) -> Runner:
        runtime = _import_quietly("executorch.runtime")
        method = runtime.Runtime.get().load_program(str(path)).load_method("forward")

        def run(x: torch.Tensor) -> torch.Tensor:
            return method.execute([x.contiguous()])[0]

        return run
