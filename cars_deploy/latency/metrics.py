"""How well one set of latencies agrees with another: the figures the latency issue is judged by.

The same function scores a prediction against a measurement and a second measurement against the
first (the noise ceiling: no predictor can agree with a measurement better than the measurement
agrees with itself when repeated). nn-Meter, the anchor, reports the share of models within +-10%;
the search cares about ranks, so Kendall's tau is reported too (``scipy.stats.kendalltau``, tau-b).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from scipy.stats import kendalltau

__all__ = ["Agreement", "agreement", "relative_errors"]


@dataclass(frozen=True)
class Agreement:
    """Agreement of ``predicted`` with ``reference`` over ``n`` networks (errors relative to the reference)."""

    n: int  # networks compared
    mape_pct: float  # mean absolute percentage error
    bias_pct: float  # mean signed percentage error (positive: predicted too slow)
    max_abs_pct: float  # worst absolute percentage error
    within_5: float  # share (0..1) of networks within +-5%
    within_10: float  # share (0..1) within +-10%
    kendall_tau: float  # rank agreement (tau-b); NaN with fewer than 2 networks
    rmse_ms: float  # root mean squared error in ms

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def relative_errors(predicted: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray) -> np.ndarray:
    """``(predicted - reference) / reference`` in percent."""
    predicted = np.asarray(predicted, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    return (predicted - reference) / reference * 100.0


def agreement(predicted: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray) -> Agreement:
    """The ``Agreement`` of two equally long latency vectors (ms); the reference must be positive."""
    predicted = np.asarray(predicted, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if predicted.shape != reference.shape or predicted.ndim != 1:
        raise ValueError(f"cannot compare latencies of shapes {predicted.shape} and {reference.shape}")
    n = int(reference.size)
    if n == 0:
        nan = float("nan")
        return Agreement(0, nan, nan, nan, nan, nan, nan, nan)
    if not (reference > 0).all():
        raise ValueError("reference latencies must be positive")
    errors = relative_errors(predicted, reference)
    absolute = np.abs(errors)
    tau = float(kendalltau(predicted, reference).statistic) if n >= 2 else float("nan")
    return Agreement(
        n=n,
        mape_pct=float(absolute.mean()),
        bias_pct=float(errors.mean()),
        max_abs_pct=float(absolute.max()),
        within_5=float((absolute <= 5.0).mean()),
        within_10=float((absolute <= 10.0).mean()),
        kendall_tau=tau,
        rmse_ms=float(np.sqrt(np.mean((predicted - reference) ** 2))),
    )
