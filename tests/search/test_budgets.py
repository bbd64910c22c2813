"""Budgets: the space's minimum of a cost, the violation, constraint domination in every selection, and a
budgeted search that ends with its Pareto set under the budget."""
import numpy as np
import pandas as pd
import pytest

from cars_deploy.cli.search import main
from cars_deploy.errors import UserInputError
from cars_deploy.search.budgets import Budget, budgets_of, check_budgets, cost_minimum, violation
from cars_deploy.search.config import SELECTIONS, SearchConfig
from cars_deploy.search.loop import CarsSearch
from cars_deploy.search.objectives import COSTS, deploy_network
from cars_deploy.search.selection import select
from cars_deploy.space import NUM_NODES, PRIMITIVES, random_genotype


def table_minimum(table, ops):
    """The minimum straight from an EdgeCostTable: per node, its two cheapest distinct allowed inputs."""
    idx = [PRIMITIVES.index(op) for op in ops]
    total = float(table.base)
    for cell in (0, 1):
        m = table.edges[cell][idx].min(axis=0)  # (slot,)
        for node in range(2, 2 + NUM_NODES):
            total += sum(sorted(m[int(i >= 2)] for i in range(node))[:2])
    return total


@pytest.mark.parametrize("name", ["params", "mult_adds"])
@pytest.mark.parametrize("ops", [PRIMITIVES, tuple(op for op in PRIMITIVES if op != "none"), ("sep_conv_5x5", "max_pool_3x3")])
def test_cost_minimum_is_the_edge_tables_minimum_and_no_genotype_goes_below_it(name, ops):
    cost = COSTS.get(name)(network=deploy_network("cifar"))
    minimum, genotype = cost_minimum(cost, ops=ops)
    assert minimum == pytest.approx(table_minimum(cost.table, ops))
    assert float(cost([genotype])[0]) == pytest.approx(minimum)
    assert {op for op, _ in genotype.normal + genotype.reduce} <= set(ops)
    rng = np.random.default_rng(0)
    drawn = cost([random_genotype(rng, ops=ops) for _ in range(300)])
    assert drawn.min() >= minimum - 1e-6


def test_cost_minimum_of_the_shipped_calibrated_latency_table():
    from cars_deploy.latency.objective import latency_cost

    cost = latency_cost("host-cpu-imagenet-ort1", network=deploy_network("imagenet"))
    minimum, genotype = cost_minimum(cost)
    rng = np.random.default_rng(1)
    assert cost([random_genotype(rng) for _ in range(300)]).min() >= minimum - 1e-9
    assert float(cost([genotype])[0]) == pytest.approx(minimum)


def test_violation_is_the_sum_of_normalised_excesses():
    budgets = [Budget("params", 2e6, "--max-params", 2, "M"), Budget("latency", 4.0, "--max-latency", 4, "ms")]
    costs = {"params": np.array([1e6, 3e6, 2e6]), "latency": np.array([6.0, 2.0, 4.0])}
    np.testing.assert_allclose(violation(costs, budgets), [0.5, 0.5, 0.0])
    config = SearchConfig(max_params_m=2.0, max_mult_adds_m=300.0)
    assert [(b.cost, b.limit) for b in budgets_of(config)] == [("params", 2e6), ("mult_adds", 3e8)]


