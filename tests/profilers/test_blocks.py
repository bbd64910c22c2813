"""The block enumerator agrees with the networks the space really builds."""
from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

from cars_deploy.errors import UserInputError
from cars_deploy.profilers.blocks import (
    BLOCK_KINDS,
    BlockKey,
    block_index,
    block_input_shapes,
    build_block,
    genotype_blocks,
    network_blocks,
)
from cars_deploy.space import GENOTYPES, PRIMITIVES, Genotype, NetworkConfig, build_network, random_genotype
from cars_deploy.space.primitives import DilConv, FactorizedReduce, Identity, SepConv, Zero

from .conftest import SMALL

SMALL_IMAGENET = NetworkConfig(kind="imagenet", C=8, layers=5, input_size=64, num_classes=7)


def _op_name(module: nn.Module) -> str:
    """Names a cell op from its module alone (independently of the genotype it came from)."""
    if isinstance(module, SepConv):
        k = module[0][1].kernel_size[0]
        return f"sep_conv_{k}x{k}"
    if isinstance(module, DilConv):
        k = module[1].kernel_size[0]
        return f"dil_conv_{k}x{k}"
    if isinstance(module, nn.MaxPool2d):
        return "max_pool_3x3"
    if isinstance(module, nn.AvgPool2d):
        return "avg_pool_3x3"
    if isinstance(module, (Identity, FactorizedReduce)):
        return "skip_connect"
    if isinstance(module, Zero):
        return "none"
    raise AssertionError(f"unexpected op module {type(module).__name__}")


def _walk(genotype: Genotype, config: NetworkConfig) -> tuple[Counter, dict[BlockKey, int]]:
    """Runs the real network and records, from the shapes its modules really see, the block of every
    stem, preprocessing, op, node sum, cell concat and head; also each block's parameter count."""
    network = build_network(genotype, config).eval()
    seen: Counter = Counter()
    params: dict[BlockKey, int] = {}
    hooks = []

    def record(kind_of, module: nn.Module, *, multiplicity: int = 1):
        def hook(mod, inputs, output):
            x = inputs[0]
            kind, c_in, c_out, side = kind_of(mod, x, output)
            stride = x.shape[2] // output.shape[2] if output.dim() == 4 else 1
            key = BlockKey(kind, c_in, c_out, side, side, stride)
            seen[key] += multiplicity
            params[key] = sum(p.numel() for p in mod.parameters())

        hooks.append(module.register_forward_hook(hook))

    same = lambda name: lambda m, x, y: (name, x.shape[1], y.shape[1], x.shape[2])  # noqa: E731
    for name in ("stem", "stem0", "stem1"):
        if hasattr(network, name):
            record(same(name), getattr(network, name))
    for cell in network.cells:
        for pre in (cell.preprocess0, cell.preprocess1):
            kind = "factorized_reduce" if isinstance(pre, FactorizedReduce) else "relu_conv_bn"
            record(same(kind), pre)
        for op in cell.ops:
            record(lambda m, x, y: (_op_name(m), x.shape[1], y.shape[1], x.shape[2]), op)

    def cell_hook(mod, inputs, output):
        c = output.shape[1] // 4
        side = output.shape[2]
        seen[BlockKey("add", c, c, side, side, 1)] += 4
        seen[BlockKey("concat", c, 4 * c, side, side, 1)] += 1

    for cell in network.cells:
        hooks.append(cell.register_forward_hook(cell_hook))

    def head_hook(mod, inputs, output):
        x = inputs[0]
        key = BlockKey("head", x.shape[1], config.num_classes, x.shape[2], x.shape[3], 1)
        seen[key] += 1
        params[key] = sum(p.numel() for p in network.classifier.parameters())

    hooks.append(network.global_pooling.register_forward_hook(head_hook))
    with torch.no_grad():
        network(torch.zeros(1, config.in_channels, config.input_size, config.input_size))
    for h in hooks:
        h.remove()
    return seen, params


def _genotypes(rng: np.random.Generator) -> list[Genotype]:
    return [random_genotype(rng) for _ in range(6)] + [GENOTYPES.get(n) for n in ("CARS_H", "CARS_Lat_A", "DARTS_V2")]


