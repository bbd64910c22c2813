"""Fitting the calibration on the fit networks and scoring it on the held-out ones.

Steps 4 and 5 of ``validation.calibrate_table``: the calibration model is chosen (``model="auto"``:
leave-one-out on the fit networks only) and fitted on the fit networks; the block sum, the
calibrated prediction and, with a second timing pass, the repeat measurement (the noise ceiling)
are then scored against the first pass on the held-out networks alone (``metrics.agreement``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from ..space.genotype import Genotype
from ..space.networks import NetworkConfig
from .calibration import CALIBRATION_MODELS, Calibration, choose_model, fit_calibration
from .metrics import agreement
from .predictor import LatencyPredictor

__all__ = ["Scores", "fit_and_score"]


@dataclass(frozen=True)
class Scores:
    """The fitted calibration, what it predicts and how well, for every network of one run."""

    calibration: Calibration  # fitted on the fit networks only
    model_selection: dict[str, Any]  # leave-one-out MAPE per model (model="auto"), the model chosen and asked
    block_sum: np.ndarray  # (N,) raw block sum (ms) of every network
    predicted: np.ndarray  # (N,) calibrated prediction (ms) of every network
    validation: dict[str, dict[str, Any]]  # held-out agreement with the first pass (Agreement.as_dict())
    by_source: dict[str, dict[str, Any]]  # held-out agreement of the random and of the published networks
    fit: dict[str, Any]  # agreement on the fit networks


def fit_and_score(
    predictor: LatencyPredictor,
    genotypes: Sequence[Genotype],
    measured: np.ndarray,
    repeat: np.ndarray | None,
    *,
    fit: np.ndarray,
    published: np.ndarray,
    model: str,
    network: NetworkConfig,
) -> Scores:
    """Fits a ``model`` calibration (or the one ``auto`` chooses) of the uncalibrated ``predictor`` on
    the ``fit`` rows of ``measured`` and scores every other row; ``published`` marks the published
    genotypes, ``repeat`` is the second pass (None when timed once)."""
    features = {name: predictor.features(genotypes, groups) for name, groups in CALIBRATION_MODELS.items()}
    if model == "auto":
        chosen, loo = choose_model({name: f[fit] for name, f in features.items()}, measured[fit])
    else:
        chosen, loo = model, {}
    calibration = fit_calibration(features[chosen][fit], measured[fit], model=chosen, network=asdict(network),
                                  table_fingerprint=predictor.fingerprint)
    predicted = calibration.apply(features[chosen])
    block_sum = features["linear"][:, 0]
    held = ~fit
    validation = {
        "calibrated": agreement(predicted[held], measured[held]).as_dict(),
        "block_sum": agreement(block_sum[held], measured[held]).as_dict(),
    }
    if repeat is not None:
        validation["repeat"] = agreement(repeat[held], measured[held]).as_dict()
        validation["calibrated_vs_repeat"] = agreement(predicted[held], repeat[held]).as_dict()
    return Scores(
        calibration=calibration,
        model_selection={f"{name}_loo_mape_pct": value for name, value in loo.items()} | {"chosen": chosen, "asked": model},
        block_sum=block_sum,
        predicted=predicted,
        validation=validation,
        by_source={
            "random": agreement(predicted[held & ~published], measured[held & ~published]).as_dict(),
            "published": agreement(predicted[published], measured[published]).as_dict(),
        },
        fit=agreement(predicted[fit], measured[fit]).as_dict(),
    )
