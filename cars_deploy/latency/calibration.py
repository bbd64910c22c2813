"""The calibration that turns a block sum into a whole network's latency, fitted on measured networks.

A network timed whole on a device is not exactly the sum of its blocks timed alone: the runtime's
per-call cost is paid once instead of once per block (the table subtracts it per block, see
``profilers/protocol.py``), layouts are converted at block borders only when blocks run alone (ONNX
Runtime's NCHWc kernels keep the whole graph blocked), ReLU and Add fuse across block borders, and
caches hold what the previous block wrote. Three models of increasing freedom express that:

    measured ~= a * block_sum + b                                              (model "linear")
    measured ~= b + sum_g a_g * block_sum_g                                    (model "grouped")
    measured ~= a * block_sum + b + sum_{cell, op} w_{cell,op} * n_{cell,op}   (model "composition")

"grouped" has one slope per family of ops (depthwise-separable convolutions, pooling, skip
connections, ``none``); "composition" adds a learned ms per edge of each op in each cell kind (normal,
reduction), a ridge-penalised residual on the network's block composition: what an op costs inside a
whole graph beyond its block's row (fusion with its neighbours, a layout conversion it avoids or
forces). Like nn-Meter's kernel-level and LitePred's per-op corrections, but fitted on the
calibration networks alone, in seconds. Every feature is a per-edge sum, so each model stays one
gather over the genotypes' encodings (``predictor.py``).

Each is fitted by least squares on the *relative* error, ``sum_i ((pred_i - y_i) / y_i)^2``, since
the targets (MAPE, share within +-5/10%) are relative. ``model="auto"`` chooses among them by k-fold
cross-validation on the fit networks only (``model_selection.py``); the held-out networks judge the
result and never the choice.

A calibration belongs to one network size and one set of table rows (``table_fingerprint``); it is
stored in the table's sidecar under ``calibration[<network id>]``, with its selection scores and the
quantiles of its cross-validated residuals (the uncertainty printed beside every prediction).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..errors import UserInputError
from ..profilers.blocks import BLOCK_KINDS
from ..profilers.table import TableError
from ..space.primitives import PRIMITIVES

__all__ = [
    "Calibration",
    "CALIBRATION_MODELS",
    "EDGE_COUNT_FEATURES",
    "ModelSpec",
    "fit_calibration",
    "check_data",
    "min_networks",
    "solve",
    "read_calibration",
    "write_calibration",
]

#: Per-edge count features of "composition": one per (cell kind, op), normal cells first.
EDGE_COUNT_FEATURES = 2 * len(PRIMITIVES)


@dataclass(frozen=True)
class ModelSpec:
    """The regressors of one calibration model."""

    groups: tuple[tuple[str, ...], ...]  # block kinds whose table rows are summed into each feature
    edge_counts: bool = False  # also one count of edges per (cell kind, op): EDGE_COUNT_FEATURES more
    ridge: float = 0.0  # penalty on the edge-count coefficients (relative to the mean latency; 0: none)

    @property
    def n_features(self) -> int:
        return len(self.groups) + (EDGE_COUNT_FEATURES if self.edge_counts else 0)


_ALL = (tuple(BLOCK_KINDS),)

#: Model name -> its regressors (the ridge of "composition" is the default; selection tries a grid).
CALIBRATION_MODELS: dict[str, ModelSpec] = {
    "linear": ModelSpec(_ALL),
    "grouped": ModelSpec((
        ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"),
        ("max_pool_3x3", "avg_pool_3x3"),
        ("skip_connect",),
        ("none",),
    )),
    "composition": ModelSpec(_ALL, edge_counts=True, ridge=0.1),
}


@dataclass(frozen=True)
class Calibration:
    """``predicted = features @ coef + intercept`` for one network size and one table's rows."""

    model: str  # "linear", "grouped" or "composition" (see CALIBRATION_MODELS)
    groups: tuple[tuple[str, ...], ...]  # block kinds whose table rows are summed into each feature
    coef: tuple[float, ...]  # one slope per feature (groups, then the edge counts when edge_counts)
    intercept: float  # ms added to every network (the constant offset)
    network: dict[str, Any]  # the NetworkConfig (as a dict) it was fitted for
    table_fingerprint: str  # hash of the table rows it was fitted on (predictor.table_fingerprint)
    fitted_on: int = 0  # number of networks behind the fit
    edge_counts: bool = False  # features include the per-(cell kind, op) edge counts
    ridge: float = 0.0  # the ridge penalty it was fitted with
    details: dict[str, Any] = field(default_factory=dict, compare=False)  # fit/validation figures for the sidecar

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(self.groups, self.edge_counts, self.ridge)

    def apply(self, features: np.ndarray) -> np.ndarray:
        """(N,) calibrated latency for (N, F) features (``LatencyPredictor.model_features``)."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != len(self.coef):
            raise ValueError(f"calibration {self.model} takes {len(self.coef)} features, got shape {features.shape}")
        return features @ np.asarray(self.coef) + self.intercept

    def residual_quantile_pct(self, level: int = 90) -> float | None:
        """The ``level``% quantile of the absolute cross-validated relative residuals (%), if recorded."""
        value = (self.details.get("residual_quantiles_pct") or {}).get(str(level))
        return None if value is None else float(value)

    def uncertainty_pct(self, level: int = 90) -> float | None:
        """+-% holding ``level``% of later measurements around a prediction: the cross-validated residual
        quantile widened by the drift reference's own noise. The residuals all share one measurement of
        the reference, so they cannot show its error, yet a verification made later carries it (the
        calibration's reference and its own) as a shift common to every model: ``sqrt(q^2 + (z * se)^2)``,
        ``se`` the bootstrap standard error of the calibration's reference latency (``reference_noise_pct``)
        and ``z`` the two-sided normal quantile of ``level``. One ``se``, not the sqrt(2) of two
        independent runs: the bootstrap over rounds also counts the slow and fast rounds every model
        shares, which cancel in the correction, and on 24 networks timed twice
        (``benchmarks/bench_network_timing.py``) one ``se`` matched the spread of the shift between two
        passes (1.01% against 1.01% at 10 rounds, 0.81% against 0.63% at 20)."""
        quantile = self.residual_quantile_pct(level)
        noise = self.details.get("reference_noise_pct")
        if quantile is None or noise is None:
            return quantile
        from scipy.stats import norm

        z = float(norm.ppf(0.5 + level / 200.0))
        return float(math.hypot(quantile, z * float(noise)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "groups": [list(g) for g in self.groups],
            "coef": [float(c) for c in self.coef],
            "intercept": float(self.intercept),
            "edge_counts": bool(self.edge_counts),
            "ridge": float(self.ridge),
            "network": dict(self.network),
            "table_fingerprint": self.table_fingerprint,
            "fitted_on": int(self.fitted_on),
            **self.details,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Calibration":
        """Inverse of ``to_dict``; ``TableError`` for a malformed entry (a hand-edited sidecar)."""
        try:
            groups = tuple(tuple(str(k) for k in g) for g in data["groups"])
            coef = tuple(float(c) for c in data["coef"])
            calibration = cls(
                model=str(data["model"]), groups=groups, coef=coef, intercept=float(data["intercept"]),
                network=dict(data["network"]), table_fingerprint=str(data["table_fingerprint"]),
                fitted_on=int(data.get("fitted_on", 0)), edge_counts=bool(data.get("edge_counts", False)),
                ridge=float(data.get("ridge", 0.0)),
                details={k: v for k, v in data.items() if k not in _FIELDS},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TableError(f"the sidecar's calibration entry is malformed ({type(exc).__name__}: {exc}); "
                             "recalibrate with cars-profile --calibrate") from None
        if (not groups or calibration.spec.n_features != len(coef)
                or not all(np.isfinite(coef + (calibration.intercept,)))):
            raise TableError("the sidecar's calibration entry is inconsistent; recalibrate with cars-profile --calibrate")
        return calibration


_FIELDS = {"model", "groups", "coef", "intercept", "network", "table_fingerprint", "fitted_on", "edge_counts", "ridge"}


def solve(features: np.ndarray, measured: np.ndarray, spec: ModelSpec) -> tuple[np.ndarray, float]:
    """Least squares on relative errors: rows ``[features_i, 1] / y_i`` against 1, plus, for a ridge,
    rows ``sqrt(ridge * n) / mean(y)`` on each edge-count coefficient against 0 (a penalty in units of
    the networks' mean latency, so one ``ridge`` suits any device)."""
    n = len(measured)
    design = np.column_stack([features, np.ones(n)]) / measured[:, None]
    target = np.ones(n)
    if spec.edge_counts and spec.ridge > 0:
        penalised = np.arange(len(spec.groups), spec.n_features)
        rows = np.zeros((len(penalised), design.shape[1]))
        rows[np.arange(len(penalised)), penalised] = np.sqrt(spec.ridge * n) / float(measured.mean())
        design, target = np.vstack([design, rows]), np.concatenate([target, np.zeros(len(penalised))])
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    return solution[:-1], float(solution[-1])


def check_data(features: np.ndarray, measured: np.ndarray, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """``features`` and ``measured`` as float arrays; ``UserInputError`` when they cannot be fitted."""
    features = np.asarray(features, dtype=np.float64)
    measured = np.asarray(measured, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] != measured.shape[0] or features.shape[1] != spec.n_features:
        raise ValueError(f"features {features.shape} and measurements {measured.shape} do not match the model")
    if not (np.isfinite(measured).all() and (measured > 0).all() and np.isfinite(features).all()):
        raise UserInputError("calibration needs positive, finite measured latencies for every fit network")
    needed = min_networks(spec)
    if measured.shape[0] < needed:
        raise UserInputError(f"this calibration needs at least {needed} fit networks, got {measured.shape[0]}")
    return features, measured


def min_networks(spec: ModelSpec) -> int:
    """Fit networks a model needs: one more than its parameters, or the unpenalised ones + 2 for a ridge."""
    return len(spec.groups) + 3 if spec.edge_counts and spec.ridge > 0 else spec.n_features + 1


def fit_calibration(
    features: np.ndarray,
    measured: np.ndarray,
    *,
    model: str,
    network: Mapping[str, Any],
    table_fingerprint: str,
    ridge: float | None = None,
) -> Calibration:
    """The calibration ``model`` (with ``ridge`` instead of its default) fitted to (N, F) features and N
    measured latencies (ms)."""
    if model not in CALIBRATION_MODELS:
        raise UserInputError(f"unknown calibration model {model!r}; known: {', '.join(CALIBRATION_MODELS)}, auto")
    spec = CALIBRATION_MODELS[model]
    if ridge is not None:
        spec = ModelSpec(spec.groups, spec.edge_counts, ridge)
    features, measured = check_data(features, measured, spec)
    coef, intercept = solve(features, measured, spec)
    return Calibration(
        model=model, groups=spec.groups, coef=tuple(float(c) for c in coef), intercept=intercept,
        network=dict(network), table_fingerprint=table_fingerprint, fitted_on=int(measured.shape[0]),
        edge_counts=spec.edge_counts, ridge=spec.ridge,
    )


def read_calibration(meta: Mapping[str, Any], network_key: str) -> Calibration | None:
    """The calibration stored in a sidecar for the network ``network_key`` (None when there is none)."""
    stored = meta.get("calibration")
    if not stored:
        return None
    if not isinstance(stored, Mapping):
        raise TableError("the sidecar's calibration field is not an object keyed by network; recalibrate")
    entry = stored.get(network_key)
    return None if entry is None else Calibration.from_dict(entry)


def write_calibration(meta: dict[str, Any], network_key: str, calibration: Calibration) -> None:
    """Stores ``calibration`` in the sidecar dict ``meta`` (replacing that network's previous one)."""
    stored = meta.get("calibration")
    stored = dict(stored) if isinstance(stored, Mapping) else {}
    stored[network_key] = calibration.to_dict()
    meta["calibration"] = stored

