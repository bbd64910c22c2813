"""Figures of the experiments: matplotlib's object API on an Agg canvas (no display, no global backend
switch), saved as PNG atomically at a modest resolution so the committed files stay small."""
from __future__ import annotations

from typing import Any

from cars_deploy import _figures
from cars_deploy._figures import save_figure

__all__ = ["new_figure", "save_figure", "SELECTION_STYLE"]

#: Colour and label of each selection, the same in every figure.
SELECTION_STYLE: dict[str, dict[str, str]] = {
    "nsga3": {"color": "tab:blue", "label": "NSGA-III"},
    "pnsga3": {"color": "tab:red", "label": "pNSGA-III"},
}


def new_figure(width: float = 6.4, height: float = 4.6) -> Any:
    """A matplotlib ``Figure`` on an Agg canvas, at the experiments' 100 dpi."""
    return _figures.new_figure(width, height, dpi=100)