@pytest.mark.parametrize("config", [SMALL, SMALL_IMAGENET], ids=["cifar", "imagenet"])
def test_genotype_blocks_match_what_the_built_network_contains(config, rng):
    for genotype in _genotypes(rng):
        seen, params = _walk(genotype, config)
        assert genotype_blocks(genotype, config) == seen
        for key, count in params.items():  # each block module is the network's module, parameter for parameter
            assert sum(p.numel() for p in build_block(key).parameters()) == count, key


@pytest.mark.parametrize("config", [SMALL, SMALL_IMAGENET], ids=["cifar", "imagenet"])
def test_block_modules_produce_the_shapes_the_network_sees(config, rng):
    for key in network_blocks(config):
        module = build_block(key)
        with torch.no_grad():
            out = module(*(torch.zeros(s) for s in block_input_shapes(key)))
        assert out.shape[1] == key.C_out
        if key.kind != "head":
            assert out.shape[2] == key.H // key.stride


def test_network_blocks_are_exactly_the_union_over_all_genotypes():
    config = NetworkConfig.imagenet()
    union: set[BlockKey] = set()
    for op in PRIMITIVES:  # every op on edges reading cell inputs (0, 1) and nodes (2..)
        edges = [(op, 0), (op, 1), (op, 0), (op, 2), (op, 3), (op, 1), (op, 4), (op, 2)]
        union |= set(genotype_blocks(Genotype.of(normal=edges, reduce=edges), config))
    blocks = network_blocks(config)
    assert set(blocks) == union and len(blocks) == len(set(blocks))
    kinds = Counter(k.kind for k in blocks)
    # 3 stages x 8 ops at stride 1, 2 reduction cells x 8 ops at stride 2, 9 preprocessing blocks,
    # 2 stems, 3 adds, 3 concats, 1 head: the "about 50" (58 with the none op) of the ImageNet network.
    assert len(blocks) == 58 and kinds["sep_conv_3x3"] == 5 and kinds["stem0"] == 1 and kinds["head"] == 1
    assert set(kinds) <= set(BLOCK_KINDS)


def test_block_index_counts_and_sums_agree_with_genotype_blocks(rng):
    config = NetworkConfig.imagenet()
    index = block_index(config)
    genotypes = _genotypes(rng)
    codes = np.stack([g.encode() for g in genotypes])
    counts = index.counts(codes)
    latencies = rng.uniform(0.01, 1.0, size=len(index.keys))
    for row, genotype in zip(counts, genotypes):
        expected = genotype_blocks(genotype, config)
        assert dict(zip(index.keys, row.tolist())) == {k: expected.get(k, 0) for k in index.keys}
    sums = index.block_sum(codes, latencies)
    exact = [sum(latencies[index.row(k)] * n for k, n in genotype_blocks(g, config).items()) for g in genotypes]
    np.testing.assert_allclose(sums, exact, rtol=1e-12)


def test_block_index_scores_a_large_population_fast(rng):
    index = block_index(NetworkConfig.imagenet())
    codes = np.stack([random_genotype(rng).encode() for _ in range(200)])
    codes = np.tile(codes, (50, 1))  # 10,000 genotypes
    latencies = rng.uniform(0.01, 1.0, size=len(index.keys))
    start = time.perf_counter()
    sums = index.block_sum(codes, latencies)
    assert time.perf_counter() - start < 0.5 and sums.shape == (10_000,)


def test_block_key_text_form_round_trips_and_rejects_junk():
    key = BlockKey("sep_conv_3x3", 48, 48, 28, 28, 1)
    assert key.id == "sep_conv_3x3-48-48-28x28-s1" and BlockKey.parse(key.id) == key
    for junk in ("sep_conv_3x3", "x-1-2-3x3-s", "../etc-1-1-1x1-s1"):
        with pytest.raises(UserInputError):
            BlockKey.parse(junk)
    with pytest.raises(UserInputError, match="unknown block kind"):
        build_block(BlockKey("conv_7x7", 8, 8, 8, 8, 1))
