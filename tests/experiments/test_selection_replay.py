import numpy as np
import pandas as pd
import pytest

from cars_deploy.search.selection import SELECTIONS, select, selection_rng
from experiments.selection_replay import REFERENCE, replay_search, replay_summary, speed_pairs

SPACE = (1e6, 4e6)


def synthetic_history(rule: str, *, seed: int, generations: int = 6, population: int = 8,
                      speed_of=None, persistent: bool = False) -> list[dict]:
    """A search history shaped like the search's: generation 0 keeps everyone; from then on 2P candidates
    (the kept ones and P new ones) are measured and ``rule`` keeps P of them, with the search's own
    generator. A model's true accuracy rises at its own rate (``persistent``) or stays put, and each
    measurement adds independent noise to it;
    ``speed_of(params, speed)`` can replace the measured speed (e.g. tie it to size)."""
    rng = np.random.default_rng(seed)
    names = iter(range(10**6))

    def new_members(n):
        return [{"genotype": f"g{next(names)}", "params": int(rng.uniform(*SPACE)), "rate": rng.uniform(0, 0.03) if persistent else 0.0,
                 "accuracy": float(rng.uniform(0.2, 0.4))} for _ in range(n)]

    members = new_members(population)
    history = [{"generation": 0, "objectives": ["accuracy", "params"],
                "individuals": [{"genotype": m["genotype"], "params": m["params"], "accuracy": m["accuracy"],
                                 "accuracy_speed": None, "selected": True} for m in members]}]
    for generation in range(1, generations + 1):
        candidates = members + new_members(population)
        previous = np.array([m["accuracy"] for m in candidates])  # the last measurement
        for m in candidates:
            m["true"] = m.get("true", m["accuracy"]) + 2 * m["rate"]
        current = np.array([m["true"] for m in candidates]) + rng.normal(0, 0.005, len(candidates))
        speed = (current - previous) / 2
        params = np.array([m["params"] for m in candidates], dtype=float)
        if speed_of is not None:
            speed = speed_of(params, speed)
        keep = select(rule, accuracy=current, costs=params[:, None], speed=speed, n_survive=population,
                      rng=selection_rng(seed, generation))
        selected = np.zeros(len(candidates), dtype=bool)
        selected[keep] = True
        history.append({"generation": generation, "objectives": ["accuracy", "params"], "individuals": [
            {"genotype": m["genotype"], "params": m["params"], "accuracy": float(a), "accuracy_speed": float(s),
             "selected": bool(k)} for m, a, s, k in zip(candidates, current, speed, selected)]})
        for m, a in zip(candidates, current):
            m["accuracy"] = float(a)
        members = [m for m, k in zip(candidates, selected) if k]
    return history


@pytest.mark.parametrize("rule", SELECTIONS)
def test_the_searchs_own_rule_replayed_keeps_exactly_what_it_kept(rule):
    table = replay_search(synthetic_history(rule, seed=3), selection=rule, seed=3, space=SPACE, draws=4)
    assert set(table.generation) == set(range(1, 7)) and set(table.rule) == set(SELECTIONS)  # generation 0 keeps all
    own = table[table.rule == rule]
    assert own.reproduces_recorded.tolist() == [True] * 6
    if rule in ("pnsga3", "nsga3"):  # the random rules' other columns average draws of the replay's own generator
        assert (own.shared_with_recorded == own.kept).all()
    assert table[table.rule != rule].reproduces_recorded.isna().all()
    assert (table[table.rule == REFERENCE].changed_vs_pnsga3 == 0).all()
    assert (table.draws == table.rule.map(lambda r: 4 if r in ("pnsga3-shuffled", "vega") else 1)).all()
    # Replayed with another seed's generator, a random rule keeps other members somewhere.
    if rule in ("pnsga3-shuffled", "vega"):
        wrong = replay_search(synthetic_history(rule, seed=3), selection=rule, seed=4, space=SPACE, draws=1)
        assert not wrong[wrong.rule == rule].reproduces_recorded.all()


def test_pnsga3_keeps_the_fast_learners_its_shuffled_copy_does_not_and_larger_models_than_nsga3():
    histories = {seed: synthetic_history("pnsga3", seed=seed, persistent=True) for seed in range(4)}
    table = pd.concat([replay_search(h, selection="pnsga3", seed=s, space=SPACE, draws=16) for s, h in histories.items()])
    summary = replay_summary(table)
    assert summary["searches"] == 4 and summary["reproduced_generations"] == summary["replayed_generations"] == 24
    versus = summary["comparisons"]["pnsga3 vs pnsga3-shuffled"]["kept_speed_mean"]
    assert versus["wins"] == 4 and versus["mean_difference"] > 0
    means = summary["mean_over_searches"]
    assert means["pnsga3-shuffled"]["changed_vs_pnsga3"] > 0
    # The second sort's cost-up axis keeps large models that NSGA-III, with no second sort, drops.
    assert means["nsga3"]["kept_params_median"] < means["pnsga3"]["kept_params_median"]
    assert means["nsga3"]["kept_share_top_third"] < means["pnsga3"]["kept_share_top_third"]


def test_speed_pairs_tell_measurement_noise_from_a_learning_rate():
    def persistence(persistent):
        histories = {s: synthetic_history("nsga3", seed=s, generations=10, population=16, persistent=persistent)
                     for s in range(3)}  # fmt: skip
        pairs = pd.concat([speed_pairs(h, selection="nsga3", seed=s) for s, h in histories.items()])
        table = pd.concat([replay_search(h, selection="nsga3", seed=s, space=SPACE, draws=1) for s, h in histories.items()])
        return pairs, replay_summary(table, pairs)["speed_persistence"]

    pairs, noise = persistence(False)
    # Every pair is a member kept at g and measured again at g + 1, from generation 1 on.
    assert len(pairs) > 100 and pairs.generation.min() == 1 and pairs.generation.max() == 9
    assert noise["pearson_r"] < -0.35 and noise["pearson_p"] < 0.01  # near the -0.5 of pure noise
    _, learning = persistence(True)
    assert learning["pearson_r"] > 0.3 and learning["pearson_p"] < 0.01


def test_a_genotype_listed_twice_in_a_generation_is_left_out_of_the_speed_pairs():
    history = synthetic_history("nsga3", seed=1, generations=3)
    twin = dict(history[1]["individuals"][0])
    history[1]["individuals"].append(twin)  # the same genotype twice: whose speed is whose is unknown
    pairs = speed_pairs(history, selection="nsga3", seed=1)
    kept_once = sum(ind["selected"] for ind in history[1]["individuals"][1:-1])  # every kept member is measured again
    assert (pairs.generation == 1).sum() == kept_once
    assert (pairs.generation == 2).sum() == sum(ind["selected"] for ind in history[2]["individuals"])


def test_draws_must_be_positive_and_an_empty_replay_says_so():
    with pytest.raises(ValueError, match="draws"):
        replay_search(synthetic_history("nsga3", seed=0), selection="nsga3", seed=0, space=SPACE, draws=0)
    assert replay_summary(pd.DataFrame()) == {"searches": 0}
