import numpy as np
import pytest

from cars_deploy.search.selection import (
    niching_cut,
    non_dominated_fronts,
    nsga3_select,
    pnsga3_select,
    reference_directions,
    select,
)


# ----- brute-force reference -----------------------------------------------------------------------
def dominates(a, b):
    """Definition 1 (eq. 4): no worse in every objective, strictly better in one (minimisation)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def brute_fronts(F):
    remaining = list(range(len(F)))
    fronts = []
    while remaining:
        front = [i for i in remaining if not any(dominates(F[j], F[i]) for j in remaining if j != i)]
        fronts.append(sorted(front))
        remaining = [i for i in remaining if i not in front]
    return fronts


def brute_merged_layers(F_acc, F_speed):
    """The sets U_i = (R_1 ∪ Q_1) ∪ ... ∪ (R_i ∪ Q_i) of section 3.3."""
    R, Q = brute_fronts(F_acc), brute_fronts(F_speed)
    layers, union = [], set()
    for i in range(max(len(R), len(Q))):
        union |= set(R[i] if i < len(R) else []) | set(Q[i] if i < len(Q) else [])
        layers.append(set(union))
    return layers


def _objectives(rng, n, m=2, ties=True):
    F = rng.random((n, m))
    if ties:  # coarse values produce equal objectives and weak domination
        F = np.round(F * 5) / 5
    return F


# ----- tests -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(12))
def test_fronts_equal_the_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    F = _objectives(rng, int(rng.integers(2, 25)), m=int(rng.integers(2, 4)), ties=seed % 2 == 0)
    assert [f.tolist() for f in non_dominated_fronts(F)] == brute_fronts(F)


@pytest.mark.parametrize("seed", range(12))
def test_nsga3_keeps_whole_fronts_and_cuts_only_the_last(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(6, 20))
    F = _objectives(rng, n, ties=seed % 2 == 0)
    fronts = brute_fronts(F)
    for n_survive in range(1, n + 1):
        kept = nsga3_select(F, n_survive)
        assert len(kept) == n_survive == len(set(kept.tolist()))
        whole, i = set(), 0
        while i < len(fronts) and len(whole) + len(fronts[i]) <= n_survive:
            whole |= set(fronts[i])
            i += 1
        assert whole <= set(kept.tolist())
        if len(whole) < n_survive:
            assert set(kept.tolist()) - whole <= set(fronts[i])


@pytest.mark.parametrize("seed", range(12))
def test_pnsga3_takes_merged_fronts_in_order(seed):
    rng = np.random.default_rng(200 + seed)
    n = int(rng.integers(6, 20))
    acc, cost, speed = rng.random(n).round(1), rng.random(n).round(1), rng.normal(size=n).round(1)
    F_acc, F_speed = np.column_stack([-acc, cost]), np.column_stack([-speed, -cost])
    layers = brute_merged_layers(F_acc, F_speed)
    for n_survive in range(1, n + 1):
        kept = set(pnsga3_select(F_acc, F_speed, n_survive).tolist())
        assert len(kept) == n_survive
        fitting = [layer for layer in layers if len(layer) <= n_survive]
        inside = fitting[-1] if fitting else set()
        outside = next(layer for layer in layers if len(layer) >= n_survive)
        assert inside <= kept <= outside
        if len(outside) == n_survive:
            assert kept == outside
        # select() builds the same matrices from accuracy / cost / speed
        assert set(select("pnsga3", accuracy=acc, costs=cost, speed=speed, n_survive=n_survive).tolist()) == kept


def _trap_population():
    """Paper Figure 3 in numbers: small models accurate now with flat accuracy; medium-sized mediocre
    models; large models less accurate now (they converge slower) but with fast-rising accuracy."""
    small_params, small_acc = np.linspace(2.0, 2.7, 8), np.linspace(0.80, 0.90, 8)
    mid_params, mid_acc = np.linspace(2.1, 2.8, 4), np.linspace(0.76, 0.79, 4)
    large_params, large_acc = np.linspace(3.4, 3.7, 4), np.linspace(0.70, 0.74, 4)
    params = np.concatenate([small_params, mid_params, large_params])
    accuracy = np.concatenate([small_acc, mid_acc, large_acc])
    # accuracy per epoch; among the large ones the largest rises a little slower (the Q-front trade-off)
    speed = np.concatenate([np.full(8, 0.001), np.full(4, 0.0005), np.linspace(0.03, 0.02, 4)])
    return params, accuracy, speed, set(range(12, 16))


def test_small_model_trap_pnsga3_keeps_large_fast_rising_models_nsga3_drops_them():
    params, accuracy, speed, large = _trap_population()
    assert brute_fronts(np.column_stack([-accuracy, params]))[0] == list(range(8))
    assert brute_fronts(np.column_stack([-speed, -params]))[0] == sorted(large)
    kept_nsga3 = set(select("nsga3", accuracy=accuracy, costs=params, speed=speed, n_survive=12).tolist())
    kept_pnsga3 = set(select("pnsga3", accuracy=accuracy, costs=params, speed=speed, n_survive=12).tolist())
    assert kept_nsga3 == set(range(12))  # small + mediocre medium models: the trap
    assert kept_pnsga3 == set(range(8)) | large  # U_1 = R_1 ∪ Q_1: accurate small ones and rising large ones


def test_small_model_trap_protection_survives_a_cut_layer():
    params, accuracy, speed, large = _trap_population()
    for n_survive in (9, 10, 11):
        kept_nsga3 = set(select("nsga3", accuracy=accuracy, costs=params, speed=speed, n_survive=n_survive).tolist())
        kept = set(select("pnsga3", accuracy=accuracy, costs=params, speed=speed, n_survive=n_survive).tolist())
        assert not kept_nsga3 & large
        # U_1 has 12 members: 8 from R_1 and 4 from Q_1 share the slots in proportion (8:4)
        assert len(kept & large) == n_survive - round(n_survive * 8 / 12)
        assert kept <= set(range(8)) | large


def test_niching_spreads_the_cut_over_the_front_and_is_deterministic():
    # One front of 11 points on a line; keeping 3 must take the two ends and the middle,
    # not the 3 first indices, and equal calls must give equal answers.
    x = np.linspace(0, 1, 11)
    F = np.column_stack([x, 1 - x])
    kept = nsga3_select(F, 3)
    assert set(kept.tolist()) == {0, 5, 10}
    assert np.array_equal(kept, nsga3_select(F, 3))
    # Niche counts start from the individuals already kept: with both ends kept, the next is the middle.
    cut = niching_cut(F, kept=[0, 10], candidates=list(range(1, 10)), n_remaining=1)
    assert cut.tolist() == [5]


def test_ties_are_broken_by_distance_then_index_never_at_random():
    F = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])
    results = {tuple(nsga3_select(F, 3).tolist()) for _ in range(20)}
    assert results == {(0, 2, 4)}


def test_reference_directions_cover_the_population():
    assert reference_directions(2, 16).shape == (16, 2)
    assert reference_directions(3, 128).shape[0] >= 128


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        nsga3_select(np.array([[np.nan, 1.0], [0.0, 1.0]]), 1)
    with pytest.raises(ValueError, match="keep"):
        nsga3_select(np.zeros((3, 2)), 4)
    with pytest.raises(ValueError, match="speed"):
        select("pnsga3", accuracy=np.ones(3), costs=np.ones(3), speed=None, n_survive=2)
