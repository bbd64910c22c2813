"""cars-inspect --latency-table: latency_ms next to params and mult-adds."""
from __future__ import annotations

import json

import pytest

from cars_deploy.cli.inspect import main
from cars_deploy.latency import LatencyPredictor
from cars_deploy.space import GENOTYPES

from .conftest import SMALL


def test_json_carries_the_predicted_latency_on_the_tables_network(capsys):
    assert main(["--genotype", "CARS_Lat_A", "CARS_I", "--latency-table", "host-cpu-imagenet-ort1", "--json"]) == 0
    reports = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    predictor = LatencyPredictor.load("host-cpu-imagenet-ort1")
    expected = predictor.predict([GENOTYPES.get("CARS_Lat_A"), GENOTYPES.get("CARS_I")])
    assert [r["network"] for r in reports] == ["imagenet", "imagenet"] and reports[0]["C"] == 48
    assert [r["latency_ms"] for r in reports] == pytest.approx(expected.tolist())
    assert reports[0]["latency_block_sum_ms"] == pytest.approx(predictor.block_sum(GENOTYPES.get("CARS_Lat_A"))[0])
    assert reports[0]["latency_calibrated"] is predictor.calibrated and reports[0]["latency_device"] == "local"
    assert reports[0]["latency_ms"] < reports[1]["latency_ms"]  # the latency-searched model is the faster one
    assert reports[0]["params"] > 0 and reports[0]["mult_adds"] > 0


def test_table_output_and_a_table_for_a_small_network(small_table, capsys):
    assert main(["--all", "--latency-table", str(small_table)]) == 0
    out = capsys.readouterr().out
    assert "latency (ms)" in out and f"C={SMALL.C}, {SMALL.layers} cells" in out and "CARS_Lat_G" in out


def test_a_network_the_table_lacks_is_a_one_line_error(capsys):
    assert main(["--genotype", "CARS_A", "--latency-table", "host-cpu-imagenet-ort1", "--network", "cifar"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no entry for block stem-3-108-32x32-s1" in err and "cars-profile --device local" in err
    assert main(["--genotype", "CARS_A", "--latency-table", "no-such-table"]) == 2
    assert "not found" in capsys.readouterr().err
