"""The analysis of experiment 1 with seeds (issue 17): does pNSGA-III's accuracy-speed term do anything?

Its input is every (selection, seed) search of ``small_model_trap``: the selected members of each
generation (``populations_table``, from the searches' histories), the final populations, and the
retrained models (``models.jsonl`` records). It computes:

- ``per_generation``: per selection, seed and generation, the size summary of ``stats.size_summary``
  (median, range, quartiles, the shares in the largest third of the space and above generation 0's
  2/3 quantile) and the median and best SuperNet accuracy;
- ``across_seeds``: per selection and generation, the median, minimum and maximum over the seeds of
  the numbers in ``SPREAD`` (what Figure 2's bands draw);
- ``top_picks``: the models to retrain, ``top`` per search: the first non-dominated front of its final
  population on (SuperNet accuracy up, parameters down), most accurate first, then the next fronts if
  the first holds fewer;
- ``final_table``: per selection and seed, the last generation's numbers and two hypervolumes in
  (accuracy up, parameters down) (``stats.hypervolume``: both normalised over the space, reference
  point (1.1, 1.1)): of the final population on SuperNet accuracy (its front's) and of the retrained
  top models on test accuracy, with the parameters the search counted (the deploy network's);
- ``comparisons``: every pair of selections, seed by seed (``stats.paired_comparison``: mean
  difference, wins, Wilcoxon and paired t-test p-values) on the numbers in ``COMPARED``.

Seeds pair the searches: under one seed every selection starts from the same warmup and generation 0
(``same_generation0`` checks the sizes), and the retraining of a seed's models uses that seed.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from cars_deploy.search.selection import non_dominated_fronts

from .stats import hypervolume, paired_comparison, size_summary

__all__ = [
    "COMPARED",
    "SPREAD",
    "across_seeds",
    "comparisons",
    "final_table",
    "per_generation",
    "populations_table",
    "same_generation0",
    "top_picks",
]

#: Per-generation numbers whose spread over seeds is tabulated and drawn.
SPREAD: tuple[str, ...] = ("params_median", "params_range", "share_top_third_space", "share_top_third_gen0",
                           "accuracy_max")  # fmt: skip
#: Final numbers compared between selections, seed by seed.
COMPARED: tuple[str, ...] = ("params_median", "share_top_third_space", "share_top_third_gen0", "accuracy_max",
                             "hv_supernet", "hv_retrained")  # fmt: skip
_POPULATION_COLUMNS = ["selection", "seed", "generation", "params", "accuracy", "accuracy_speed", "origin", "born"]
_PLAN_COLUMNS = ["model", "selection", "seed", "rank", "front", "genotype", "search_params", "supernet_accuracy"]


def populations_table(histories: Mapping[tuple[str, int], Sequence[Mapping[str, Any]]]) -> pd.DataFrame:
    """The selected members of every generation of every (selection, seed) search, one row each."""
    rows = []
    for (selection, seed), history in histories.items():
        for record in history:
            for ind in record["individuals"]:
                if ind.get("selected", True):
                    rows.append({
                        "selection": selection,
                        "seed": int(seed),
                        "generation": int(record["generation"]),
                        "params": int(ind["params"]),
                        "accuracy": ind["accuracy"],
                        "accuracy_speed": ind.get("accuracy_speed"),
                        "origin": ind.get("origin"),
                        "born": ind.get("born"),
                    })  # fmt: skip
    return pd.DataFrame(rows, columns=_POPULATION_COLUMNS)


def per_generation(populations: pd.DataFrame, space: tuple[float, float]) -> pd.DataFrame:
    """Size and accuracy summary of each generation of each (selection, seed) search; the generation-0
    2/3 quantile is that search's own."""
    rows = []
    for (selection, seed), table in populations.groupby(["selection", "seed"], sort=False):
        gen0 = table.loc[table.generation == 0, "params"]
        q67 = float(np.percentile(gen0, 200 / 3)) if len(gen0) else math.nan
        for generation, members in table.groupby("generation"):
            rows.append({
                "selection": selection,
                "seed": int(seed),
                "generation": int(generation),
                **size_summary(members["params"], space=space, reference_q67=q67),
                "accuracy_median": float(members["accuracy"].median()),
                "accuracy_max": float(members["accuracy"].max()),
            })  # fmt: skip
    return pd.DataFrame(rows)