@pytest.mark.parametrize("method", SELECTIONS)
def test_constraint_domination_keeps_feasible_first_then_the_least_violating(method):
    rng = np.random.default_rng(4)
    n, keep = 30, 12
    accuracy, costs, speed = rng.random(n), rng.random((n, 2)), rng.normal(size=n)
    over = rng.random(n) + 0.01
    over[rng.permutation(n)[:8]] = 0.0  # 8 feasible: fewer than keep

    def draws():  # a fresh generator per call: the random selections draw the same numbers in each
        return np.random.default_rng(9)

    kept = select(method, accuracy=accuracy, costs=costs, speed=speed, n_survive=keep, violation=over, rng=draws())
    feasible = np.flatnonzero(over == 0)
    assert len(feasible) < keep and set(feasible) <= set(kept.tolist())
    rest = sorted(set(kept.tolist()) - set(feasible))
    dropped = sorted(set(range(n)) - set(kept.tolist()))
    assert max(over[rest]) <= min(over[dropped])
    # more feasible than slots: only feasible ones survive, chosen by the usual sorts among themselves
    over[: n // 2 + 5] = 0.0
    feasible = np.flatnonzero(over == 0)
    kept = select(method, accuracy=accuracy, costs=costs, speed=speed, n_survive=keep, violation=over, rng=draws())
    assert set(kept.tolist()) <= set(feasible.tolist())
    alone = select(method, accuracy=accuracy[feasible], costs=costs[feasible], speed=speed[feasible], n_survive=keep,
                   rng=draws())
    assert sorted(kept.tolist()) == sorted(feasible[alone].tolist())
    # an infeasible individual that dominates everything still loses to the feasible ones
    accuracy[0], costs[0], over[0] = 2.0, -1.0, 0.01
    assert 0 not in select(method, accuracy=accuracy, costs=costs, speed=speed, n_survive=keep, violation=over, rng=draws())


def test_a_budgeted_search_ends_with_every_pareto_model_under_the_budget(tiny_config, tmp_path):
    config = tiny_config.replace(max_params_m=2.6, max_mult_adds_m=420.0)  # about a quarter of the space meets both
    result = CarsSearch(config, tmp_path / "run", device="cpu", show_progress=False).run()
    pareto = pd.read_csv(tmp_path / "run" / "pareto.csv")
    assert len(pareto) >= 1 and pareto["feasible"].all() and (pareto["violation"] == 0).all()
    assert (pareto["params"] <= 2.6e6).all() and (pareto["mult_adds"] <= 420e6).all()
    population = pd.read_csv(tmp_path / "run" / "population.csv")
    assert (population["feasible"] == (population["violation"] == 0)).all()
    # every generation after the first kept the feasible candidates ahead of the infeasible ones
    for record in result.history[1:]:
        chosen = [i["violation"] for i in record["individuals"] if i["selected"]]
        dropped = [i["violation"] for i in record["individuals"] if not i["selected"]]
        assert not dropped or max(chosen) <= min(dropped) or min(chosen) == 0 == min(dropped)
    saved = CarsSearch.saved_config(tmp_path / "run")
    assert (saved.max_params_m, saved.max_mult_adds_m) == (2.6, 420.0)
    assert "params <= 2.6 M" in (tmp_path / "run" / "report.md").read_text()


def test_a_budget_no_genotype_meets_is_exit_2_naming_the_minimum(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["--out", str(run), "--deploy-network", "cifar", "--max-params", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--max-params 0.5" in err and "smallest params" in err and "1.37 M" in err and len(err.splitlines()) == 1
    assert not (run / "checkpoint.pt").exists()
    assert main(["--out", str(run), "--max-latency", "5"]) == 2
    assert "--max-latency needs a latency table" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # a usage error: argparse's one line and exit 2
        main(["--out", str(run), "--max-mult-adds", "-3"])
    assert refused.value.code == 2 and "argument --max-mult-adds: -3 is out of range" in capsys.readouterr().err


def test_check_budgets_on_latency_names_the_minimum_in_ms():
    from cars_deploy.latency.objective import latency_cost

    cost = latency_cost("host-cpu-imagenet-ort1", network=deploy_network("imagenet"))
    minimum, _ = cost_minimum(cost)
    check_budgets([Budget("latency", minimum * 1.01, "--max-latency", minimum * 1.01, "ms")], {"latency": cost})
    with pytest.raises(UserInputError, match=r"smallest latency .* ms"):
        check_budgets([Budget("latency", minimum * 0.99, "--max-latency", minimum * 0.99, "ms")], {"latency": cost})


def test_a_checkpoint_written_before_budgets_existed_still_resumes(tiny_config, tmp_path):
    import json

    import torch

    run = tmp_path / "run"
    CarsSearch(tiny_config, run, device="cpu", show_progress=False).run(max_generations=1)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    for key in ("max_latency_ms", "max_params_m", "max_mult_adds_m"):
        del state["config"][key]
    torch.save(state, run / "checkpoint.pt")
    saved = json.loads((run / "config.json").read_text())
    for key in ("max_latency_ms", "max_params_m", "max_mult_adds_m"):
        del saved["search"][key]
    (run / "config.json").write_text(json.dumps(saved))
    result = CarsSearch.resume(run, device="cpu", show_progress=False).run()
    assert result.finished and "feasible" not in pd.read_csv(run / "pareto.csv").columns
