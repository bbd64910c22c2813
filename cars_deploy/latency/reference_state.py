"""The machine state a latency table's figures are expressed in, named by a drift reference latency.

A table's block rows are in the state it was built in, measured by the reference block
(``profilers/protocol.py``, step 5). Its calibrated predictions for one network are in the state the
calibration's whole networks were measured in, measured by a whole reference network
(``networks.REFERENCE_GENOTYPE``; ``validation._measure_passes``). A later timing that is to be compared
with either (``--verify-on``, ``cars-profile --model --reference-table``) times the same reference and
is scaled into that state, with the statistic that state was measured with.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..profilers.protocol import ProtocolConfig, round_statistic
from ..profilers.table import LatencyTable
from ..space.networks import NetworkConfig
from .networks import REFERENCE_GENOTYPE
from .predictor import LatencyPredictor

__all__ = ["PredictionReference", "prediction_reference", "table_reference_ms", "reference_noise_pct"]

#: Bootstrap resamples behind ``reference_noise_pct``.
_RESAMPLES = 1000


def table_reference_ms(table: LatencyTable) -> float | None:
    """The drift reference latency (ms) of the state ``table`` was built in (None: a table built before
    the reference existed; timings are then expressed in their own run's state)."""
    value = (table.meta.get("reference") or {}).get("base_ms")
    return None if value is None else float(value)


@dataclass(frozen=True)
class PredictionReference:
    """The machine state a table's predictions for one network describe: a drift reference latency and
    whether that reference is the whole ``REFERENCE_GENOTYPE`` network (else the reference block)."""

    ms: float | None  # None: a table made before references existed (timings stay in their own state)
    network: bool
    statistic: str = "percentile"  # how the reference's rounds became ``ms`` (a later timing must use the same)


def prediction_reference(table: LatencyTable, network: NetworkConfig) -> PredictionReference:
    """The state ``table``'s predictions for ``network`` describe: the one its calibration for that network
    was measured in, with the whole reference network (see ``_measure_passes``), else, for raw block sums
    (no calibration, or one fitted on other rows, which the predictor ignores too) or a calibration made
    before it was recorded, the table's own, with the reference block."""
    calibration = LatencyPredictor(table, network=network).calibration  # None when missing or fitted on other rows
    details = calibration.details if calibration is not None else {}
    if details.get("reference_ms") is not None and details.get("reference_model") == REFERENCE_GENOTYPE:
        statistic = (details.get("protocol") or {}).get("statistic", "percentile")  # older calibrations: p20
        return PredictionReference(float(details["reference_ms"]), network=True, statistic=str(statistic))
    return PredictionReference(table_reference_ms(table), network=False)


def reference_noise_pct(reference: Mapping[str, Any] | None, protocol: ProtocolConfig, *, seed: int = 0) -> float | None:
    """The relative standard error (%) of a timing run's reference latency, from its per-round samples
    (``Reference.as_dict()["per_round_ms"]``), by a seeded bootstrap of the rounds with the run's statistic:
    the error every result of the run shares through the drift correction (None without a reference)."""
    rounds = np.asarray((reference or {}).get("per_round_ms") or [], dtype=np.float64)
    if rounds.size < 2:
        return None
    rng = np.random.default_rng([seed, 0x5E])
    resampled = rng.choice(rounds, size=(_RESAMPLES, rounds.size), replace=True)
    values = np.array([round_statistic(row, protocol.statistic, protocol.percentile) for row in resampled])
    return float(values.std(ddof=1) / round_statistic(rounds, protocol.statistic, protocol.percentile) * 100)
