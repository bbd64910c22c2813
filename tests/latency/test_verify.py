"""Timing chosen genotypes end to end (what cars-search --verify-on does)."""
from __future__ import annotations

import pandas as pd
import pytest

from cars_deploy.errors import UserInputError
from cars_deploy.latency.verify import measure_genotypes, options_from_table, verify_pareto
from cars_deploy.profilers.device import DeviceOptions
from cars_deploy.profilers.devices import open_device
from cars_deploy.profilers.protocol import ProtocolConfig
from cars_deploy.space import GENOTYPES

from .conftest import SMALL

TINY = ProtocolConfig(warmup=0, rounds=2, runs=2)


def test_pareto_rows_get_measured_latency_and_duplicates_are_timed_once(cache_dir, monkeypatch):
    device = open_device("local", DeviceOptions())
    timed: list[list[str]] = []
    real = device.time_batch
    monkeypatch.setattr(device, "time_batch", lambda models, **kw: timed.append([m.name for m in models]) or real(models, **kw))
    a, b = GENOTYPES.get("CARS_Lat_A"), GENOTYPES.get("CARS_I")
    pareto = pd.DataFrame({"genotype": [str(a), str(b), str(a.canonical())], "accuracy": [0.5, 0.6, 0.5]})
    try:
        out = verify_pareto(pareto, device=device, network=SMALL, cache_dir=cache_dir, protocol=TINY)
    finally:
        device.close()
    assert list(out.columns) == ["genotype", "accuracy", "latency_measured_ms"]
    assert (out["latency_measured_ms"] > 0).all() and out["latency_measured_ms"][0] == out["latency_measured_ms"][2]
    # two distinct networks, the overhead probe and the drift reference per round
    assert all(len(batch) == 4 for batch in timed)
    with pytest.raises(UserInputError, match="no 'genotype' column"):
        verify_pareto(pd.DataFrame({"x": [1]}), device=device, network=SMALL, cache_dir=cache_dir)
    assert measure_genotypes([], device=device, network=SMALL, cache_dir=cache_dir).shape == (0,)


def test_models_measured_outside_the_predictions_uncertainty_are_flagged(cache_dir):
    a, b = GENOTYPES.get("CARS_Lat_A"), GENOTYPES.get("CARS_I")
    # a: predicted near 0 with a tiny uncertainty (a real measurement lies outside); b: an uncertainty that
    # covers anything.
    pareto = pd.DataFrame({"genotype": [str(a), str(b)], "latency_ms": [1e-6, 1.0], "latency_pm90_ms": [1e-7, 1e6]})
    device = open_device("local", DeviceOptions())
    try:
        out = verify_pareto(pareto, device=device, network=SMALL, cache_dir=cache_dir, protocol=TINY)
    finally:
        device.close()
    assert list(out.columns) == ["genotype", "latency_ms", "latency_pm90_ms", "latency_measured_ms",
                                 "latency_error_pct", "latency_outside_pm90"]
    assert out["latency_outside_pm90"].tolist() == [True, False]


def test_device_options_follow_the_table():
    meta = {"settings": {"device": "adb:phone", "runtime": "pytorch-lite", "threads": 4, "cpu_mask": "f0", "runner": None}}
    options = options_from_table(meta)
    assert (options.runtime, options.threads, options.cpu_mask) == ("pytorch-lite", 4, 0xF0)
    assert options_from_table({}) == DeviceOptions()
