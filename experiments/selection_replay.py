"""Every rule's choice on the same candidates: each recorded generation's selection replayed (issue 17).

Searches run with different selections part after their first selection, so comparing them
(``selection_ablation``) mixes the rule's effect with everything the search did after it, and with three
seeds per rule such a comparison has little power. This module asks the narrower question the issue
turns on, "does the accuracy-speed term change whom pNSGA-III keeps?", where the answer is paired:
for each generation of each search, it takes the candidates as the history records them (SuperNet
accuracy, accuracy speed, cost, budget violation) and lets every rule of ``cars_deploy.search.selection``
choose among them. What pNSGA-III keeps beyond its shuffled copy, on the same numbers, is the speed
term's doing and nothing else's.

- ``replay_search``: per generation (from 1; generation 0 keeps everyone) and rule, the kept members'
  median size, share in the space's largest third, mean SuperNet accuracy and mean accuracy speed (the
  members' own, whatever the rule saw), how many of them the rule
  keeps differently from pNSGA-III, and how many it shares with the search's recorded selection. The
  rules that draw random numbers (``pnsga3-shuffled``, ``vega``) are drawn ``draws`` times, with their
  own generator, and averaged. It also checks that the search's own rule, with the generator the
  search used (``selection_rng``), keeps exactly the recorded members: the replay is the search's
  selection, not an approximation of it. And per generation, Kendall's tau between the candidates'
  accuracy speed and their size: the speed term can favour large models only where they go together.
- ``speed_pairs``: a member's accuracy speed in one generation beside its speed in the next (the
  members kept in between). If the speed were only the noise of the two accuracy measurements it is
  a difference of, the measurement the two speeds share (with opposite signs) would make them
  correlate at -0.5; a speed that measures how fast a model learns correlates positively.
- ``replay_summary``: per search, the means over its generations; then pNSGA-III against each other
  rule over all searches (``stats.paired_comparison``, pairs = searches; searches of every selection
  count, since each contributes its own candidates).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from cars_deploy.search.selection import SELECTIONS, select, selection_rng

from .stats import paired_comparison

__all__ = ["REFERENCE", "REPLAYED", "replay_search", "replay_summary", "speed_pairs"]

#: The rule every other is measured against: the paper's pNSGA-III.
REFERENCE = "pnsga3"
#: Per-search means compared between pNSGA-III and each other rule.
REPLAYED: tuple[str, ...] = ("kept_params_median", "kept_share_top_third", "kept_accuracy_mean", "kept_speed_mean",
                              "changed_vs_pnsga3")  # fmt: skip
_STREAM = 0x7E9  # the replay's draws: a stream apart from the search's own (selection_rng)


def _candidates(record: Mapping[str, Any]) -> dict[str, np.ndarray | None]:
    """One generation's candidates as ``select`` takes them."""
    individuals = record["individuals"]
    cost_names = record["objectives"][1:]
    speed = [ind.get("accuracy_speed") for ind in individuals]
    violation = [ind["violation"] for ind in individuals] if all("violation" in ind for ind in individuals) else None
    return {
        "accuracy": np.array([ind["accuracy"] for ind in individuals], dtype=np.float64),
        "costs": np.array([[ind[name] for name in cost_names] for ind in individuals], dtype=np.float64),
        "speed": None if any(s is None for s in speed) else np.array(speed, dtype=np.float64),
        "violation": None if violation is None else np.array(violation, dtype=np.float64),
        "params": np.array([ind["params"] for ind in individuals], dtype=np.float64),
        "selected": np.array([ind.get("selected", True) for ind in individuals], dtype=bool),
    }


def _kept(c: Mapping[str, Any], rule: str, rng: np.random.Generator | None) -> np.ndarray:
    """Which of the candidates ``c`` (``_candidates``) ``rule`` keeps, as a mask; as many as the search kept."""
    mask = np.zeros(len(c["selected"]), dtype=bool)
    mask[select(rule, accuracy=c["accuracy"], costs=c["costs"], speed=c["speed"], n_survive=int(c["selected"].sum()),
                violation=c["violation"], rng=rng)] = True  # fmt: skip
    return mask


def replay_search(
    history: Sequence[Mapping[str, Any]],
    *,
    selection: str,
    seed: int,
    space: tuple[float, float],
    draws: int = 32,
) -> pd.DataFrame:
    """One row per replayed generation of a search's ``history`` and rule (see the module docstring);
    ``selection`` and ``seed`` are the search's own, ``space`` the (smallest, largest) model size."""
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    lo, hi = space
    cut = lo + 2.0 / 3.0 * (hi - lo)
    rows = []
    for record in history:
        generation = int(record["generation"])
        c = _candidates(record)
        n_survive = int(c["selected"].sum())
        if generation == 0 or n_survive == len(c["selected"]):
            continue
        own = _kept(c, selection, selection_rng(seed, generation))
        reference = _kept(c, REFERENCE, None)
        draw_rng = np.random.default_rng([seed, generation, _STREAM])
        tau = scipy_stats.kendalltau(c["speed"], c["params"]) if c["speed"] is not None else None
        for rule in SELECTIONS:
            masks = [_kept(c, rule, draw_rng) for _ in range(draws)] if rule in ("pnsga3-shuffled", "vega") else \
                [reference if rule == REFERENCE else _kept(c, rule, None)]  # fmt: skip
            rows.append({
                "selection": selection,
                "seed": int(seed),
                "generation": generation,
                "rule": rule,
                "draws": len(masks),
                "candidates": len(c["selected"]),
                "kept": n_survive,
                "kept_params_median": float(np.mean([np.median(c["params"][m]) for m in masks])),
                "kept_share_top_third": float(np.mean([(c["params"][m] >= cut).mean() for m in masks])),
                "kept_accuracy_mean": float(np.mean([c["accuracy"][m].mean() for m in masks])),
                "kept_speed_mean": None if c["speed"] is None else float(np.mean([c["speed"][m].mean() for m in masks])),
                "changed_vs_pnsga3": float(np.mean([(m & ~reference).sum() for m in masks])),
                "shared_with_recorded": float(np.mean([(m & c["selected"]).sum() for m in masks])),
                "reproduces_recorded": bool(np.array_equal(own, c["selected"])) if rule == selection else None,
                "tau_speed_params": None if tau is None else float(tau.statistic),
                "tau_speed_params_p": None if tau is None else float(tau.pvalue),
            })  # fmt: skip
    return pd.DataFrame(rows)


