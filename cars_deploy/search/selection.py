"""Survivor selection: NSGA-III, the paper's pNSGA-III (section 3.3) and two ablations of it.

All minimise objective matrices (``F[i, m]``, smaller is better; accuracy enters as ``-accuracy``).
Non-dominated sorting is pymoo's ``NonDominatedSorting``; reference directions come from pymoo's
``get_reference_directions`` (Das-Dennis, about one per survivor) and individuals are associated to
them with pymoo's NSGA-III ``HyperplaneNormalization`` and ``associate_to_niches``.

- ``pnsga3`` (the default): a first sort ``R`` on ``(-accuracy, costs)`` (accuracy up, cost down) and a
  second ``Q`` on ``(-speed, -costs)`` (accuracy increasing speed up, cost *up*: large models whose
  accuracy still rises fast are on its first front). Fronts are merged in order,
  ``U_i = (R_1 ∪ Q_1) ∪ ... ∪ (R_i ∪ Q_i)``, and the first ``P`` individuals are kept: every ``U_i``
  that fits is kept whole. The new members of the first one that does not fit are cut by niching:
  those on both ``R_i`` and ``Q_i`` first, then the rest shared between ``R_i`` and ``Q_i`` in
  proportion to their numbers, each share niched in its own objective space with niche counts from
  the members already kept (niching the ``Q_i`` members on accuracy would drop the very models the
  second sort protects).
- ``pnsga3-shuffled``: ``pnsga3`` with the speed vector replaced by a random permutation of itself
  before the second sort (the cut included). The speeds keep their distribution but no longer belong
  to their models, so what is left of pNSGA-III's protection is what a second sort on cost up with
  a speed unrelated to the model gives: the control for "does the speed term do anything".
- ``vega``: the selection of vega, the authors' toolkit (``CARS_NSGA``): no speed term, its second
  sort is on ``(-accuracy, -costs)`` (accuracy up, cost up), merged with ``R`` as in ``pnsga3``, and
  the new members of the first merged layer that does not fit are cut uniformly at random. (vega
  sorts each cost separately; with the experiments' single cost, ``params``, the two are the same.)
- ``nsga3``: fronts of ``(-accuracy, costs)`` are taken whole while they fit; the last front that
  does not fit is cut by niching.

Randomness: ``pnsga3-shuffled`` and ``vega`` draw from the ``numpy.random.Generator`` given to
``select``; the search passes ``selection_rng(seed, generation)``, a generator of its own for each
generation, so a resumed run selects exactly what an uninterrupted one does, and the search's main
generator (variation, architecture sampling) makes the same draws under every selection.

The niching step is hand-written (not pymoo's ``niching``) because pymoo breaks ties at random
(random order of equally crowded niches, random member of a non-empty niche) from a generator the
caller does not own, which made seeded selections irreproducible. Here it is deterministic: among the
least crowded niches, those whose closest candidate lies nearest their reference line go first (then
the lower niche index), and a niche always takes its candidate nearest the reference line (then the
lower index). The rule is the one NSGA-III uses for empty niches, applied to all of them.

With budgets (``search.budgets``), every variant handles constraints by constraint domination, as
pymoo's constrained survival does: feasible individuals first, selected by the sorts above among
themselves; infeasible ones after them, by ascending total normalised violation.
"""
from __future__ import annotations

import warnings
from functools import lru_cache
from math import comb
from typing import Callable, Literal, Sequence, get_args

import numpy as np
from pymoo.algorithms.moo.nsga3 import HyperplaneNormalization, associate_to_niches, calc_niche_count
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from pymoo.util.ref_dirs import get_reference_directions

__all__ = [
    "SELECTIONS",
    "SelectionName",
    "non_dominated_fronts",
    "reference_directions",
    "niching_cut",
    "nsga3_select",
    "pnsga3_select",
    "vega_select",
    "select",
    "selection_rng",
]

SelectionName = Literal["pnsga3", "pnsga3-shuffled", "vega", "nsga3"]
#: The selection names, the default first.
SELECTIONS: tuple[str, ...] = get_args(SelectionName)
#: Selections that draw random numbers (``select`` needs ``rng`` for them).
_RANDOM: frozenset[str] = frozenset({"pnsga3-shuffled", "vega"})
_STREAM = 0x5E1  # tells the selection's generators apart from the other streams seeded by a search's seed

