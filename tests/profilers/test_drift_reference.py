"""Drift correction by the reference model (protocol.py, step 5), against a device stand-in whose speed
changes between rounds: corrected results match the stand-in's base speed, uncorrected ones do not, and
a later run on a slower machine state agrees with the table built earlier."""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cars_deploy.profilers.blocks import EMPTY_KEY
from cars_deploy.profilers.builder import ProfileConfig, build_table, time_models
from cars_deploy.profilers.device import DeviceOptions, DeviceSpec, Sample
from cars_deploy.profilers.protocol import REFERENCE_NAME, ProtocolConfig
from cars_deploy.profilers.table import LatencyTable
from cars_deploy.space import NetworkConfig

from .conftest import SMALL

#: One device call per round (batch_size above the model count) and no warm-up call, so the stand-in's
#: call counter is the round index.
PROTOCOL = ProtocolConfig(warmup=0, rounds=12, runs=3, batch_size=1000)


def base_ms(name: str) -> float:
    """The stand-in's latency of a model at its base speed (a fixed function of the name)."""
    if name == EMPTY_KEY.id:
        return 0.004
    if name == REFERENCE_NAME:
        return 0.3
    return 0.05 + (zlib.crc32(name.encode()) % 1000) / 1e4


class DriftingDevice:
    """Times every model at ``base_ms`` times a speed factor that changes from one round to the next."""

    def __init__(self, factors: np.ndarray) -> None:
        self.spec = DeviceSpec("local")
        self.options = DeviceOptions()
        self.factors = factors
        self.calls = 0

    def facts(self) -> dict[str, Any]:
        return {"model": "drifting-stand-in"}

    def prepare(self, models) -> None:
        pass

    def time_batch(self, models, *, runs: int, warmup: int) -> list[Sample]:
        factor = self.factors[self.calls % len(self.factors)]
        self.calls += 1
        return [Sample(name=m.name, ms=base_ms(m.name) * factor, runs=runs) for m in models]

    def temperatures(self) -> dict[str, float]:
        return {}

    def events(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


#: A second network size whose new blocks extend the table later, in another machine state.
WIDER = NetworkConfig(kind="cifar", C=6, layers=3, input_size=8)


def _ratios(table: LatencyTable) -> dict[str, float]:
    """Each row's latency over its stand-in base latency (overhead subtracted), by block id."""
    out = {}
    for row in table.frame.itertuples():
        name = f"{row.kind}-{row.C_in}-{row.C_out}-{row.H}x{row.W}-s{row.stride}"
        out[name] = row.latency_ms / (base_ms(name) - base_ms(EMPTY_KEY.id))
    return out


def _build_then_extend(out: Path, cache: Path, rng: np.random.Generator, *, correct: bool) -> tuple[LatencyTable, LatencyTable]:
    """A table of SMALL built in a fast state, then extended with WIDER's blocks in a 1.5x slower one."""
    fast = DriftingDevice(np.random.default_rng(1).uniform(0.9, 1.1, size=PROTOCOL.rounds))
    slow = DriftingDevice(1.5 * np.random.default_rng(2).uniform(0.8, 1.3, size=PROTOCOL.rounds))
    first = build_table(fast, ProfileConfig(out=out, networks=(SMALL,), protocol=PROTOCOL, cache_dir=cache,
                                            drift_correction=correct), show_progress=False).table
    second = build_table(slow, ProfileConfig(out=out, networks=(SMALL, WIDER), protocol=PROTOCOL, cache_dir=cache,
                                             drift_correction=correct), show_progress=False).table
    return first, second


def test_rows_timed_in_a_slower_state_join_a_table_in_its_state_only_when_corrected(tmp_path, block_cache, rng):
    first, second = _build_then_extend(tmp_path / "corrected", block_cache, rng, correct=True)
    before, after = _ratios(first), _ratios(second)
    assert len(after) > len(before)
    scale = next(iter(before.values()))
    # Every row, old and new, is its base latency times one constant: the state of the first build,
    # whose reference latency the sidecar keeps.
    np.testing.assert_allclose(list(after.values()), scale, rtol=2e-5)  # the CSV keeps 6-7 digits
    reference = second.meta["reference"]
    assert reference["model"] == REFERENCE_NAME and reference["corrected"] is True
    assert scale == pytest.approx(reference["base_ms"] / base_ms(REFERENCE_NAME), rel=2e-5)
    # The reference's latency in every round of each run is recorded beside the run, with its drift.
    runs = second.meta["runs"]
    assert runs[-1]["reference"]["drift_pct"] > 30
    assert len(runs[-1]["reference"]["per_round_ms"]) == PROTOCOL.rounds

    _, raw = _build_then_extend(tmp_path / "raw", block_cache, rng, correct=False)
    raw_ratios = np.array([_ratios(raw)[name] for name in after if name not in before])
    assert np.all(raw_ratios > 1.2 * scale)  # uncorrected, the new rows carry the slower state


def test_a_later_run_in_a_slower_state_agrees_with_the_table_when_corrected(tmp_path, block_cache, rng):
    models = []
    for name in ("net-a", "net-b", "net-c"):
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(b"stand-in")  # the stand-in never reads the file
        models.append(path)
    shapes = [[(1, 3, 8, 8)]] * len(models)
    fast = DriftingDevice(rng.uniform(0.9, 1.1, size=PROTOCOL.rounds))
    slow = DriftingDevice(1.5 * rng.uniform(0.8, 1.3, size=PROTOCOL.rounds))  # a hotter phone, a busier VM

    def timed(device, base, correct=True):
        results = time_models(device, models, PROTOCOL, input_shapes=shapes, cache_dir=block_cache,
                              reference_ms=base, drift_correction=correct)
        return np.array([results[p.name].latency_ms for p in models]), results

    base = 0.31  # the table's reference latency: the state results are expressed in
    table_state, results = timed(fast, base)
    later, later_results = timed(slow, base)
    truth = np.array([base_ms(p.name) - base_ms(EMPTY_KEY.id) for p in models]) * base / base_ms(REFERENCE_NAME)
    np.testing.assert_allclose(table_state, truth, rtol=1e-9)
    np.testing.assert_allclose(later, truth, rtol=1e-9)
    # Each measurement also keeps what it would have been without the correction: the slower state.
    assert all(later_results[p.name].uncorrected_ms > 1.1 * t for p, t in zip(models, truth))
    assert results[models[0].name].reference["base_ms"] == base
    uncorrected, raw_results = timed(DriftingDevice(slow.factors), base, correct=False)
    assert np.all(uncorrected / truth > 1.1)  # 50% slower machine: way off without the correction
    assert raw_results[models[0].name].reference["corrected"] is False


def test_verification_is_expressed_in_the_state_its_calibration_was_measured_in(tmp_path, block_cache):
    """The calibration's whole networks define the state predictions describe, by a whole reference network
    (not the block table's state, whose reference block is timed among microsecond blocks): a verification
    on a slower machine, corrected by that network, gives back the calibration's measurements."""
    from cars_deploy.latency.networks import REFERENCE_GENOTYPE, NetworkExporter
    from cars_deploy.latency.reference_state import prediction_reference, table_reference_ms
    from cars_deploy.latency.validation import ValidationConfig, calibrate_table, measure_networks
    from cars_deploy.profilers.protocol import NETWORK_REFERENCE_NAME

    table = build_table(DriftingDevice(np.ones(PROTOCOL.rounds)), ProfileConfig(
        out=tmp_path / "table", networks=(SMALL,), protocol=PROTOCOL, cache_dir=block_cache), show_progress=False).table
    before = prediction_reference(table, SMALL)  # no calibration yet: the table's state, by the reference block
    assert before.ms == table_reference_ms(table) and before.network is False
    calibrating = DriftingDevice(1.3 * np.random.default_rng(3).uniform(0.95, 1.05, size=PROTOCOL.rounds))
    result = calibrate_table(calibrating, table.path, ValidationConfig(networks=6, fit=4, published=False,
                             model="linear", protocol=PROTOCOL), cache_dir=block_cache, network=SMALL)
    reference = prediction_reference(LatencyTable.load(table.path), SMALL)
    assert reference.network is True
    assert reference.ms == pytest.approx(1.3 * base_ms(NETWORK_REFERENCE_NAME), rel=0.06)
    details = result.calibration.details
    assert details["reference_ms"] == reference.ms and details["reference_model"] == REFERENCE_GENOTYPE
    assert all(r["model"] == NETWORK_REFERENCE_NAME for r in details["reference"])

    networks = result.frame[result.frame.source == "random"]
    paths = [next(block_cache.rglob(name)) for name in networks.model_file]  # the exported networks
    slower = DriftingDevice(1.8 * np.random.default_rng(4).uniform(0.9, 1.1, size=PROTOCOL.rounds))

    def verified(base: float, network: bool) -> np.ndarray:
        slower.calls = 0
        results = measure_networks(slower, paths, PROTOCOL, input_shapes=[[(1, 3, 8, 8)]] * len(paths),
                                   cache_dir=block_cache, reference_ms=base,
                                   reference_network=NetworkExporter(block_cache, SMALL).reference("onnx") if network else None)
        return np.array([results[p.name].latency_ms for p in paths])

    np.testing.assert_allclose(verified(reference.ms, True), networks.measured_ms, rtol=1e-5)
    # Referred to the block table's state instead, every model reads about 1.3x too fast.
    assert np.all(verified(table_reference_ms(table), False) < 0.85 * networks.measured_ms)

    # Rows changed since the calibration: the predictor ignores it and predicts raw block sums, which
    # describe the table's own state, so a verification must be referred to that one.
    calibrated = LatencyTable.load(table.path)
    frame = calibrated.frame.copy()
    frame["latency_ms"] = frame["latency_ms"] * 1.01
    stale = prediction_reference(LatencyTable(frame, calibrated.meta, calibrated.path), SMALL)
    assert stale.network is False and stale.ms == table_reference_ms(table)


def test_a_calibration_records_its_statistic_and_a_verification_uses_it(tmp_path, block_cache):
    """Whole networks are measured by the trimmed mean of their rounds: the calibration's state records it,
    a verification against that state uses it whatever protocol it was handed, and a calibration recorded
    before statistics existed reads as the low percentile it was measured with."""
    import dataclasses

    from cars_deploy.latency.calibration import read_calibration, write_calibration
    from cars_deploy.latency.predictor import network_id
    from cars_deploy.latency.reference_state import prediction_reference
    from cars_deploy.latency.validation import ValidationConfig, calibrate_table, whole_network_protocol
    from cars_deploy.latency.verify import measure_genotypes
    from cars_deploy.space import parse_genotype

    protocol = whole_network_protocol("local", warmup=0, rounds=12, runs=3, batch_size=1000)
    assert protocol.statistic == "trimmed_mean"
    table = build_table(DriftingDevice(np.ones(PROTOCOL.rounds)), ProfileConfig(
        out=tmp_path / "table", networks=(SMALL,), protocol=PROTOCOL, cache_dir=block_cache), show_progress=False).table
    calibrating = DriftingDevice(1.3 * np.random.default_rng(5).uniform(0.9, 1.1, size=PROTOCOL.rounds))
    result = calibrate_table(calibrating, table.path, ValidationConfig(networks=6, fit=4, published=False,
                             model="linear", protocol=protocol), cache_dir=block_cache, network=SMALL)
    details = result.calibration.details
    assert details["protocol"]["statistic"] == "trimmed_mean"
    assert all(r["statistic"] == "trimmed_mean" for r in details["reference"])
    reference = prediction_reference(LatencyTable.load(table.path), SMALL)
    assert reference.network is True and reference.statistic == "trimmed_mean"

    networks = result.frame[result.frame.source == "random"]
    genotypes = [parse_genotype(text) for text in networks.genotype]
    slower = DriftingDevice(1.8 * np.random.default_rng(6).uniform(0.9, 1.1, size=PROTOCOL.rounds))
    measured = measure_genotypes(genotypes, device=slower, network=SMALL, cache_dir=block_cache,
                                 protocol=dataclasses.replace(protocol, statistic="percentile"), reference=reference)
    np.testing.assert_allclose(measured, networks.measured_ms, rtol=1e-5)

    saved = LatencyTable.load(table.path)
    old = read_calibration(saved.meta, network_id(SMALL))
    old_protocol = {k: v for k, v in old.details["protocol"].items() if k != "statistic"}
    write_calibration(saved.meta, network_id(SMALL), dataclasses.replace(old, details={**old.details, "protocol": old_protocol}))
    assert prediction_reference(saved, SMALL).statistic == "percentile"
