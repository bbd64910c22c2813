"""What genotypes' networks cost: parameters, mult-adds, their cells' ops and, given a latency table,
their predicted latency on the table's device. ``cars-inspect`` prints these reports.

Parameters and mult-adds are counted on the built network (``space.counting``, as the papers count
them); the latency is the ``LatencyPredictor``'s, one vectorised call for all genotypes, calibrated
when the table holds a calibration for this network.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from ..profilers.table import LatencyTable
from ..space import Genotype, NetworkConfig, build_network, count_mult_adds, count_parameters
from .predictor import LatencyPredictor

__all__ = ["genotype_report", "genotype_reports"]


def genotype_report(genotype: Genotype, config: NetworkConfig) -> dict[str, Any]:
    """Params, mult-adds and per-cell op counts of ``genotype``'s network of size ``config``."""
    network = build_network(genotype, config)
    return {
        "genotype": str(genotype),
        "network": config.kind,
        "C": config.C,
        "layers": config.layers,
        "input_size": config.input_size,
        "num_classes": config.num_classes,
        "params": count_parameters(network),
        "mult_adds": count_mult_adds(network, input_size=config.input_size, in_channels=config.in_channels),
        "normal_ops": dict(Counter(op for op, _ in genotype.normal)),
        "reduce_ops": dict(Counter(op for op, _ in genotype.reduce)),
    }


def genotype_reports(
    genotypes: Sequence[Genotype], config: NetworkConfig, *, table: LatencyTable | None = None
) -> list[dict[str, Any]]:
    """``genotype_report`` of each genotype; with ``table`` also ``latency_ms`` (the prediction),
    ``latency_block_sum_ms`` and which table, device and calibration they come from."""
    reports = [genotype_report(genotype, config) for genotype in genotypes]
    if table is None:
        return reports
    predictor = LatencyPredictor(table, network=config)
    predicted = predictor.predict(list(genotypes))
    block_sum = predictor.block_sum(list(genotypes))
    extra = {"latency_table": str(table.path), "latency_device": table.meta.get("settings", {}).get("device"),
             "latency_calibrated": predictor.calibrated}
    return [{**r, "latency_ms": float(p), "latency_block_sum_ms": float(b), **extra}
            for r, p, b in zip(reports, predicted, block_sum)]