# A cut of the first merged layer that does not fit: (kept, new_R, new_Q, n) -> n of new_R ∪ new_Q.
_LayerCut = Callable[[list[int], np.ndarray, np.ndarray, int], np.ndarray]


def non_dominated_fronts(F: np.ndarray) -> list[np.ndarray]:
    """Fronts of ``F`` (minimisation) in order; each an ascending array of row indices."""
    F = _check(F)
    if len(F) == 0:
        return []
    return [np.sort(np.asarray(front, dtype=np.int64)) for front in NonDominatedSorting().do(F)]


@lru_cache(maxsize=64)
def _ref_dirs(n_obj: int, n_points: int) -> np.ndarray:
    partitions = 1
    while comb(partitions + n_obj - 1, n_obj - 1) < n_points:
        partitions += 1
    return get_reference_directions("das-dennis", n_obj, n_partitions=partitions)


def reference_directions(n_obj: int, n_points: int) -> np.ndarray:
    """Das-Dennis directions on the unit simplex: the fewest partitions giving at least ``n_points``."""
    if n_obj < 2:
        raise ValueError("reference directions need at least 2 objectives")
    return _ref_dirs(n_obj, max(n_points, n_obj)).copy()


def niching_cut(F: np.ndarray, kept: Sequence[int], candidates: Sequence[int], n_remaining: int) -> np.ndarray:
    """``n_remaining`` of ``candidates`` chosen by NSGA-III reference-direction niching, deterministically.

    ``F`` holds the objectives of (at least) ``kept`` and ``candidates``; the normalisation (ideal point,
    hyperplane intercepts from the first front) is computed on ``kept ∪ candidates``, and niche
    counts start from ``kept``.
    """
    kept = np.asarray(kept, dtype=np.int64)
    candidates = np.asarray(candidates, dtype=np.int64)
    if not 0 <= n_remaining <= len(candidates):
        raise ValueError(f"cannot choose {n_remaining} of {len(candidates)} candidates")
    if n_remaining == len(candidates):
        return candidates.copy()
    if n_remaining == 0:
        return np.zeros(0, dtype=np.int64)
    members = np.concatenate([kept, candidates])
    Fm = _check(F)[members]
    ref_dirs = reference_directions(Fm.shape[1], len(kept) + n_remaining)
    first = NonDominatedSorting().do(Fm, only_non_dominated_front=True)
    norm = HyperplaneNormalization(Fm.shape[1])
    with warnings.catch_warnings():  # pymoo's get_nadir_point silences warnings globally otherwise
        norm.update(Fm, nds=first)
    niche, dist, _ = associate_to_niches(Fm, ref_dirs, norm.ideal_point, norm.nadir_point)
    niche_count = calc_niche_count(len(ref_dirs), niche[: len(kept)])
    cand_niche, cand_dist = niche[len(kept) :], dist[len(kept) :]

    available = np.ones(len(candidates), dtype=bool)
    chosen: list[int] = []
    while len(chosen) < n_remaining:
        open_niches = np.unique(cand_niche[available])
        counts = niche_count[open_niches]
        least = open_niches[counts == counts.min()]
        nearest = np.array([cand_dist[available & (cand_niche == k)].min() for k in least])
        order = np.lexsort((least, nearest))  # nearest candidate first, then lower niche index
        for k in least[order][: n_remaining - len(chosen)]:
            pool = np.flatnonzero(available & (cand_niche == k))
            pick = pool[np.lexsort((pool, cand_dist[pool]))[0]]
            available[pick] = False
            chosen.append(int(pick))
            niche_count[k] += 1
    return candidates[np.array(chosen, dtype=np.int64)]


def nsga3_select(F: np.ndarray, n_survive: int) -> np.ndarray:
    """NSGA-III survivors: whole fronts of ``F`` while they fit, the next one cut by niching."""
    F = _check(F)
    _check_size(len(F), n_survive)
    kept: list[int] = []
    for front in non_dominated_fronts(F):
        if len(kept) + len(front) <= n_survive:
            kept.extend(front.tolist())
        else:
            kept.extend(niching_cut(F, kept, front, n_survive - len(kept)).tolist())
        if len(kept) == n_survive:
            break
    return np.array(kept, dtype=np.int64)


