"""What ``CarsSearch.run`` returns: where a search stands (``search.loop``)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .population import Population

__all__ = ["SearchResult"]


@dataclass
class SearchResult:
    """Where a search stands when ``run`` returns."""

    run_dir: Path  # the run directory
    population: Population  # the current population
    pareto: pd.DataFrame  # its Pareto set (the rows of pareto.csv)
    generation: int  # generations selected so far
    epoch: int  # epochs trained so far
    finished: bool  # all generations done
    history: list[dict[str, Any]]  # one record per generation (the lines of history.jsonl)
