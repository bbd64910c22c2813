import json
from pathlib import Path

import numpy as np
import pandas as pd

from cars_deploy.search.objectives import CountCost
from cars_deploy.space import NetworkConfig, random_genotype
from experiments.cars_vs_random import main, make_plan

from .conftest import TINY_SEARCH, TINY_TRAIN, drop_last_record, moved_away


def test_end_to_end_and_resume_after_a_lost_record(shared_dirs, tmp_path, capsys):
    out = tmp_path / "results"
    argv = [*shared_dirs, *TINY_SEARCH, *TINY_TRAIN, "--k", "2", "--pool", "50", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "4 of 4 models retrained, 2 complete pairs" in printed and "mean test accuracy" in printed
    plan = pd.read_csv(out / "plan.csv")
    assert list(plan.role) == ["cars", "random", "cars", "random"]
    assert (plan[plan.role == "cars"].front == 1).any()
    models = (out / "models.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in models]
    assert [r["model"] for r in records] == list(plan.model)
    assert all(r["params_trained"] == r["params"] and 0 <= r["test_accuracy"] <= 1 for r in records)
    pairs = pd.read_csv(out / "pairs.csv")
    assert len(pairs) == 2 and (out / "cars_vs_random.png").stat().st_size > 1000
    assert len((out / "commands.txt").read_text().splitlines()) == 1 + 4

    # Losing the last record (a kill right after training) redoes only that one, from its finished run folder.
    (out / "models.jsonl").write_text("\n".join(models[:-1]) + "\n")
    timing = json.loads((out / "timing.json").read_text())
    assert main(argv) == 0
    capsys.readouterr()
    assert (out / "models.jsonl").read_text().splitlines() == models
    assert json.loads((out / "timing.json").read_text()) == timing  # nothing was trained again

    # On another machine the search folder (under runs/) is gone: the saved plan carries the retraining on
    # without the search being made again.
    search = Path(json.loads((out / "summary.json").read_text())["search_run"])
    with moved_away([search], tmp_path / "elsewhere"):
        drop_last_record(out / "models.jsonl")
        assert main(argv) == 0
        capsys.readouterr()
        assert not search.exists() and (out / "models.jsonl").read_text().splitlines() == models


def test_plan_pairs_pareto_picks_with_size_matched_random_genotypes():
    rng = np.random.default_rng(3)
    count = CountCost("params", network=NetworkConfig.cifar(C=4, layers=3, num_classes=10, input_size=8),
                      label="params", scale=1.0)
    genotypes = [random_genotype(rng) for _ in range(12)]
    population = pd.DataFrame({"genotype": [str(g) for g in genotypes], "accuracy": rng.random(12),
                               "params": count(genotypes)})
    plan = make_plan(population, k=4, count=count, rng=np.random.default_rng(0), pool_size=3000)
    cars, rand = plan[plan.role == "cars"], plan[plan.role == "random"]
    assert len(cars) == len(rand) == 4 and set(cars.genotype).isdisjoint(rand.genotype)
    assert (rand.size_gap.abs() < 0.02).all()  # 3,000 random genotypes hold a close match for each
    assert list(cars.pair) == list(rand.pair) == [0, 1, 2, 3]
