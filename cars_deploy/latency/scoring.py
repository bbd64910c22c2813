"""Fitting the calibration on the fit networks and scoring it on the held-out ones.

Steps 4 and 5 of ``validation.calibrate_table``: the calibration model is chosen (``model="auto"``:
k-fold cross-validation on the fit networks only, ``model_selection.py``) and fitted on the fit
networks, its out-of-fold residual quantiles recorded as its uncertainty; the block sum, the
calibrated prediction and, with a second timing pass, the repeat measurement (the noise ceiling)
are then scored against the first pass on the held-out networks alone (``metrics.agreement``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from ..space.genotype import Genotype
from ..space.networks import NetworkConfig
from .calibration import CALIBRATION_MODELS, Calibration, fit_calibration
from .metrics import agreement
from .model_selection import select_model
from .predictor import LatencyPredictor

__all__ = ["Scores", "fit_and_score"]


@dataclass(frozen=True)
class Scores:
    """The fitted calibration, what it predicts and how well, for every network of one run."""

    calibration: Calibration  # fitted on the fit networks only
    model_selection: dict[str, Any]  # CV MAPE per candidate, the model chosen and asked, residual quantiles
    block_sum: np.ndarray  # (N,) raw block sum (ms) of every network
    predicted: np.ndarray  # (N,) calibrated prediction (ms) of every network
    validation: dict[str, dict[str, Any]]  # held-out agreement with the first pass (Agreement.as_dict())
    by_source: dict[str, dict[str, Any]]  # held-out agreement of the random and of the published networks
    fit: dict[str, Any]  # agreement on the fit networks
    residual_quantiles_pct: dict[str, float]  # quantiles (50/90/95) of the chosen model's absolute CV residuals (%)


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
    seed: int = 0,
) -> Scores:
    """Fits a ``model`` calibration (or the one ``auto`` chooses) of the uncalibrated ``predictor`` on
    the ``fit`` rows of ``measured`` and scores every other row; ``published`` marks the published
    genotypes, ``repeat`` is the second pass (None when timed once); ``seed`` seeds the CV folds."""
    asked = tuple(CALIBRATION_MODELS) if model == "auto" else (model,)
    features = {name: predictor.model_features(genotypes, CALIBRATION_MODELS[name]) for name in {*asked, "linear"}}
    selection = select_model({name: features[name][fit] for name in asked}, measured[fit], seed=seed)
    chosen = selection.chosen
    calibration = fit_calibration(features[chosen.model][fit], measured[fit], model=chosen.model, network=asdict(network),
                                  table_fingerprint=predictor.fingerprint, ridge=chosen.spec.ridge)
    predicted = calibration.apply(features[chosen.model])
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
        model_selection=selection.as_dict() | {"asked": model},
        residual_quantiles_pct=selection.quantiles_pct(),
        block_sum=block_sum,
        predicted=predicted,
        validation=validation,
        by_source={
            "random": agreement(predicted[held & ~published], measured[held & ~published]).as_dict(),
            "published": agreement(predicted[published], measured[published]).as_dict(),
        },
        fit=agreement(predicted[fit], measured[fit]).as_dict(),
    )
