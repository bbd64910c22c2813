"""TorchScript Lite (``.ptl``) for the PyTorch Mobile runtime, verified with the lite interpreter.

The network is traced in eval mode (its forward has no data-dependent control flow; scripting would
trip on the training-only branches), then frozen with ``torch.jit.freeze`` (which folds each batch
norm into the convolution before it) and, when this PyTorch has XNNPACK, passed through
``optimize_for_mobile`` (which pre-packs the weights for XNNPACK kernels). The PyTorch
wheels used here are built without XNNPACK, and ``optimize_for_mobile`` then fails with an internal
assertion, so its absence is detected first and reported as a warning, never a crash. Where it runs,
it is given the frozen module (batch norms already folded) with its own conv/batch-norm fusion pass
left out, since on torch 2.11 that pass changed a trained network's logits by several units; its
output is compared with the network's before it is kept, and if they differ the frozen module is
shipped instead, with a warning.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from ..formats import PTL
from .base import EXPORTERS, ExportedFile, Runner

__all__ = ["PtlExporter", "xnnpack_available"]

log = logging.getLogger(__name__)

#: Largest change of the logits accepted from optimize_for_mobile's rewrites before falling back.
_SELF_CHECK_TOLERANCE = 1e-4

#: Name under which the model description is stored inside the ``.ptl`` (read with ``_extra_files``).
METADATA_FILE = "metadata.json"


def xnnpack_available() -> bool:
    """Whether this PyTorch build has XNNPACK, which ``optimize_for_mobile`` needs."""
    try:
        import torch.backends.xnnpack as xnnpack

        return bool(xnnpack.enabled)
    except (ImportError, AttributeError, RuntimeError):
        probe = getattr(torch._C, "_is_xnnpack_enabled", None)
        return bool(probe()) if callable(probe) else False


def _optimize(
    traced: torch.jit.ScriptModule, model: nn.Module, example: torch.Tensor, notes: list[str]
) -> tuple[torch.jit.ScriptModule, str]:
    """``optimize_for_mobile`` when XNNPACK is there and the result still computes what ``model`` does,
    else ``torch.jit.freeze``; each fallback is a logged warning and a note for the model card."""
    frozen_note = "the .ptl is frozen with batch norms folded but has no pre-packed XNNPACK ops"
    if not xnnpack_available():
        note = (
            f"this PyTorch build has no XNNPACK, so optimize_for_mobile was skipped; {frozen_note} (export with "
            "an XNNPACK-enabled PyTorch for the fastest mobile inference)"
        )
    else:
        from torch.utils.mobile_optimizer import MobileOptimizerType, optimize_for_mobile

        # Its CONV_BN_FUSION pass changed a trained DARTS_V2's logits by ~6 (torch 2.11, XNNPACK build;
        # harmless on fresh batch norms) while every other pass was exact. So batch norms are folded by
        # torch.jit.freeze (exact), the pass is left out, and the result is still compared with the
        # network before it is kept. Measured there: difference 1e-6, 80 prepacked XNNPACK ops.
        optimized = optimize_for_mobile(
            torch.jit.freeze(traced), optimization_blocklist={MobileOptimizerType.CONV_BN_FUSION}
        )
        with torch.no_grad():
            drift = float((optimized(example) - model(example)).abs().max())
        if drift <= _SELF_CHECK_TOLERANCE:
            return optimized, "torch.jit.freeze + optimize_for_mobile (without its CONV_BN_FUSION pass)"
        note = f"optimize_for_mobile changed this network's outputs by {drift:.3g}, so it was not used; {frozen_note}"
    log.warning("warning: %s", note)
    notes.append(note)
    return torch.jit.freeze(traced), "torch.jit.freeze"


@EXPORTERS.register(PTL.name)
class PtlExporter:
    """``.ptl`` for PyTorch Mobile (``org.pytorch:pytorch_android_lite``, ``LibTorch-Lite``)."""

    name = PTL.name
    suffix = PTL.suffix
    batch_sizes = (1, 2)

    def check_available(self) -> None:
        return None  # part of torch

    def runtime(self) -> str:
        return f"torch {torch.__version__} lite interpreter"

    def export(self, model: nn.Module, example: torch.Tensor, path: Path, *, metadata: dict[str, str]) -> ExportedFile:
        notes: list[str] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit deprecation notices
            traced = torch.jit.trace(model.eval(), example, check_trace=False)
            optimized, optimizer = _optimize(traced, model, example, notes)
            optimized._save_for_lite_interpreter(str(path), _extra_files={METADATA_FILE: json.dumps(metadata)})
        batch_norms = str(optimized.graph).count("aten::batch_norm")
        return ExportedFile(
            notes=notes,
            details={
                "optimizer": optimizer,
                "xnnpack": xnnpack_available(),
                "batch_norm_nodes": batch_norms,
                "metadata_file": METADATA_FILE,
            },
        )

    def load(self, path: Path) -> Runner:
        from torch.jit.mobile import _load_for_lite_interpreter

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = _load_for_lite_interpreter(str(path))

        def run(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return module(x)

        return run