def across_seeds(table: pd.DataFrame) -> pd.DataFrame:
    """Per selection and generation of ``per_generation``'s table: the number of seeds, and the median,
    min and max over them of each column in ``SPREAD`` (``<column>_median``, ``_min``, ``_max``)."""
    grouped = table.groupby(["selection", "generation"], sort=False)
    out = grouped.size().rename("seeds").to_frame()
    for column in SPREAD:
        out[f"{column}_median"] = grouped[column].median()
        out[f"{column}_min"] = grouped[column].min()
        out[f"{column}_max"] = grouped[column].max()
    return out.reset_index()


def same_generation0(populations: pd.DataFrame) -> dict[int, bool]:
    """Per seed: whether every selection's generation 0 holds the same model sizes (same seed, same start)."""
    gen0 = populations[populations.generation == 0]
    return {
        int(seed): len({tuple(sorted(members.params)) for _, members in table.groupby("selection")}) == 1
        for seed, table in gen0.groupby("seed")
    }


def top_picks(final_populations: Mapping[tuple[str, int], pd.DataFrame], top: int) -> pd.DataFrame:
    """The ``top`` models of each search's final front to retrain (see the module docstring), one row each;
    a final population is a search's ``population.csv`` (``genotype``, ``accuracy``, ``params``)."""
    rows = []
    for (selection, seed), population in final_populations.items():
        accuracy, params = population["accuracy"].to_numpy(float), population["params"].to_numpy(float)
        order: list[tuple[int, int]] = []
        for front_rank, front in enumerate(non_dominated_fronts(np.column_stack([-accuracy, params])), start=1):
            order += [(int(i), front_rank) for i in sorted(front, key=lambda i: (-accuracy[i], params[i], i))]
            if len(order) >= top:
                break
        for rank, (i, front_rank) in enumerate(order[:top], start=1):
            rows.append({
                "model": f"{selection}-s{seed}-{rank}",
                "selection": selection,
                "seed": int(seed),
                "rank": rank,
                "front": front_rank,
                "genotype": population["genotype"].iloc[i],
                "search_params": int(params[i]),
                "supernet_accuracy": float(accuracy[i]),
            })  # fmt: skip
    return pd.DataFrame(rows, columns=_PLAN_COLUMNS)


def final_table(
    populations: pd.DataFrame,
    generations: pd.DataFrame,
    plan: pd.DataFrame,
    records: Sequence[Mapping[str, Any]],
    space: tuple[float, float],
) -> pd.DataFrame:
    """Per (selection, seed): the last generation's row of ``generations`` (``per_generation``), the
    hypervolume of the final population on SuperNet accuracy, and, once every planned model of that
    search is retrained, the hypervolume of the retrained models on test accuracy and their best test
    accuracy (NaN until then)."""
    trained = pd.DataFrame(list(records), columns=["model", "test_accuracy"]).set_index("model")["test_accuracy"]
    rows = []
    for (selection, seed), table in generations.groupby(["selection", "seed"], sort=False):
        last = table.loc[table.generation.idxmax()]
        members = populations[(populations.selection == selection) & (populations.seed == seed)
                              & (populations.generation == last.generation)]  # fmt: skip
        row = {key: last[key] for key in ("selection", "seed", "generation", *SPREAD)}
        row["hv_supernet"] = hypervolume(members.accuracy, members.params, space=space)
        picks = plan[(plan.selection == selection) & (plan.seed == seed)]
        done = picks[picks.model.isin(trained.index)]
        complete = len(picks) > 0 and len(done) == len(picks)
        test = trained.reindex(done.model).to_numpy(float) if complete else np.zeros(0)
        row["retrained"] = int(len(done))
        row["retrained_best"] = float(test.max()) if complete else math.nan
        row["hv_retrained"] = hypervolume(test, done.search_params, space=space) if complete else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def comparisons(final: pd.DataFrame, selections: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Every pair ``a vs b`` of ``selections`` (in their order), on each number in ``COMPARED``, over the
    seeds where both have it: ``stats.paired_comparison`` of ``a`` against ``b``."""
    out: dict[str, dict[str, Any]] = {}
    for a, b in itertools.combinations(selections, 2):
        left = final[final.selection == a].set_index("seed")
        right = final[final.selection == b].set_index("seed")
        result = {}
        for column in COMPARED:
            pairs = pd.concat([left[column], right[column]], axis=1, keys=["a", "b"], join="inner").dropna()
            result[column] = paired_comparison(pairs["a"], pairs["b"], names=(a, b)) | {"seeds": pairs.index.tolist()}
        out[f"{a} vs {b}"] = result
    return out
