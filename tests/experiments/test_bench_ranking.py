"""bench_ranking at a tiny scale: the genotype set, stand-alone models with a second seed, two SuperNet
variants, and a resumed run that redoes nothing."""
import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.bench_ranking import interleave_sources, main
from experiments.yardstick import flattery_gap, flattery_gap_ci, yardstick_noise

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
    versus = summary["variants"]["bn10"]["tau_minus_baseline"]  # the same genotypes and yardstick: paired
    assert versus["n"] == 6 and "tau_minus_baseline" not in summary["variants"]["baseline"]
    held = summary["variants"]["bn10"]["tau_size_held"]  # what the ranking owes to size, per variant
    assert held["n"] == 6 and summary["tau_params_standalone"]["n"] == 6
    assert summary["variants"]["bn10"]["tau_params_supernet"]["kendall_tau"] is not None
    low, high = summary["variants"]["baseline"]["flattery_gap_ci95"]
    assert low <= summary["variants"]["baseline"]["flattery_gap_points"] <= high
    assert (out / "ranking.png").stat().st_size > 1000

    models = (out / "models.jsonl").read_text()
    assert main(argv) == 0  # everything cached: nothing trained or measured again
    assert (out / "models.jsonl").read_text() == models
    assert "tau" in capsys.readouterr().out

    # A longer stand-alone budget in its own folder ranks the same genotypes against the same SuperNet
    # measurements, read from the first folder: no search runs and no SuperNet is measured again.
    searches = sorted(Path(shared_dirs[-1]).glob("searches/*"))
    longer = [*argv[: argv.index("--out")], "--out", str(tmp_path / "longer"), "--reference", str(out),
              "--train-epochs", "2"]
    assert main([*longer, "--stage", "supernets"]) == 0 and main([*longer, "--stage", "models"]) == 0
    assert sorted(Path(shared_dirs[-1]).glob("searches/*")) == searches
    assert not list((tmp_path / "longer").glob("supernet-*.csv"))
    again = pd.read_csv(tmp_path / "longer" / "ranking.csv")
    assert list(again.item) == list(table.item) and list(again.supernet_bn10) == list(table.supernet_bn10)
    assert again.test_accuracy.notna().all() and again.test_accuracy_seed1.notna().sum() == 2
    first = [json.loads(line)["item"] for line in (tmp_path / "longer" / "models.jsonl").read_text().splitlines()]
    paired = [json.loads(line)["item"] for line in (tmp_path / "longer" / "models_seed1.jsonl").read_text().splitlines()]
    assert first[:2] == paired  # the yardstick's noise is measured before the rest is trained
    agreement = json.loads((tmp_path / "longer" / "summary.json").read_text())["reference_yardstick"]
    assert agreement["train"]["epochs"] == 1 and agreement["tau"]["n"] == len(table)  # against the 1-epoch budget
    assert "against the reference's 1-epoch one" in capsys.readouterr().out
    other = [*longer[: longer.index("--out")], "--search-population", "6", "--out", str(tmp_path / "other"),
             "--reference", str(out)]
    assert main(other) == 2  # another search's SuperNet accuracies are not reused
    assert "--reference" in capsys.readouterr().err


def test_flattery_gap_is_the_population_minus_the_random_excess():
    rows = pd.DataFrame({"source": ["population", "population", "random", "random"],
                         "supernet": [0.6, 0.5, 0.4, 0.3], "test_accuracy": [0.5, 0.4, 0.4, 0.3]})
    assert abs(flattery_gap(rows, "supernet") - 10.0) < 1e-9
    assert flattery_gap(rows[rows.source == "random"], "supernet") is None


def test_flattery_gap_interval_resamples_within_each_source():
    rows = pd.DataFrame({"source": ["population"] * 2 + ["random"] * 2, "supernet": [0.5, 0.6, 0.3, 0.3],
                         "test_accuracy": [0.5, 0.5, 0.3, 0.3]})
    low, high = flattery_gap_ci(rows, "supernet", rng=np.random.default_rng(0))
    assert abs(low) < 1e-9 and abs(high - 10.0) < 1e-9  # resamples of the population's deltas {0, 10} only
    steady = rows.assign(supernet=[0.6, 0.6, 0.3, 0.3])
    assert np.allclose(flattery_gap_ci(steady, "supernet", rng=np.random.default_rng(0)), [10.0, 10.0])
    assert flattery_gap_ci(rows[rows.source == "random"], "supernet", rng=np.random.default_rng(0)) == [None, None]


def test_models_are_trained_alternately_from_each_source():
    items = [{"item": f"{i:02d}-{s}", "source": s} for i, s in enumerate(["population"] * 3 + ["random"] * 2)]
    order = [item["item"] for item in interleave_sources(items)]
    assert order == ["00-population", "03-random", "01-population", "04-random", "02-population"]


def test_yardstick_noise_sets_the_ceiling_from_the_seed_differences_and_the_spread():
    models = pd.DataFrame({"item": list("abcdef"), "test_accuracy": [0.50, 0.52, 0.54, 0.56, 0.58, 0.60]})
    second = pd.DataFrame({"item": list("abcd"), "test_accuracy": [0.51, 0.51, 0.55, 0.55]})
    noise = yardstick_noise(models, second, seed=0)
    assert noise["pairs"] == 4 and abs(noise["mean_abs_diff_points"] - 1.0) < 1e-9
    assert abs(noise["spread_sd_points"] - models.test_accuracy.std() * 100) < 1e-9
    ceiling = noise["ceiling"]
    assert 0 < ceiling["seed_vs_seed"] < ceiling["perfect_vs_one"] < 1
    low, high = noise["run_sd_ci95"]
    assert low < noise["run_sd_points"] < high
    assert noise["ceiling_at_low_run_sd"]["perfect_vs_one"] > ceiling["perfect_vs_one"]
    noisier = yardstick_noise(models, second.assign(test_accuracy=[0.56, 0.47, 0.60, 0.50]), seed=0)
    assert noisier["run_sd_points"] > noise["run_sd_points"]
    assert noisier["ceiling"]["perfect_vs_one"] is None or noisier["ceiling"]["perfect_vs_one"] < ceiling["perfect_vs_one"]
