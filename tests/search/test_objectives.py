import time

import numpy as np
import pytest

from cars_deploy.errors import UserInputError
from cars_deploy.search.objectives import COSTS, CountCost, build_costs, deploy_network
from cars_deploy.space import (
    GENOTYPES,
    NetworkConfig,
    build_network,
    count_mult_adds,
    count_parameters,
    random_genotype,
)

SMALL = [
    NetworkConfig(kind="cifar", C=8, layers=5, num_classes=10, input_size=16),
    NetworkConfig(kind="imagenet", C=8, layers=6, num_classes=7, input_size=64),
]


@pytest.mark.parametrize("network", SMALL, ids=["cifar", "imagenet"])
def test_table_sums_equal_counts_of_built_networks(network, rng):
    params, mult_adds = build_costs(["params", "mult_adds"], network=network)
    genotypes = [random_genotype(rng) for _ in range(4)] + [GENOTYPES.get("CARS_A"), GENOTYPES.get("DARTS_V1")]
    got_params, got_madds = params(genotypes), mult_adds(genotypes)
    for genotype, p, m in zip(genotypes, got_params, got_madds):
        model = build_network(genotype, network)
        assert p == count_parameters(model)
        assert m == count_mult_adds(model, input_size=network.input_size)


def test_default_deploy_network_is_the_imagenet_mobile_setting_and_exact():
    network = deploy_network("imagenet")
    assert (network.C, network.layers, network.input_size) == (48, 14, 224)
    params, mult_adds = build_costs(["params", "mult_adds"], network=network)
    genotype = GENOTYPES.get("CARS_I")
    model = build_network(genotype, network)
    assert params([genotype])[0] == count_parameters(model)  # 5.1M in Table 2
    assert mult_adds([genotype])[0] == count_mult_adds(model, input_size=224)


def test_costs_of_a_large_population_take_milliseconds(rng):
    cost = build_costs(["mult_adds"], network=deploy_network("imagenet"))[0]
    genotypes = [random_genotype(rng) for _ in range(400)]
    cost(genotypes[:2])
    start = time.perf_counter()
    values = cost(genotypes)
    assert time.perf_counter() - start < 0.5
    assert values.shape == (400,) and len(set(values.tolist())) > 300


def test_latency_needs_a_table_and_unknown_costs_are_named():
    with pytest.raises(UserInputError, match="--latency-table"):
        build_costs(["latency"], network=deploy_network("cifar"))
    with pytest.raises(UserInputError, match="unknown objective 'flops'.*mult_adds"):
        build_costs(["flops"], network=deploy_network("cifar"))


def test_a_cost_built_by_the_caller_is_used_as_given():
    class TableLatency:
        name, label, scale = "latency", "latency (ms)", 1.0

        def __init__(self, table):
            self.table = table

        def __call__(self, genotypes):
            return np.array([float(sum(op != "none" for op, _ in g.normal)) for g in genotypes])

    given = TableLatency("t.csv")
    latency, params = build_costs(["latency", "params"], network=deploy_network("imagenet"),
                                  provided={"latency": given})
    assert latency is given and latency([GENOTYPES.get("DARTS_V2")])[0] == 8.0
    assert params.name == "params" and "latency" not in COSTS


def test_count_cost_refuses_other_names():
    with pytest.raises(ValueError):
        CountCost("latency", network=deploy_network("cifar"), label="", scale=1.0)
