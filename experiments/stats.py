"""Statistics the experiments report: rank correlations with bootstrap intervals, paired comparisons,
the summary of a population's model sizes, and the hypervolume of an (accuracy, size) front.

SciPy (installed with scikit-learn) computes Kendall's tau-b, Spearman's rho, the Wilcoxon
signed-rank test and the paired t-test; pymoo computes the hypervolume. Only the bootstrap is written
here, because it must draw from the experiment's own seeded generator so that a re-run reports the
same interval.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from pymoo.indicators.hv import HV
from scipy import stats as scipy_stats

__all__ = ["HV_REFERENCE", "hypervolume", "paired_comparison", "paired_tau_difference", "partial_tau", "rank_correlation", "sd_interval", "size_summary", "tau_ceiling"]

#: Reference point of ``hypervolume`` in its normalised objectives (error, size): 10% beyond the worst
#: value of each, so that a model of the space's largest size or of 0% accuracy still counts a little.
HV_REFERENCE: tuple[float, float] = (1.1, 1.1)


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def rank_correlation(
    x: Sequence[float], y: Sequence[float], *, rng: np.random.Generator, bootstrap: int = 2000
) -> dict[str, Any]:
    """Kendall's tau-b (and its p-value), Spearman's rho, and a percentile bootstrap 95% interval of tau
    from ``bootstrap`` resamples of the pairs (resamples in which either side is constant are skipped);
    None where fewer than 3 pairs, or a constant side, make them undefined."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)
    result: dict[str, Any] = {"n": n, "kendall_tau": None, "kendall_p": None, "spearman_rho": None,
                              "tau_ci95": [None, None]}  # fmt: skip
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return result
    tau = scipy_stats.kendalltau(x, y)
    rho = scipy_stats.spearmanr(x, y)
    taus = []
    for _ in range(bootstrap):
        index = rng.integers(0, n, size=n)
        if np.ptp(x[index]) > 0 and np.ptp(y[index]) > 0:
            taus.append(scipy_stats.kendalltau(x[index], y[index]).statistic)
    low, high = (np.percentile(taus, [2.5, 97.5]) if taus else (math.nan, math.nan))
    result.update(
        kendall_tau=_finite(tau.statistic),
        kendall_p=_finite(tau.pvalue),
        spearman_rho=_finite(rho.statistic),
        tau_ci95=[_finite(low), _finite(high)],
    )
    return result


def paired_tau_difference(
    a: Sequence[float], b: Sequence[float], y: Sequence[float], *, rng: np.random.Generator, bootstrap: int = 2000
) -> dict[str, Any]:
    """How much better ``a`` ranks ``y`` than ``b`` does: tau(a, y) - tau(b, y) on the same items, with a
    percentile bootstrap 95% interval from resampling the items jointly. The noise of ``y`` is shared by
    both taus, so their difference is surer than either tau's own interval suggests."""
    a, b, y = (np.asarray(v, dtype=np.float64) for v in (a, b, y))
    n = len(y)
    if n < 3 or min(np.ptp(a), np.ptp(b), np.ptp(y)) == 0:
        return {"n": n, "difference": None, "ci95": [None, None]}

    def diff(index: np.ndarray) -> float:
        return scipy_stats.kendalltau(a[index], y[index]).statistic - scipy_stats.kendalltau(b[index], y[index]).statistic

    draws = [d for d in (diff(rng.integers(0, n, size=n)) for _ in range(bootstrap)) if math.isfinite(d)]
    low, high = np.percentile(draws, [2.5, 97.5]) if draws else (math.nan, math.nan)
    return {"n": n, "difference": _finite(diff(np.arange(n))), "ci95": [_finite(low), _finite(high)]}


def partial_tau(
    x: Sequence[float], y: Sequence[float], z: Sequence[float], *, rng: np.random.Generator, bootstrap: int = 2000
) -> dict[str, Any]:
    """How well ``x`` ranks ``y`` beyond what both owe to ``z`` (e.g. model size): Kendall's tau between
    the residuals of ``x``'s and ``y``'s ranks after a straight-line fit on ``z``'s ranks, with a
    percentile bootstrap 95% interval from resampling the items jointly.

    Written here because SciPy has no partial rank correlation, and Kendall's own partial tau (1942)
    does not vanish when ``x`` and ``y`` share only ``z`` (about 0.2 on 60 items where this gives 0)."""
    x, y, z = (np.asarray(v, dtype=np.float64) for v in (x, y, z))
    n = len(y)

    def residual_ranks(values: np.ndarray, index: np.ndarray) -> np.ndarray:
        ranks, held = scipy_stats.rankdata(values[index]), scipy_stats.rankdata(z[index])
        slope, intercept = np.polyfit(held, ranks, 1)
        return ranks - (slope * held + intercept)

    def partial(index: np.ndarray) -> float:
        if min(np.ptp(x[index]), np.ptp(y[index]), np.ptp(z[index])) == 0:
            return math.nan
        return float(scipy_stats.kendalltau(residual_ranks(x, index), residual_ranks(y, index)).statistic)

    if n < 4 or min(np.ptp(x), np.ptp(y), np.ptp(z)) == 0:
        return {"n": n, "partial_tau": None, "ci95": [None, None]}
    draws = [d for d in (partial(rng.integers(0, n, size=n)) for _ in range(bootstrap)) if math.isfinite(d)]
    low, high = np.percentile(draws, [2.5, 97.5]) if draws else (math.nan, math.nan)
    return {"n": n, "partial_tau": _finite(partial(np.arange(n))), "ci95": [_finite(low), _finite(high)]}


