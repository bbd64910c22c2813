"""Figures of the experiments: matplotlib's object API on an Agg canvas (no display, no global backend
switch), saved as PNG atomically at a modest resolution so the committed files stay small."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from cars_deploy._io import atomic_write_bytes

__all__ = ["new_figure", "save_figure", "SELECTION_STYLE"]

#: Colour and label of each selection, the same in every figure.
SELECTION_STYLE: dict[str, dict[str, str]] = {
    "nsga3": {"color": "tab:blue", "label": "NSGA-III"},
    "pnsga3": {"color": "tab:red", "label": "pNSGA-III"},
}


def new_figure(width: float = 6.4, height: float = 4.6) -> Any:
    """A matplotlib ``Figure`` attached to an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Any, path: Path) -> Path:
    """Writes ``figure`` to ``path`` as PNG (atomically)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return path
