"""The search's latency cost: vectorised, table given or built on first use, handed to the search;
a tiny real search with --objective latency and --verify-on."""
from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import pytest

from cars_deploy.cli.search import main as search_main
from cars_deploy.cli.search import outside_legend
from cars_deploy.errors import UserInputError
from cars_deploy.latency import LatencyPredictor, host, network_id, verify
from cars_deploy.latency.objective import latency_cost
from cars_deploy.latency.search_run import latency_costs
from cars_deploy.profilers.builder import ProfileConfig, build_table
from cars_deploy.profilers.device import DeviceOptions
from cars_deploy.profilers.devices import open_device
from cars_deploy.profilers.protocol import ProtocolConfig
from cars_deploy.profilers.table import LatencyTable, table_files
from cars_deploy.search.config import SearchConfig
from cars_deploy.search.objectives import build_costs
from cars_deploy.space import GENOTYPES, NetworkConfig, parse_genotype, random_genotype

from .conftest import QUICK, SMALL

#: The search tests' tiny search, costs counted on the CIFAR network.
TINY_SEARCH = ["--C", "4", "--layers", "3", "--population", "4", "--epochs", "3", "--warmup", "1", "--evolve-every", "1",
               "--batch-size", "16", "--max-train-batches", "2", "--max-val-batches", "1", "--deploy-network", "cifar"]


def test_latency_cost_is_the_predictor_of_the_given_table(small_table, rng):
    cost = latency_cost(str(small_table), network=SMALL)
    assert (cost.name, cost.label, cost.scale) == ("latency", "latency (ms)", 1.0)
    genotypes = [random_genotype(rng) for _ in range(50)]
    np.testing.assert_allclose(cost(genotypes), LatencyPredictor.load(small_table).predict(genotypes))
    assert cost(genotypes).shape == (50,) and len(set(cost(genotypes).tolist())) > 40


def test_no_table_is_a_one_line_hint():
    config = SearchConfig(objectives=("latency",), latency_table=None)
    assert latency_costs(config) == {}
    with pytest.raises(UserInputError, match="--latency-table TABLE.*--latency-table local") as info:
        build_costs(["latency"], network=SMALL, provided=latency_costs(config))
    assert "\n" not in str(info.value)


def test_local_builds_and_calibrates_this_computers_table_once(tmp_path, cache_dir, monkeypatch):
    small = host.HostTableConfig(calibrate_networks=4, calibrate_fit=3, tables_dir=tmp_path / "tables", cache_dir=cache_dir)
    monkeypatch.setattr(host, "ensure_host_table", functools.partial(host.ensure_host_table, config=small))
    cost = latency_cost("local", network=SMALL)
    csv = tmp_path / "tables" / f"host-{network_id(SMALL)}-ort1.csv"
    table = LatencyTable.load(csv)
    assert cost.predictor.calibrated and network_id(SMALL) in table.meta["calibration"]
    assert table.meta["settings"] == {"device": "local", "runtime": "onnxruntime", "threads": 1, "cpu_mask": None,
                                      "runner": None}
    written = [csv.stat().st_mtime_ns, table_files(csv)[1].stat().st_mtime_ns]
    again = latency_cost("local", network=SMALL)  # cached: nothing re-timed
    assert [csv.stat().st_mtime_ns, table_files(csv)[1].stat().st_mtime_ns] == written
    genotype = GENOTYPES.get("CARS_Lat_A")
    assert again([genotype])[0] == pytest.approx(cost([genotype])[0])


@pytest.fixture(scope="module")
def cifar_table(tmp_path_factory, cache_dir):
    """A quick host table of the CIFAR deployment network (C=36, 20 cells), which the tiny search counts costs on."""
    out = tmp_path_factory.mktemp("cifar-table") / "cifar"
    device = open_device("local", DeviceOptions())
    try:
        build_table(device, ProfileConfig(out=out, networks=(NetworkConfig.cifar(),), protocol=QUICK, cache_dir=cache_dir),
                    show_progress=False)
    finally:
        device.close()
    return table_files(out)[0]


def test_the_search_gets_the_latency_cost_only_when_its_config_asks(cifar_table):
    config = SearchConfig(objectives=("params", "latency"), latency_table=str(cifar_table), deploy_network="cifar")
    (cost,) = latency_costs(config).values()
    assert cost.name == "latency" and cost.predictor.network == NetworkConfig.cifar()
    assert latency_costs(config.replace(objectives=("params",))) == {}


def test_a_tiny_latency_search_with_verification_on_the_host(cifar_table, tmp_path, cache_dir, monkeypatch, capsys):
    # Whole CIFAR networks take milliseconds: time them with the quick protocol, into this session's cache.
    monkeypatch.setattr(verify, "whole_network_protocol", lambda kind: ProtocolConfig(warmup=1, rounds=2, runs=2))
    monkeypatch.setattr(verify, "default_cache_dir", lambda: cache_dir)
    run = tmp_path / "run"
    code = search_main(["--objective", "latency", "--latency-table", str(cifar_table), "--out", str(run), *TINY_SEARCH,
                        "--verify-on", "local", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "latency (ms)" in out and "measured (ms)" in out
    assert json.loads((run / "config.json").read_text())["search"]["latency_table"] == str(cifar_table)
    pareto = pd.read_csv(run / "pareto.csv")
    predictor = LatencyPredictor.load(cifar_table, network=NetworkConfig.cifar())
    genotypes = [parse_genotype(text) for text in pareto["genotype"]]
    np.testing.assert_allclose(pareto["latency_ms"], predictor.predict(genotypes), rtol=1e-6)
    assert (pareto["latency_measured_ms"] > 0).all()
    np.testing.assert_allclose(pareto["latency_error_pct"],
                               (pareto["latency_ms"] / pareto["latency_measured_ms"] - 1) * 100, rtol=1e-6)
    assert list(pareto.columns).index("latency_measured_ms") == list(pareto.columns).index("latency_ms") + 1
    population = pd.read_csv(run / "population.csv")
    assert population["latency_ms"].notna().all()
    # The "!" column comes with the prediction's uncertainty, and its legend with it.
    assert ("90% interval" in out) == ("latency_outside_pm90" in pareto.columns)


def test_the_outside_legend_counts_the_marks_against_chance():
    legend = outside_legend(pd.Series([True, False, False, True, False]))
    assert "2 of 5 here" in legend and "about 0.5 expected" in legend and "90% interval" in legend


def test_a_malformed_verification_device_fails_before_the_search(tmp_path, capsys):
    code = search_main(["--objective", "params", "--out", str(tmp_path / "run"), *TINY_SEARCH, "--verify-on", "adb:"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "adb:" in err
    assert not (tmp_path / "run" / "config.json").exists()
