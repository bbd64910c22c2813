"""The calibration that turns a block sum into a whole network's latency, fitted on measured networks.

A network timed whole on a device is not exactly the sum of its blocks timed alone: the runtime's
per-call cost is paid once instead of once per block (the table subtracts it per block, see
``profilers/protocol.py``), layouts are converted at block borders only when blocks run alone (ONNX
Runtime's NCHWc kernels keep the whole graph blocked), ReLU and Add fuse across block borders, and
caches hold what the previous block wrote. A measured prototype on this project's VM found the raw
block sum about 20% high, almost all of it a constant offset. So the calibration is, by default,

    measured ~= a * block_sum + b                                              (model "linear")

and, only when cross-validation on the fit networks says it is worth its extra parameters,

    measured ~= b + sum_g a_g * block_sum_g                                    (model "grouped")

with one slope per family of ops (depthwise-separable convolutions, pooling, skip connections,
``none``), the genotype-independent blocks (stems, preprocessing, node sums, concats, head) being
the same in every network of one size and so folded into ``b``.

Both are fitted by least squares on the *relative* error, ``sum_i ((pred_i - y_i) / y_i)^2``, since
the targets (MAPE, share within +-10%) are relative: an ordinary fit would let the slowest networks
dominate. The model is chosen (``model="auto"``) by leave-one-out error on the fit networks only; the
held-out networks judge the result and never the choice.

A calibration belongs to one network size and one set of table rows (``table_fingerprint``); it is
stored in the table's sidecar under ``calibration[<network id>]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..errors import UserInputError
from ..profilers.blocks import BLOCK_KINDS
from ..profilers.table import TableError

__all__ = [
    "Calibration",
    "CALIBRATION_MODELS",
    "fit_calibration",
    "leave_one_out_mape",
    "choose_model",
    "read_calibration",
    "write_calibration",
]

#: Model name -> feature groups (block kinds summed into each regressor).
CALIBRATION_MODELS: dict[str, tuple[tuple[str, ...], ...]] = {
    "linear": (tuple(BLOCK_KINDS),),
    "grouped": (
        ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"),
        ("max_pool_3x3", "avg_pool_3x3"),
        ("skip_connect",),
        ("none",),
    ),
}

#: ``model="auto"`` keeps "linear" unless "grouped" cuts the leave-one-out MAPE by this factor.
_GROUPED_GAIN = 0.8


@dataclass(frozen=True)
class Calibration:
    """``predicted = features @ coef + intercept`` for one network size and one table's rows."""

    model: str  # "linear" or "grouped" (see CALIBRATION_MODELS)
    groups: tuple[tuple[str, ...], ...]  # block kinds whose table rows are summed into each feature
    coef: tuple[float, ...]  # one slope per feature
    intercept: float  # ms added to every network (the constant offset)
    network: dict[str, Any]  # the NetworkConfig (as a dict) it was fitted for
    table_fingerprint: str  # hash of the table rows it was fitted on (predictor.table_fingerprint)
    fitted_on: int = 0  # number of networks behind the fit
    details: dict[str, Any] = field(default_factory=dict, compare=False)  # fit/validation figures for the sidecar

    def apply(self, features: np.ndarray) -> np.ndarray:
        """(N,) calibrated latency for (N, G) group block sums."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != len(self.coef):
            raise ValueError(f"calibration {self.model} takes {len(self.coef)} features, got shape {features.shape}")
        return features @ np.asarray(self.coef) + self.intercept

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "groups": [list(g) for g in self.groups],
            "coef": [float(c) for c in self.coef],
            "intercept": float(self.intercept),
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
                fitted_on=int(data.get("fitted_on", 0)),
                details={k: v for k, v in data.items() if k not in _FIELDS},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TableError(f"the sidecar's calibration entry is malformed ({type(exc).__name__}: {exc}); "
                             "recalibrate with cars-profile --calibrate") from None
        if len(groups) != len(coef) or not groups or not all(np.isfinite(coef + (calibration.intercept,))):
            raise TableError("the sidecar's calibration entry is inconsistent; recalibrate with cars-profile --calibrate")
        return calibration


_FIELDS = {"model", "groups", "coef", "intercept", "network", "table_fingerprint", "fitted_on"}


def _solve(features: np.ndarray, measured: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares on relative errors: rows ``[features_i, 1] / y_i`` against 1."""
    design = np.column_stack([features, np.ones(len(measured))]) / measured[:, None]
    solution, *_ = np.linalg.lstsq(design, np.ones(len(measured)), rcond=None)
    return solution[:-1], float(solution[-1])


def _check_data(features: np.ndarray, measured: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    measured = np.asarray(measured, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] != measured.shape[0]:
        raise ValueError(f"features {features.shape} and measurements {measured.shape} do not match")
    if not (np.isfinite(measured).all() and (measured > 0).all() and np.isfinite(features).all()):
        raise UserInputError("calibration needs positive, finite measured latencies for every fit network")
    if measured.shape[0] < features.shape[1] + 1:
        raise UserInputError(
            f"a {features.shape[1] + 1}-parameter calibration needs at least {features.shape[1] + 1} fit networks, "
            f"got {measured.shape[0]}"
        )
    return features, measured


def fit_calibration(
    features: np.ndarray,
    measured: np.ndarray,
    *,
    model: str,
    network: Mapping[str, Any],
    table_fingerprint: str,
) -> Calibration:
    """The calibration ``model`` fitted to (N, G) group block sums and N measured latencies (ms)."""
    if model not in CALIBRATION_MODELS:
        raise UserInputError(f"unknown calibration model {model!r}; known: {', '.join(CALIBRATION_MODELS)}, auto")
    features, measured = _check_data(features, measured)
    coef, intercept = _solve(features, measured)
    return Calibration(
        model=model, groups=CALIBRATION_MODELS[model], coef=tuple(float(c) for c in coef), intercept=intercept,
        network=dict(network), table_fingerprint=table_fingerprint, fitted_on=int(measured.shape[0]),
    )


def leave_one_out_mape(features: np.ndarray, measured: np.ndarray) -> float:
    """Mean absolute percentage error of each fit network predicted by a fit on all the others."""
    features, measured = _check_data(features, measured)
    n = measured.shape[0]
    if n < features.shape[1] + 2:
        return float("nan")
    errors = np.empty(n)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        keep[i] = False
        coef, intercept = _solve(features[keep], measured[keep])
        errors[i] = abs(features[i] @ coef + intercept - measured[i]) / measured[i]
        keep[i] = True
    return float(errors.mean() * 100.0)


def choose_model(features_by_model: Mapping[str, np.ndarray], measured: np.ndarray) -> tuple[str, dict[str, float]]:
    """``"linear"`` unless ``"grouped"`` lowers the leave-one-out MAPE on the fit networks by 20% or more
    (and there are at least three fit networks per parameter); returns the choice and each model's
    leave-one-out MAPE (%)."""
    scores = {name: leave_one_out_mape(f, measured) for name, f in features_by_model.items()
              if len(measured) >= f.shape[1] + 1}
    linear = scores.get("linear", float("nan"))
    grouped = scores.get("grouped", float("nan"))
    enough = len(measured) >= 3 * (len(CALIBRATION_MODELS["grouped"]) + 1)
    if enough and np.isfinite(grouped) and np.isfinite(linear) and grouped <= _GROUPED_GAIN * linear:
        return "grouped", scores
    return "linear", scores


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

