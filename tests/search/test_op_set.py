"""The space a search draws from: the published genotypes' 7 ops by default, DARTS' 8 on request."""
import json

import pandas as pd

from cars_deploy.search import CarsSearch
from cars_deploy.search.config import SearchConfig
from cars_deploy.space import parse_genotype


def _ops(text: str) -> set[str]:
    genotype = parse_genotype(text)
    return {op for op, _ in genotype.normal + genotype.reduce}


def _all_ops(run) -> set[str]:
    ops: set[str] = set()
    for line in (run / "history.jsonl").read_text().splitlines():
        for individual in json.loads(line)["individuals"]:
            ops |= _ops(individual["genotype"])
    return ops


def test_a_default_search_never_holds_a_none_edge_and_records_its_op_set(tmp_path, tiny_config):
    run = tmp_path / "run"
    CarsSearch(tiny_config.replace(population=6, epochs=7), run, device="cpu", show_progress=False).run()
    assert json.loads((run / "config.json").read_text())["search"]["op_set"] == "published"
    assert "none" not in _all_ops(run)  # every individual evaluated, offspring included
    for table in ("population.csv", "pareto.csv"):
        assert not any("none" in _ops(g) for g in pd.read_csv(run / table)["genotype"])


def test_the_darts_op_set_keeps_none(tmp_path, tiny_config):
    run = tmp_path / "run"
    CarsSearch(tiny_config.replace(op_set="darts", population=6, epochs=7), run, device="cpu", show_progress=False).run()
    assert "none" in _all_ops(run)


def test_a_config_saved_before_op_sets_existed_reads_as_darts(tiny_config):
    old = tiny_config.to_dict()
    del old["op_set"]
    assert SearchConfig.from_dict(old).op_set == "darts"
    assert SearchConfig.from_dict(tiny_config.to_dict()).op_set == "published"


def test_a_run_saved_before_this_wave_resumes_in_the_darts_space(tmp_path, tiny_config):
    """config.json and checkpoint.pt without the settings added since (op set, warmup path sampling,
    budgets), as an older cars-search wrote them, resume to the end in DARTS' 8-op space."""
    import torch

    added = ("op_set", "path_sampling", "max_latency_ms", "max_params_m", "max_mult_adds_m")
    run = tmp_path / "run"
    CarsSearch(tiny_config.replace(op_set="darts"), run, device="cpu", show_progress=False).run(max_generations=1)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    saved = json.loads((run / "config.json").read_text())
    for key in added:
        del state["config"][key], saved["search"][key]
    torch.save(state, run / "checkpoint.pt")
    (run / "config.json").write_text(json.dumps(saved))
    resumed = CarsSearch.resume(run, device="cpu", show_progress=False)
    assert resumed.config.op_set == "darts" and resumed.config.path_sampling == "uniform"
    assert resumed.run().finished
