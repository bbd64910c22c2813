import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import experiments.runs
from cars_deploy.errors import UserInputError
from cars_deploy.search.objectives import CountCost
from cars_deploy.space import NetworkConfig, random_genotype
from experiments.ranking_fidelity import MODES, choose_genotypes, main

from .conftest import TINY_SEARCH, TINY_TRAIN, drop_last_record, moved_away


def test_end_to_end_interrupted_then_resumed(shared_dirs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "results"
    argv = [*shared_dirs, *TINY_SEARCH, *TINY_TRAIN, "--n", "4", "--pool", "40", "--out", str(out)]
    real_retrain, calls = experiments.runs.retrain, []

    def retrain_then_stop(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user stops the run after two models
        calls.append(1)
        return real_retrain(*args, **kwargs)

    monkeypatch.setattr(experiments.runs, "retrain", retrain_then_stop)
    assert main(argv) == 130
    first = (out / "models.jsonl").read_text().splitlines()
    assert len(first) == 2
    monkeypatch.setattr(experiments.runs, "retrain", real_retrain)
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "4 of 4 genotypes retrained" in printed and "Kendall tau" in printed
    assert (out / "models.jsonl").read_text().splitlines()[:2] == first  # kept, not redone

    supernet = pd.read_csv(out / "supernet.csv")
    assert len(supernet) == 4 and all(supernet[m].between(0, 1).all() for m in MODES)
    table = pd.read_csv(out / "fidelity.csv")
    assert table.test_accuracy.notna().all() and list(table.source) == ["population"] * 2 + ["random"] * 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trained"] == 4
    for mode in MODES:
        assert summary[f"{mode}_vs_standalone"]["n"] == 4
        excess = (table[mode] - table.test_accuracy) * 100  # the population's excess minus the random ones'
        gap = excess[table.source == "population"].mean() - excess[table.source == "random"].mean()
        assert summary[f"{mode}_flattery_gap_points"] == pytest.approx(gap, abs=1e-3)  # the CSV keeps 6 digits
        low, high = summary[f"{mode}_flattery_gap_ci95"]
        assert low <= summary[f"{mode}_flattery_gap_points"] <= high
    assert "flattery of the population" in printed
    assert (out / "fidelity.png").stat().st_size > 1000

    # On another machine the search folder (under runs/) is gone: the saved genotypes and SuperNet
    # accuracies carry the retraining on without the search being made again.
    search = Path(summary["search_run"])
    with moved_away([search], tmp_path / "elsewhere"):
        models = drop_last_record(out / "models.jsonl")
        assert main(argv) == 0
        capsys.readouterr()
        assert not search.exists() and (out / "models.jsonl").read_text().splitlines() == models


def test_genotype_sources():
    rng = np.random.default_rng(0)
    count = CountCost("params", network=NetworkConfig.cifar(C=4, layers=3, num_classes=10, input_size=8),
                      label="params", scale=1.0)
    genotypes = [random_genotype(rng) for _ in range(6)]
    population = pd.DataFrame({"genotype": [str(g) for g in genotypes], "accuracy": np.linspace(0.1, 0.6, 6),
                               "params": count(genotypes)})
    mixed = choose_genotypes(population, n=5, source="mixed", count=count, rng=np.random.default_rng(1), pool_size=100)
    assert list(mixed.source) == ["population"] * 2 + ["random"] * 3 and mixed.genotype.is_unique
    assert set(mixed.genotype[:2]) <= set(population.genotype) and not set(mixed.genotype[2:]) & set(population.genotype)
    assert mixed.search_accuracy[:2].notna().all() and mixed.search_accuracy[2:].isna().all()
    only = choose_genotypes(population, n=6, source="population", count=count, rng=rng, pool_size=10)
    assert set(only.genotype) == set(population.genotype)
    with pytest.raises(UserInputError, match="fewer than the 7"):
        choose_genotypes(population, n=7, source="population", count=count, rng=rng, pool_size=10)
