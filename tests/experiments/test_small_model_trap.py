import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments import selection_ablation as ablation
from experiments import small_model_trap
from experiments.runs import search_folder
from experiments.small_model_trap import main
from experiments.stats import hypervolume

from .conftest import TINY_SEARCH, TINY_TRAIN, drop_last_record, hold_lock, moved_away

# Two selections x two seeds, two models retrained per search: the whole flow at the smoke-test scale.
FLOW = [*TINY_SEARCH, *TINY_TRAIN, "--selections", "pnsga3", "vega", "--seeds", "0", "1", "--top", "2"]


def test_selections_times_seeds_end_to_end_then_a_rerun_reuses_them(shared_dirs, tmp_path, capsys):
    out = tmp_path / "results"
    assert main([*shared_dirs, *FLOW, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "small model trap with seeds" in printed and "pnsga3 vs vega, paired over seeds" in printed
    assert "every rule on the same candidates" in printed and "pnsga3 vs pnsga3-shuffled: kept median size" in printed
    assert "kept accuracy" in printed
    names = {p.name for p in out.iterdir()}
    assert {"populations.csv", "per_generation.csv", "across_seeds.csv", "plan.csv", "models.jsonl", "final.csv",
            "summary.json", "commands.txt", "timing.json", "settings.json", "fig2.png", "fronts.png", "replay.csv",
            "speed_pairs.csv", "replay.png"} <= names
    per_generation = pd.read_csv(out / "per_generation.csv")
    assert per_generation.groupby(["selection", "seed"]).size().to_dict() == {
        ("pnsga3", 0): 3, ("pnsga3", 1): 3, ("vega", 0): 3, ("vega", 1): 3}
    assert len(pd.read_csv(out / "populations.csv")) == 2 * 2 * 3 * 4  # selections x seeds x generations x P
    spread = pd.read_csv(out / "across_seeds.csv")
    assert (spread.seeds == 2).all() and (spread.params_median_min <= spread.params_median_max).all()
    plan = pd.read_csv(out / "plan.csv")
    assert len(plan) == 8 and set(plan["rank"]) == {1, 2}
    assert len((out / "models.jsonl").read_text().splitlines()) == 8
    final = pd.read_csv(out / "final.csv")
    assert len(final) == 4 and final.hv_supernet.gt(0).all() and final.hv_retrained.notna().all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["same_generation0"] == {"0": True, "1": True}  # per seed, every selection starts alike
    # Every search's selections replayed under every rule; each search's own rule keeps what it kept.
    replayed = summary["replay"]
    assert replayed["searches"] == 4 and replayed["reproduced_generations"] == replayed["replayed_generations"] == 8
    assert len(pd.read_csv(out / "replay.csv")) == 4 * 2 * 4  # searches x generations 1-2 x rules
    compared = summary["comparisons"]["pnsga3 vs vega"]
    assert set(compared) == set(ablation.COMPARED) and compared["hv_retrained"]["pairs"] == 2
    commands = (out / "commands.txt").read_text().splitlines()
    assert sum(c.startswith("cars-search ") for c in commands) == 4 and sum(c.startswith("cars-train ") for c in commands) == 8
    assert sum(c.startswith("cars-train ") and "--seed 1 " in c for c in commands) == 4  # each seed retrains its own

    # A rerun finds every search and model done: nothing runs again and the tables come out the same.
    timing = json.loads((out / "timing.json").read_text())
    assert main([*shared_dirs, *FLOW, "--out", str(out)]) == 0
    capsys.readouterr()
    assert json.loads((out / "timing.json").read_text()) == timing
    pd.testing.assert_frame_equal(pd.read_csv(out / "final.csv"), final)

    # On another machine the search folders (under runs/) are gone: the histories and final populations
    # kept in the results carry the analysis and the retraining on, without searching again.
    assert {p.name for p in (out / "searches").iterdir()} == {
        f"{s}-seed{seed}.{kind}" for s in ("pnsga3", "vega") for seed in (0, 1)
        for kind in ("history.jsonl.gz", "population.csv")}
    runs = [Path(path) for path in summary["runs"].values()]
    with moved_away(runs, tmp_path / "elsewhere"):
        models = drop_last_record(out / "models.jsonl")
        assert main([*shared_dirs, *FLOW, "--out", str(out)]) == 0
        capsys.readouterr()
        assert not any(run.exists() for run in runs)
        assert (out / "models.jsonl").read_text().splitlines() == models
        pd.testing.assert_frame_equal(pd.read_csv(out / "final.csv"), final)

    # Other settings (another seed list) into the same results folder: one line, exit 2.
    assert main([*shared_dirs, *FLOW, "--seeds", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "other settings" in err and "Traceback" not in err


def test_a_search_another_process_runs_is_put_off_then_waited_for(shared_dirs, tmp_path, capsys):
    """Two processes with the same command share the searches: the one held elsewhere comes last, not never."""
    data = shared_dirs[:4]  # the shared data and cache; searches in a work folder of this test's own
    flags = [*data, "--work-dir", str(tmp_path / "work"), *TINY_SEARCH, *TINY_TRAIN, "--selections", "pnsga3",
             "vega", "--seeds", "0", "--top", "1", "--out", str(tmp_path / "results")]
    calls, held = [], []
    real_run_search = small_model_trap.run_search

    def run_search_held_elsewhere(argv, **kwargs):
        calls.append((kwargs["name"], kwargs["wait"]))
        if len(calls) == 1:  # "another process" takes the first search just before this one gets to it
            held.append(hold_lock(search_folder(argv, work_dir=kwargs["work_dir"], name=kwargs["name"]).path))
        elif len(calls) == 2:  # ... and finishes it while this one runs the second
            threading.Timer(0.5, held[0].close).start()
        return real_run_search(argv, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(small_model_trap, "run_search", run_search_held_elsewhere)
        assert main(flags) == 0
    capsys.readouterr()
    assert calls == [("pnsga3", False), ("vega", False), ("pnsga3", True)]
    commands = (tmp_path / "results" / "commands.txt").read_text().splitlines()
    assert [c.split("--selection ")[1].split()[0] for c in commands if c.startswith("cars-search ")] == [
        "pnsga3", "vega"]  # the command line's order, whichever ran first
    assert len(pd.read_csv(tmp_path / "results" / "final.csv")) == 2



def test_the_defaults_are_four_selections_three_seeds_and_2560_validation_images():
    args = small_model_trap._parser().parse_args([])
    assert args.selections == list(small_model_trap.SELECTIONS) == ["pnsga3", "pnsga3-shuffled", "vega", "nsga3"]
    assert args.seeds == [0, 1, 2] and args.top == 3
    assert args.search_val_batches * 256 == 2560 and args.search_max_train_batches == 20  # the reduced scale
    assert str(args.out).endswith("experiments/results/small_model_trap-seeds")


@pytest.mark.parametrize("flags, needle", [(["--seeds", "1", "1"], "twice"), (["--top", "0"], "--top"),
                                           (["--selections", "random"], "invalid choice")])
def test_bad_choices_are_one_line_errors(flags, needle, tmp_path, capsys):
    try:
        status = main([*flags, "--data-root", str(tmp_path), "--out", str(tmp_path / "r")])
    except SystemExit as exit:  # argparse's own usage errors
        status = exit.code
    err = capsys.readouterr().err.strip()
    assert status == 2 and needle in err and len(err.splitlines()) == 1


def _histories():
    """Made-up searches: under both seeds pNSGA-III's population widens and NSGA-III's shrinks."""
    start = [10, 20, 30, 40, 50, 60]
    shapes = {"nsga3": [10, 10, 20, 20, 30, 30], "pnsga3": [10, 20, 40, 60, 80, 90]}
    histories = {}
    for (selection, last), seed in ((item, seed) for item in shapes.items() for seed in (0, 1)):
        records = []
        for generation, params in enumerate([start, last]):
            accuracy = np.linspace(0.3, 0.5, 6) + 0.01 * seed + (0.05 if selection == "pnsga3" and generation else 0)
            records.append({"generation": generation, "individuals": [
                {"params": p, "accuracy": float(a), "selected": True} for p, a in zip(params, accuracy)]})
        histories[(selection, seed)] = records
    return histories


def test_analysis_measures_the_drift_and_compares_seed_by_seed():
    space = (0.0, 90.0)
    populations = ablation.populations_table(_histories())
    generations = ablation.per_generation(populations, space)
    last = generations[generations.generation == 1].set_index(["selection", "seed"])
    assert last.loc[("nsga3", 0), "params_median"] == 20 and last.loc[("pnsga3", 1), "params_median"] == 50
    assert last.loc[("pnsga3", 0), "share_top_third_space"] == pytest.approx(3 / 6)  # 60, 80, 90 >= 60
    assert ablation.same_generation0(populations) == {0: True, 1: True}
    spread = ablation.across_seeds(generations).set_index(["selection", "generation"])
    assert spread.loc[("pnsga3", 1), "accuracy_max_min"] == pytest.approx(0.55)
    assert spread.loc[("pnsga3", 1), "accuracy_max_max"] == pytest.approx(0.56)

    finals = {}
    for (selection, seed), history in _histories().items():
        members = history[-1]["individuals"]
        finals[(selection, seed)] = pd.DataFrame({"genotype": [f"{selection}{seed}-{i}" for i in range(6)],
                                                  "accuracy": [m["accuracy"] for m in members],
                                                  "params": [m["params"] for m in members]})
    plan = ablation.top_picks(finals, 2)
    # Accuracy rises with size in these populations: all six are on the first front; the two most accurate go.
    assert plan[plan.model == "pnsga3-s0-1"].genotype.item() == "pnsga30-5" and len(plan) == 8
    records = [{"model": m, "test_accuracy": 0.6 if m.startswith("pnsga3") else 0.5} for m in plan.model]
    records = [r for r in records if r["model"] != "nsga3-s1-2"]
    final = ablation.final_table(populations, generations, plan, records, space).set_index(["selection", "seed"])
    assert np.isnan(final.loc[("nsga3", 1), "hv_retrained"])  # one of its two models is not retrained yet
    assert final.loc[("pnsga3", 0), "hv_retrained"] == pytest.approx(hypervolume([0.6, 0.6], [90, 80], space=space))
    comparison = ablation.comparisons(final.reset_index(), ["pnsga3", "nsga3"])["pnsga3 vs nsga3"]
    assert comparison["params_median"]["pairs"] == 2 and comparison["params_median"]["mean_difference"] == 30
    assert comparison["hv_retrained"]["seeds"] == [0]  # only the seed both have


def test_hypervolume_is_the_area_dominated_in_normalised_error_and_size():
    # One model of 60% accuracy at the middle of the space: (1.1 - 0.4) x (1.1 - 0.5).
    assert hypervolume([0.6], [50.0], space=(0.0, 100.0)) == pytest.approx(0.7 * 0.6)
    # A dominated model adds nothing; a second non-dominated one adds its own rectangle.
    assert hypervolume([0.6, 0.5], [50.0, 60.0], space=(0.0, 100.0)) == pytest.approx(0.7 * 0.6)
    assert hypervolume([0.6, 0.7], [50.0, 80.0], space=(0.0, 100.0)) == pytest.approx(0.7 * 0.6 + 0.1 * 0.3)
    assert hypervolume([], [], space=(0.0, 1.0)) == 0.0
