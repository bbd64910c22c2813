"""Figures of the experiments: matplotlib's object API on an Agg canvas (no display, no global backend
switch), saved as PNG atomically at a modest resolution so the committed files stay small."""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from cars_deploy import _figures
from cars_deploy._figures import save_figure

__all__ = ["new_figure", "save_figure", "seed_band", "SELECTION_STYLE"]

#: Colour and label of each selection, the same in every figure.
SELECTION_STYLE: dict[str, dict[str, str]] = {
    "nsga3": {"color": "tab:blue", "label": "NSGA-III"},
    "pnsga3": {"color": "tab:red", "label": "pNSGA-III"},
    "pnsga3-shuffled": {"color": "tab:orange", "label": "pNSGA-III, speeds shuffled"},
    "vega": {"color": "tab:green", "label": "vega, no speed term"},
}


def new_figure(width: float = 6.4, height: float = 4.6) -> Any:
    """A matplotlib ``Figure`` on an Agg canvas, at the experiments' 100 dpi."""
    return _figures.new_figure(width, height, dpi=100)


def seed_band(ax: Any, x: Sequence[float], per_seed: np.ndarray, *, selection: str,
              unit: tuple[str, str] = ("seed", "seeds")) -> None:
    """The spread of one quantity over seeds, on ``ax``: the median over seeds as a line and the range
    (min to max) as a band, in ``selection``'s colour. ``per_seed`` is (seeds, len(x)); NaN (a seed
    that has not reached that point) is left out. The legend counts the rows as ``unit`` (singular, plural)."""
    values = np.asarray(per_seed, dtype=np.float64)
    style = SELECTION_STYLE[selection]
    seeds = int(np.isfinite(values).any(axis=1).sum())
    with warnings.catch_warnings():  # numpy warns of a column no seed has reached yet ("All-NaN slice")
        warnings.simplefilter("ignore", RuntimeWarning)
        mid, low, high = np.nanmedian(values, axis=0), np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    ax.plot(x, mid, color=style["color"], label=f"{style['label']} ({seeds} {unit[seeds != 1]})")
    ax.fill_between(x, low, high, color=style["color"], alpha=0.18, linewidth=0)
