"""The measurement protocol: warm-up, interleaved shuffled rounds, resume, percentile and overhead."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cars_deploy.errors import UserInputError
from cars_deploy.profilers.blocks import EMPTY_KEY, block_input_shapes, network_blocks
from cars_deploy.profilers.device import DeviceOptions, Sample, TimedModel
from cars_deploy.profilers.devices import open_device
from cars_deploy.profilers.export_blocks import BlockExporter
from cars_deploy.profilers.protocol import (
    OVERHEAD_NAME,
    ProtocolConfig,
    SampleStore,
    aggregate,
    measure,
    round_statistic,
)

from .conftest import SMALL


class Recording:
    """A real local device that also records which models each call timed (a spy, not a stand-in)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.device = open_device("local", DeviceOptions())
        self.calls: list[tuple[list[str], int]] = []
        self.fail_after = fail_after
        self.spec, self.options = self.device.spec, self.device.options

    def prepare(self, models):
        self.device.prepare(models)

    def time_batch(self, models, *, runs, warmup):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt
        self.calls.append(([m.name for m in models], runs))
        return self.device.time_batch(models, runs=runs, warmup=warmup)


@pytest.fixture
def models(block_cache):
    exporter = BlockExporter(block_cache)
    keys = network_blocks(SMALL)[:6] + [EMPTY_KEY]
    return [TimedModel(k.id, exporter.export(k, "onnx"), block_input_shapes(k)) for k in keys]


def test_warm_up_then_every_model_once_per_round_in_a_shuffled_reproducible_order(models):
    config = ProtocolConfig(warmup=3, rounds=4, runs=2, batch_size=3, seed=7)
    device = Recording()
    store = SampleStore.open(None, {})
    measure(device, models, config, store, show_progress=False)
    names = [m.name for m in models]
    warm = [c for c in device.calls if c[1] == 3]
    assert sorted(n for batch, _ in warm for n in batch) == sorted(names)  # warm-up: each model once, untimed
    timed = [batch for batch, runs in device.calls if runs == 2]
    flat = [n for batch in timed for n in batch]
    rounds = [flat[i * len(names) : (i + 1) * len(names)] for i in range(4)]
    assert all(sorted(r) == sorted(names) for r in rounds)  # each round times every model once
    assert len({tuple(r) for r in rounds}) > 1  # in a different order
    assert all(len(b) <= 3 for b in timed) and all(store.values(n).size == 4 for n in names)
    again = Recording()
    measure(again, models, config, SampleStore.open(None, {}), show_progress=False)
    assert [c for c in again.calls if c[1] == 2] == [c for c in device.calls if c[1] == 2]  # same seed, same order


def test_an_interrupted_run_resumes_without_retiming_what_it_has(models, tmp_path):
    config = ProtocolConfig(warmup=0, rounds=3, runs=2, batch_size=2)
    path = tmp_path / "t.partial.json"
    first = Recording(fail_after=5)
    with pytest.raises(KeyboardInterrupt):
        measure(first, models, config, SampleStore.open(path, {"device": "local"}), show_progress=False)
    saved = json.loads(path.read_text())["samples"]
    done = {(name, int(r)) for name, rounds in saved.items() for r in rounds}
    assert len(done) == sum(len(batch) for batch, _ in first.calls) == 9  # the five batches before the interruption
    resumed = Recording()
    store = SampleStore.open(path, {"device": "local"})
    measure(resumed, models, config, store, show_progress=False)
    retimed = [n for batch, _ in resumed.calls for n in batch]
    assert len(retimed) == 3 * len(models) - 9  # only what was missing
    assert all(store.values(m.name).size == 3 for m in models)
    for name, rounds in saved.items():  # the samples taken before the interruption are kept as they were
        for r, sample in rounds.items():
            assert store.samples[name][int(r)]["ms"] == sample["ms"]
    with pytest.raises(UserInputError, match="other settings"):
        SampleStore.open(path, {"device": "adb:phone"})


def test_aggregate_takes_the_low_percentile_and_subtracts_the_overhead():
    store = SampleStore({})
    for r, (a, e) in enumerate(zip([1.0, 2.0, 3.0, 4.0, 5.0], [0.1, 0.1, 0.2, 0.1, 0.3])):
        store.add(r, [Sample("a", a, 10, 40.0, 41.0), Sample(OVERHEAD_NAME, e, 10)])
    m = aggregate(store, ["a"], percentile=20)["a"]
    overhead = np.percentile([0.1, 0.1, 0.2, 0.1, 0.3], 20)
    assert m.overhead_ms == pytest.approx(overhead) and m.raw_ms == pytest.approx(1.8)
    assert m.latency_ms == pytest.approx(1.8 - overhead)
    assert m.p50_ms == pytest.approx(3.0 - overhead) and m.p90_ms == pytest.approx(4.6 - overhead)
    assert m.iqr_ms == pytest.approx(2.0) and m.rounds == 5 and m.runs == 50
    assert m.temperatures_c[0] == (40.0, 41.0)
    tiny = SampleStore({})
    tiny.add(0, [Sample("b", 0.05, 1), Sample(OVERHEAD_NAME, 0.1, 1)])
    assert aggregate(tiny, ["b"], percentile=20)["b"].latency_ms == 0.0  # never negative


def test_aggregate_with_the_trimmed_mean_drops_a_slow_round_a_mean_would_keep():
    store = SampleStore({})
    values = [5.0, 5.2, 4.8, 5.1, 4.9, 5.0, 5.05, 4.95, 5.0, 50.0]  # one round in a slow window
    for r, v in enumerate(values):
        store.add(r, [Sample("net", v, 10), Sample(OVERHEAD_NAME, 0.5, 10)])
    m = aggregate(store, ["net"], percentile=20, statistic="trimmed_mean")["net"]
    kept = sorted(values)[1:-1]  # 10% cut from each end of 10 rounds
    assert m.raw_ms == pytest.approx(np.mean(kept)) and m.overhead_ms == pytest.approx(0.5)
    assert m.latency_ms == pytest.approx(np.mean(kept) - 0.5) and m.latency_ms < np.mean(values) - 4
    assert m.raw_ms != pytest.approx(aggregate(store, ["net"], percentile=20)["net"].raw_ms)
    # A phone's 6 rounds: the slowest (and the fastest) still go; 4 rounds are too few to cut.
    assert round_statistic([5.0, 5.1, 4.9, 5.0, 5.0, 9.0], "trimmed_mean", 20) == pytest.approx(5.025)
    assert round_statistic([5.0, 5.0, 5.0, 9.0], "trimmed_mean", 20) == pytest.approx(6.0)


def test_protocol_settings_are_validated():
    with pytest.raises(UserInputError, match="round statistic"):
        ProtocolConfig.for_device("local", statistic="mode")
    for bad in ({"rounds": 0}, {"runs": 0}, {"warmup": -1}, {"percentile": 101.0}, {"batch_size": 0}):
        with pytest.raises(UserInputError):
            ProtocolConfig.for_device("local", **bad)
    assert ProtocolConfig.for_device("adb").batch_size == 16 and ProtocolConfig.for_device("local", rounds=3).rounds == 3
