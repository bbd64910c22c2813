"""Fixtures of the latency tests: a small network whose blocks and whole networks time in microseconds,
and its latency table, profiled once per test session on this machine's CPU with the real protocol."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cars_deploy.profilers.builder import ProfileConfig, build_table
from cars_deploy.profilers.device import DeviceOptions
from cars_deploy.profilers.devices import open_device
from cars_deploy.profilers.protocol import ProtocolConfig
from cars_deploy.profilers.table import table_files
from cars_deploy.space import NetworkConfig

#: The smallest network of the space (the profilers' tests use the same one).
SMALL = NetworkConfig(kind="cifar", C=4, layers=3, input_size=8)
#: cars-profile flags selecting SMALL.
SMALL_FLAGS = ["--network", "cifar", "--C", "4", "--layers", "3", "--input-size", "8"]
#: The protocol at a size that runs in seconds (behaviour, not accuracy, is tested here).
QUICK = ProtocolConfig(warmup=1, rounds=3, runs=5)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export cache (blocks and whole networks) for the whole session."""
    return tmp_path_factory.mktemp("latency-cache")


@pytest.fixture(scope="session")
def small_table_master(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """The host table of SMALL (ONNX Runtime, 1 thread), profiled once."""
    out = tmp_path_factory.mktemp("small-table") / "small"
    device = open_device("local", DeviceOptions())
    try:
        build_table(device, ProfileConfig(out=out, networks=(SMALL,), protocol=QUICK, cache_dir=cache_dir), show_progress=False)
    finally:
        device.close()
    return table_files(out)[0]


@pytest.fixture
def small_table(small_table_master: Path, tmp_path: Path) -> Path:
    """A private copy of the small table (tests write calibrations into its sidecar)."""
    csv, sidecar = table_files(small_table_master)
    shutil.copy(csv, tmp_path / csv.name)
    shutil.copy(sidecar, tmp_path / sidecar.name)
    return tmp_path / csv.name
