"""latency.summary: the reports cars-inspect prints, from the library."""
from __future__ import annotations

import pytest

from cars_deploy.latency import LatencyPredictor
from cars_deploy.latency.summary import genotype_report, genotype_reports
from cars_deploy.profilers.table import LatencyTable
from cars_deploy.space import GENOTYPES, build_network, count_mult_adds, count_parameters

from .conftest import SMALL


def test_report_counts_the_built_network_and_its_cells_ops():
    genotype = GENOTYPES.get("DARTS_V2")
    report = genotype_report(genotype, SMALL)
    network = build_network(genotype, SMALL)
    assert report["params"] == count_parameters(network)
    assert report["mult_adds"] == count_mult_adds(network, input_size=SMALL.input_size)
    assert sum(report["normal_ops"].values()) == 8 and report["genotype"] == str(genotype)


def test_reports_with_a_table_add_the_predictors_latency(small_table):
    genotypes = [GENOTYPES.get("CARS_A"), GENOTYPES.get("CARS_I")]
    plain = genotype_reports(genotypes, SMALL)
    assert all("latency_ms" not in r for r in plain)
    table = LatencyTable.load(small_table)
    reports = genotype_reports(genotypes, SMALL, table=table)
    predictor = LatencyPredictor(table, network=SMALL)
    assert [r["latency_ms"] for r in reports] == pytest.approx(predictor.predict(genotypes).tolist())
    assert [r["latency_block_sum_ms"] for r in reports] == pytest.approx(predictor.block_sum(genotypes).tolist())
    assert [{k: r[k] for k in p} for r, p in zip(reports, plain)] == plain
