"""The selection variants of issue 17: pnsga3-shuffled (the speed term's control), vega (the authors'
toolkit: a second sort on accuracy and size up, the last layer cut at random) and how the search seeds
them."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cars_deploy.cli.search import _parser, config_from_args, main
from cars_deploy.errors import UserInputError
from cars_deploy.search import CarsSearch
from cars_deploy.search.config import SELECTIONS, SearchConfig
from cars_deploy.search.selection import select, selection_rng, vega_select

from .test_selection import brute_fronts, brute_merged_layers


def _population(seed, n=16):
    rng = np.random.default_rng(seed)
    return rng.random(n).round(1), rng.random(n).round(1), rng.normal(size=n).round(2)


def _kept(method, accuracy, cost, speed, n_survive, rng_seed=0, violation=None):
    kept = select(method, accuracy=accuracy, costs=cost, speed=speed, n_survive=n_survive, violation=violation,
                  rng=np.random.default_rng(rng_seed))
    return set(kept.tolist())


def test_the_search_takes_the_four_selections():
    assert SELECTIONS == ("pnsga3", "pnsga3-shuffled", "vega", "nsga3") and SearchConfig().selection == "pnsga3"


@pytest.mark.parametrize("seed", range(8))
def test_shuffled_is_pnsga3_on_the_permuted_speed(seed):
    accuracy, cost, speed = _population(300 + seed)
    permuted = np.random.default_rng(seed).permutation(speed)
    for n_survive in (4, 7, 10):
        shuffled = select("pnsga3-shuffled", accuracy=accuracy, costs=cost, speed=speed, n_survive=n_survive,
                          rng=np.random.default_rng(seed))
        plain = select("pnsga3", accuracy=accuracy, costs=cost, speed=permuted, n_survive=n_survive)
        assert np.array_equal(shuffled, plain)


def test_shuffled_depends_on_its_generator_and_not_on_the_speeds_owners():
    accuracy, cost, speed = _population(7, n=24)
    results = {tuple(sorted(_kept("pnsga3-shuffled", accuracy, cost, speed, 10, rng_seed=s))) for s in range(12)}
    assert len(results) > 1  # another generator, another permutation, other survivors
    assert _kept("pnsga3-shuffled", accuracy, cost, speed, 10, 3) == _kept("pnsga3-shuffled", accuracy, cost, speed, 10, 3)


@pytest.mark.parametrize("seed", range(10))
def test_vega_takes_merged_fronts_of_accuracy_and_size_up_in_order(seed):
    accuracy, cost, _ = _population(400 + seed)
    F_acc, F_size = np.column_stack([-accuracy, cost]), np.column_stack([-accuracy, -cost])
    layers = brute_merged_layers(F_acc, F_size)
    for n_survive in range(1, len(accuracy) + 1):
        kept = _kept("vega", accuracy, cost, None, n_survive, rng_seed=seed)
        assert len(kept) == n_survive
        fitting = [layer for layer in layers if len(layer) <= n_survive]
        inside = fitting[-1] if fitting else set()
        outside = next(layer for layer in layers if len(layer) >= n_survive)
        assert inside <= kept <= outside


def test_vega_keeps_the_large_accurate_front_without_any_speed_term():
    # Small accurate models, medium mediocre ones and large less accurate ones: U_1 = R_1 ∪ Q_1 holds the
    # small accurate ones and the largest one (Q_1 of accuracy up, size up), none of the medium ones.
    params = np.array([1.0, 1.2, 1.4, 2.0, 2.1, 2.2, 3.0, 3.2])
    accuracy = np.array([0.80, 0.85, 0.90, 0.60, 0.62, 0.61, 0.70, 0.75])
    q1 = brute_fronts(np.column_stack([-accuracy, -params]))[0]
    assert q1 == [2, 7]  # the most accurate model and the largest: nothing is both bigger and more accurate
    for rng_seed in range(5):
        assert _kept("vega", accuracy, params, None, 4, rng_seed) == {0, 1, 2, 7}  # U_1 fits whole
        kept = _kept("vega", accuracy, params, None, 5, rng_seed)  # U_2 adds 3, 4, 6: one of them, at random
        assert {0, 1, 2, 7} < kept and len(kept & {3, 4, 6}) == 1


def test_vega_cuts_the_last_layer_at_random_and_reproducibly():
    accuracy, cost, _ = _population(11, n=30)
    F_acc, F_size = np.column_stack([-accuracy, cost]), np.column_stack([-accuracy, -cost])
    layers = [set(), *brute_merged_layers(F_acc, F_size)]
    i = next(i for i in range(1, len(layers)) if len(layers[i]) - len(layers[i - 1]) >= 3)
    n_survive = len(layers[i - 1]) + 1  # one place left for three or more new members of U_i
    runs = [tuple(vega_select(F_acc, F_size, n_survive, rng=np.random.default_rng(s)).tolist()) for s in range(10)]
    again = [tuple(vega_select(F_acc, F_size, n_survive, rng=np.random.default_rng(s)).tolist()) for s in range(10)]
    assert runs == again and len(set(runs)) > 1
    assert all(layers[i - 1] < set(run) <= layers[i] for run in runs)
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    vega_select(F_acc, F_size, n_survive, rng=rng)
    assert rng.bit_generator.state != before  # it draws from the generator it is given


@pytest.mark.parametrize("method", ["pnsga3-shuffled", "vega"])
def test_random_selections_refuse_to_run_without_a_generator(method):
    accuracy, cost, speed = _population(1)
    with pytest.raises(ValueError, match="rng"):
        select(method, accuracy=accuracy, costs=cost, speed=speed, n_survive=4)
    with pytest.raises(ValueError, match="unknown selection 'random'; expected one of pnsga3, pnsga3-shuffled"):
        select("random", accuracy=accuracy, costs=cost, speed=speed, n_survive=4)  # type: ignore[arg-type]


def test_selection_generators_differ_by_seed_and_generation_and_repeat():
    draws = {(s, g): selection_rng(s, g).random(3).tolist() for s in (0, 1) for g in (1, 2)}
    assert len({tuple(d) for d in draws.values()}) == 4
    assert selection_rng(1, 2).random(3).tolist() == draws[(1, 2)]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 24),
    share=st.floats(0.05, 1.0),
    seed=st.integers(0, 2**32 - 1),
    method=st.sampled_from(SELECTIONS),
    costs=st.integers(1, 2),
    budget=st.booleans(),
)
def test_every_selection_keeps_n_survive_distinct_individuals(n, share, seed, method, costs, budget):
    rng = np.random.default_rng(seed)
    accuracy, cost, speed = rng.random(n).round(2), rng.random((n, costs)).round(2), rng.normal(size=n).round(2)
    violation = np.where(rng.random(n) < 0.5, 0.0, rng.random(n)) if budget else None
    n_survive = max(1, int(round(share * n)))
    kept = select(method, accuracy=accuracy, costs=cost, speed=speed, n_survive=n_survive, violation=violation,
                  rng=np.random.default_rng(seed))
    assert len(kept) == n_survive == len(set(kept.tolist())) and ((0 <= kept) & (kept < n)).all()
    if violation is not None:  # constraint domination: no infeasible survivor while a feasible one is left out
        feasible = violation == 0
        assert feasible[kept].all() or feasible.sum() <= n_survive and set(np.flatnonzero(feasible)) <= set(kept)


def test_the_command_line_takes_each_selection_and_the_config_round_trips(tmp_path):
    for name in SELECTIONS:
        config = config_from_args(_parser().parse_args(["--out", str(tmp_path / name), "--selection", name]))
        assert config.selection == name
        assert SearchConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_an_unknown_selection_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(UserInputError, match="expected one of pnsga3, pnsga3-shuffled, vega, nsga3"):
        SearchConfig(selection="vega2").validate()  # type: ignore[arg-type]
    with pytest.raises(UserInputError, match="selection"):
        SearchConfig.from_dict({**SearchConfig().to_dict(), "selection": "vega2"})
    with pytest.raises(SystemExit) as exit:
        main(["--out", str(tmp_path / "r"), "--selection", "vega2"])
    err = capsys.readouterr().err.strip()
    assert exit.value.code == 2 and len(err.splitlines()) == 1 and "invalid choice: 'vega2'" in err


@pytest.mark.parametrize("method", ["pnsga3-shuffled", "vega"])
def test_a_resumed_random_selection_search_selects_what_an_uninterrupted_one_does(tmp_path, tiny_config, method):
    config = tiny_config.replace(selection=method, epochs=4)
    full = CarsSearch(config, tmp_path / "full", device="cpu", show_progress=False).run()
    CarsSearch(config, tmp_path / "part", device="cpu", show_progress=False).run(max_generations=1)
    resumed = CarsSearch.resume(tmp_path / "part", device="cpu", show_progress=False).run()
    assert resumed.population.genotypes == full.population.genotypes
    def chosen(history):  # JSON text, so that generation 0's NaN speeds compare equal
        return json.dumps([record["individuals"] for record in history])

    assert chosen(resumed.history) == chosen(full.history)
    for record in full.history[1:]:  # the stored speed is the real one: shuffling only feeds the selection
        for ind in record["individuals"]:
            assert ind["accuracy_speed"] == pytest.approx(ind["accuracy"] - ind["previous_accuracy"])
