"""bench_ranking at a tiny scale: the genotype set, stand-alone models with a second seed, two SuperNet
variants, and a resumed run that redoes nothing."""
import json

import pandas as pd

from benchmarks.bench_ranking import flattery_gap, interleave_sources, main

from .conftest import TINY_SEARCH, TINY_TRAIN


def test_two_variants_end_to_end_then_a_rerun_reuses_everything(shared_dirs, tmp_path, capsys):
    out = tmp_path / "ranking"
    argv = [*shared_dirs, *TINY_SEARCH, *TINY_TRAIN, "--n", "6", "--second-seed", "2", "--pool", "40",
            "--val-batches", "1", "--variants", "baseline,bn10", "--out", str(out)]
    assert main([*argv, "--stage", "supernets"]) == 0
    assert not (out / "models.jsonl").exists()  # this stage trains nothing alone
    assert main([*argv, "--stage", "models"]) == 0
    table = pd.read_csv(out / "ranking.csv")
    assert len(table) == 6 and list(table.source) == ["population"] * 3 + ["random"] * 3
    assert table.test_accuracy.notna().all() and table.test_accuracy_seed1.notna().sum() == 2
    for column in ("supernet_baseline", "supernet_512_baseline", "supernet_bn10", "supernet_512_bn10"):
        assert table[column].between(0, 1).all()
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["variants"]) == {"baseline", "bn10"} and summary["yardstick_noise"]["pairs"] == 2
    assert summary["variants"]["baseline"]["tau"]["n"] == 6
    assert (out / "ranking.png").stat().st_size > 1000

    models = (out / "models.jsonl").read_text()
    assert main(argv) == 0  # everything cached: nothing trained or measured again
    assert (out / "models.jsonl").read_text() == models
    assert "tau" in capsys.readouterr().out


def test_flattery_gap_is_the_population_minus_the_random_excess():
    rows = pd.DataFrame({"source": ["population", "population", "random", "random"],
                         "supernet": [0.6, 0.5, 0.4, 0.3], "test_accuracy": [0.5, 0.4, 0.4, 0.3]})
    assert abs(flattery_gap(rows, "supernet") - 10.0) < 1e-9
    assert flattery_gap(rows[rows.source == "random"], "supernet") is None


def test_models_are_trained_alternately_from_each_source():
    items = [{"item": f"{i:02d}-{s}", "source": s} for i, s in enumerate(["population"] * 3 + ["random"] * 2)]
    order = [item["item"] for item in interleave_sources(items)]
    assert order == ["00-population", "03-random", "01-population", "04-random", "02-population"]
