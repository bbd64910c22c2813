"""Fixtures of the profiler tests: an ADB key, the perf-test stand-in wrapper, a shared block cache,
an emulated phone's sandbox and a small network whose blocks profile in seconds."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cars_deploy.profilers.adb_transport import ensure_adb_key
from cars_deploy.space import NetworkConfig

from .adb_emulator import make_sandbox

HERE = Path(__file__).resolve().parent

#: The smallest network of the space: 53 distinct blocks, each timed in microseconds.
SMALL = NetworkConfig(kind="cifar", C=4, layers=3, input_size=8)
#: cars-profile flags selecting SMALL.
SMALL_FLAGS = ["--network", "cifar", "--C", "4", "--layers", "3", "--input-size", "8"]


@pytest.fixture(scope="session")
def adb_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ADB RSA key pair made the way cars-profile makes one on first use."""
    return ensure_adb_key(tmp_path_factory.mktemp("keys") / "adbkey")


@pytest.fixture(scope="session")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_adb_key(tmp_path_factory.mktemp("other-keys") / "adbkey")


@pytest.fixture(scope="session")
def fake_perf_test(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny /bin/sh wrapper the emulated phone runs as its ``onnxruntime_perf_test``: it starts
    the host-side stand-in (fake_onnxruntime_perf_test.py), which really times the model."""
    path = tmp_path_factory.mktemp("runner") / "onnxruntime_perf_test"
    path.write_text(f'#!/bin/sh\nexec {sys.executable} {HERE / "fake_onnxruntime_perf_test.py"} "$@"\n')
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def block_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export cache for every test, so each block is exported once per test session."""
    return tmp_path_factory.mktemp("block-cache")


@pytest.fixture
def phone(tmp_path: Path) -> Path:
    """A fresh emulated phone file system."""
    return make_sandbox(tmp_path / "phone")


def script(path: Path, body: str) -> Path:
    """Writes an executable /bin/sh script (a runner that misbehaves on purpose)."""
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path
