"""``LatencyPredictor``: the latency of any genotype's network on a table's device, thousands per millisecond.

CARS-Lat (paper section 4.2) searches on "validation performance and device-aware variable, i.e.,
mobile device latency". Timing every candidate on a phone is out of the question (a search scores
tens of thousands of architectures), so the latency of a network is predicted from a latency table
(``profilers/table.py``): the sum of the table rows of the blocks the network consists of
(``profilers/blocks.genotype_blocks``), corrected by a calibration fitted on whole networks measured
on the same device (``calibration.py``; the block sum alone misses what a whole graph does
differently: one call overhead instead of one per block, layout conversions at block borders, and
ReLU/Add fusion across them).

Both the sum and the calibration are linear in per-group block sums, so a population is scored with
one gather over its integer encodings (``Genotype.encode()``): for the feature groups the block
counts (``BlockIndex.counts_table``) weighted by the table's latencies give an ``EdgeCostTable``
(``space/edge_costs.py``) of the latency one edge adds per group, and a base for the
genotype-independent blocks; a network's features are the base plus its 16 edges' entries. No
Python loop runs per genotype when encodings are given (>= 10,000 genotypes per second is the
target; ``benchmarks/bench_latency.py`` measures it).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Sequence, Union

import numpy as np

from ..errors import UserInputError
from ..profilers.blocks import BLOCK_KINDS, BlockIndex, block_index
from ..profilers.table import LatencyTable, TableError
from ..space.edge_costs import EdgeCostTable
from ..space.genotype import ENCODING_LENGTH, Genotype
from ..space.networks import NetworkConfig
from ..space.primitives import PRIMITIVES
from .calibration import EDGE_COUNT_FEATURES, Calibration, ModelSpec, read_calibration

__all__ = [
    "LatencyPredictor",
    "GenotypeBatch",
    "encode_genotypes",
    "network_id",
    "table_network",
    "table_fingerprint",
]

_log = logging.getLogger(__name__)

#: What ``predict`` accepts: one genotype, a sequence of them, or their encodings ((32,) or (N, 32)).
GenotypeBatch = Union[Genotype, Sequence[Genotype], np.ndarray]


def network_id(config: NetworkConfig) -> str:
    """A short stable name of a network size, e.g. ``imagenet-C48-L14-224px-1000cls`` (sidecar keys, file names)."""
    text = f"{config.kind}-C{config.C}-L{config.layers}-{config.input_size}px-{config.num_classes}cls"
    if config.in_channels != 3:
        text += f"-{config.in_channels}ch"
    return text


def table_network(table: LatencyTable, network: NetworkConfig | None = None) -> NetworkConfig:
    """The network ``table`` was made for: ``network`` if given, else the one in its sidecar (the
    first profiled when there are several; ``cars-profile`` profiles one per call)."""
    if network is not None:
        return network
    listed = table.meta.get("networks") or []
    if not listed:
        raise TableError(f"latency table {table.path or ''} does not say which network it was made for; give the network")
    try:
        config = NetworkConfig(**listed[0])
        config.validate()
    except (TypeError, ValueError) as exc:
        raise TableError(f"latency table {table.path or ''}: its network {listed[0]!r} is not valid ({exc})") from None
    return config


def table_fingerprint(keys: Iterable[Any], latencies: np.ndarray) -> str:
    """A hash of the table rows a network uses: a calibration is valid only for the rows it was fitted on."""
    text = ";".join(f"{key.id}={value:.6g}" for key, value in zip(keys, np.asarray(latencies, dtype=np.float64)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_genotypes(genotypes: GenotypeBatch) -> np.ndarray:
    """(N, 32) int64 encodings of ``genotypes`` (see ``Genotype.encode``); arrays are checked, not trusted,
    since they come from outside (a file, another tool): every op index and input index must be valid."""
    if isinstance(genotypes, Genotype):
        return genotypes.encode()[None, :]
    if isinstance(genotypes, np.ndarray):
        codes = np.atleast_2d(genotypes)
        if codes.ndim != 2 or codes.shape[1] != ENCODING_LENGTH:
            raise UserInputError(f"encoded genotypes must have shape (N, {ENCODING_LENGTH}), got {genotypes.shape}")
        if codes.size and not np.issubdtype(codes.dtype, np.integer):
            raise UserInputError(f"encoded genotypes must be integers, got {codes.dtype}")
        codes = codes.astype(np.int64, copy=False)
        inputs, ops = codes[:, 0::2], codes[:, 1::2]
        # Node j (0..3) of a cell reads states 0..j+1; edges 2j and 2j+1 belong to node j.
        limit = np.tile(np.repeat(np.arange(2, 6), 2), 2)[None, :]
        bad = ((ops < 0) | (ops >= len(PRIMITIVES)) | (inputs < 0) | (inputs >= limit)).any(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise UserInputError(f"encoded genotype {row} has an op or input index out of range")
        return codes
    items = list(genotypes)
    if not items:
        return np.zeros((0, ENCODING_LENGTH), dtype=np.int64)
    if not all(isinstance(g, Genotype) for g in items):
        raise UserInputError("predict takes Genotype objects or an (N, 32) integer array of their encodings")
    return np.stack([g.encode() for g in items])


def _edge_count_table() -> EdgeCostTable:
    """One-hot edge costs: an edge of op ``o`` in cell kind ``c`` adds 1 to feature ``c * n_ops + o``."""
    n_ops = len(PRIMITIVES)
    edges = np.zeros((2, n_ops, 2, EDGE_COUNT_FEATURES))
    for cell in range(2):
        edges[cell, np.arange(n_ops), :, cell * n_ops + np.arange(n_ops)] = 1.0
    return EdgeCostTable(np.zeros(EDGE_COUNT_FEATURES), edges)


_EDGE_COUNTS = _edge_count_table()


class LatencyPredictor:
    """Predicted end-to-end latency (ms) of genotypes' networks of one size, on one table's device.

    ``block_sum`` is the raw sum of table rows; ``predict`` applies the table's calibration for this
    network when the sidecar holds one that was fitted on these very rows (else it returns the block
    sum, and ``calibrated`` is False). Build one with ``LatencyPredictor.load(table_or_name)``.
    """

    def __init__(
        self,
        table: LatencyTable,
        *,
        network: NetworkConfig | None = None,
        calibration: Calibration | None | str = "table",
    ) -> None:
        """``calibration``: ``"table"`` (the one stored in the sidecar, if valid), ``None`` (raw block
        sum) or a ``Calibration`` to apply (e.g. one just fitted)."""
        self.table = table
        self.network = table_network(table, network)
        self.index: BlockIndex = block_index(self.network)
        # MissingBlockError (one line: the block and the cars-profile command that fills it) if any
        # block of this network's space has no row.
        self.latencies = table.vector(self.index.keys, config=self.network)
        self.fingerprint = table_fingerprint(self.index.keys, self.latencies)
        self._features: dict[tuple[tuple[str, ...], ...], EdgeCostTable] = {}
        self._folded: tuple[Calibration, EdgeCostTable] | None = None  # (calibration, its folded table)
        if isinstance(calibration, str):
            if calibration != "table":
                raise ValueError(f"calibration must be 'table', None or a Calibration, not {calibration!r}")
            calibration = self._stored_calibration()
        elif calibration is not None:
            self._check(calibration)
        self.calibration: Calibration | None = calibration

    @classmethod
    def load(
        cls, spec: str | Path | LatencyTable, *, network: NetworkConfig | None = None, calibrated: bool = True
    ) -> "LatencyPredictor":
        """The predictor of the table named ``spec`` (a path or a shipped table's name) for ``network``
        (default: the network the table was made for); ``calibrated=False`` ignores any calibration."""
        table = spec if isinstance(spec, LatencyTable) else LatencyTable.load(spec)
        return cls(table, network=network, calibration="table" if calibrated else None)

    # ----- queries ----------------------------------------------------------------------------------
    @property
    def calibrated(self) -> bool:
        return self.calibration is not None

    def block_sum(self, genotypes: GenotypeBatch) -> np.ndarray:
        """(N,) raw block-sum latency in ms: every block's table row, summed with multiplicity."""
        return self.features(genotypes, (tuple(BLOCK_KINDS),))[:, 0]

    def predict(self, genotypes: GenotypeBatch) -> np.ndarray:
        """(N,) predicted latency in ms: the calibrated block sum (the raw one when uncalibrated)."""
        if self.calibration is None:
            return self.block_sum(genotypes)
        return self._calibrated_table(self.calibration).total(encode_genotypes(genotypes))

    def uncertainty(self, predicted: np.ndarray, level: int = 90) -> np.ndarray | None:
        """(N,) +-ms around ``predicted`` that holds ``level``% of later measurements: the calibration's
        cross-validated residual quantile widened by its drift reference's noise (``Calibration.uncertainty_pct``;
        None when uncalibrated or the calibration recorded no residuals)."""
        quantile = self.calibration.uncertainty_pct(level) if self.calibration is not None else None
        return None if quantile is None else np.asarray(predicted, dtype=np.float64) * quantile / 100.0

    __call__ = predict

    def features(self, genotypes: GenotypeBatch, groups: Sequence[Sequence[str]]) -> np.ndarray:
        """(N, G) block sums restricted to each group of block kinds (the calibration's regressors)."""
        codes = encode_genotypes(genotypes)
        key = tuple(tuple(g) for g in groups)
        if key not in self._features:
            self._features[key] = self._group_table(key)
        return self._features[key].total(codes)

    def model_features(self, genotypes: GenotypeBatch, spec: ModelSpec) -> np.ndarray:
        """(N, F) regressors of a calibration model: the group block sums, then, for "composition", the
        count of edges of each op in each cell kind (also a per-edge gather)."""
        features = self.features(genotypes, spec.groups)
        if not spec.edge_counts:
            return features
        return np.column_stack([features, _EDGE_COUNTS.total(encode_genotypes(genotypes))])

    def describe(self) -> dict[str, Any]:
        """What this predictor predicts with, for reports and ``cars-inspect``."""
        return {
            "table": str(self.table.path) if self.table.path is not None else None,
            "device": self.table.meta.get("settings", {}).get("device"),
            "network": network_id(self.network),
            "calibrated": self.calibrated,
            "calibration_model": self.calibration.model if self.calibration else None,
        }

    # ----- helpers ------------------------------------------------------------------------------------
    def _group_table(self, groups: tuple[tuple[str, ...], ...]) -> EdgeCostTable:
        """The block sum of each group of block kinds as an edge-cost table: base (G,), edges (2, n_ops, 2, G)."""
        kinds = np.array([k.kind for k in self.index.keys])
        masked = np.stack([np.where(np.isin(kinds, list(g)), self.latencies, 0.0) for g in groups])  # (G, n_keys)
        return self.index.counts_table.weighted(masked)

    def _calibrated_table(self, calibration: Calibration) -> EdgeCostTable:
        """The calibrated prediction as one scalar edge-cost table. Every calibration model is linear in
        per-edge features (group block sums, edge counts), so its coefficients and intercept fold into one
        base and one entry per (cell, op, slot): a population is predicted with a single gather."""
        if self._folded is None or self._folded[0] is not calibration:
            spec, coef = calibration.spec, np.asarray(calibration.coef, dtype=np.float64)
            n_groups = len(spec.groups)
            key = tuple(tuple(g) for g in spec.groups)
            if key not in self._features:
                self._features[key] = self._group_table(key)
            groups = self._features[key]
            base = groups.base @ coef[:n_groups] + calibration.intercept
            edges = groups.edges @ coef[:n_groups]
            if spec.edge_counts:
                base = base + _EDGE_COUNTS.base @ coef[n_groups:]
                edges = edges + _EDGE_COUNTS.edges @ coef[n_groups:]
            self._folded = (calibration, EdgeCostTable(np.asarray(base, dtype=np.float64), edges))
        return self._folded[1]

    def _stored_calibration(self) -> Calibration | None:
        calibration = read_calibration(self.table.meta, network_id(self.network))
        if calibration is None:
            return None
        if calibration.table_fingerprint != self.fingerprint:
            _log.warning(
                "the calibration in %s was fitted on other table rows for %s; predicting raw block sums "
                "(recalibrate with cars-profile --calibrate)", self.table.path, network_id(self.network),
            )
            return None
        return calibration

    def _check(self, calibration: Calibration) -> None:
        if calibration.network != asdict(self.network):
            raise UserInputError(
                f"calibration fitted for network {calibration.network} cannot predict {network_id(self.network)}"
            )
        unknown = sorted({k for g in calibration.groups for k in g} - set(BLOCK_KINDS))
        if unknown:
            raise UserInputError(f"calibration names unknown block kinds {', '.join(unknown)}")

