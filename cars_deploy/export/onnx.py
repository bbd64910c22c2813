"""ONNX export (opset 17) with a dynamic batch axis, verified with ONNX Runtime.

The TorchScript-based exporter (``dynamo=False``) is used on purpose: it writes exactly opset 17 in a
fraction of a second and folds each batch norm that follows a convolution into it (constant folding in
eval mode). The ``torch.export``-based exporter writes opset 18 for these networks and its conversion
down to 17 fails on ``ReduceMean``, so it cannot honour the opset that older Android runtimes need.
Batch norms the exporter cannot fold (after a concatenation, in ``FactorizedReduce``) stay as
``BatchNormalization`` nodes; the card reports how many.
"""
from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from ..formats import ONNX
from .base import EXPORTERS, ExportedFile, Runner

__all__ = ["OnnxExporter"]


@EXPORTERS.register(ONNX.name)
class OnnxExporter:
    """``.onnx`` for ONNX Runtime (Android, iOS, desktop); inputs ``input`` (N, 3, H, W), output ``logits``."""

    name = ONNX.name
    suffix = ONNX.suffix
    batch_sizes = (1, 2)

    def check_available(self) -> None:
        return None  # onnx and onnxruntime are required dependencies

    def runtime(self) -> str:
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"

    def export(self, model: nn.Module, example: torch.Tensor, path: Path, *, metadata: dict[str, str]) -> ExportedFile:
        import onnx

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                opset_version=ONNX.opset,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                do_constant_folding=True,
                training=torch.onnx.TrainingMode.EVAL,
            )
        proto = onnx.load(str(path))
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto)
        onnx.save(proto, str(path))
        ops = Counter(node.op_type for node in proto.graph.node)
        opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        return ExportedFile(
            details={
                "opset": opset,
                "dynamic_batch": True,
                "input_name": "input",
                "output_name": "logits",
                "graph_nodes": sum(ops.values()),
                "batch_norm_nodes": ops.get("BatchNormalization", 0),
            }
        )

    def load(self, path: Path) -> Runner:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name

        def run(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {input_name: x.numpy()})[0])

        return run
