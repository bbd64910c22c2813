import itertools

import numpy as np
import pytest

from cars_deploy.search.objectives import CountCost
from cars_deploy.search.selection import non_dominated_fronts
from cars_deploy.space import NetworkConfig, build_network, count_parameters, random_genotype
from experiments.choose import match_by_params, pareto_picks, random_pool, space_bounds, spread


@pytest.fixture(scope="module")
def count():
    return CountCost("params", network=NetworkConfig.cifar(C=4, layers=3, num_classes=4, input_size=8),
                     label="params", scale=1.0)


def test_spread_takes_evenly_spaced_ranks():
    values = np.array([50.0, 10, 40, 0, 30, 20, 90, 80, 70, 60])
    picked = spread(values, 5)
    assert sorted(values[picked]) == [0, 20, 40, 60, 80]  # ranks 0.5, 2.5, ... rounded to distinct members
    assert spread(values, 10) == list(np.argsort(values))
    assert spread([3.0, 1.0], 5) == [1, 0]
    assert len(set(spread(np.zeros(7), 4))) == 4  # ties still give distinct members


def test_pareto_picks_take_fronts_in_order_then_spread_the_last():
    rng = np.random.default_rng(1)
    accuracy, params = rng.random(30), rng.random(30)
    fronts = non_dominated_fronts(np.column_stack([-accuracy, params]))
    k = len(fronts[0]) + 2
    picks = pareto_picks(accuracy, params, k)
    assert len(picks) == k and len({i for i, _ in picks}) == k
    assert {i for i, f in picks if f == 1} == set(fronts[0].tolist())
    assert {i for i, f in picks if f == 2} <= set(fronts[1].tolist())
    few = pareto_picks(accuracy, params, 1)
    assert few[0][1] == 1 and few[0][0] in fronts[0]


def test_match_by_params_takes_the_nearest_unused():
    assert match_by_params([10, 10, 31], [9, 12, 30, 10.5]) == [3, 0, 2]
    with pytest.raises(ValueError):
        match_by_params([1, 2], [1])


def test_random_pool_is_distinct_and_avoids_the_excluded(rng):
    first = random_genotype(np.random.default_rng(5))
    pool = random_pool(np.random.default_rng(5), 50, exclude=[first])
    canon = [g.canonical() for g in pool]
    assert len(set(canon)) == 50 and first.canonical() not in canon


def test_space_bounds_are_the_extremes_of_the_space(count, rng):
    (lo, small), (hi, large) = space_bounds(count)
    network = NetworkConfig.cifar(C=4, layers=3, num_classes=4, input_size=8)
    assert count_parameters(build_network(small, network)) == lo
    assert count_parameters(build_network(large, network)) == hi
    sample = count([random_genotype(rng) for _ in range(3000)])
    assert lo <= sample.min() and sample.max() <= hi and lo < hi
    # Brute force over one node of the reduction cell: nothing beats the node the bounds chose.
    code = large.encode().reshape(2, 4, 2, 2)
    best = max(
        count([type(large).decode(np.concatenate([code[:1], _with_node(code[1:], 1, a, b, x, y)]).reshape(-1))])[0]
        for (a, b) in itertools.combinations(range(3), 2) for x in range(8) for y in range(8)
    )
    assert best == hi


def _with_node(cell, node, a, b, op_a, op_b):
    cell = cell.copy()
    cell[0, node] = [[a, op_a], [b, op_b]]
    return cell
