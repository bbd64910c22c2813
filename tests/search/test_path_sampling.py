"""Warmup path sampling: strict fairness (FairNAS) within each group, uniform draws otherwise."""
import numpy as np
import pytest

from cars_deploy.search import CarsSearch
from cars_deploy.search.path_sampling import FairPathSampler, warmup_paths
from cars_deploy.space import NUM_NODES, OP_SETS, PRIMITIVES, random_genotype


def _codes(genotypes):
    return np.stack([g.encode().reshape(2, NUM_NODES, 2, 2) for g in genotypes])


@pytest.mark.parametrize("name", sorted(OP_SETS))
def test_every_edge_slot_takes_every_op_once_per_group(name):
    ops = OP_SETS[name]
    sampler = FairPathSampler(ops, np.random.default_rng(3))
    for _ in range(3):
        group = sampler.group()
        assert len(group) == len(ops)
        codes = _codes(group)
        wanted = sorted(PRIMITIVES.index(op) for op in ops)
        for cell in range(2):
            for node in range(NUM_NODES):
                for edge in range(2):
                    assert sorted(codes[:, cell, node, edge, 1]) == wanted
                inputs = codes[:, cell, node, :, 0]
                assert (inputs[:, 0] != inputs[:, 1]).all() and (inputs < node + 2).all()
        for genotype in group:
            genotype.validate()


def test_samples_continue_the_group_and_are_seeded():
    a = FairPathSampler(OP_SETS["published"], np.random.default_rng(0))
    b = FairPathSampler(OP_SETS["published"], np.random.default_rng(0))
    whole = b.group() + b.group()
    assert a.sample(3) + a.sample(5) + a.sample(6) == whole  # 14 = two groups of 7, in order
    other = FairPathSampler(OP_SETS["published"], np.random.default_rng(1)).sample(7)
    assert other != whole[:7]


def test_uniform_paths_are_the_draws_random_genotype_makes():
    ops = OP_SETS["published"]
    paths = warmup_paths("uniform", ops, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    assert paths(4) == [random_genotype(rng, ops=ops) for _ in range(4)]


def test_a_fair_search_runs_and_resumes_to_the_same_end(tmp_path, tiny_config):
    config = tiny_config.replace(path_sampling="fair", warmup_epochs=2, epochs=4, population=4)
    full = CarsSearch(config, tmp_path / "full", device="cpu", show_progress=False).run()
    CarsSearch(config, tmp_path / "cut", device="cpu", show_progress=False).run(max_generations=1)
    resumed = CarsSearch.resume(tmp_path / "cut", device="cpu", show_progress=False).run()
    assert resumed.finished and [i.genotype for i in resumed.population] == [i.genotype for i in full.population]
    assert [i.accuracy for i in resumed.population] == [i.accuracy for i in full.population]
