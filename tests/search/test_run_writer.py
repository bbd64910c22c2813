import json

import numpy as np
import pandas as pd

from cars_deploy.search.population import Individual, Population
from cars_deploy.search.run_writer import RunWriter
from cars_deploy.search.rundir import PLOTS, REPORT_COLUMNS, RunDir
from cars_deploy.space import random_genotype


class FakeCost:
    """A cost that reads a number off the genotype (its count of skip connections), scaled by ``factor``."""

    def __init__(self, name, factor, label="", scale=1.0):
        self.name, self.factor, self.label, self.scale = name, factor, label or name, scale

    def __call__(self, genotypes):
        return np.array([self.factor * (1 + sum(op == "skip_connect" for op, _ in g.normal)) for g in genotypes],
                        dtype=np.float64)


REPORT = {"params": FakeCost("params", 1000), "mult_adds": FakeCost("mult_adds", 10**6)}


def _population(costs, rng):
    genotypes = [random_genotype(rng) for _ in range(6)]
    values = np.column_stack([cost(genotypes) for cost in costs])
    return Population(
        Individual(genotype=g, origin="initial", born=0, accuracy=0.5 + 0.05 * i, costs=tuple(values[i]))
        for i, g in enumerate(genotypes)
    )


def test_tables_start_with_the_report_columns_and_latency_fills_latency_ms(tmp_path, rng):
    costs = [FakeCost("latency", 0.5, label="latency (ms)"), FakeCost("energy", 2.0)]
    population = _population(costs, rng)
    writer = RunWriter(RunDir(tmp_path), costs=costs, report_costs=REPORT)
    table = writer.population_table(population)
    assert list(table.columns) == [*REPORT_COLUMNS, "energy"]
    np.testing.assert_allclose(table["latency_ms"], costs[0](population.genotypes))
    assert (table["objective"] == "latency,energy").all()
    assert table["params"].dtype == np.int64 and list(table["params"]) == list(REPORT["params"](population.genotypes))
    pareto = writer.pareto_table(population)
    assert list(pareto.columns) == list(table.columns) and 1 <= len(pareto) <= len(table)
    assert pareto["latency_ms"].is_monotonic_increasing


def test_write_renders_every_file_and_plots_at_the_end(tmp_path, rng):
    costs = [REPORT["params"]]
    population = _population(costs, rng)
    run = RunDir(tmp_path)
    writer = RunWriter(run, costs=costs, report_costs=REPORT, plot_seconds=3600)
    selected = np.ones(len(population), dtype=bool)
    history = [{"generation": 0, "individuals": writer.individual_records(population, selected)}]
    writer.write(population, history, generation=0)
    assert not run.plots_path.exists()  # the last plots are not yet an hour old
    writer.write(population, history, generation=0, final=True)
    assert all((run.plots_path / name).is_file() for name in PLOTS)
    (line,) = run.history_path.read_text().splitlines()
    individuals = json.loads(line)["individuals"]
    assert individuals[0]["params"] == int(REPORT["params"]([population[0].genotype])[0])
    assert individuals[0]["accuracy_speed"] is None and individuals[0]["selected"] is True  # NaN as null
    assert pd.read_csv(run.population_path)["genotype"].tolist() == [str(g) for g in population.genotypes]
    assert len(pd.read_csv(run.pareto_path)) >= 1
