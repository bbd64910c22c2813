"""The latency predictor: a latency table's block sum, calibrated on whole networks, validated on others.

- ``predictor``: ``LatencyPredictor`` (vectorised over genotype encodings) for a table and a network;
- ``calibration``: the corrections (linear, per-op-family, composition residual) fitted on measured whole
  networks; ``model_selection``: the choice among them by k-fold cross-validation;
- ``networks`` / ``baselines``: the whole networks to time (random, published, torchvision baselines);
- ``validation``: ``calibrate_table``, what ``cars-profile --calibrate N`` runs; ``scoring``: its fit on
  some networks and scores on the others; ``metrics``: MAPE, share within +-5/10%, Kendall's tau and the
  targets; ``report``: CSV + JSON + scatter PNG;
- ``objective``: the search's ``latency`` cost, which ``search_run`` builds and hands to the search
  (``CarsSearch(costs=...)``: the search never imports this package); ``host``: this computer's table
  on first use; ``verify``: timing Pareto models end to end.
"""
from .calibration import CALIBRATION_MODELS, Calibration, fit_calibration
from .metrics import Agreement, agreement
from .predictor import LatencyPredictor, encode_genotypes, network_id
from .validation import ValidationConfig, ValidationResult, calibrate_table, whole_network_protocol

__all__ = [
    "Agreement",
    "CALIBRATION_MODELS",
    "Calibration",
    "LatencyPredictor",
    "ValidationConfig",
    "ValidationResult",
    "agreement",
    "calibrate_table",
    "encode_genotypes",
    "fit_calibration",
    "network_id",
    "whole_network_protocol",
]
