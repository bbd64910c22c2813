"""Agreement figures on vectors with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cars_deploy.latency.metrics import agreement, relative_errors


def test_known_errors_shares_and_ranks():
    measured = np.array([10.0, 20.0, 30.0, 40.0])
    predicted = np.array([10.4, 21.8, 33.3, 36.0])  # +4%, +9%, +11%, -10%
    np.testing.assert_allclose(relative_errors(predicted, measured), [4.0, 9.0, 11.0, -10.0])
    result = agreement(predicted, measured)
    assert result.n == 4
    assert result.mape_pct == pytest.approx(8.5) and result.bias_pct == pytest.approx(3.5)
    assert result.max_abs_pct == pytest.approx(11.0)
    assert result.within_5 == 0.25 and result.within_10 == 0.75
    assert result.kendall_tau == pytest.approx(1.0)
    assert result.rmse_ms == pytest.approx(math.sqrt((0.4**2 + 1.8**2 + 3.3**2 + 4.0**2) / 4))


def test_reversed_ranks_and_degenerate_inputs():
    assert agreement([3.0, 2.0, 1.0], [1.0, 2.0, 3.0]).kendall_tau == pytest.approx(-1.0)
    single = agreement([1.0], [1.0])
    assert single.mape_pct == 0.0 and math.isnan(single.kendall_tau) and single.as_dict()["kendall_tau"] is None
    assert agreement([], []).n == 0
    with pytest.raises(ValueError):
        agreement([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        agreement([1.0], [0.0])
