"""The ``latency`` cost of the search: CARS-Lat's "device-aware variable" (paper section 4.2).

``latency_cost(table, network=...)`` loads a latency table - a path, a shipped table's name, or
``local`` for this computer's CPU, whose table is built and calibrated on first use and cached
(``host.py``) - as a ``LatencyPredictor`` for the deployment network the search counts costs on (the
ImageNet mobile network by default, as in the paper's Table 2). The cost of a population is one
vectorised ``LatencyPredictor.predict`` call, in ms. The search does not import this module: its
caller builds the cost and hands it to the search (``search_run.latency_costs``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ..space.genotype import Genotype
from ..space.networks import NetworkConfig
from . import host
from .predictor import LatencyPredictor, network_id

__all__ = ["LatencyCost", "latency_cost", "LOCAL_TABLE"]

_log = logging.getLogger(__name__)

#: ``--latency-table local``: this computer's CPU, table built on first use.
LOCAL_TABLE = "local"


class LatencyCost:
    """Predicted latency (ms) of genotypes' deployment networks: a search cost (smaller is better)."""

    name = "latency"
    label = "latency (ms)"
    scale = 1.0

    def __init__(self, predictor: LatencyPredictor) -> None:
        self.predictor = predictor

    def __call__(self, genotypes: Sequence[Genotype]) -> np.ndarray:
        return self.predictor.predict(genotypes)

    def uncertainty(self, predicted: np.ndarray) -> np.ndarray | None:
        """+-ms around each predicted latency holding 90% of the calibration's cross-validated residuals
        (pareto.csv's ``latency_pm90_ms``); None when the table has no such calibration."""
        return self.predictor.uncertainty(predicted, 90)


def latency_cost(table: str | Path, *, network: NetworkConfig) -> LatencyCost:
    """A ``LatencyCost`` for ``network`` from ``table`` (a path, a shipped table's name, or ``local``)."""
    spec: str | Path = host.ensure_host_table(network) if str(table) == LOCAL_TABLE else table
    predictor = LatencyPredictor.load(spec, network=network)
    if not predictor.calibrated:
        _log.info(
            "latency table %s has no calibration for %s: the latency objective is the raw block sum (ranks are "
            "right, absolute values run high; calibrate with cars-profile --calibrate 60)", spec, network_id(network),
        )
    return LatencyCost(predictor)
