"""Measuring chosen genotypes end to end on a device: ``cars-search --verify-on DEVICE``.

A search ranks by predicted latency; before a user ships a Pareto model, every Pareto model is timed
whole on the device, with the table protocol (``profilers.builder.time_models``), and ``pareto.csv``
carries the measured latency next to the predicted one. The device options (runtime, threads, CPU
mask) come from the latency table, so the measurement is made under the conditions the prediction
describes, and the drift reference expresses it in the machine state the predictions describe: the
state the table's calibration was measured in, with the same whole reference network
(``reference_state.prediction_reference``): a VM or phone that got slower since the table does not read as a
prediction error. Where pareto.csv has the prediction's uncertainty (``latency_pm90_ms``),
``latency_outside_pm90`` flags every model measured outside it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .._io import atomic_write_text
from ..errors import UserInputError
from ..profilers.device import Device, DeviceOptions, parse_cpu_mask, parse_device_spec
from ..profilers.devices import open_device
from ..profilers.export_blocks import default_cache_dir
from ..profilers.protocol import ProtocolConfig
from ..profilers.table import LatencyTable
from ..space.genotype import Genotype, parse_genotype
from ..space.networks import NetworkConfig
from . import host
from .metrics import relative_errors
from .networks import NetworkExporter
from .objective import LOCAL_TABLE
from .reference_state import PredictionReference, prediction_reference
from .validation import measure_networks, whole_network_protocol

__all__ = ["measure_genotypes", "verify_pareto", "verify_pareto_file", "options_from_table"]


def options_from_table(meta: Mapping[str, Any], **changes: Any) -> DeviceOptions:
    """``DeviceOptions`` reproducing the settings a table was made with (runtime, threads, CPU mask)."""
    settings = meta.get("settings") or {}
    mask = settings.get("cpu_mask")
    values: dict[str, Any] = {
        "runtime": settings.get("runtime", "onnxruntime"),
        "threads": int(settings.get("threads") or 1),
        "cpu_mask": parse_cpu_mask(str(mask)) if mask else None,
    }
    values.update({k: v for k, v in changes.items() if v is not None})
    return DeviceOptions(**values)


def measure_genotypes(
    genotypes: Sequence[Genotype],
    *,
    device: Device,
    network: NetworkConfig,
    cache_dir: Path,
    protocol: ProtocolConfig | None = None,
    show_progress: bool | None = None,
    reference: PredictionReference | None = None,
) -> np.ndarray:
    """(N,) end-to-end latency in ms of each genotype's network of size ``network`` on ``device``
    (genotypes building the same network are timed once), expressed in the state ``reference`` describes
    (a table's predictions'; None: this run's own, by the reference block)."""
    if not genotypes:
        return np.zeros(0)
    exporter = NetworkExporter(cache_dir, network)
    fmt = device.options.model_format
    paths = [exporter.export(g, fmt) for g in genotypes]
    unique = list(dict.fromkeys(paths))
    protocol = protocol or whole_network_protocol(device.spec.kind)
    if reference is not None:  # the statistic the reference's state was measured with
        protocol = dataclasses.replace(protocol, statistic=reference.statistic)
    reference_network = exporter.reference(fmt) if reference is not None and reference.network else None
    results = measure_networks(device, unique, protocol, input_shapes=[[exporter.input_shape()]] * len(unique),
                               cache_dir=cache_dir, show_progress=show_progress,
                               reference_ms=reference.ms if reference is not None else None,
                               reference_network=reference_network)
    return np.array([results[p.name].latency_ms for p in paths])


def verify_pareto(
    pareto: pd.DataFrame,
    *,
    device: Device,
    network: NetworkConfig,
    cache_dir: Path,
    protocol: ProtocolConfig | None = None,
    show_progress: bool | None = None,
    reference: PredictionReference | None = None,
) -> pd.DataFrame:
    """``pareto`` (rows with a ``genotype`` column in DARTS notation) with ``latency_measured_ms`` added
    next to ``latency_ms`` (the prediction), ``latency_error_pct`` where a prediction exists and
    ``latency_outside_pm90`` where its uncertainty ``latency_pm90_ms`` does."""
    if "genotype" not in pareto.columns:
        raise UserInputError("the Pareto table has no 'genotype' column")
    genotypes = [parse_genotype(str(text)) for text in pareto["genotype"]]
    measured = measure_genotypes(genotypes, device=device, network=network, cache_dir=cache_dir, protocol=protocol,
                                 show_progress=show_progress, reference=reference)
    out = pareto.copy()
    after = next((c for c in ("latency_pm90_ms", "latency_ms") if c in out.columns), None)
    position = list(out.columns).index(after) + 1 if after is not None else len(out.columns)
    out.insert(position, "latency_measured_ms", measured)
    if "latency_ms" in out.columns:
        predicted = pd.to_numeric(out["latency_ms"], errors="coerce").to_numpy(dtype=np.float64)
        out.insert(position + 1, "latency_error_pct", relative_errors(predicted, measured) if measured.size else [])
        if "latency_pm90_ms" in out.columns:
            spread = pd.to_numeric(out["latency_pm90_ms"], errors="coerce").to_numpy(dtype=np.float64)
            out.insert(position + 2, "latency_outside_pm90", np.abs(measured - predicted) > spread)
    return out


def verify_pareto_file(
    pareto_path: Path,
    *,
    device_spec: str,
    network: NetworkConfig,
    latency_table: str | None = None,
    cache_dir: Path | None = None,
    protocol: ProtocolConfig | None = None,
    show_progress: bool | None = None,
) -> pd.DataFrame:
    """Times every model of a search's ``pareto.csv`` on ``device_spec`` and rewrites the file (atomically)
    with ``latency_measured_ms`` beside the predicted ``latency_ms``. The device runs with the settings
    of ``latency_table`` when that table was made on the same device (so the two numbers describe the
    same thing), and in the machine state its predictions describe (``prediction_reference``), else with the defaults (ONNX
    Runtime, 1 thread) in this run's own state. ``local`` is this computer's first-use table."""
    spec = parse_device_spec(device_spec)
    options, reference = DeviceOptions(), None
    if latency_table:
        path = host.ensure_host_table(network) if latency_table == LOCAL_TABLE else latency_table
        table = LatencyTable.load(path)
        if (table.meta.get("settings") or {}).get("device") == str(spec):
            options, reference = options_from_table(table.meta), prediction_reference(table, network)
    try:
        pareto = pd.read_csv(pareto_path)
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot read {pareto_path}: {exc}") from None
    device = open_device(spec, options)
    try:
        verified = verify_pareto(pareto, device=device, network=network, cache_dir=cache_dir or default_cache_dir(),
                                 protocol=protocol, show_progress=show_progress, reference=reference)
    finally:
        device.close()
    atomic_write_text(pareto_path, verified.to_csv(index=False))
    return verified