def speed_pairs(history: Sequence[Mapping[str, Any]], *, selection: str, seed: int) -> pd.DataFrame:
    """Per member kept at generation g >= 1 and measured again at g + 1: its accuracy speed at both (see
    the module docstring); genotypes listed twice in a generation are left out, being ambiguous."""
    rows = []
    speeds: dict[int, dict[str, float]] = {}
    kept: dict[int, set[str]] = {}
    for record in history:
        generation = int(record["generation"])
        counts = pd.Series([ind["genotype"] for ind in record["individuals"]]).value_counts()
        unique = [ind for ind in record["individuals"] if counts[ind["genotype"]] == 1]
        speeds[generation] = {ind["genotype"]: ind["accuracy_speed"] for ind in unique
                              if ind.get("accuracy_speed") is not None}  # fmt: skip
        kept[generation] = {ind["genotype"] for ind in unique if ind.get("selected", True)}
    for generation in sorted(speeds):
        now, later = speeds[generation], speeds.get(generation + 1, {})
        for genotype in sorted(kept[generation] & now.keys() & later.keys()):
            rows.append({"selection": selection, "seed": int(seed), "generation": generation,
                         "speed": float(now[genotype]), "speed_next": float(later[genotype])})  # fmt: skip
    return pd.DataFrame(rows, columns=["selection", "seed", "generation", "speed", "speed_next"])


def replay_summary(replays: pd.DataFrame, pairs: pd.DataFrame | None = None) -> dict[str, Any]:
    """What the replays of all searches say (see the module docstring): how many generations reproduce
    their recorded selection, the tau between speed and size (median and share of generations with
    p < 0.05), the per-rule means over searches, pNSGA-III against each other rule, search by search,
    and, given ``speed_pairs``, the correlation of a member's speed with its next one."""
    if replays.empty:
        return {"searches": 0}
    persistence = None
    if pairs is not None and len(pairs) >= 3:
        # Within each generation: the selection compares speeds of one generation, not across them.
        centred = pairs[["speed", "speed_next"]] - pairs.groupby(["selection", "seed", "generation"])[
            ["speed", "speed_next"]].transform("mean")
        pearson = scipy_stats.pearsonr(centred.speed, centred.speed_next)
        kendall = scipy_stats.kendalltau(centred.speed, centred.speed_next)
        persistence = {"pairs": int(len(pairs)), "pearson_r": float(pearson.statistic), "pearson_p": float(pearson.pvalue),
                       "kendall_tau": float(kendall.statistic), "kendall_p": float(kendall.pvalue),
                       "pure_noise_expectation": -0.5}  # fmt: skip
    per_search = replays.groupby(["selection", "seed", "rule"], sort=False)[list(REPLAYED)].mean().reset_index()
    own = replays.dropna(subset=["reproduces_recorded"])
    taus = replays[replays.rule == REFERENCE].dropna(subset=["tau_speed_params"])
    reference = per_search[per_search.rule == REFERENCE].set_index(["selection", "seed"])
    comparisons = {}
    for rule in [r for r in SELECTIONS if r != REFERENCE]:
        other = per_search[per_search.rule == rule].set_index(["selection", "seed"]).reindex(reference.index)
        comparisons[f"{REFERENCE} vs {rule}"] = {
            column: paired_comparison(reference[column], other[column], names=(REFERENCE, rule))
            for column in REPLAYED if column != "changed_vs_pnsga3"
        }
    return {
        "searches": int(len(reference)),
        "generations": int(len(replays[replays.rule == REFERENCE])),
        "reproduced_generations": int(own.reproduces_recorded.astype(bool).sum()),
        "replayed_generations": int(len(own)),
        "tau_speed_params_median": float(taus.tau_speed_params.median()) if len(taus) else None,
        "tau_speed_params_share_significant": float((taus.tau_speed_params_p < 0.05).mean()) if len(taus) else None,
        "tau_speed_params_share_positive": float((taus.tau_speed_params > 0).mean()) if len(taus) else None,
        "mean_over_searches": per_search.groupby("rule", sort=False)[list(REPLAYED)].mean().to_dict("index"),
        "comparisons": comparisons,
        "speed_persistence": persistence,
        "note": "pairs are searches (each the mean over its generations); every rule chose among the same "
                "recorded candidates; sizes in parameters of the deploy network, shares and accuracies fractions",
    }
