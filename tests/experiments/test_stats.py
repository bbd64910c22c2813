import numpy as np
import pytest
from scipy import stats as scipy_stats

from experiments.stats import (
    paired_comparison,
    paired_tau_difference,
    partial_tau,
    rank_correlation,
    sd_interval,
    size_summary,
    tau_ceiling,
)


def test_rank_correlation_of_monotonic_reversed_and_constant_data():
    rng = np.random.default_rng(0)
    x = np.arange(10.0)
    same = rank_correlation(x, x ** 2, rng=rng, bootstrap=200)
    assert same["kendall_tau"] == pytest.approx(1.0) and same["spearman_rho"] == pytest.approx(1.0)
    assert same["tau_ci95"] == [pytest.approx(1.0), pytest.approx(1.0)] and same["kendall_p"] < 0.001
    assert rank_correlation(x, -x, rng=rng, bootstrap=50)["kendall_tau"] == pytest.approx(-1.0)
    assert rank_correlation(x, np.ones(10), rng=rng)["kendall_tau"] is None
    assert rank_correlation([1.0, 2.0], [2.0, 1.0], rng=rng)["kendall_tau"] is None
    # One swapped pair among 45: tau = (44 - 1) / 45.
    swapped = x.copy()
    swapped[[3, 4]] = swapped[[4, 3]]
    result = rank_correlation(x, swapped, rng=np.random.default_rng(1), bootstrap=300)
    assert result["kendall_tau"] == pytest.approx(43 / 45)
    low, high = result["tau_ci95"]
    assert low <= 43 / 45 <= high


def test_paired_comparison_counts_and_means():
    out = paired_comparison([0.5, 0.6, 0.7, 0.4], [0.4, 0.6, 0.5, 0.5], names=("cars", "random"))
    assert out["pairs"] == 4 and (out["wins"], out["losses"], out["ties"]) == (2, 1, 1)
    assert out["mean_cars"] == pytest.approx(0.55) and out["mean_random"] == pytest.approx(0.5)
    assert out["mean_difference"] == pytest.approx(0.05) and 0 < out["wilcoxon_p"] <= 1
    assert paired_comparison([0.5], [0.5])["wilcoxon_p"] is None


def test_paired_t_test_resolves_three_pairs_where_wilcoxon_cannot():
    out = paired_comparison([0.60, 0.62, 0.61], [0.50, 0.51, 0.52])  # three seeds, always about 0.1 better
    assert out["wilcoxon_p"] == pytest.approx(0.25)  # the smallest two-sided p with 3 pairs
    assert out["ttest_p"] < 0.01
    assert paired_comparison([0.6, 0.7], [0.5, 0.6])["ttest_p"] is None  # constant differences: no variance


def test_size_summary_shares():
    summary = size_summary([10, 20, 30, 40, 90, 100], space=(0, 120), reference_q67=35)
    assert summary["params_range"] == 90 and summary["params_median"] == 35
    assert summary["share_top_third_space"] == pytest.approx(2 / 6)  # >= 80
    assert summary["share_top_third_gen0"] == pytest.approx(3 / 6)  # >= 35


def test_tau_ceiling_matches_a_simulated_noisy_yardstick():
    rng = np.random.default_rng(3)
    truth = rng.normal(0.0, 1.5, size=20000)
    first, second = truth + rng.normal(0, 1.0, truth.size), truth + rng.normal(0, 1.0, truth.size)
    ceiling = tau_ceiling(float(first.std()), 1.0)
    assert abs(ceiling["perfect_vs_one"] - scipy_stats.kendalltau(truth, first).statistic) < 0.02
    assert abs(ceiling["seed_vs_seed"] - scipy_stats.kendalltau(first, second).statistic) < 0.02
    assert ceiling["seed_vs_seed"] < ceiling["perfect_vs_one"] < 1
    assert tau_ceiling(1.0, 1.2) == {"reliability": 0.0, "perfect_vs_one": None, "seed_vs_seed": None}


def test_sd_interval_covers_the_true_sd_about_95_percent_of_the_time():
    rng = np.random.default_rng(5)
    samples = rng.normal(0, 2.0, size=(2000, 8))
    intervals = np.array([sd_interval(float(row.std(ddof=1)), 7) for row in samples])
    assert 0.93 < np.mean((intervals[:, 0] < 2.0) & (2.0 < intervals[:, 1])) < 0.97
    assert sd_interval(1.0, 0) == [None, None]


def test_paired_tau_difference_sees_a_better_ranker_through_shared_noise():
    rng = np.random.default_rng(7)
    truth = rng.normal(size=40)
    y = truth + rng.normal(0, 0.5, 40)
    good, poor = truth + rng.normal(0, 0.2, 40), truth + rng.normal(0, 3.0, 40)
    result = paired_tau_difference(good, poor, y, rng=np.random.default_rng(0))
    assert result["difference"] > 0 and result["ci95"][0] > 0  # the interval excludes no difference
    swapped = paired_tau_difference(poor, good, y, rng=np.random.default_rng(0))
    assert abs(swapped["difference"] + result["difference"]) < 1e-12 and swapped["ci95"][1] < 0
    assert paired_tau_difference(good, np.ones(40), y, rng=rng)["difference"] is None


def test_partial_tau_sees_the_ranking_that_size_hides_and_the_one_size_makes():
    rng = np.random.default_rng(3)
    size, merit = rng.normal(size=60), rng.normal(size=60)
    # A ranker that knows the merit but prefers small models, against a yardstick that rewards size:
    # the plain tau is negative, the size-held one clearly positive.
    ranker, yardstick = merit - 1.5 * size, merit + 1.5 * size
    assert rank_correlation(ranker, yardstick, rng=rng, bootstrap=10)["kendall_tau"] < 0
    held = partial_tau(ranker, yardstick, size, rng=np.random.default_rng(0), bootstrap=300)
    assert held["partial_tau"] > 0.5 and held["ci95"][0] > 0.3
    # Two measures that share only size: a positive plain tau, no size-held one.
    a, b = size + rng.normal(0, 0.5, 60), size + rng.normal(0, 0.5, 60)
    assert rank_correlation(a, b, rng=rng, bootstrap=10)["kendall_tau"] > 0.4
    shared = partial_tau(a, b, size, rng=np.random.default_rng(0), bootstrap=300)
    assert abs(shared["partial_tau"]) < 0.15 and shared["ci95"][0] < 0 < shared["ci95"][1]
    assert partial_tau(a, b, np.ones(60), rng=rng)["partial_tau"] is None
