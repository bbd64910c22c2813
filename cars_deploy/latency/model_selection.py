"""Choosing the calibration model by k-fold cross-validation on the calibration networks.

``model="auto"`` (the default of ``cars-profile --calibrate`` and of the first-use host table) fits
every candidate - "linear", "grouped", and "composition" at a small grid of ridge penalties (see
``calibration.py``) - on k-1 folds of the fit networks and predicts the k-th, so that every fit
network gets an out-of-fold prediction from each candidate. The candidate with the lowest
cross-validated MAPE wins, except that a simpler one within ``TIE_TOLERANCE`` of it is preferred
(fewer parameters generalise better to networks nobody measured; the order of ``candidates()`` is
the order of simplicity). The chosen model's out-of-fold relative residuals give the quantiles the
predictor reports as its uncertainty: they are errors on networks the fit did not see, which
in-sample residuals would understate.

scikit-learn's ``KFold`` makes the folds; the fit itself is ``calibration.solve`` (a relative-error
least squares with an optional ridge, which scikit-learn's estimators do not offer in that form).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from sklearn.model_selection import KFold

from .calibration import CALIBRATION_MODELS, ModelSpec, min_networks, solve

__all__ = ["Candidate", "Selection", "candidates", "cross_validate", "select_model", "TIE_TOLERANCE",
           "RIDGE_GRID", "QUANTILES"]

#: A simpler candidate wins when its CV MAPE is within this factor of the best one's (plus 0.02 points).
TIE_TOLERANCE = 1.05
#: Ridge penalties tried for "composition", strongest (simplest) first.
RIDGE_GRID = (1.0, 0.1, 0.01)
#: Quantile levels (%) of the absolute out-of-fold residuals stored with the calibration.
QUANTILES = (50, 90, 95)


@dataclass(frozen=True)
class Candidate:
    """One model tried by the selection."""

    model: str  # a CALIBRATION_MODELS name
    spec: ModelSpec  # its regressors and ridge

    @property
    def label(self) -> str:
        return f"{self.model}(ridge={self.spec.ridge:g})" if self.spec.edge_counts else self.model


@dataclass(frozen=True)
class Selection:
    """The outcome of a selection: the winner, every candidate's CV MAPE and the winner's residuals."""

    chosen: Candidate  # the selected model and ridge
    cv_mape_pct: dict[str, float]  # candidate label -> cross-validated MAPE (%), NaN when it could not run
    folds: int  # k
    residuals_pct: np.ndarray  # (N,) the chosen candidate's out-of-fold relative errors (%)

    def quantiles_pct(self) -> dict[str, float]:
        """``{"50": q50, "90": q90, "95": q95}`` of the absolute out-of-fold residuals (%)."""
        absolute = np.abs(self.residuals_pct[np.isfinite(self.residuals_pct)])
        if absolute.size == 0:
            return {}
        return {str(q): float(np.percentile(absolute, q)) for q in QUANTILES}

    def as_dict(self) -> dict[str, Any]:
        return {"chosen": self.chosen.label, "folds": self.folds,
                "cv_mape_pct": {k: (None if not np.isfinite(v) else v) for k, v in self.cv_mape_pct.items()}}


def candidates(models: tuple[str, ...] = tuple(CALIBRATION_MODELS)) -> list[Candidate]:
    """The candidates for ``models``, simplest first ("composition" once per ``RIDGE_GRID`` entry)."""
    out = []
    for name in models:
        spec = CALIBRATION_MODELS[name]
        ridges = RIDGE_GRID if spec.edge_counts else (spec.ridge,)
        out.extend(Candidate(name, ModelSpec(spec.groups, spec.edge_counts, r)) for r in ridges)
    return out


def cross_validate(features: np.ndarray, measured: np.ndarray, spec: ModelSpec, *, folds: int, seed: int = 0) -> np.ndarray:
    """(N,) out-of-fold relative errors (%) of ``spec`` under seeded ``folds``-fold CV; all NaN when a
    training fold is too small for the model."""
    n = len(measured)
    errors = np.full(n, np.nan)
    splits = list(KFold(n_splits=folds, shuffle=True, random_state=seed).split(features))
    if any(len(train) < min_networks(spec) for train, _ in splits):
        return errors
    for train, test in splits:
        coef, intercept = solve(features[train], measured[train], spec)
        errors[test] = (features[test] @ coef + intercept - measured[test]) / measured[test] * 100.0
    return errors


def select_model(
    features_by_model: Mapping[str, np.ndarray], measured: np.ndarray, *, folds: int = 5, seed: int = 0
) -> Selection:
    """The candidate of the models in ``features_by_model`` (name -> (N, F) features of the fit networks)
    with the lowest k-fold MAPE on ``measured``, a simpler one winning within ``TIE_TOLERANCE``; with
    fewer networks than ``folds``, leave-one-out. "linear" is kept when nothing else can be validated."""
    measured = np.asarray(measured, dtype=np.float64)
    k = max(2, min(folds, len(measured)))
    tried = candidates(tuple(name for name in CALIBRATION_MODELS if name in features_by_model))
    residuals = {c.label: cross_validate(np.asarray(features_by_model[c.model], dtype=np.float64), measured, c.spec,
                                         folds=k, seed=seed) for c in tried}
    scores = {label: float(np.abs(r).mean()) for label, r in residuals.items()}
    valid = [c for c in tried if np.isfinite(scores[c.label])]
    if not valid:
        fallback = tried[0]
        return Selection(fallback, scores, k, residuals[fallback.label])
    best = min(scores[c.label] for c in valid)
    chosen = next(c for c in valid if scores[c.label] <= best * TIE_TOLERANCE + 0.02)
    return Selection(chosen, scores, k, residuals[chosen.label])
