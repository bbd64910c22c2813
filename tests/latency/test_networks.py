"""Whole networks to time: samplers, exports and the torchvision baselines."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cars_deploy.errors import UserInputError
from cars_deploy.latency import LatencyPredictor
from cars_deploy.latency.baselines import BASELINES, export_baseline
from cars_deploy.latency.networks import (
    NetworkExporter,
    genotype_hash,
    published_genotypes,
    sample_genotypes,
    spread_over_range,
)
from cars_deploy.space import GENOTYPES
from cars_deploy.space.primitives import PRIMITIVES

from .conftest import SMALL


def test_samplers_give_distinct_seeded_genotypes_and_dirichlet_spreads_latency(rng):
    published = list(published_genotypes().values())
    first = sample_genotypes(40, np.random.default_rng(7), exclude=published)
    again = sample_genotypes(40, np.random.default_rng(7), exclude=published)
    assert first == again and len({g.canonical() for g in first}) == 40
    assert not {g.canonical() for g in first} & {g.canonical() for g in published}
    predictor = LatencyPredictor.load("host-cpu-imagenet-ort1")
    dirichlet = predictor.block_sum(sample_genotypes(200, rng))
    uniform = predictor.block_sum(sample_genotypes(200, rng, sampler="uniform"))
    assert dirichlet.std() / dirichlet.mean() > 1.3 * uniform.std() / uniform.mean()
    with pytest.raises(UserInputError, match="unknown genotype sampler"):
        sample_genotypes(1, rng, sampler="sobol")
    with pytest.raises(UserInputError, match="unknown genotype name"):
        published_genotypes(["CARS_Z"])


@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40), st.data())
def test_spread_over_range_keeps_both_ends_and_distinct_picks_in_order(values, data):
    n = data.draw(st.integers(1, len(values)))
    picks = spread_over_range(values, n)
    assert len(set(picks)) == n and [values[i] for i in picks] == sorted(values[i] for i in picks)
    assert values[picks[0]] == min(values) and (n == 1 or values[picks[-1]] == max(values))


def test_the_spread_sampler_covers_the_fast_end_a_latency_search_explores():
    predictor = LatencyPredictor.load("host-cpu-imagenet-ort1", calibrated=False)
    spread = sample_genotypes(20, np.random.default_rng(3), sampler="spread", cost=predictor.block_sum)
    dirichlet = sample_genotypes(20, np.random.default_rng(3))
    assert len({g.canonical() for g in spread}) == 20
    assert not any(op == "none" for g in spread + dirichlet for op, _ in g.normal + g.reduce)
    fast, slow = predictor.block_sum(spread), predictor.block_sum(dirichlet)
    assert list(fast) == sorted(fast) and fast.min() < slow.min() and fast.max() > slow.max()
    gaps = np.diff(fast)  # evenly spaced: no gap much wider than the mean one
    assert gaps.max() < 3 * gaps.mean()
    darts = sample_genotypes(30, np.random.default_rng(3), ops=PRIMITIVES)
    assert any(op == "none" for g in darts for op, _ in g.normal + g.reduce)
    with pytest.raises(ValueError, match="needs the cost"):
        sample_genotypes(3, np.random.default_rng(3), sampler="spread")


def test_networks_are_exported_once_and_run(tmp_path):
    exporter = NetworkExporter(tmp_path, SMALL)
    genotype = GENOTYPES.get("CARS_Lat_A")
    path = exporter.export(genotype, "onnx")
    assert path.name == f"{genotype_hash(genotype)}.onnx" and path.parent.name == "cifar-C4-L3-8px-10cls"
    stamp = path.stat().st_mtime_ns
    assert exporter.export(genotype.canonical(), "onnx") == path and path.stat().st_mtime_ns == stamp
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: np.zeros(exporter.input_shape(), np.float32)})
    assert logits.shape == (1, SMALL.num_classes)
    with pytest.raises(UserInputError):
        exporter.export(genotype, "tflite")


def test_baselines_are_torchvision_models_with_random_weights(tmp_path):
    assert set(BASELINES.names()) == {"mobilenet_v2", "mnasnet1_0", "shufflenet_v2_x2_0"}
    path = export_baseline("shufflenet_v2_x2_0", "onnx", tmp_path, input_size=32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 32, 32), np.float32)})
    assert logits.shape == (1, 1000)
    with pytest.raises(UserInputError, match="unknown baseline"):
        export_baseline("resnet50", "onnx", tmp_path)
