import numpy as np
import pytest

from cars_deploy.search.variation import VariationConfig, crossover, make_offspring, mutate
from cars_deploy.space import NUM_NODES, PRIMITIVES, Genotype, random_genotype


def _nodes(genotype):
    return genotype.encode().reshape(2, NUM_NODES, 2, 2)


def test_offspring_are_valid_distinct_and_new(rng):
    parents = [random_genotype(rng) for _ in range(12)]
    offspring = make_offspring(parents, 60, rng)
    assert len(offspring) == 60
    keys = [g.canonical() for g, _ in offspring]
    assert len(set(keys)) == 60
    assert not set(keys) & {p.canonical() for p in parents}
    for genotype, origin in offspring:
        genotype.validate()
        assert origin in ("crossover", "mutation", "random")
        for cell in _nodes(genotype):
            for k, node in enumerate(cell):
                assert (node[:, 0] < 2 + k).all()


def test_duplicates_are_judged_on_the_canonical_form(rng):
    parent = random_genotype(rng)
    # The same network written differently (edges of each node swapped) must count as a duplicate.
    swapped = Genotype.of(
        normal=[e for k in range(NUM_NODES) for e in reversed(parent.normal[2 * k : 2 * k + 2])],
        reduce=[e for k in range(NUM_NODES) for e in reversed(parent.reduce[2 * k : 2 * k + 2])],
    )
    assert swapped != parent and swapped.canonical() == parent.canonical()
    for genotype, _ in make_offspring([parent, random_genotype(rng)], 200, rng):
        assert genotype.canonical() != parent.canonical()


def test_operator_frequencies_match_the_paper_within_sampling_error():
    rng = np.random.default_rng(1)
    parents = [random_genotype(rng) for _ in range(32)]
    n = 4000
    origins = [origin for _, origin in make_offspring(parents, n, rng)]
    for origin, p in (("crossover", 0.25), ("mutation", 0.25), ("random", 0.5)):
        share = origins.count(origin) / n
        assert abs(share - p) < 4 * np.sqrt(p * (1 - p) / n), (origin, share)


def test_crossover_takes_whole_nodes_from_either_parent_with_probability_half():
    rng = np.random.default_rng(2)
    from_second, differing = 0, 0
    for _ in range(300):
        a, b = random_genotype(rng), random_genotype(rng)
        child = crossover(a, b, rng)
        na, nb, nc = _nodes(a), _nodes(b), _nodes(child)
        for cell in range(2):
            for k in range(NUM_NODES):
                assert np.array_equal(nc[cell, k], na[cell, k]) or np.array_equal(nc[cell, k], nb[cell, k])
                if not np.array_equal(na[cell, k], nb[cell, k]):
                    differing += 1
                    from_second += np.array_equal(nc[cell, k], nb[cell, k])
    share = from_second / differing
    assert abs(share - 0.5) < 4 * np.sqrt(0.25 / differing)


def test_mutation_redraws_each_node_with_probability_half():
    rng = np.random.default_rng(3)
    changed, total = 0, 0
    for _ in range(300):
        parent = random_genotype(rng)
        child = mutate(parent, rng)
        changed += int((_nodes(parent) != _nodes(child)).any(axis=(2, 3)).sum())
        total += 2 * NUM_NODES
    # A re-drawn node can come out equal to the old one; the chance is small but not zero.
    assert 0.42 < changed / total < 0.5 + 4 * np.sqrt(0.25 / total)


def test_seeded_variation_is_reproducible():
    parents = [random_genotype(np.random.default_rng(i)) for i in range(8)]
    first = make_offspring(parents, 20, np.random.default_rng(7))
    second = make_offspring(parents, 20, np.random.default_rng(7))
    assert first == second


def test_all_random_config_only_makes_random_architectures(rng):
    parents = [random_genotype(rng) for _ in range(4)]
    config = VariationConfig(crossover_prob=0.0, mutation_prob=0.0)
    assert {origin for _, origin in make_offspring(parents, 30, rng, config)} == {"random"}
    with pytest.raises(ValueError):
        make_offspring([], 1, rng)


def _ops(genotype):
    return {op for op, _ in genotype.normal + genotype.reduce}


def test_offspring_stay_in_the_op_set_they_are_given(rng):
    parents = [random_genotype(rng) for _ in range(8)]
    published = make_offspring(parents, 200, rng)  # default: the published genotypes' 7 ops
    assert not any("none" in _ops(g) for g, _ in published)
    assert {"mutation", "random", "crossover"} <= {origin for _, origin in published}
    darts = make_offspring(parents, 200, rng, VariationConfig(ops=PRIMITIVES))
    assert any("none" in _ops(g) for g, origin in darts if origin == "mutation")
    assert any("none" in _ops(g) for g, origin in darts if origin == "random")