def pnsga3_select(F_accuracy: np.ndarray, F_speed: np.ndarray, n_survive: int) -> np.ndarray:
    """pNSGA-III survivors: fronts ``R`` of ``F_accuracy`` and ``Q`` of ``F_speed`` merged as
    ``U_i = (R_1 ∪ Q_1) ∪ ... ∪ (R_i ∪ Q_i)``; the new members of the first ``U_i`` that does not fit
    are cut as described in the module docstring (``_cut_layer``)."""
    F_accuracy, F_speed = _check(F_accuracy), _check(F_speed)

    def cut(kept: list[int], new_R: np.ndarray, new_Q: np.ndarray, n: int) -> np.ndarray:
        return _cut_layer(F_accuracy, F_speed, kept, new_R, new_Q, n)

    return _merged_select(F_accuracy, F_speed, n_survive, cut)


def vega_select(F_accuracy: np.ndarray, F_size: np.ndarray, n_survive: int, *, rng: np.random.Generator) -> np.ndarray:
    """vega's survivors (``CARS_NSGA``): fronts ``R`` of ``F_accuracy`` and ``Q`` of ``F_size`` (accuracy
    up, cost up) merged as in ``pnsga3_select``; the new members of the first merged layer that does not
    fit are cut uniformly at random by ``rng``."""
    F_accuracy, F_size = _check(F_accuracy), _check(F_size)

    def cut(kept: list[int], new_R: np.ndarray, new_Q: np.ndarray, n: int) -> np.ndarray:
        return np.sort(rng.choice(np.union1d(new_R, new_Q), size=n, replace=False))

    return _merged_select(F_accuracy, F_size, n_survive, cut)


def _merged_select(F_accuracy: np.ndarray, F_second: np.ndarray, n_survive: int, cut: _LayerCut) -> np.ndarray:
    """The first ``n_survive`` of the merged layers ``U_i = (R_1 ∪ Q_1) ∪ ... ∪ (R_i ∪ Q_i)`` of the fronts
    ``R`` of ``F_accuracy`` and ``Q`` of ``F_second``; ``cut`` chooses among the new members of the
    first layer that does not fit."""
    if len(F_accuracy) != len(F_second):
        raise ValueError("the two objective matrices describe different populations")
    _check_size(len(F_accuracy), n_survive)
    R, Q = non_dominated_fronts(F_accuracy), non_dominated_fronts(F_second)
    empty = np.zeros(0, dtype=np.int64)
    kept: list[int] = []
    in_kept = np.zeros(len(F_accuracy), dtype=bool)
    for i in range(max(len(R), len(Q))):
        new_R = _fresh(R[i] if i < len(R) else empty, in_kept)
        new_Q = _fresh(Q[i] if i < len(Q) else empty, in_kept)
        new = np.union1d(new_R, new_Q)
        if len(kept) + len(new) > n_survive:
            new = cut(kept, new_R, new_Q, n_survive - len(kept))
        kept.extend(new.tolist())
        in_kept[new] = True
        if len(kept) == n_survive:
            break
    return np.array(kept, dtype=np.int64)


def _fresh(front: np.ndarray, in_kept: np.ndarray) -> np.ndarray:
    return front[~in_kept[front]]


def _cut_layer(
    F_accuracy: np.ndarray, F_speed: np.ndarray, kept: list[int], new_R: np.ndarray, new_Q: np.ndarray, n: int
) -> np.ndarray:
    """``n`` of the new members ``new_R ∪ new_Q`` of the first merged layer that does not fit.

    Members on both fronts go first (niching on accuracy if even they do not fit). The remaining slots
    are shared between the members only on ``R_i`` and those only on ``Q_i`` in proportion to their
    numbers, and each share is chosen by niching in its own objective space: cutting the ``Q_i``
    members in the accuracy space would throw out exactly the slow-starting large models that the
    second sort is there to protect.
    """
    both = np.intersect1d(new_R, new_Q)
    if len(both) >= n:
        return niching_cut(F_accuracy, kept, both, n)
    only_R, only_Q = np.setdiff1d(new_R, both), np.setdiff1d(new_Q, both)
    rest = n - len(both)
    share_R = min(len(only_R), int(np.floor(rest * len(only_R) / (len(only_R) + len(only_Q)) + 0.5)))
    share_Q = min(len(only_Q), rest - share_R)
    share_R = rest - share_Q
    chosen_R = niching_cut(F_accuracy, [*kept, *both.tolist()], only_R, share_R)
    chosen_Q = niching_cut(F_speed, [*kept, *both.tolist(), *chosen_R.tolist()], only_Q, share_Q)
    return np.concatenate([both, chosen_R, chosen_Q]).astype(np.int64)


