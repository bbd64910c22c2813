import json

import numpy as np
import pandas as pd
import pytest

from experiments import small_model_trap
from experiments.small_model_trap import analyse, main

from .conftest import TINY_SEARCH


def test_two_searches_end_to_end_then_a_rerun_reuses_them(shared_dirs, tmp_path, capsys):
    out = tmp_path / "results"
    assert main([*shared_dirs, *TINY_SEARCH, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "small model trap" in printed and "NSGA-III: median" in printed and "pNSGA-III: median" in printed
    names = {p.name for p in out.iterdir()}
    assert {"per_generation.csv", "populations.csv", "summary.json", "commands.txt", "timing.json", "settings.json",
            "fig2.png", "distribution.png", "trend.png"} <= names
    per_generation = pd.read_csv(out / "per_generation.csv")
    assert sorted(per_generation.groupby("selection").size().items()) == [("nsga3", 3), ("pnsga3", 3)]
    populations = pd.read_csv(out / "populations.csv")
    assert len(populations) == 2 * 3 * 4  # selections x generations x population
    summary = json.loads((out / "summary.json").read_text())
    assert summary["comparison_last_generation"]["same_generation0"] is True  # same seed, same starting population
    space = summary["space_params"]
    assert space["min"] < populations.params.min() and populations.params.max() < space["max"]
    commands = (out / "commands.txt").read_text().splitlines()
    assert len(commands) == 2 and all(c.startswith("cars-search ") and "--selection" in c for c in commands)

    # A rerun finds both searches finished: nothing is trained again and the tables come out the same.
    timing = (out / "timing.json").read_text()
    assert main([*shared_dirs, *TINY_SEARCH, "--out", str(out)]) == 0
    capsys.readouterr()
    assert json.loads((out / "timing.json").read_text()) == json.loads(timing)
    pd.testing.assert_frame_equal(pd.read_csv(out / "per_generation.csv"), per_generation)

    # Other settings into the same results folder: one line, exit 2.
    assert main([*shared_dirs, *TINY_SEARCH, "--search-population", "6", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "other settings" in err and "Traceback" not in err


def test_analysis_measures_drift_it_is_given():
    """A made-up pair of histories: NSGA-III's population shrinks to small models, pNSGA-III's widens."""
    rows = []
    start = [10, 20, 30, 40, 50, 60]
    shapes = {"nsga3": [start, [10, 10, 20, 20, 30, 30]], "pnsga3": [start, [10, 20, 40, 60, 80, 90]]}
    for selection, generations in shapes.items():
        for generation, params in enumerate(generations):
            rows += [{"selection": selection, "generation": generation, "params": p, "accuracy": 0.5} for p in params]
    per_generation, summary = analyse(pd.DataFrame(rows), (0.0, 90.0))
    nsga, pnsga = summary["selections"]["nsga3"], summary["selections"]["pnsga3"]
    assert nsga["median_change"] == pytest.approx(20 / 35 - 1) and nsga["range_kept"] == pytest.approx(20 / 50)
    assert pnsga["median_change"] == pytest.approx(50 / 35 - 1) and pnsga["range_kept"] == pytest.approx(80 / 50)
    q67 = np.percentile(start, 200 / 3)
    assert nsga["last"]["share_top_third_gen0"] == 0.0
    assert pnsga["last"]["share_top_third_gen0"] == pytest.approx(np.mean(np.array([10, 20, 40, 60, 80, 90]) >= q67))
    assert pnsga["last"]["share_top_third_space"] == pytest.approx(3 / 6)  # 60, 80 and 90 are >= 0 + 2/3 * 90
    comparison = summary["comparison_last_generation"]
    assert comparison["same_generation0"] is True and comparison["range_ratio_pnsga3_over_nsga3"] == pytest.approx(4.0)
    assert len(per_generation) == 4 and small_model_trap.SELECTIONS == ("nsga3", "pnsga3")
