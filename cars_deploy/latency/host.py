"""This computer's latency table, built and calibrated on first use and cached.

``--latency-table local`` asks for the host CPU (ONNX Runtime, 1 thread), which needs no phone and
no setup: the first search that asks profiles the network's blocks (about 20 s for the ImageNet
network), fits a calibration on whole random networks with the same method as ``cars-profile
--calibrate`` (model chosen by k-fold CV, residual quantiles for the uncertainty, drift reference
on; without a second pass: ``cars-profile --calibrate`` is the full validation), and caches the table
in the user cache folder; later runs load it. Every size of that first use is a field of
``HostTableConfig``, sized for ``make demo``'s budget. A table of the build machine ships with the package
(``latency_tables/``), but it describes that machine, not the user's. Two searches that start at once
do not both build it: the first holds the table's lock (``lock_table``) and the second is refused,
naming it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..profilers.builder import ProfileConfig, build_table, partial_path
from ..profilers.device import DeviceOptions
from ..profilers.devices import open_device
from ..profilers.export_blocks import default_cache_dir
from ..profilers.protocol import ProtocolConfig
from ..profilers.table import LatencyTable, lock_table, table_files
from ..space.networks import NetworkConfig
from .calibration import read_calibration
from .predictor import network_id
from .validation import ValidationConfig, calibrate_table, whole_network_protocol

__all__ = ["HostTableConfig", "ensure_host_table", "default_tables_dir"]

_log = logging.getLogger(__name__)


def default_tables_dir() -> Path:
    """``<user cache dir>/cars-deploy/latency_tables``."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("cars-deploy")) / "latency_tables"


@dataclass(frozen=True)
class HostTableConfig:
    """How the first-use host table is made."""

    threads: int = 1  # ONNX Runtime intra-op threads
    block_rounds: int | None = None  # interleaved rounds over the blocks (None: ProtocolConfig.for_device("local"))
    block_runs: int | None = None  # timed calls per block and round (None: the same default)
    calibrate_networks: int = 60  # random whole networks for the calibration, spread over the block sum (0: none)
    calibrate_fit: int = 48  # of which fitted on and cross-validated (the rest are a held-out check in the sidecar)
    calibrate_model: str = "auto"  # calibration model (auto: chosen by k-fold CV on the fit networks)
    network_rounds: int = 20  # interleaved rounds over the whole networks (trimmed mean: 20 rounds repeat to 0.9%)
    network_runs: int = 5  # timed calls per whole network and round
    drift_correction: bool = True  # the drift reference, timed in every round (profilers/protocol.py)
    tables_dir: Path | None = None  # where the table is cached (None: default_tables_dir())
    cache_dir: Path | None = None  # exported blocks and networks (None: the profilers' default)


def ensure_host_table(network: NetworkConfig, config: HostTableConfig = HostTableConfig(), *,
                      show_progress: bool | None = None) -> Path:
    """The CSV of the host table for ``network``, profiling and calibrating it first if it is missing."""
    tables_dir = config.tables_dir or default_tables_dir()
    cache_dir = config.cache_dir or default_cache_dir()
    base = tables_dir / f"host-{network_id(network)}-ort{config.threads}"
    csv, _ = table_files(base)
    if csv.exists() and _ready(csv, network, config):
        return csv
    with lock_table(base, also=(partial_path(base),)):
        if not (csv.exists() and _ready(csv, network, config)):  # made by another process meanwhile?
            _make(base, network, config, cache_dir, show_progress)
    return csv


def _ready(csv: Path, network: NetworkConfig, config: HostTableConfig) -> bool:
    table = LatencyTable.load(csv)
    return config.calibrate_networks == 0 or read_calibration(table.meta, network_id(network)) is not None


def _make(base: Path, network: NetworkConfig, config: HostTableConfig, cache_dir: Path, show_progress: bool | None) -> None:
    csv, _ = table_files(base)
    device = open_device("local", DeviceOptions(runtime="onnxruntime", threads=config.threads))
    try:
        if not csv.exists():
            _log.info("no latency table of this computer yet: profiling the blocks of %s into %s (once)",
                      network_id(network), csv)
        protocol = ProtocolConfig.for_device("local", rounds=config.block_rounds, runs=config.block_runs)
        build_table(device, ProfileConfig(out=base, networks=(network,), protocol=protocol, cache_dir=cache_dir,
                                          command="(built on first use by --latency-table local)",
                                          drift_correction=config.drift_correction),
                    show_progress=show_progress)
        if config.calibrate_networks:
            _log.info("calibrating %s on %d whole networks (once)", csv.name, config.calibrate_networks)
            calibrate_table(
                device, csv,
                ValidationConfig(networks=config.calibrate_networks, fit=config.calibrate_fit, published=False,
                                 repeat=False, model=config.calibrate_model, drift_correction=config.drift_correction,
                                 protocol=whole_network_protocol("local", rounds=config.network_rounds,
                                                                 runs=config.network_runs)),
                cache_dir=cache_dir, network=network, command="(calibrated on first use by --latency-table local)",
                show_progress=show_progress,
            )
    finally:
        device.close()