def selection_rng(seed: int, generation: int) -> np.random.Generator:
    """The generator the random selections of ``generation`` draw from in a search seeded ``seed``: its
    own stream per generation, so a resumed search selects what an uninterrupted one does."""
    return np.random.default_rng([seed, generation, _STREAM])


def select(
    method: SelectionName,
    *,
    accuracy: np.ndarray,
    costs: np.ndarray,
    speed: np.ndarray | None,
    n_survive: int,
    violation: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Indices of the ``n_survive`` individuals kept by ``method`` (one of ``SELECTIONS``).

    ``accuracy`` (n,) is maximised and ``costs`` (n, M) minimised; pNSGA-III also maximises ``speed``
    (n,), the accuracy increasing speed, against *large* costs. ``violation`` (n,), the total normalised
    budget violation (``search.budgets``; 0 = within budget), turns on constraint domination. ``rng``
    is needed by the selections that draw random numbers (``pnsga3-shuffled``, ``vega``).
    """
    if method not in SELECTIONS:
        raise ValueError(f"unknown selection {method!r}; expected one of {', '.join(SELECTIONS)}")
    if method in _RANDOM and rng is None:
        raise ValueError(f"the {method} selection draws random numbers: pass rng (e.g. selection_rng(seed, generation))")
    accuracy = np.asarray(accuracy, dtype=np.float64).reshape(-1)
    costs = np.asarray(costs, dtype=np.float64).reshape(len(accuracy), -1)
    if speed is not None:
        speed = np.asarray(speed, dtype=np.float64).reshape(-1)
    if violation is not None:
        return _constrained(method, accuracy, costs, speed, n_survive, np.asarray(violation, dtype=np.float64), rng)
    return _unconstrained(method, accuracy, costs, speed, n_survive, rng)


def _constrained(
    method: SelectionName, accuracy: np.ndarray, costs: np.ndarray, speed: np.ndarray | None, n_survive: int,
    violation: np.ndarray, rng: np.random.Generator | None,
) -> np.ndarray:
    """Constraint domination (Deb's rules), as pymoo's ``Survival`` with ``filter_infeasible`` does:
    feasible individuals beat infeasible ones and are selected among themselves by ``method``; when
    they do not fill the population, the infeasible ones follow by ascending violation. pymoo's
    ``split_by_feasibility`` needs a pymoo ``Population`` and sorts with an unstable argsort; this
    stable sort (ties by index) keeps seeded runs reproducible."""
    violation = violation.reshape(-1)
    if violation.shape != accuracy.shape or not np.isfinite(violation).all() or (violation < 0).any():
        raise ValueError("violation must hold one finite value >= 0 per individual")
    _check_size(len(accuracy), n_survive)
    feasible = np.flatnonzero(violation <= 0)
    if len(feasible) > n_survive:
        sub_speed = None if speed is None else speed[feasible]
        return feasible[_unconstrained(method, accuracy[feasible], costs[feasible], sub_speed, n_survive, rng)]
    infeasible = np.flatnonzero(violation > 0)
    infeasible = infeasible[np.argsort(violation[infeasible], kind="stable")]
    return np.concatenate([feasible, infeasible[: n_survive - len(feasible)]]).astype(np.int64)


def _unconstrained(
    method: SelectionName, accuracy: np.ndarray, costs: np.ndarray, speed: np.ndarray | None, n_survive: int,
    rng: np.random.Generator | None,
) -> np.ndarray:
    F_accuracy = np.column_stack([-accuracy, costs])
    if method == "nsga3":
        return nsga3_select(F_accuracy, n_survive)
    if method == "vega":
        assert rng is not None  # checked by select
        return vega_select(F_accuracy, np.column_stack([-accuracy, -costs]), n_survive, rng=rng)
    if speed is None:
        raise ValueError("pNSGA-III needs the accuracy increasing speed of every individual")
    if method == "pnsga3-shuffled":
        assert rng is not None  # checked by select
        speed = rng.permutation(speed)
    return pnsga3_select(F_accuracy, np.column_stack([-speed, -costs]), n_survive)


def _check(F: np.ndarray) -> np.ndarray:
    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 2:
        raise ValueError(f"objective matrix must be 2-D (individuals x objectives), got shape {F.shape}")
    if not np.isfinite(F).all():
        raise ValueError("objective matrix holds NaN or infinite values")
    return F


def _check_size(n: int, n_survive: int) -> None:
    if not 0 < n_survive <= n:
        raise ValueError(f"cannot keep {n_survive} of {n} individuals")
