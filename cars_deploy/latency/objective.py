"""The ``latency`` cost of the search: CARS-Lat's "device-aware variable" (paper section 4.2).

Registered in ``search.objectives.COSTS`` when this module is imported (the search imports it on demand
when ``--objective latency`` is asked for, so that neither package imports the other eagerly). The factory reads
``options["latency_table"]``: a table path or a shipped table's name, or ``local`` for this
computer's CPU, whose table is built and calibrated on first use and cached (``host.py``). The cost
of a population is one vectorised ``LatencyPredictor.predict`` call, in ms, on the deployment network
the search counts costs on (the ImageNet mobile network by default, as in the paper's Table 2).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import UserInputError
from ..space.genotype import Genotype
from ..space.networks import NetworkConfig
from .predictor import LatencyPredictor, network_id

__all__ = ["LatencyCost", "latency_cost", "register_latency_cost", "LOCAL_TABLE"]

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


def latency_cost(*, network: NetworkConfig, options: Mapping[str, Any]) -> LatencyCost:
    """The ``COSTS`` factory: a ``LatencyCost`` for ``network`` from ``options["latency_table"]``."""
    spec = options.get("latency_table")
    if not spec:
        raise UserInputError(
            "the latency objective needs a latency table: pass --latency-table TABLE (made by cars-profile; shipped: "
            "host-cpu-imagenet-ort1), or --latency-table local to time this computer's CPU on first use"
        )
    if str(spec) == LOCAL_TABLE:
        from .host import ensure_host_table

        spec = ensure_host_table(network)
    predictor = LatencyPredictor.load(spec, network=network)
    if not predictor.calibrated:
        _log.info(
            "latency table %s has no calibration for %s: the latency objective is the raw block sum (ranks are "
            "right, absolute values run high; calibrate with cars-profile --calibrate 60)", spec, network_id(network),
        )
    return LatencyCost(predictor)


def register_latency_cost() -> None:
    """Adds ``latency`` to the search's cost registry (once)."""
    from ..search.objectives import COSTS

    if "latency" not in COSTS:
        COSTS.add("latency", latency_cost)


register_latency_cost()
