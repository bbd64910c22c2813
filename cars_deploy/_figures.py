"""The one rule for the package's figures: matplotlib's object API on an Agg canvas, saved as PNG.

No pyplot and no global backend switch (``matplotlib.use``), so drawing a figure never changes the
state of a caller that uses matplotlib itself, and no display is needed. matplotlib is imported on
first use: only the commands that draw pay for it.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ._io import atomic_write_bytes

__all__ = ["figure_png", "new_figure", "save_figure"]


def new_figure(width: float = 6.4, height: float = 4.6, *, dpi: int = 110) -> Any:
    """A matplotlib ``Figure`` on an Agg canvas (no display, no global pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure: Any) -> bytes:
    """``figure`` as PNG bytes, cropped to what is drawn."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def save_figure(figure: Any, path: Path) -> Path:
    """Writes ``figure`` to ``path`` as PNG, atomically."""
    atomic_write_bytes(path, figure_png(figure))
    return path
