"""The +-90% band of a calibrated prediction: cross-validated residuals widened by the drift reference's noise."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from cars_deploy.latency.calibration import Calibration
from cars_deploy.latency.reference_state import reference_noise_pct
from cars_deploy.profilers.protocol import ProtocolConfig


def _calibration(details: dict) -> Calibration:
    return Calibration(model="linear", groups=(("sep_conv_3x3",),), coef=(1.0,), intercept=0.0, network={},
                       table_fingerprint="f", details=details)


def test_the_band_is_the_residual_quantile_widened_by_the_reference_noise():
    plain = _calibration({"residual_quantiles_pct": {"90": 2.0}})
    assert plain.uncertainty_pct(90) == pytest.approx(2.0)  # no reference noise recorded: the residuals alone
    noisy = _calibration({"residual_quantiles_pct": {"90": 2.0}, "reference_noise_pct": 0.5})
    assert noisy.uncertainty_pct(90) == pytest.approx(math.hypot(2.0, 1.6448536 * 0.5), rel=1e-6)
    assert _calibration({}).uncertainty_pct(90) is None


def test_reference_noise_is_the_bootstrap_error_of_the_runs_statistic():
    rng = np.random.default_rng(0)
    trimmed = ProtocolConfig(statistic="trimmed_mean")
    tight = {"per_round_ms": (10 + rng.normal(0, 0.05, 40)).tolist()}
    loose = {"per_round_ms": (10 + rng.normal(0, 0.5, 40)).tolist()}
    small, large = reference_noise_pct(tight, trimmed), reference_noise_pct(loose, trimmed)
    # The standard error of a mean of 40 rounds of sd 0.5 ms around 10 ms is about 0.8%.
    assert 0.5 < large < 1.1 and small < large / 5
    assert reference_noise_pct(loose, trimmed) == large  # seeded
    assert reference_noise_pct(loose, dataclasses.replace(trimmed, statistic="percentile")) != large
    assert reference_noise_pct(None, trimmed) is None and reference_noise_pct({"per_round_ms": [1.0]}, trimmed) is None
