"""Export to ONNX, TorchScript Lite (.ptl) and ExecuTorch (.pte), each file verified against PyTorch."""
from . import onnx as _onnx  # noqa: F401 - registers the format
from . import pte as _pte  # noqa: F401
from . import ptl as _ptl  # noqa: F401
from .api import ExportConfig, ExportResult, card_path_for, check_export_config, export_model
from .base import (
    EXPORTERS,
    Exporter,
    ExportError,
    ExporterUnavailableError,
    VerificationError,
    get_exporter,
    parse_formats,
)
from .loading import ExportSource, NetworkRequest, load_export_source

__all__ = [
    "EXPORTERS",
    "ExportConfig",
    "ExportError",
    "ExportResult",
    "ExportSource",
    "Exporter",
    "ExporterUnavailableError",
    "NetworkRequest",
    "VerificationError",
    "card_path_for",
    "check_export_config",
    "export_model",
    "get_exporter",
    "load_export_source",
    "parse_formats",
]
