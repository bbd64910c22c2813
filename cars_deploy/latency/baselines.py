"""Hand-designed mobile baselines of the paper's Table 2 and Figure 1, timed by name next to CARS models.

``cars-profile --model mobilenet_v2`` builds torchvision's model with random weights (no download:
latency does not depend on the weights' values), exports it as the blocks and the validation
networks are exported (static batch-1 shape, ONNX opset 17 or TorchScript Lite) and times it with
the same protocol, so that CARS-Lat models and the baselines are compared on one device.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Callable

from torch import nn

from .._registry import Registry
from ..errors import UserInputError
from ..formats import timing_export_format
from ..profilers.export_blocks import export_module, seeded

__all__ = ["BASELINES", "build_baseline", "export_baseline", "is_baseline"]

#: Baseline name -> builder of the torchvision model (random weights, 1000 classes, eval mode).
BASELINES: Registry[Callable[[], nn.Module]] = Registry("baseline model")


def _torchvision(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision.models as models

        return getattr(models, name)(weights=None)

    return build


for _name in ("mobilenet_v2", "mnasnet1_0", "shufflenet_v2_x2_0"):
    BASELINES.add(_name, _torchvision(_name))


def is_baseline(name: str) -> bool:
    return name in BASELINES


def build_baseline(name: str, *, seed: int = 0) -> nn.Module:
    """The baseline ``name`` in eval mode, its random weights drawn from a generator seeded by ``seed``."""
    if name not in BASELINES:
        raise UserInputError(f"unknown baseline model {name!r}; known: {', '.join(BASELINES.names())}")
    with seeded(seed):
        return BASELINES.get(name)().eval()


def export_baseline(name: str, fmt: str, cache_dir: Path, *, input_size: int = 224) -> Path:
    """The cached model file of baseline ``name`` (``<cache_dir>/baselines/<format>/<name>-<size>px.<ext>``)."""
    model_format = timing_export_format(fmt)
    folder = Path(cache_dir) / "baselines" / str(model_format.cache_folder)
    path = folder / f"{name}-{input_size}px{model_format.suffix}"
    if not path.exists():
        model = build_baseline(name)
        with contextlib.redirect_stdout(io.StringIO()):
            export_module(model, ((1, 3, input_size, input_size),), path, fmt)
    return path
