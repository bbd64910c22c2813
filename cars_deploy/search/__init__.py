"""CARS search (paper section 3): SuperNet training (eq. 3), variation, NSGA-III / pNSGA-III selection
(and two ablations of it), cost objectives, the continuous-evolution loop (Algorithm 1), checkpoints
and the run directory.

The search knows the costs it can count itself (``params``, ``mult_adds``); the ``latency`` cost is
built by ``cars_deploy.latency`` and handed in (``CarsSearch(costs=...)``)."""
from .config import PRESETS, SearchConfig, preset
from .loop import CarsSearch, SearchResult
from .objectives import COSTS, CostFactory, CostFunction, build_costs
from .population import Individual, Population
from .selection import nsga3_select, pnsga3_select, select, vega_select
from .variation import VariationConfig, crossover, make_offspring, mutate

__all__ = [
    "COSTS",
    "CarsSearch",
    "CostFactory",
    "CostFunction",
    "Individual",
    "PRESETS",
    "Population",
    "SearchConfig",
    "SearchResult",
    "VariationConfig",
    "build_costs",
    "crossover",
    "make_offspring",
    "mutate",
    "nsga3_select",
    "pnsga3_select",
    "preset",
    "select",
    "vega_select",
]
