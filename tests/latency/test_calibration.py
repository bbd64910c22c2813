"""Calibration fits on synthetic data with a known answer, model choice, and its sidecar storage."""
from __future__ import annotations

import numpy as np
import pytest

from cars_deploy.errors import UserInputError
from cars_deploy.latency.calibration import (
    CALIBRATION_MODELS,
    Calibration,
    fit_calibration,
    read_calibration,
    write_calibration,
)
from cars_deploy.latency.metrics import agreement
from cars_deploy.latency.model_selection import select_model
from cars_deploy.profilers.table import TableError

NET = {"kind": "imagenet", "C": 48}


def _fit(features, measured, model="linear"):
    return fit_calibration(np.asarray(features), np.asarray(measured), model=model, network=NET, table_fingerprint="f")


def test_linear_fit_recovers_a_known_relation_exactly(rng):
    block_sum = rng.uniform(3.0, 7.0, size=30)
    measured = 0.83 * block_sum - 0.21  # block sum ~20% high, partly an offset: the prototype's finding
    calibration = _fit(block_sum[:, None], measured)
    assert calibration.coef == pytest.approx((0.83,), rel=1e-10) and calibration.intercept == pytest.approx(-0.21, abs=1e-10)
    assert calibration.fitted_on == 30 and calibration.groups == CALIBRATION_MODELS["linear"].groups
    np.testing.assert_allclose(calibration.apply(block_sum[:, None]), measured, rtol=1e-10)


def test_linear_fit_under_measurement_noise_generalises(rng):
    block_sum = rng.uniform(3.0, 7.0, size=80)
    truth = 0.8 * block_sum + 0.4
    measured = truth * (1 + rng.normal(0, 0.01, size=80))
    calibration = _fit(block_sum[:20, None], measured[:20])
    assert calibration.coef[0] == pytest.approx(0.8, rel=0.05)
    held = agreement(calibration.apply(block_sum[20:, None]), measured[20:])
    raw = agreement(block_sum[20:], measured[20:])
    assert held.mape_pct < 2.0 and held.within_5 == 1.0 and raw.mape_pct > 10.0
    assert held.kendall_tau == pytest.approx(raw.kendall_tau)  # a positive-slope calibration keeps the ranks


def test_the_fit_minimises_relative_not_absolute_error():
    # Two fast networks and one slow outlier: a relative fit keeps the fast ones right.
    features = np.array([[1.0], [1.1], [10.0], [1.2]])
    measured = np.array([1.0, 1.1, 12.0, 1.2])
    calibration = _fit(features, measured)
    relative = np.abs(calibration.apply(features) - measured) / measured
    design = np.column_stack([features[:, 0], np.ones(4)])
    ordinary = np.linalg.lstsq(design, measured, rcond=None)[0]
    ordinary_relative = np.abs(design @ ordinary - measured) / measured
    # The relative fit is the optimum of the squared relative errors (what MAPE-like targets weigh) ...
    assert (relative**2).sum() < (ordinary_relative**2).sum()
    # ... and perturbing it makes that sum worse.
    for da, db in [(0.01, 0.0), (-0.01, 0.0), (0.0, 0.01), (0.0, -0.01)]:
        moved = (calibration.coef[0] + da) * features[:, 0] + calibration.intercept + db
        assert (relative**2).sum() < (((moved - measured) / measured) ** 2).sum()


def test_grouped_model_recovers_per_family_slopes_and_is_chosen_only_when_it_pays(rng):
    features = rng.uniform(0.2, 2.0, size=(40, 4))
    slopes = np.array([0.9, 0.2, 1.6, 0.05])
    grouped_truth = features @ slopes + 2.0
    calibration = _fit(features, grouped_truth, "grouped")
    np.testing.assert_allclose(calibration.coef, slopes, rtol=1e-8)
    assert calibration.intercept == pytest.approx(2.0)
    total = features.sum(axis=1, keepdims=True)
    selection = select_model({"linear": total, "grouped": features}, grouped_truth)
    assert selection.chosen.model == "grouped" and selection.cv_mape_pct["grouped"] < 1e-6 < selection.cv_mape_pct["linear"]
    # When the total explains everything (up to noise), the extra parameters are not worth it.
    linear_truth = (0.9 * total[:, 0] + 2.0) * (1 + rng.normal(0, 0.002, size=40))
    assert select_model({"linear": total, "grouped": features}, linear_truth).chosen.model == "linear"
    # Too few fit networks for five parameters in every training fold: linear, whatever the scores.
    assert select_model({"linear": total[:5], "grouped": features[:5]}, grouped_truth[:5]).chosen.model == "linear"


def test_bad_fit_data_is_refused():
    with pytest.raises(UserInputError, match="at least 2"):
        _fit([[1.0]], [1.0])
    with pytest.raises(UserInputError, match="positive"):
        _fit([[1.0], [2.0], [3.0]], [1.0, 0.0, 2.0])
    with pytest.raises(UserInputError, match="unknown calibration model"):
        _fit([[1.0], [2.0], [3.0]], [1.0, 2.0, 3.0], "cubic")


def test_sidecar_storage_round_trips_and_rejects_damage():
    calibration = _fit([[1.0], [2.0], [3.0]], [1.5, 2.4, 3.3])
    meta: dict = {"calibration": None}  # what profilers.builder writes before any calibration
    assert read_calibration(meta, "net") is None
    write_calibration(meta, "net", calibration)
    write_calibration(meta, "other", calibration)
    assert read_calibration(meta, "net") == calibration and set(meta["calibration"]) == {"net", "other"}
    assert Calibration.from_dict(calibration.to_dict()) == calibration
    damaged = dict(meta["calibration"]["net"], coef="fast")
    with pytest.raises(TableError, match="recalibrate"):
        read_calibration({"calibration": {"net": damaged}}, "net")
    with pytest.raises(TableError, match="inconsistent"):
        read_calibration({"calibration": {"net": dict(meta["calibration"]["net"], coef=[1.0, 2.0])}}, "net")
    with pytest.raises(TableError):
        read_calibration({"calibration": ["not", "a", "mapping"]}, "net")