def sd_interval(sd: float, df: int) -> list[float | None]:
    """The chi-square 95% interval of a standard deviation ``sd`` estimated with ``df`` degrees of freedom
    (normal data); [None, None] below 1 degree of freedom."""
    if df < 1:
        return [None, None]
    return [float(sd * math.sqrt(df / scipy_stats.chi2.ppf(0.975, df))),
            float(sd * math.sqrt(df / scipy_stats.chi2.ppf(0.025, df)))]


def tau_ceiling(observed_sd: float, noise_sd: float) -> dict[str, float | None]:
    """The Kendall tau a noisy yardstick lets any ranking reach: ``observed_sd`` is the spread of the
    yardstick's values over the genotypes ranked, ``noise_sd`` the standard deviation of one measurement
    (from repeats, e.g. a second seed).

    Under a normal model, a value is truth plus independent noise; the yardstick's reliability is
    ``r = 1 - noise_sd² / observed_sd²``. A perfect predictor of the truth then correlates with one
    measurement at ``sqrt(r)`` and two measurements with each other at ``r``; for a bivariate normal,
    tau = (2/π)·arcsin(correlation) (Greiner's relation). Returns those two taus, ``perfect_vs_one``
    (the ceiling a SuperNet ranking could reach against one seed) and ``seed_vs_seed`` (what repeating
    the yardstick would reach), or None where the noise is at least the whole spread.
    Written here because no library we use states a ranking's noise ceiling; it is two lines of algebra.
    """
    reliability = 1.0 - (noise_sd / observed_sd) ** 2 if observed_sd > 0 else 0.0
    if reliability <= 0:
        return {"reliability": 0.0, "perfect_vs_one": None, "seed_vs_seed": None}
    return {
        "reliability": float(reliability),
        "perfect_vs_one": float(2 / math.pi * math.asin(math.sqrt(reliability))),
        "seed_vs_seed": float(2 / math.pi * math.asin(reliability)),
    }


def paired_comparison(a: Sequence[float], b: Sequence[float], *, names: tuple[str, str] = ("a", "b")) -> dict[str, Any]:
    """``a`` against ``b`` pair by pair: their means (``mean_<name>``), the mean difference ``a - b`` with
    its standard error, wins / losses / ties of ``a``, the two-sided Wilcoxon signed-rank p-value (None
    below 2 pairs or when every pair ties) and the two-sided paired t-test p-value (None below 2 pairs
    or when the differences do not vary). With 3 pairs, as across 3 seeds, Wilcoxon's p cannot go
    below 0.25; the t-test can, at the price of assuming normal differences."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = a - b
    n = len(diff)
    out: dict[str, Any] = {
        "pairs": n,
        f"mean_{names[0]}": _finite(a.mean()) if n else None,
        f"mean_{names[1]}": _finite(b.mean()) if n else None,
        "mean_difference": _finite(diff.mean()) if n else None,
        "difference_se": _finite(diff.std(ddof=1) / math.sqrt(n)) if n >= 2 else None,
        "wins": int((diff > 0).sum()),
        "losses": int((diff < 0).sum()),
        "ties": int((diff == 0).sum()),
        "wilcoxon_p": None,
        "ttest_p": None,
    }
    if n >= 2 and np.any(diff != 0):
        out["wilcoxon_p"] = _finite(scipy_stats.wilcoxon(a, b).pvalue)
    if n >= 2 and np.ptp(diff.round(12)) > 0:  # differences equal but for float noise do not vary
        out["ttest_p"] = _finite(scipy_stats.ttest_rel(a, b).pvalue)
    return out


def size_summary(params: Sequence[float], *, space: tuple[float, float], reference_q67: float) -> dict[str, float]:
    """Summary of a population's model sizes: min, max, range, quartiles, and the shares of members in
    the largest third of the space (``params >= lo + 2/3 (hi - lo)``) and above ``reference_q67`` (the
    2/3 quantile of generation 0, i.e. the largest third of the starting population)."""
    p = np.asarray(params, dtype=np.float64)
    lo, hi = space
    cut = lo + 2.0 / 3.0 * (hi - lo)
    return {
        "n": int(len(p)),
        "params_min": float(p.min()),
        "params_max": float(p.max()),
        "params_range": float(p.max() - p.min()),
        "params_q25": float(np.percentile(p, 25)),
        "params_median": float(np.median(p)),
        "params_q75": float(np.percentile(p, 75)),
        "params_mean": float(p.mean()),
        "share_top_third_space": float((p >= cut).mean()),
        "share_top_third_gen0": float((p >= reference_q67).mean()),
    }


def hypervolume(accuracy: Sequence[float], params: Sequence[float], *, space: tuple[float, float]) -> float:
    """Hypervolume of the models ``(accuracy, params)`` in (accuracy up, parameters down), by pymoo's ``HV``.

    Both objectives are normalised to [0, 1] and minimised: the error ``1 - accuracy`` and the size
    ``(params - lo) / (hi - lo)`` with ``space = (lo, hi)`` the smallest and largest model of the search
    space, so fronts of different runs are measured on one scale. The reference point is
    ``HV_REFERENCE`` = (1.1, 1.1); the result lies in [0, 1.21], 0 for no model. Dominated models add
    nothing, so the hypervolume of a population is that of its first front.
    """
    acc, size = np.asarray(accuracy, dtype=np.float64), np.asarray(params, dtype=np.float64)
    if len(acc) == 0:
        return 0.0
    lo, hi = space
    F = np.column_stack([1.0 - acc, (size - lo) / (hi - lo)])
    return float(HV(ref_point=np.array(HV_REFERENCE))(F))
